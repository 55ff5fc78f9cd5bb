-- What the ledger already knows of this chunk's refs (`chunk_refs(ref)`): the status,
-- and the payload hash of a rejected conversion (sent again only when it changed).
SELECT
    l.confirmationref AS ref,
    l.status,
    CASE WHEN l.status = 'rejected' THEN l.payload_sha256 END AS payload_sha256
FROM ledger l SEMI JOIN chunk_refs c ON l.confirmationref = c.ref
WHERE l.environment = $environment;
