-- `ledger report`: audience membership changes (`audience_changes`: one row per add or
-- drop of a member, with its delivery `status`) settled, or else recorded, in
-- [$since, $until), by day (UTC), audience, change and status.
SELECT
    strftime(coalesce(settled_at, recorded_at), '%Y-%m-%d') AS day,
    audience,
    action AS change,
    status,
    count(*) AS changes
FROM audience_changes
WHERE environment = $environment
  AND ($since::TIMESTAMPTZ IS NULL OR coalesce(settled_at, recorded_at) >= $since::TIMESTAMPTZ)
  AND ($until::TIMESTAMPTZ IS NULL OR coalesce(settled_at, recorded_at) < $until::TIMESTAMPTZ)
GROUP BY ALL
ORDER BY day, audience, change, status;
