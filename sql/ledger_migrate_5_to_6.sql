-- Schema 5 -> 6: audience membership (`audience_members`) and its changes
-- (`audience_changes`); both are created by ledger.sql, which runs first.
UPDATE ledger_meta SET value = '6' WHERE key = 'schema_version';
