"""Benchmark: the connector's peak memory while it syncs 5,000,000 source rows.

Builds a DuckDB warehouse of N rows (default 5,000,000) in the example's `orders`
columns (read by `sql/conversions.sql`) with DuckDB's own generator: every row a
valid, distinct conversion with four hashed fields, event times in the last 20
days. Starts `rokt-connector sandbox` unthrottled and keeping no bodies
(`--keep-bodies 0`), then runs `rokt-connector sync --json` in a subprocess (bulk,
`max_batches_per_second: 100000`, concurrency 8, a fresh ledger) and reads the
connector process's peak RSS from the kernel when it exits (`wait4`'s `ru_maxrss`,
target <= 500 MB); RSS is also sampled every second to show where it peaks.
Prints peak RSS, rows/s and batches/s over the run, and checks with the sandbox
that every row was accepted exactly once.

Usage: python bench/memory.py [--rows N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
TARGET_MB = 500
DAY_S = 86_400


def build(directory: Path, rows: int, now: datetime) -> Path:
    """`warehouse.duckdb` with `orders`: `rows` valid conversions of the last 20 days."""
    path = directory / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            f"""
            CREATE TABLE orders AS SELECT
              'ORD-' || lpad(i::VARCHAR, 9, '0') AS order_id,
              'C-' || (i % 1000003) AS customer_id,
              ' Customer.' || i || '@Example.com' AS customer_email,
              'First' || (i % 5003) AS first_name,
              'Last' || (i % 7919) AS last_name,
              '+1 (415) ' || lpad((i % 10000000)::VARCHAR, 7, '0') AS phone,
              lpad((i % 100000)::VARCHAR, 5, '0') AS postal_code,
              NULL::DATE AS birth_date,
              ((i % 50000) / 100.0)::DECIMAL(12, 2) AS order_total,
              'USD' AS currency_code,
              (1 + i % 4)::INTEGER AS item_count,
              'Product ' || (i % 997) AS product_name,
              'SKU-' || (i % 997) AS sku,
              'visa' AS payment_method,
              'purchase' AS order_type,
              strftime(
                  $now::TIMESTAMP - INTERVAL (i % {20 * DAY_S}) SECOND, '%Y-%m-%d %H:%M:%S'
              ) AS created_at,
              NULL::VARCHAR AS ip_address,
              'Mozilla/5.0 (bench)' AS user_agent,
              NULL::VARCHAR AS rokt_tracking_id,
              NULL::VARCHAR AS loyalty_tier
            FROM range({rows}) r(i)
            """,
            {"now": now.replace(tzinfo=None)},
        )
    return path


def start_sandbox() -> tuple[subprocess.Popen[str], str]:
    options = ["--port", "0", "--keep-bodies", "0"]
    process = subprocess.Popen(
        [sys.executable, "-m", "connector", "sandbox", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("sandbox listening on "):
        process.kill()
        raise RuntimeError(f"the sandbox did not start: {line!r}")
    return process, line.removeprefix("sandbox listening on ").strip()


def write_config(directory: Path, warehouse: Path, url: str) -> Path:
    config = {
        "source": {"database": str(warehouse), "query": str(REPO / "sql" / "conversions.sql")},
        "destination": {
            "base_url": url,
            "api_key": "sandbox-key",
            "api_secret": "sandbox-secret",
            "bulk": True,
            "max_batches_per_second": 100_000,
            "concurrency": 8,
        },
        "ledger": {"path": str(directory / "ledger.duckdb")},
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return None
    kb = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), "")
    return int(kb) / 1024 if kb else None


def sample(pid: int, samples: list[tuple[float, float]], done: threading.Event) -> None:
    started = time.monotonic()
    while not done.wait(1.0):
        mb = rss_mb(pid)
        if mb is not None:
            samples.append((time.monotonic() - started, mb))


def run_sync(config: Path, since: datetime, until: datetime, out: Path) -> tuple[int, float]:
    """Run the sync; returns (exit code, peak RSS in MB) of the connector process."""
    window = ["--since", since.isoformat(), "--until", until.isoformat(), "--json"]
    with out.open("w", encoding="utf-8") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "connector", "sync", "--config", str(config), *window],
            stdout=stdout,
            stderr=sys.stderr,
        )
        samples: list[tuple[float, float]] = []
        done = threading.Event()
        sampler = threading.Thread(target=sample, args=(process.pid, samples, done), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
    profile = ", ".join(f"{t:.0f}s {mb:.0f}" for t, mb in samples[:: max(1, len(samples) // 12)])
    print(f"RSS over the run (MB): {profile}")
    return process.returncode, usage.ru_maxrss / 1024  # ru_maxrss is in KB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    args = parser.parse_args(argv)
    now = datetime.now(UTC).replace(microsecond=0)
    since, until = now - timedelta(days=21), now + timedelta(minutes=1)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as scratch:
        directory = args.keep or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        warehouse = build(directory, args.rows, now)
        print(f"built {args.rows:,} rows in {time.monotonic() - started:.0f} s")
        sandbox, url = start_sandbox()
        try:
            config = write_config(directory, warehouse, url)
            code, peak_mb = run_sync(config, since, until, directory / "report.json")
            stats: dict[str, Any] = httpx.get(url + "/_sandbox/stats", timeout=60).json()
        finally:
            sandbox.terminate()
            sandbox.wait()
        text = (directory / "report.json").read_text(encoding="utf-8")
    if not text.strip():  # the sync died before its report (its stderr is above)
        print(f"the sync exited {code} without a report; peak RSS {peak_mb:,.0f} MB")
        return 1
    report = json.loads(text)
    seconds = report["duration_s"]
    once = stats["batches"] == stats["unique_confirmationrefs"] == args.rows
    print(
        f"exit {code}, status {report['status']}: {report['rows_read']:,} rows read, "
        f"{report['accepted']:,} accepted in {report['requests']:,} requests, {seconds:.0f} s"
    )
    print(
        f"sandbox: {stats['batches']:,} batches, {stats['unique_confirmationrefs']:,} unique, "
        f"{stats['duplicate_confirmationrefs']} duplicate; every row once: {once}"
    )
    print(f"rows/s: {report['rows_read'] / seconds:,.0f}")
    print(f"batches/s: {report['batches_sent'] / seconds:,.0f}")
    verdict = "within" if peak_mb <= TARGET_MB else "OVER"
    print(f"peak RSS of the connector: {peak_mb:,.0f} MB ({verdict} the {TARGET_MB} MB target)")
    return 0 if code == 0 and once and peak_mb <= TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
