-- A run still `running` when another run takes the ledger ended without finishing
-- (its process was killed): only one process at a time holds the ledger's file lock.
UPDATE runs SET
    status = 'interrupted',
    message = 'the process ended before the run finished (killed?); '
        || 'rows it left pending are resent by the next run'
WHERE status = 'running';
