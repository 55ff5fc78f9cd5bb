-- `ledger show --identity HASH`: the conversions of one person, found by the SHA-256
-- of their normalized email (the ledger holds no raw email to search).
SELECT confirmationref, status, reason, event_time, conversiontype, amount, currency,
       last_attempt_at
FROM ledger
WHERE environment = $environment AND identity_sha256 = $identity
ORDER BY event_time, confirmationref;
