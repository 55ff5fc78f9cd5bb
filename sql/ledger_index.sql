-- The ledger's refs for the in-memory index of a long run (connector/ledger/index.py):
-- each confirmationref as two independent 64-bit hashes (a 128-bit fingerprint; the
-- same expressions as ledger_fingerprints.sql), its status, and the first 32 bits of
-- an accepted conversion's payload hash (as ledger_lookup.sql).
SELECT
    hash(confirmationref) AS k1,
    hash('#' || confirmationref) AS k2,
    status,
    CASE WHEN status = 'accepted' THEN payload_prefix END AS payload_prefix
FROM ledger
WHERE environment = $environment;
