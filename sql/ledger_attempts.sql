-- Fan each request's attempts (`tries`) out to its conversions (`settled`, see
-- ledger_settle.sql): a conversion took part in every attempt up to the one that
-- settled it; the earlier ones were retries.
INSERT INTO attempts
SELECT
    $environment, s.ref, $run_id, s.request_id, t.attempt, t.attempted_at, t.http_status,
    t.error,
    CASE WHEN t.attempt < s.attempt THEN 'retry' ELSE s.status END,
    coalesce(CASE WHEN t.attempt = s.attempt THEN s.reason END, t.message)
FROM settled s JOIN tries t ON t.request = s.request AND t.attempt <= s.attempt;
