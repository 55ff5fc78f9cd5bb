-- Write-ahead: each change of `changes` is `pending` before its batch leaves (a
-- resent one keeps its id, identities and time), and `superseded` ones are closed.
INSERT INTO audience_changes (environment, change_id, audience, member_key, action, seq,
    status, run_id, request_id, identities, attributes, event_ms, recorded_at)
SELECT $environment, change_id, audience, member_key, action, seq, 'pending', $run_id,
       request_id, identities, attributes, event_ms, $now
FROM changes
ON CONFLICT (environment, change_id) DO UPDATE SET
    status = 'pending', reason = NULL, run_id = excluded.run_id,
    request_id = excluded.request_id;
UPDATE audience_changes SET status = 'superseded', settled_at = $now, run_id = $run_id
WHERE environment = $environment AND change_id IN (SELECT change_id FROM superseded);
