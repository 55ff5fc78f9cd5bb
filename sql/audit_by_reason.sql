-- `ledger summary`: the conversions not accepted, by status and reason (a reason code
-- for rejected_local, the platform's message for rejected, the last error for failed).
SELECT status, reason, count(*) AS conversions
FROM ledger
WHERE environment = $environment AND status <> 'accepted'
GROUP BY status, reason
ORDER BY conversions DESC, status, reason;
