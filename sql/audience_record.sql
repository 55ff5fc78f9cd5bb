-- Write-ahead: each change of `changes` is `pending` before its batch leaves (a
-- resent one keeps its id, identities, attributes and time), and `superseded` ones are
-- closed.
UPDATE audience_changes AS c SET
    status = 'pending', reason = NULL, run_id = $run_id, request_id = n.request_id
FROM changes AS n
WHERE c.environment = $environment AND c.change_id = n.change_id;
INSERT INTO audience_changes (environment, change_id, audience, member_key, action, seq,
    status, run_id, request_id, identities, attributes, event_ms, recorded_at)
SELECT $environment, change_id, audience, member_key, action, seq, 'pending', $run_id,
       request_id, identities, attributes, event_ms, $now
FROM changes AS n
WHERE NOT EXISTS (
    SELECT 1 FROM audience_changes AS c
    WHERE c.environment = $environment AND c.change_id = n.change_id
);
UPDATE audience_changes SET status = 'superseded', settled_at = $now, run_id = $run_id
WHERE environment = $environment AND change_id IN (SELECT change_id FROM superseded);
