-- Schema 3 -> 4: the field warnings of each conversion sent, the first 32 bits of its
-- payload hash (what a run's in-memory index holds of it); the run report's
-- pending rows, known rejections, changes after acceptance and counts by reason and
-- by warning. (`rejected_rows` is new: ledger.sql creates it.)
ALTER TABLE ledger ADD COLUMN IF NOT EXISTS warnings VARCHAR;
ALTER TABLE ledger ADD COLUMN IF NOT EXISTS payload_prefix UINTEGER;
UPDATE ledger SET payload_prefix = ('0x' || left(payload_sha256, 8))::UINTEGER;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS rows_rejected_known BIGINT DEFAULT 0;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS changed_after_accept BIGINT DEFAULT 0;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS pending BIGINT DEFAULT 0;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS warnings VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS rejected_by_reason VARCHAR;
UPDATE ledger_meta SET value = '4' WHERE key = 'schema_version';
