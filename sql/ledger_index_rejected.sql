-- The payload hash of each rejected conversion, by fingerprint (see ledger_index.sql):
-- a rejected conversion is sent again only when its payload changed.
SELECT hash(confirmationref) AS k1, hash('#' || confirmationref) AS k2, payload_sha256
FROM ledger
WHERE environment = $environment AND status = 'rejected';
