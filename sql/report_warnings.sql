-- `ledger report`: the conversions of the window sent without a field, by the field
-- warning that left it out (a conversion can have several).
SELECT warning, count(*) AS conversions
FROM (
    SELECT unnest(string_split(warnings, ',')) AS warning
    FROM ledger
    WHERE environment = $environment AND warnings IS NOT NULL
      AND ($since::TIMESTAMPTZ IS NULL OR event_time >= $since::TIMESTAMPTZ)
      AND ($until::TIMESTAMPTZ IS NULL OR event_time < $until::TIMESTAMPTZ)
)
GROUP BY warning
ORDER BY conversions DESC, warning;
