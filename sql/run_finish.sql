-- The run report's counts and final status, when the run ends.
UPDATE runs SET
    status = $status, finished_at = $now, message = $message,
    rows_read = $rows_read, rows_rejected_local = $rows_rejected_local,
    rows_rejected_known = $rows_rejected_known,
    rows_skipped_ledger = $rows_skipped_ledger, changed_after_accept = $changed_after_accept,
    rows_duplicate = $rows_duplicate, duplicates_differing = $duplicates_differing,
    duplicates_differing_known = $duplicates_differing_known, pending = $pending,
    batches_sent = $batches_sent, requests = $requests, accepted = $accepted,
    rejected = $rejected, failed = $failed, retries = $retries, isolated = $isolated,
    duration_s = $duration_s, warnings = $warnings, rejected_by_reason = $rejected_by_reason
WHERE run_id = $run_id;
