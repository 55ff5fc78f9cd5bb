-- `ledger report`: the conversions of the window not accepted and not pending, by status
-- and reason (a reason code for rejected_local, the platform's message for rejected,
-- the last error for failed), the `$limit` largest, each with its first three refs.
SELECT
    status,
    coalesce(reason, '') AS reason,
    count(*) AS conversions,
    min_by(confirmationref, confirmationref, 3) AS examples
FROM ledger
WHERE environment = $environment
  AND status IN ('rejected_local', 'rejected', 'failed')
  AND ($since::TIMESTAMPTZ IS NULL OR event_time >= $since::TIMESTAMPTZ)
  AND ($until::TIMESTAMPTZ IS NULL OR event_time < $until::TIMESTAMPTZ)
GROUP BY ALL
ORDER BY conversions DESC, status, reason
LIMIT $limit;
