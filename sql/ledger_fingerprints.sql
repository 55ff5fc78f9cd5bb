-- The fingerprints of a chunk's refs (`chunk_refs(ref)`), as ledger_index.sql computes
-- them for the ledger's.
SELECT ref, hash(ref) AS k1, hash('#' || ref) AS k2
FROM chunk_refs;
