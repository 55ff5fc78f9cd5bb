-- The latest change of each (audience, member) that has one: how a new change is
-- numbered, and whether an undelivered one is resent with its id.
SELECT audience, member_key, change_id AS last_change_id, action AS last_action,
       seq AS last_seq, status AS last_status, identities AS last_identities,
       attributes AS last_attributes, request_id AS last_request_id, event_ms AS last_event_ms
FROM audience_changes
WHERE environment = $environment
QUALIFY row_number() OVER (PARTITION BY audience, member_key ORDER BY seq DESC) = 1;
