-- The answers of `settled` (change_id, status, reason, attempts), and the membership
-- they make: an accepted add joins `audience_members`, an accepted drop leaves it.
UPDATE audience_changes AS c SET
    status = s.status, reason = s.reason, attempts = c.attempts + s.attempts,
    run_id = $run_id, settled_at = CASE WHEN s.status = 'failed' THEN NULL ELSE $now END
FROM settled AS s
WHERE c.environment = $environment AND c.change_id = s.change_id;
DELETE FROM audience_members AS m
USING audience_changes AS c, settled AS s
WHERE c.environment = $environment AND c.change_id = s.change_id AND s.status = 'accepted'
  AND m.environment = c.environment AND m.audience = c.audience
  AND m.member_key = c.member_key;
INSERT INTO audience_members
SELECT c.environment, c.audience, c.member_key, c.identities, c.change_id, $now
FROM audience_changes AS c JOIN settled AS s USING (change_id)
WHERE c.environment = $environment AND s.status = 'accepted' AND c.action = 'add';
