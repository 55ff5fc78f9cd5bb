-- The latest change of each (audience, member) of `keys` (the run's changes): how a
-- new change is numbered, and whether an undelivered one is resent as it was.
SELECT c.audience, c.member_key, change_id AS last_change_id, action AS last_action,
       seq AS last_seq, status AS last_status, identities AS last_identities,
       attributes AS last_attributes, request_id AS last_request_id, event_ms AS last_event_ms
FROM audience_changes AS c
SEMI JOIN keys AS k ON c.audience = k.audience AND c.member_key = k.member_key
WHERE environment = $environment
QUALIFY row_number() OVER (PARTITION BY c.audience, c.member_key ORDER BY seq DESC) = 1;
