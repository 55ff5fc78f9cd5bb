-- `ledger reconcile`: conversions the ledger has with an event time in the window
-- that the source no longer returns (changed, deleted, or moved out of the window).
SELECT
    count(*) AS conversions,
    min_by({'confirmationref': l.confirmationref, 'status': l.status}, l.confirmationref,
           $examples) AS examples
FROM ledger l
WHERE l.environment = $environment
  AND l.event_time >= $since AND l.event_time < $until
  AND NOT EXISTS (SELECT 1 FROM source_refs s WHERE s.ref = l.confirmationref);
