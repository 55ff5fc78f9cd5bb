-- The backfill windows this environment's ledger records as finished, oldest first.
SELECT window_since, window_until
FROM backfill_windows
WHERE environment = $environment
ORDER BY window_since, window_until;
