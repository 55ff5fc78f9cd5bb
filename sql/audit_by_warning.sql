-- `ledger summary`: conversions sent without a field, by the field warning that left
-- it out (a conversion can have several).
SELECT warning, count(*) AS conversions
FROM (
    SELECT unnest(string_split(warnings, ',')) AS warning
    FROM ledger
    WHERE environment = $environment AND warnings IS NOT NULL
)
GROUP BY warning
ORDER BY conversions DESC, warning;
