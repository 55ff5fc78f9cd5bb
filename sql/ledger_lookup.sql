-- What the ledger already knows of this chunk's refs (`chunk_refs(ref)`).
SELECT l.confirmationref AS ref, l.status, l.payload_sha256
FROM ledger l SEMI JOIN chunk_refs c ON l.confirmationref = c.ref
WHERE l.environment = $environment;
