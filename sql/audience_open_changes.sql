-- The members whose latest change is undelivered (pending: its answer never came, or
-- failed): Rokt may or may not have it (connector/audiences/members.py, `held`).
SELECT audience, member_key, action AS last_action, status AS last_status,
       identities AS last_identities
FROM audience_changes
WHERE environment = $environment
QUALIFY row_number() OVER (PARTITION BY audience, member_key ORDER BY seq DESC) = 1
    AND status IN ('pending', 'failed');
