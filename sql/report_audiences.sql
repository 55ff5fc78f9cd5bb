-- `ledger report`: audience membership changes (issue 20's `audience_changes`: one row
-- per add or drop of a member, with its delivery `status` and `changed_at`) that
-- changed in [$since, $until), by day (UTC), audience, change and status. Run only when
-- the ledger has that table with these columns (connector/ledger/report_data.py).
SELECT
    strftime(changed_at, '%Y-%m-%d') AS day,
    audience,
    change,
    status,
    count(*) AS changes
FROM audience_changes
WHERE environment = $environment
  AND ($since::TIMESTAMPTZ IS NULL OR changed_at >= $since::TIMESTAMPTZ)
  AND ($until::TIMESTAMPTZ IS NULL OR changed_at < $until::TIMESTAMPTZ)
GROUP BY ALL
ORDER BY day, audience, change, status;
