-- Settle conversions after their request's final response. `settled(request, ref,
-- status, reason, attempt)`: one row per conversion, `attempt` the one that settled
-- it; `tries(request, attempt, attempted_at, http_status, error, message)`: the
-- attempts of each request (`request` numbers the requests of this write).
-- An upsert, not an UPDATE ... FROM: it finds each row through the primary key,
-- where the UPDATE joined against a scan of the whole ledger on every settle
-- (bench/memory.py: at 5,000,000 rows, 3x the time and twice the buffer memory).
-- Every settled conversion was written `pending` first, so the INSERT half only
-- runs for a row that went missing meanwhile, which then gets its final state.
INSERT INTO ledger (
    environment, confirmationref, status, reason, http_status, attempts, run_id,
    request_id, first_seen_at, last_attempt_at, accepted_at
)
SELECT
    $environment, s.ref, s.status, s.reason, t.http_status, s.attempt, $run_id,
    s.request_id, t.attempted_at, t.attempted_at,
    CASE WHEN s.status = 'accepted' THEN t.attempted_at END
FROM settled s JOIN tries t ON t.request = s.request AND t.attempt = s.attempt
ON CONFLICT (environment, confirmationref) DO UPDATE SET
    status = excluded.status,
    reason = excluded.reason,
    http_status = excluded.http_status,
    attempts = ledger.attempts + excluded.attempts,
    last_attempt_at = excluded.last_attempt_at,
    accepted_at = coalesce(ledger.accepted_at, excluded.accepted_at);
