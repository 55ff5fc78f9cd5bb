-- Schema 1 -> 2: every ledger has an id (`ledger_meta.ledger_id`), which the marker
-- file beside it records, so a ledger file that went missing or was replaced is
-- noticed before a run sends everything again.
INSERT INTO ledger_meta
SELECT 'ledger_id', uuid()::VARCHAR
WHERE NOT EXISTS (SELECT 1 FROM ledger_meta WHERE key = 'ledger_id');
UPDATE ledger_meta SET value = '2' WHERE key = 'schema_version';
