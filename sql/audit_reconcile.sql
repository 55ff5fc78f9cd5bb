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
    -- DuckDB's min_by takes n > 0: take at least one, keep $examples (0 too)
    min_by({'confirmationref': c.ref, 'reason': l.reason}, c.ref, greatest($examples, 1))[1:$examples]
        AS examples
FROM conversions c
LEFT JOIN ledger l ON l.environment = $environment AND l.confirmationref = c.ref
GROUP BY ALL;
