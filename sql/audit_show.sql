-- `ledger show REF`: the conversion's current state in the ledger.
SELECT
    confirmationref, status, reason, http_status, attempts, run_id, request_id,
    event_time, conversiontype, amount, currency, first_seen_at, last_attempt_at,
    accepted_at, transport, payload_sha256, identity_sha256
FROM ledger
WHERE environment = $environment AND confirmationref = $ref;
