-- Schema 4 -> 5: the run report's duplicates unlike the row that won, and those of
-- them an earlier run saw.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS duplicates_differing BIGINT DEFAULT 0;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS duplicates_differing_known BIGINT DEFAULT 0;
UPDATE ledger_meta SET value = '5' WHERE key = 'schema_version';
