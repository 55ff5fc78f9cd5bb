"""The data flow of DESIGN.md, stage by stage: source -> transform -> dedup -> payload.

Owns: running the stages in order over each chunk and counting what happened to
every row read (valid, rejected by reason, duplicate), so the counts always add up
to the rows read. Must not: contain stage logic of its own (each stage lives in its
module), or hold more than one chunk in memory.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

from connector import source
from connector.config import Config
from connector.ledger import RunDedup
from connector.payload import Request, encode, pack
from connector.transform import META, confirmationrefs, split, transform

REJECTED_COLUMNS = ["_row", "_ref", "_reason", "_event_ms", "_identity_sha256"]
ENCODED_COLUMNS = [*META, "_body", "_payload_sha256", "_request_id"]


@dataclass(frozen=True)
class Prepared:
    """One chunk after the front half: request bodies and the rows set aside."""

    rows_read: int
    duplicates: int
    encoded: pl.DataFrame  # valid rows (ENCODED_COLUMNS), in the order of `requests`
    requests: list[Request]  # request bodies; `start:stop` index rows of `encoded`
    rejected: pl.DataFrame  # REJECTED_COLUMNS of the rows rejected locally


def sync_window(config: Config, now: datetime | None = None) -> tuple[datetime, datetime]:
    """`[now - sync.lookback, now)` in UTC."""
    until = now or datetime.now(UTC)
    return until - config.sync.lookback, until


def _prepare_chunk(
    chunk: pl.DataFrame, rows: pl.Series, config: Config, redact: bool
) -> tuple[pl.DataFrame, list[Request], pl.DataFrame]:
    """Transform, encode and pack one chunk whose duplicates are already removed."""
    environment = config.destination.environment
    valid, rejected = split(transform(chunk, config.mapping, environment, rows))
    encoded, too_large = split(encode(valid, environment, redact))
    rejected = pl.concat([rejected, too_large], how="diagonal").select(REJECTED_COLUMNS)
    return (
        encoded.select(ENCODED_COLUMNS),
        pack(encoded["_body"], config.destination.bulk),
        rejected,
    )


def prepare(
    config: Config,
    since: datetime,
    until: datetime,
    limit: int | None = None,
    redact: bool = False,
    workers: int = 2,
) -> Iterator[Prepared]:
    """Each chunk of `[since, until)`: deduplicated, transformed, encoded and packed.

    Deduplication runs first, on each chunk in source order, so the first row with a
    confirmationref wins; then up to `workers` chunks are transformed, encoded and
    packed at once (polars and DuckDB release the GIL). Chunks come out in order.
    """
    dedup = RunDedup()
    in_flight: deque[tuple[int, int, Future[tuple[pl.DataFrame, list[Request], pl.DataFrame]]]]
    in_flight = deque()

    def settle() -> Prepared:
        rows_read, duplicates, future = in_flight.popleft()
        encoded, requests, rejected = future.result()
        return Prepared(rows_read, duplicates, encoded, requests, rejected)

    first_row = 1
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prepare") as pool:
            for chunk in source.chunks(config.source, since, until, limit):
                rows = pl.int_range(first_row, first_row + chunk.height, eager=True)
                first_row += chunk.height
                duplicate = dedup.duplicates(confirmationrefs(chunk))
                keep = ~duplicate
                future = pool.submit(
                    _prepare_chunk, chunk.filter(keep), rows.filter(keep), config, redact
                )
                in_flight.append((chunk.height, int(duplicate.sum()), future))
                if len(in_flight) > workers:
                    yield settle()
            while in_flight:
                yield settle()
    finally:
        for _, _, future in in_flight:
            future.cancel()
        dedup.close()


@dataclass
class ValidationReport:
    """What `validate` found: counts that add up to `rows_read`, and examples."""

    since: datetime
    until: datetime
    rows_read: int = 0
    valid: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_examples: dict[str, list[str]] = field(default_factory=dict)
    requests: int = 0
    request_bytes: int = 0
    payloads: list[str] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "rows_read": self.rows_read,
            "valid": self.valid,
            "duplicates": self.duplicates,
            "rejected": self.rows_rejected,
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "rejected_examples": self.rejected_examples,
            "requests": self.requests,
            "request_bytes": self.request_bytes,
        }


def validate(
    config: Config,
    since: datetime,
    until: datetime,
    show: int = 0,
    examples_per_reason: int = 3,
) -> ValidationReport:
    """Run the front half without sending; plain PII in shown payloads is redacted."""
    report = ValidationReport(since=since, until=until)
    for part in prepare(config, since, until, redact=True):
        report.rows_read += part.rows_read
        report.valid += part.encoded.height
        report.duplicates += part.duplicates
        reasons = part.rejected.group_by("_reason").agg(
            pl.len().alias("n"),
            pl.col("_row").head(examples_per_reason),
            pl.col("_ref").head(examples_per_reason),
        )
        for reason, n, rows, refs in reasons.iter_rows():
            report.rejected[reason] += n
            seen = report.rejected_examples.setdefault(reason, [])
            for row, ref in zip(rows, refs, strict=True):
                if len(seen) < examples_per_reason:
                    seen.append(f"row {row}" + (f" (confirmationref {ref})" if ref else ""))
        report.requests += len(part.requests)
        report.request_bytes += sum(len(r.body) for r in part.requests)
        if len(report.payloads) < show:
            report.payloads += part.encoded["_body"].head(show - len(report.payloads)).to_list()
    return report
