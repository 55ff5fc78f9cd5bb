-- What the marker file beside the ledger records: the ledger's id and its runs.
SELECT (SELECT value FROM ledger_meta WHERE key = 'ledger_id') AS ledger_id,
       count(*) AS runs,
       arg_max(run_id, started_at) AS last_run_id,
       max(started_at) AS last_run_at
FROM runs;
