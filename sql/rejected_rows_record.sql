-- Remember this chunk's local rejections (`chunk_rejections(row_sha256, reason)`).
INSERT INTO rejected_rows (environment, row_sha256, reason, first_run_id, last_seen_at)
SELECT DISTINCT ON (row_sha256) $environment, row_sha256, reason, $run_id, $now
FROM chunk_rejections
ON CONFLICT (environment, row_sha256) DO UPDATE SET
    reason = excluded.reason,
    last_seen_at = excluded.last_seen_at;
