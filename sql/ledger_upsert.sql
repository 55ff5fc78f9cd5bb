-- Write `rows` (one per conversion) into the ledger: new refs are inserted, known
-- ones take the new state; first_seen_at and accepted_at keep their first value,
-- attempts add up.
INSERT INTO ledger (
    environment, confirmationref, status, reason, http_status, attempts, run_id,
    request_id, payload_sha256, identity_sha256, conversiontype, amount, currency,
    event_time, first_seen_at, last_attempt_at, accepted_at, transport, warnings,
    payload_prefix
)
SELECT
    $environment, ref, status, reason, http_status, attempts, $run_id,
    request_id, payload_sha256, identity_sha256, conversiontype, amount, currency,
    epoch_ms(event_ms)::TIMESTAMPTZ, $now, last_attempt_at, accepted_at, $transport, warnings,
    ('0x' || left(payload_sha256, 8))::UINTEGER
FROM rows
ON CONFLICT (environment, confirmationref) DO UPDATE SET
    status = excluded.status,
    reason = excluded.reason,
    http_status = coalesce(excluded.http_status, ledger.http_status),
    attempts = ledger.attempts + excluded.attempts,
    run_id = excluded.run_id,
    request_id = coalesce(excluded.request_id, ledger.request_id),
    payload_sha256 = coalesce(excluded.payload_sha256, ledger.payload_sha256),
    payload_prefix = coalesce(excluded.payload_prefix, ledger.payload_prefix),
    identity_sha256 = coalesce(excluded.identity_sha256, ledger.identity_sha256),
    conversiontype = excluded.conversiontype,
    amount = excluded.amount,
    currency = excluded.currency,
    event_time = excluded.event_time,
    last_attempt_at = coalesce(excluded.last_attempt_at, ledger.last_attempt_at),
    accepted_at = coalesce(ledger.accepted_at, excluded.accepted_at),
    transport = excluded.transport,
    warnings = excluded.warnings;
