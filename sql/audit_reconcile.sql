-- `ledger reconcile`: each conversion of the source (`source_refs`) against the
-- ledger: its status there, or `missing`; per state the count, the source rows, and
-- the first `$examples` conversions (by confirmationref) with the ledger's reason.
WITH conversions AS (
    SELECT ref, count(*) AS source_rows
    FROM source_refs
    WHERE ref IS NOT NULL
    GROUP BY ref
)
SELECT
    coalesce(l.status, 'missing') AS state,
    count(*) AS conversions,
    sum(c.source_rows)::BIGINT AS source_rows,
    min_by({'confirmationref': c.ref, 'reason': l.reason}, c.ref, $examples) AS examples
FROM conversions c
LEFT JOIN ledger l ON l.environment = $environment AND l.confirmationref = c.ref
GROUP BY ALL;
