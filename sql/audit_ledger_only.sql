-- `ledger reconcile`: conversions the ledger has with an event time in the window
-- that the source no longer returns (changed, deleted, or moved out of the window).
SELECT
    count(*) AS conversions,
    -- DuckDB's min_by takes n > 0: take at least one, keep $examples (0 too)
    min_by({'confirmationref': l.confirmationref, 'status': l.status}, l.confirmationref,
           greatest($examples, 1))[1:$examples] AS examples
FROM ledger l
WHERE l.environment = $environment
  AND l.event_time >= $since AND l.event_time < $until
  AND NOT EXISTS (SELECT 1 FROM source_refs s WHERE s.ref = l.confirmationref);
