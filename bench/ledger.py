"""Benchmark: the ledger check of a sync against a ledger of 10,000,000 conversions,
and `ledger summary` over it.

Builds (with DuckDB SQL straight into the ledger schema, `bench/ledger_rows.sql`) a
ledger of N rows: 93% accepted, 3% rejected_local, 2% rejected, 1% failed, 1%
pending. Then runs the pipeline's own ledger check, chunk after chunk of the
configured `source.chunk_rows` refs (half of them known to the ledger, drawn at
random, half new): first-wins dedup within the run (`RunDedup`, timed apart),
`Ledger.lookup` and the skip decision of `engine.prepare` (accepted, or rejected with an
unchanged payload). It checks each chunk's decision against the ledger, then prints
source rows checked per second (from the 4th chunk on, when a run answers from its
in-memory index, and over all chunks) and the wall time of `rokt-connector ledger
summary` against the same ledger.

Usage: python bench/ledger.py [--rows 10000000] [--chunks 40] [--dir DIR] [--scan-only]
(with --dir, the ledger is kept there and reused by the next run; --scan-only looks
every chunk up in the ledger file, as runs did before the in-memory index).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl
import yaml

from connector.config import SourceConfig
from connector.dedup import RunDedup
from connector.digest import sha256
from connector.engine.prepare import _settled_before
from connector.ledger import Ledger
from connector.ledger import rows as ledger_rows

ENVIRONMENT = "development"
HERE = Path(__file__).resolve().parent


def build_ledger(path: Path, rows: int) -> float:
    """A ledger of `rows` conversions at `path` (reused when it has them); seconds."""
    if path.exists():
        with duckdb.connect(str(path), read_only=True) as con:
            if con.sql("SELECT count(*) FROM ledger").fetchall() == [(rows,)]:
                return 0.0
        path.unlink()
    Ledger.open(path, ENVIRONMENT).close()  # the schema, as a sync creates it
    started = time.perf_counter()
    with duckdb.connect(str(path)) as con:
        sql = (HERE / "ledger_rows.sql").read_text(encoding="utf-8")
        con.execute(sql, {"rows": rows, "environment": ENVIRONMENT})
        con.execute("CHECKPOINT")
    return time.perf_counter() - started


def chunks(count: int, size: int, rows: int, seed: int) -> list[pl.DataFrame]:
    """`count` chunks of `size` refs, half known to the ledger (drawn at random, each
    once), half new; with the payload hash the pipeline would compute (the ledger's:
    rejected ones are unchanged)."""
    known = pl.int_range(0, rows, eager=True).sample(count * (size // 2), seed=seed)
    frames = []
    for number in range(count):
        ids = known.slice(number * (size // 2), size // 2).cast(pl.String)
        old = pl.DataFrame({"i": ids}).select(
            ("ORD-" + pl.col("i").str.zfill(10)).alias("_ref"),
            sha256(pl.col("i")).alias("_payload_sha256"),
        )
        new = pl.DataFrame(
            {"_ref": [f"NEW-{number:05d}-{i:07d}" for i in range(size - size // 2)]}
        ).with_columns(sha256(pl.col("_ref")).alias("_payload_sha256"))
        frames.append(pl.concat([old, new]).sample(fraction=1.0, shuffle=True, seed=number))
    return frames


def expected_skips(path: Path, frame: pl.DataFrame) -> int:
    """What the skip decision must find, straight from the ledger file."""
    with duckdb.connect(str(path), read_only=True) as con:
        con.register("frame", frame)
        ((skips,),) = con.sql(
            "SELECT count(*) FROM frame f JOIN ledger l ON l.confirmationref = f._ref "
            "WHERE l.status = 'accepted' "
            "OR (l.status = 'rejected' AND l.payload_sha256 = f._payload_sha256)"
        ).fetchall()
    return int(skips)


def check(path: Path, chunks: list[pl.DataFrame]) -> tuple[list[float], list[float], list[int]]:
    """The pipeline's ledger check of each chunk, as `pipeline.prepare` runs it: seconds
    of `RunDedup`, seconds of `Ledger.lookup` + the skip decision, rows skipped."""
    deduped: list[float] = []
    checked: list[float] = []
    skipped: list[int] = []
    dedup = RunDedup()
    with Ledger.open(path, ENVIRONMENT) as ledger:
        for frame in chunks:
            started = time.perf_counter()
            kept = frame.filter(~dedup.duplicates(frame["_ref"]))
            looked_up = time.perf_counter()
            known = ledger.lookup(kept["_ref"])
            skip = _settled_before(kept, known)
            done = time.perf_counter()
            deduped.append(looked_up - started)
            checked.append(done - looked_up)
            skipped.append(int(skip.sum()))
    return deduped, checked, skipped


def summary_time(directory: Path, path: Path) -> float:
    """Wall time of `rokt-connector ledger summary` (a new process, as a user runs it)."""
    (directory / "query.sql").write_text("SELECT 1 WHERE $since < $until", encoding="utf-8")
    config = {
        "source": {"query": "query.sql"},
        "destination": {"base_url": "http://127.0.0.1:9", "api_key": "k", "api_secret": "s"},
        "ledger": {"path": str(path)},
    }
    (directory / "bench.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    command = [sys.executable, "-m", "connector", "ledger", "summary", "--config"]
    started = time.perf_counter()
    subprocess.run([*command, str(directory / "bench.yaml")], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="ledger rows")
    parser.add_argument("--chunks", type=int, default=40, help="source chunks to check")
    parser.add_argument("--dir", type=Path, help="keep (and reuse) the ledger here")
    parser.add_argument(
        "--scan-only", action="store_true", help="look every chunk up in the file (before)"
    )
    args = parser.parse_args()
    size = SourceConfig(query=Path("q.sql")).chunk_rows
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.dir or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"ledger-{args.rows}.duckdb"
        built = build_ledger(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        how = f"built in {built:.1f} s" if built else "reused"
        print(f"ledger: {args.rows:,} rows, {size_mb:,.0f} MB ({how})")

        frames = chunks(args.chunks, size, args.rows, seed=7)
        if args.scan_only:  # the ledger file scanned for every chunk, never the index
            ledger_rows.SCANS_BEFORE_INDEX = len(frames)
        deduped, seconds, skipped = check(path, frames)
        expected = [expected_skips(path, frame) for frame in frames]
        correct = "yes" if skipped == expected else f"NO ({skipped[:3]} vs {expected[:3]})"
        total = size * len(frames)
        warm = seconds[3:]
        print(
            f"\nLedger.lookup + skip decision, {len(frames)} chunks of {size:,} refs "
            f"(half known){' (--scan-only)' if args.scan_only else ''}:\n"
            f"  from the 4th chunk on {size * len(warm) / sum(warm):>10,.0f} source rows/s "
            f"(target >= 1,000,000)\n"
            f"  all chunks            {total / sum(seconds):>10,.0f} source rows/s "
            f"({total:,} rows in {sum(seconds):.2f} s; chunks 1-3: "
            f"{', '.join(f'{s:.2f}' for s in seconds[:3])} s)\n"
            f"  rows skipped {sum(skipped):,} (accepted, or rejected and unchanged); "
            f"matches the ledger: {correct}\n"
            f"RunDedup (first wins within the run), before it: "
            f"{total / sum(deduped):,.0f} source rows/s"
        )
        print(f"\nrokt-connector ledger summary: {summary_time(directory, path):.2f} s wall")


if __name__ == "__main__":
    main()
