"""Benchmark: `rokt-connector ledger report` over a ledger of 10,000,000 conversions.

Builds the ledger of `bench/ledger.py` (93% accepted, 3% rejected_local, 2% rejected,
1% failed, 1% pending; event times 3 s apart over 347 days), adds one `runs` row per
250,000 conversions (the run ids its rows name), then times the command as a user runs
it (a new process: Python, DuckDB and the chart library start within the time) and
prints the wall time (target: under 10 s) and the size of the HTML file.

Usage: python bench/report.py [--rows 10000000] [--dir DIR] [--repeat 3]
(with --dir, the ledger is kept there and reused by the next run, and by bench/ledger.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import yaml
from ledger import ENVIRONMENT, build_ledger

RUNS_SQL = """
INSERT INTO runs (run_id, mode, status, environment, window_since, window_until, started_at,
                  finished_at, rows_read, rows_rejected_local, accepted, rejected, failed,
                  pending, requests, retries, duration_s)
SELECT
    'run-' || r, 'sync', CASE WHEN r % 10 = 9 THEN 'failed' ELSE 'completed_with_rejections' END,
    $environment, start, start + INTERVAL 1 DAY, start + INTERVAL 1 DAY,
    start + INTERVAL 1 DAY + to_seconds(60 + r % 7 * 30), 250000, 7500, 232500, 5000, 2500,
    2500, 2500 + r % 5 * 40, r % 5 * 40, 60 + r % 7 * 30
FROM (
    SELECT r, TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds(r * 750000) AS start
    FROM range($runs) AS t(r)
)
"""


def add_runs(path: Path, rows: int) -> None:
    """One finished run per 250,000 conversions, unless the ledger has runs already."""
    with duckdb.connect(str(path)) as con:
        if con.sql("SELECT count(*) FROM runs").fetchall() == [(0,)]:
            con.execute(RUNS_SQL, {"runs": -(-rows // 250_000), "environment": ENVIRONMENT})
            con.execute("CHECKPOINT")


def report_time(directory: Path, path: Path) -> tuple[float, int]:
    """Wall time of `rokt-connector ledger report` (a new process) and the file's size."""
    (directory / "query.sql").write_text("SELECT 1 WHERE $since < $until", encoding="utf-8")
    config = {
        "source": {"query": "query.sql"},
        "destination": {"base_url": "http://127.0.0.1:9", "api_key": "k", "api_secret": "s"},
        "ledger": {"path": str(path)},
    }
    (directory / "bench.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    out = directory / "report.html"
    command = [sys.executable, "-m", "connector", "ledger", "report", "--config"]
    started = time.perf_counter()
    subprocess.run(
        [*command, str(directory / "bench.yaml"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started, out.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="ledger rows")
    parser.add_argument("--dir", type=Path, help="keep (and reuse) the ledger here")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.dir or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"ledger-{args.rows}.duckdb"
        built = build_ledger(path, args.rows)
        add_runs(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        how = f"built in {built:.1f} s" if built else "reused"
        print(f"ledger: {args.rows:,} rows, {size_mb:,.0f} MB ({how})")
        times = []
        for _ in range(args.repeat):
            seconds, size = report_time(directory, path)
            times.append(seconds)
        print(
            f"rokt-connector ledger report: {min(times):.2f} s wall (best of {len(times)}: "
            f"{', '.join(f'{t:.2f}' for t in times)} s; target < 10 s), "
            f"HTML {size / 1024:,.0f} KB"
        )


if __name__ == "__main__":
    main()
