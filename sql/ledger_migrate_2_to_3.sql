-- Schema 2 -> 3: the run report counts the batches resent alone (`isolated`) because
-- an answer did not say which batch of a bulk request it meant.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS isolated BIGINT DEFAULT 0;
UPDATE ledger_meta SET value = '3' WHERE key = 'schema_version';
