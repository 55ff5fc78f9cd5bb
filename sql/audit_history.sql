-- `ledger show REF`: every HTTP attempt of the conversion, oldest first.
SELECT run_id, request_id, attempt, attempted_at, http_status, error, outcome, message
FROM attempts
WHERE environment = $environment AND confirmationref = $ref
ORDER BY attempted_at, attempt;
