-- Remember this chunk's refs that no earlier chunk had (the semi-join's complement).
INSERT INTO seen SELECT DISTINCT ref FROM chunk_refs WHERE ref IS NOT NULL
EXCEPT SELECT ref FROM chunk_refs SEMI JOIN seen USING (ref);
