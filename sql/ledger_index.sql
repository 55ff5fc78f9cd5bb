-- The ledger's refs for the in-memory index of a long run (connector/ref_index.py):
-- each confirmationref as two independent 64-bit hashes (a 128-bit fingerprint; the
-- same expressions as ledger_fingerprints.sql), and its status.
SELECT hash(confirmationref) AS k1, hash('#' || confirmationref) AS k2, status
FROM ledger
WHERE environment = $environment;
