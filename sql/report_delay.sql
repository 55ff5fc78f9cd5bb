-- `ledger report`: the accepted conversions of the window by the time from their event
-- to their acceptance (`accepted_at`: when the accepted attempt left), in buckets
-- (`bucket` orders them; a negative delay, from a clock ahead, counts as under a
-- minute), with the approximate median, 90th and 99th percentiles in seconds.
WITH delays AS (
    SELECT (epoch_us(accepted_at) - epoch_us(event_time)) / 1e6 AS s
    FROM ledger
    WHERE environment = $environment AND status = 'accepted'
      AND accepted_at IS NOT NULL AND event_time IS NOT NULL
      AND ($since::TIMESTAMPTZ IS NULL OR event_time >= $since::TIMESTAMPTZ)
      AND ($until::TIMESTAMPTZ IS NULL OR event_time < $until::TIMESTAMPTZ)
),
buckets AS (
    SELECT
        CASE WHEN s < 60 THEN 0 WHEN s < 300 THEN 1 WHEN s < 900 THEN 2 WHEN s < 3600 THEN 3
             WHEN s < 21600 THEN 4 WHEN s < 86400 THEN 5 WHEN s < 172800 THEN 6
             WHEN s < 604800 THEN 7 WHEN s < 2592000 THEN 8 ELSE 9 END AS bucket,
        count(*) AS conversions
    FROM delays
    GROUP BY bucket
)
SELECT
    b.bucket,
    ['under 1 min', '1-5 min', '5-15 min', '15-60 min', '1-6 h', '6-24 h', '1-2 days',
     '2-7 days', '7-30 days', '30 days or more'][b.bucket + 1] AS delay,
    coalesce(c.conversions, 0) AS conversions,
    q.quantiles
FROM range(10) AS b(bucket)
LEFT JOIN buckets c ON c.bucket = b.bucket
CROSS JOIN (SELECT approx_quantile(s, [0.5, 0.9, 0.99]) AS quantiles FROM delays) AS q
ORDER BY b.bucket;
