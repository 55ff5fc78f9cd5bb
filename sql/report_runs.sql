-- `ledger report`: the runs that started in [$since, $until) (null: unbounded), the
-- latest `$limit` first, with how many there were.
SELECT
    run_id, mode, status, started_at, finished_at, duration_s, rows_read, accepted, rejected,
    failed, pending, rows_rejected_local, rows_skipped_ledger, rows_duplicate, requests, retries,
    isolated, count(*) OVER () AS runs_total
FROM runs
WHERE environment = $environment
  AND ($since::TIMESTAMPTZ IS NULL OR started_at >= $since::TIMESTAMPTZ)
  AND ($until::TIMESTAMPTZ IS NULL OR started_at < $until::TIMESTAMPTZ)
ORDER BY started_at DESC
LIMIT $limit;
