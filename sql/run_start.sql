INSERT INTO runs (run_id, mode, status, environment, window_since, window_until, started_at)
VALUES ($run_id, $mode, 'running', $environment, $since, $until, $now);
