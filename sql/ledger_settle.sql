-- Settle conversions after their request's final response:
-- `settled(ref, status, reason, http_status, attempts)`, one row per conversion.
UPDATE ledger SET
    status = s.status,
    reason = s.reason,
    http_status = s.http_status,
    attempts = ledger.attempts + s.attempts,
    last_attempt_at = $now,
    accepted_at = CASE WHEN s.status = 'accepted' THEN coalesce(ledger.accepted_at, $now)
                       ELSE ledger.accepted_at END
FROM settled s
WHERE ledger.environment = $environment AND ledger.confirmationref = s.ref;
