-- `ledger report`: conversions of the window by event day (UTC) and status, days up to
-- the day of `$now` (a later day holds rejected future_event_time rows only). `$bucket`
-- 7 counts by week instead, each from its Monday (epoch day 0 was a Thursday). The day
-- comes from epoch microseconds: casting each TIMESTAMPTZ to DATE is ~6x slower.
SELECT strftime(DATE '1970-01-01' + day::INTEGER, '%Y-%m-%d') AS event_day, status, conversions
FROM (
    SELECT day - ((day + 3) % $bucket + $bucket) % $bucket AS day, status, count(*) AS conversions
    FROM (
        SELECT epoch_us(event_time) // 86400000000 AS day, status
        FROM ledger
        WHERE environment = $environment
          AND ($since::TIMESTAMPTZ IS NULL OR event_time >= $since::TIMESTAMPTZ)
          AND ($until::TIMESTAMPTZ IS NULL OR event_time < $until::TIMESTAMPTZ)
    )
    WHERE day <= epoch_us($now::TIMESTAMPTZ) // 86400000000
    GROUP BY ALL
)
ORDER BY event_day, status;
