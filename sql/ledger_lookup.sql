-- What the ledger already knows of this chunk's refs (`chunk_refs(ref)`): the status,
-- the payload hash of a rejected conversion (sent again only when it changed), and the
-- first 32 bits of an accepted one's (to tell a payload that changed after acceptance).
SELECT
    l.confirmationref AS ref,
    l.status,
    CASE WHEN l.status = 'rejected' THEN l.payload_sha256 END AS payload_sha256,
    CASE WHEN l.status = 'accepted' THEN l.payload_prefix END AS payload_prefix
FROM ledger l SEMI JOIN chunk_refs c ON l.confirmationref = c.ref
WHERE l.environment = $environment;
