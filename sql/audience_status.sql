-- Per audience: members delivered, changes pending and failed, the last change.
WITH audiences AS (
    SELECT DISTINCT audience FROM audience_changes WHERE environment = $environment
), delivered AS (
    SELECT audience, count(*) AS members FROM audience_members
    WHERE environment = $environment GROUP BY audience
), changes AS (
    SELECT audience,
           count(*) FILTER (WHERE status = 'pending') AS pending,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'rejected') AS rejected,
           count(*) FILTER (WHERE status = 'accepted' AND action = 'add') AS adds,
           count(*) FILTER (WHERE status = 'accepted' AND action = 'drop') AS drops,
           max(settled_at) FILTER (WHERE status = 'accepted') AS last_change_at
    FROM audience_changes WHERE environment = $environment GROUP BY audience
)
SELECT a.audience, coalesce(d.members, 0) AS members, c.pending, c.failed, c.rejected,
       c.adds, c.drops, c.last_change_at
FROM audiences AS a LEFT JOIN delivered AS d USING (audience) JOIN changes AS c USING (audience)
ORDER BY a.audience;
