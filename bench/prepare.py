"""Benchmark: query -> encoded request bodies, vectorized vs. row by row via the SDK.

Builds a DuckDB warehouse of N conversions (default 1,000,000) with four hashed
fields (email, firstname, lastname, mobile), then times, in one run:
  1. the connector's front half (source -> transform -> dedup -> payload -> pack);
  2. the same work row by row: DuckDB rows fetched in Python, deduplicated with a
     set, normalized and hashed with hashlib, ids from uuid.uuid5, built as the
     official `mparticle` SDK's models, serialized with its ApiClient and packed
     100 batches per bulk body.
Prints rows/s for both and the ratio. Usage: python bench/prepare.py [--rows N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import mparticle
import yaml

from connector.config import load_config
from connector.engine.prepare import prepare
from connector.transform import NS_MESSAGE
from connector.transports.events_api_json import NS_REQUEST

QUERY = """
SELECT confirmationref, email, firstname, lastname, mobile, conversiontype,
       amount, currency, quantity, event_time
FROM conversions WHERE event_time >= $since AND event_time < $until
"""
SINCE = datetime(2026, 1, 1, tzinfo=UTC)
UNTIL = datetime(2026, 3, 1, tzinfo=UTC)


def build(directory: Path, rows: int) -> Path:
    with duckdb.connect(str(directory / "bench.duckdb")) as con:
        con.execute(
            f"""
            CREATE TABLE conversions AS SELECT
              'ORD-' || i AS confirmationref,
              '  User.' || i || '@Example.com ' AS email,
              ' First' || (i % 5000) AS firstname,
              'Last' || (i % 7919) AS lastname,
              '+1 (555) ' || lpad((i % 10000000)::VARCHAR, 7, '0') AS mobile,
              'purchase' AS conversiontype,
              ((i % 50000) / 100.0)::DECIMAL(12, 2) AS amount,
              'usd' AS currency,
              (1 + i % 4)::INTEGER AS quantity,
              TIMESTAMPTZ '2026-01-01 00:00:00+00' + INTERVAL (i % 5000000) SECOND AS event_time
            FROM range({rows}) r(i)
            """
        )
    (directory / "query.sql").write_text(QUERY, encoding="utf-8")
    config = {
        "source": {"database": "bench.duckdb", "query": "query.sql", "chunk_rows": 100_000},
        "destination": {"base_url": "http://127.0.0.1:9", "api_key": "k", "api_secret": "s"},
        "sync": {"max_event_age": "90d"},  # the rows span two months before UNTIL
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def vectorized(config_path: Path) -> tuple[int, int, float]:
    config = load_config(config_path)
    started = time.perf_counter()
    rows = requests = 0
    for part in prepare(config, SINCE, UNTIL, now=UNTIL):
        rows += part.encoded.height
        for request in part.requests:  # the bytes a sync posts, made as it sends them
            request.body(part.encoded["_body"])
        requests += len(part.requests)
    return rows, requests, time.perf_counter() - started


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def per_row_sdk(directory: Path) -> tuple[int, int, float]:
    """The same rows and work, one Python object graph per conversion, via the SDK."""
    started = time.perf_counter()
    rows = requests = 0
    seen: set[str] = set()
    pending: list[dict[str, object]] = []
    query = QUERY.replace("event_time\nFROM", "epoch_ms(event_time) AS event_ms\nFROM")
    with duckdb.connect(str(directory / "bench.duckdb"), read_only=True) as con:
        con.execute(query, {"since": SINCE, "until": UNTIL})
        while chunk := con.fetchmany(10_000):
            for ref, email, first, last, mobile, ctype, amount, cur, qty, event_ms in chunk:
                ref = ref.strip()
                if ref in seen:
                    continue
                seen.add(ref)
                identities = mparticle.UserIdentities()
                identities.other = _sha(email.strip().lower())
                event = mparticle.AppEvent(
                    event_name="conversion",
                    custom_event_type="transaction",
                    timestamp_unixtime_ms=event_ms,
                    source_message_id=str(uuid.uuid5(NS_MESSAGE, f"development:{ref}")),
                    custom_attributes={
                        "confirmationref": ref,
                        "conversiontype": ctype.strip(),
                        "amount": float(amount),
                        "currency": cur.strip().upper(),
                        "quantity": qty,
                    },
                )
                batch = mparticle.Batch()
                batch.environment = "development"
                batch.user_identities = identities
                batch.user_attributes = {
                    "firstnamesha256": _sha(first.strip().lower()),
                    "lastnamesha256": _sha(last.strip().lower()),
                    "mobilesha256": _sha("".join(c for c in mobile if c.isdigit())),
                }
                batch.events = [event]
                document = mparticle.ApiClient.sanitize_for_serialization(batch)
                content = json.dumps(document, separators=(",", ":"))
                document["source_request_id"] = str(uuid.uuid5(NS_REQUEST, _sha(content)))
                pending.append(document)
                rows += 1
                if len(pending) == 100:
                    json.dumps(pending, separators=(",", ":")).encode()
                    requests += 1
                    pending = []
    if pending:
        json.dumps(pending, separators=(",", ":")).encode()
        requests += 1
    return rows, requests, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        config_path = build(directory, args.rows)
        rows, requests, seconds = vectorized(config_path)
        fast = rows / seconds
        print(
            f"connector (vectorized): {rows:,} rows -> {requests:,} bulk bodies "
            f"in {seconds:.2f} s = {fast:,.0f} rows/s"
        )
        rows, requests, seconds = per_row_sdk(directory)
        slow = rows / seconds
        print(
            f"mparticle SDK per row:  {rows:,} rows -> {requests:,} bulk bodies "
            f"in {seconds:.2f} s = {slow:,.0f} rows/s"
        )
        print(f"speed-up: {fast / slow:.1f}x (targets: >= 300,000 rows/s and >= 10x)")


if __name__ == "__main__":
    main()
