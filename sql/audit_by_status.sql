-- `ledger summary`: conversions and the HTTP attempts they took, by status.
SELECT status, count(*) AS conversions, sum(attempts)::BIGINT AS attempts
FROM ledger
WHERE environment = $environment
GROUP BY status
ORDER BY list_position(['accepted', 'pending', 'failed', 'rejected', 'rejected_local'], status);
