-- A backfill window finished: remember it, so that reruns skip it.
INSERT OR REPLACE INTO backfill_windows
    (environment, window_since, window_until, backfill_id, run_id, finished_at)
VALUES ($environment, $since, $until, $backfill_id, $run_id, $now);
