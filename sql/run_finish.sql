-- The run report's counts and final status, when the run ends.
UPDATE runs SET
    status = $status, finished_at = $now, message = $message,
    rows_read = $rows_read, rows_rejected_local = $rows_rejected_local,
    rows_skipped_ledger = $rows_skipped_ledger, rows_duplicate = $rows_duplicate,
    batches_sent = $batches_sent, requests = $requests, accepted = $accepted,
    rejected = $rejected, failed = $failed, retries = $retries, isolated = $isolated,
    duration_s = $duration_s
WHERE run_id = $run_id;
