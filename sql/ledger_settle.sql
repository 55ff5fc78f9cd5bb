-- Settle conversions after their request's final response. `settled(request, ref,
-- status, reason, attempt)`: one row per conversion, `attempt` the one that settled
-- it; `tries(request, attempt, attempted_at, http_status, error, message)`: the
-- attempts of each request (`request` numbers the requests of this write).
UPDATE ledger SET
    status = s.status,
    reason = s.reason,
    http_status = t.http_status,
    attempts = ledger.attempts + s.attempt,
    last_attempt_at = t.attempted_at,
    accepted_at = CASE WHEN s.status = 'accepted' THEN coalesce(ledger.accepted_at, t.attempted_at)
                       ELSE ledger.accepted_at END
FROM settled s JOIN tries t ON t.request = s.request AND t.attempt = s.attempt
WHERE ledger.environment = $environment AND ledger.confirmationref = s.ref;
