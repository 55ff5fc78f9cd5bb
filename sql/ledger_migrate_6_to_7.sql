-- Schema 6 -> 7: an audience change keeps the user attributes it was sent with, so a
-- resend is the same batch (ledger.sql creates the column in a new ledger).
ALTER TABLE audience_changes ADD COLUMN IF NOT EXISTS attributes VARCHAR;
UPDATE ledger_meta SET value = '7' WHERE key = 'schema_version';
