-- `ledger export`: the ledger's rows (no raw PII is stored), optionally only some
-- statuses (`$statuses`, empty = all) and event times in [$since, $until).
SELECT
    confirmationref, status, reason, http_status, attempts, run_id, request_id,
    event_time, conversiontype, amount, currency, first_seen_at, last_attempt_at,
    accepted_at, transport, payload_sha256, identity_sha256, environment, warnings
FROM ledger
WHERE environment = $environment
  AND (len($statuses::VARCHAR[]) = 0 OR list_contains($statuses::VARCHAR[], status))
  AND ($since::TIMESTAMPTZ IS NULL OR event_time >= $since::TIMESTAMPTZ)
  AND ($until::TIMESTAMPTZ IS NULL OR event_time < $until::TIMESTAMPTZ)
ORDER BY event_time, confirmationref;
