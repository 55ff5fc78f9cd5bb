-- Which of this chunk's local rejections (`chunk_rejections(row_sha256, reason)`) the
-- ledger has seen before: same content, same reason.
SELECT c.row_sha256
FROM chunk_rejections c
JOIN rejected_rows r
  ON r.environment = $environment AND r.row_sha256 = c.row_sha256 AND r.reason = c.reason;
