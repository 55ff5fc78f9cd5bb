-- `ledger summary`: the latest `$runs` runs, newest first, and how many there were.
SELECT
    run_id, mode, status, started_at, duration_s, rows_read, accepted, rejected, failed,
    rows_rejected_local, rows_skipped_ledger, retries, count(*) OVER () AS runs_total
FROM runs
WHERE environment = $environment
ORDER BY started_at DESC
LIMIT $runs;
