-- `ledger summary`: conversions by event day (UTC), latest `$days` days up to the day of
-- `$now` first: a later day holds event times in the future (rejected as future_event_time),
-- which would push out the days that happened. The day is computed from epoch microseconds:
-- casting each TIMESTAMPTZ to DATE is ~6x slower.
SELECT
    DATE '1970-01-01' + day::INTEGER AS event_day,
    count(*) FILTER (status = 'accepted') AS accepted,
    count(*) FILTER (status = 'pending') AS pending,
    count(*) FILTER (status = 'failed') AS failed,
    count(*) FILTER (status = 'rejected') AS rejected,
    count(*) FILTER (status = 'rejected_local') AS rejected_local,
    count(*) AS total
FROM (
    SELECT epoch_us(event_time) // 86400000000 AS day, status
    FROM ledger
    WHERE environment = $environment
)
WHERE day IS NULL OR day <= epoch_us($now::TIMESTAMPTZ) // 86400000000
GROUP BY day
ORDER BY day DESC NULLS LAST
LIMIT $days;
