-- bench/ledger.py: $rows conversions straight into the ledger schema (sql/ledger.sql):
-- refs ORD-0000000000.., 93% accepted, 3% rejected_local, 2% rejected, 1% failed,
-- 1% pending; payload_sha256 = sha256(i), so the benchmark can recompute it; one
-- accepted conversion in 20 was sent without its mobile (a field warning).
INSERT INTO ledger
SELECT
    $environment,
    'ORD-' || lpad(i::VARCHAR, 10, '0'),
    CASE WHEN i % 100 < 93 THEN 'accepted' WHEN i % 100 < 96 THEN 'rejected_local'
         WHEN i % 100 < 98 THEN 'rejected' WHEN i % 100 < 99 THEN 'failed'
         ELSE 'pending' END AS status,
    CASE WHEN i % 100 BETWEEN 93 AND 95 THEN 'invalid_email'
         WHEN i % 100 BETWEEN 96 AND 97 THEN 'bad_value: rejected by the platform'
         WHEN i % 100 = 98 THEN 'gave up after 8 attempts: server error (HTTP 503)' END,
    CASE WHEN i % 100 < 93 THEN 202 WHEN i % 100 BETWEEN 96 AND 97 THEN 400
         WHEN i % 100 = 98 THEN 503 END,
    CASE WHEN i % 100 < 93 THEN 1 + (i % 7 = 0)::INTEGER WHEN i % 100 = 98 THEN 8 ELSE 1 END,
    'run-' || (i // 250000),
    'req-' || i,
    sha256(i::VARCHAR),
    sha256('customer-' || (i % 3000000)::VARCHAR),
    'purchase',
    (i % 50000) / 100.0,
    'USD',
    TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds(i * 3),
    TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds(i * 3 + 60),
    TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds(i * 3 + 61),
    CASE WHEN i % 100 < 93 THEN TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds(i * 3 + 61) END,
    'events_api',
    CASE WHEN i % 100 < 93 AND i % 20 = 0 THEN 'invalid_mobile' END,
    ('0x' || left(sha256(i::VARCHAR), 8))::UINTEGER
FROM range($rows) AS r(i);
