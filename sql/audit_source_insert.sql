-- `ledger reconcile`: one chunk's normalized refs (`chunk_refs(ref)`).
INSERT INTO source_refs SELECT ref FROM chunk_refs;
