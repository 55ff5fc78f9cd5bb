-- `ledger report`: conversions with an event time in [$since, $until) (null: unbounded)
-- by status, the HTTP attempts they took, and the first and last event day up to the
-- day of `$now` (epoch days: the day chart's span).
SELECT
    status,
    count(*) AS conversions,
    coalesce(sum(attempts), 0)::BIGINT AS attempts,
    min(day) AS first_day,
    max(day) FILTER (day <= epoch_us($now::TIMESTAMPTZ) // 86400000000) AS last_day
FROM (
    SELECT status, attempts, epoch_us(event_time) // 86400000000 AS day
    FROM ledger
    WHERE environment = $environment
      AND ($since::TIMESTAMPTZ IS NULL OR event_time >= $since::TIMESTAMPTZ)
      AND ($until::TIMESTAMPTZ IS NULL OR event_time < $until::TIMESTAMPTZ)
)
GROUP BY status
ORDER BY list_position(['accepted', 'pending', 'failed', 'rejected', 'rejected_local'], status);
