"""Benchmark: an audience sync of 1,000,000 members, then a rerun with 1% churn.

Builds a DuckDB `segments(audience_name, email, customerid, state)` of N members
(default 1,000,000) in 4 audiences, starts `rokt-connector sandbox` unthrottled and
keeping no bodies, and runs `rokt-connector audiences sync --json` in a subprocess
three times: the first run (every member added), a rerun with 1% of the members
replaced (the adds and drops only), and an unchanged rerun (nothing sent). Prints
each run's wall time, changes/s and the connector process's peak RSS (`wait4`), and
checks with the sandbox that every change arrived once.

Usage: python bench/audiences.py [--members N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import yaml
from memory import REPO, start_sandbox

AUDIENCES = ("vip", "lapsed", "suppress", "prospects")


def build(path: Path, members: int, first: int = 0) -> None:
    """`segments`: members `first` ... `first + members - 1`, each in one audience."""
    with duckdb.connect(str(path)) as con:
        con.execute(
            f"""
            CREATE OR REPLACE TABLE segments AS SELECT
              ({list(AUDIENCES)})[1 + i % {len(AUDIENCES)}] AS audience_name,
              ' Member.' || i || '@Example.com' AS email,
              'C-' || i AS customerid,
              'NY' AS state
            FROM range({first}, {first + members}) r(i)
            """
        )


def write_config(directory: Path, url: str) -> Path:
    (directory / "audiences.sql").write_text("SELECT * FROM segments\n", encoding="utf-8")
    (directory / "query.sql").write_text("SELECT 1 WHERE $since < $until\n", encoding="utf-8")
    config = {
        "source": {"database": str(directory / "warehouse.duckdb"), "query": "query.sql"},
        "destination": {
            "base_url": url,
            "api_key": "sandbox-key",
            "api_secret": "sandbox-secret",
            "max_batches_per_second": 100_000,
            "concurrency": 8,
        },
        "ledger": {"path": str(directory / "ledger.duckdb")},
        "audiences": {"query": "audiences.sql"},
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run(config: Path) -> tuple[dict[str, Any], float, float]:
    """(report, wall s, peak RSS MB) of one `audiences sync`."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "connector", "audiences", "sync", "--config", str(config), "--json"],
        stdout=subprocess.PIPE,
        stderr=sys.stderr,
        text=True,
    )
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"audiences sync exited {code}")
    return json.loads(out), time.monotonic() - started, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    args = parser.parse_args(argv)
    churn = args.members // 100
    with tempfile.TemporaryDirectory(prefix="bench-audiences-") as scratch:
        directory = args.keep or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        warehouse = directory / "warehouse.duckdb"
        build(warehouse, args.members)
        sandbox, url = start_sandbox()
        try:
            config = write_config(directory, url)
            runs = [("first run", *run(config))]
            build(warehouse, args.members, first=churn)  # the first 1% leave, 1% join
            runs.append(("1% churn", *run(config)))
            runs.append(("unchanged", *run(config)))
            stats: dict[str, Any] = httpx.get(url + "/_sandbox/stats", timeout=60).json()
        finally:
            sandbox.terminate()
            sandbox.wait()
    for name, report, wall, peak in runs:
        changes = report["adds"] + report["drops"]
        print(
            f"{name}: {report['rows_read']:,} rows, {report['adds']:,} adds, "
            f"{report['drops']:,} drops, {report['requests']:,} requests in {wall:.1f} s "
            f"({changes / wall:,.0f} changes/s); peak RSS {peak:,.0f} MB"
        )
    expected = args.members + 2 * churn
    arrived = sum(sum(c.values()) for c in stats["audience_changes"].values())
    once = arrived == expected and stats["duplicate_audience_changes"] == 0
    print(f"sandbox: {arrived:,} changes accepted (expected {expected:,}); each once: {once}")
    return 0 if once else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
