"""The data flow of DESIGN.md, stage by stage, for `validate`, `sync` and `backfill`.

Owns: running the stages in order (source -> in-run dedup -> ledger lookup ->
transform -> payload -> sender -> ledger), overlapping preparation with sending,
and accounting for every row read exactly once (read = sent or skipped or
duplicate or rejected). Must not: contain stage logic of its own (each stage lives
in its module), or hold more than a few chunks in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import ParamSpec, TypeVar

import httpx
import polars as pl

from connector import _allocator, clock, logs, source
from connector._version import __version__
from connector.clock import epoch_ms, oldest_event
from connector.config import Config, DestinationConfig, Transport
from connector.dedup import RunDedup
from connector.digest import sha256
from connector.errors import ConfigError, FatalSendError
from connector.ledger import Ledger
from connector.payload import Request, encode, pack
from connector.report import RunReport, ValidationReport
from connector.sender import Attempt, Delivery, DeliveryStopped, Sender
from connector.transform import META, confirmationrefs, split, transform, warning_counts

REJECTED_COLUMNS = [*(c for c in META if c != "_message_id"), "_row_sha256"]
ENCODED_COLUMNS = [*META, "_body", "_payload_sha256", "_request_id"]
Lookup = Callable[[pl.Series], pl.DataFrame]  # refs -> what the ledger knows (KNOWN_SCHEMA)
KNOWN_SCHEMA = {
    "ref": pl.String,
    "status": pl.String,
    "payload_sha256": pl.String,
    "payload_prefix": pl.UInt32,
}
Progress = Callable[[RunReport], None]
T = TypeVar("T")
P = ParamSpec("P")
# For tests only: `<point>:<n>` makes the process SIGKILL itself the n-th time a sync
# reaches <point>, so crash tests hit each point exactly (see `_crash_point`).
CRASH_AT_ENV = "ROKT_CONNECTOR_CRASH_AT"
_crashes_reached: Counter[str] = Counter()


def _crash_point(point: str) -> None:
    """A place a crash test can kill the run (`CRASH_AT_ENV`); nothing happens otherwise.

    `read`: a chunk is read and prepared, nothing of it recorded, the query still open;
    `recorded`: a chunk's rows are written `pending`, none of its requests has left;
    `settle`: answers have come back, their final states not yet in the ledger.
    """
    spec = os.environ.get(CRASH_AT_ENV)
    if not spec:
        return
    wanted, _, nth = spec.partition(":")
    if point == wanted:
        _crashes_reached[point] += 1
        if _crashes_reached[point] == (int(nth) if nth.isdigit() else 1):
            os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Prepared:
    """One chunk after the front half: request bodies and the rows set aside."""

    rows_read: int
    duplicates: int
    # the duplicates unlike the row that won (`_row`, `_row_sha256`, `_ref`): a sync
    # fails on them the first time it sees them
    differing: pl.DataFrame
    skipped: int  # already accepted, or rejected with the same payload (ledger)
    encoded: pl.DataFrame  # rows to send (ENCODED_COLUMNS), in the order of `requests`
    requests: list[Request]  # `start:stop` index rows of `encoded`
    rejected: pl.DataFrame  # REJECTED_COLUMNS of the rows rejected locally
    changed: pl.Series  # refs accepted before whose payload now differs (skipped)
    amounts: pl.DataFrame  # `_currency`, `_amount` of every valid row, skipped ones too
    shown: list[str]  # the first valid rows' bodies, plain-text PII redacted (`show`)

    @property
    def warnings(self) -> dict[str, int]:
        """Rows to send by the field warning that dropped one of their fields."""
        return warning_counts(self.encoded)


DIFFERING = "duplicate_differs"  # `rejected_rows.reason` of a duplicate unlike the winner
_NONE = pl.DataFrame(schema={"_row": pl.Int64, "_row_sha256": pl.String})


@dataclass(frozen=True)
class _Transformed:
    """One chunk after the parallel half: every row, duplicates too, with what the
    ledger says of it (flags), before the run's dedup takes the repeats out."""

    encoded: pl.DataFrame  # ENCODED_COLUMNS, `_settled`, `_changed`
    rejected: pl.DataFrame  # REJECTED_COLUMNS, `_accepted_before`
    shown: pl.DataFrame  # `_row`, `_body` of the first valid rows, redacted (`show`)


def sync_window(config: Config, now: datetime) -> tuple[datetime, datetime]:
    """`[now - sync.lookback, now)` in UTC."""
    return now - config.sync.lookback, now


def _oldest_ms(config: Config, now: datetime) -> int:
    """Events before this (UTC epoch ms) are `too_old` for a run at `now`."""
    return epoch_ms(oldest_event(now, config.sync.max_event_age))


def _settled_before(frame: pl.DataFrame, known: pl.DataFrame) -> pl.Series:
    """True where the ledger has the row `accepted`, or `rejected` with the same payload."""
    joined = frame.select("_ref", "_payload_sha256").join(
        known, left_on="_ref", right_on="ref", how="left", maintain_order="left"
    )
    same_payload = pl.col("payload_sha256") == pl.col("_payload_sha256")
    done = (pl.col("status") == "accepted") | ((pl.col("status") == "rejected") & same_payload)
    return joined.select(done.fill_null(False)).to_series()


def _changed_after_accept(frame: pl.DataFrame, known: pl.DataFrame) -> pl.Series:
    """True where the ledger has the row `accepted` with another payload (by the first
    32 bits of its SHA-256: a change goes unseen once in 4 billion)."""
    joined = frame.select("_ref", "_payload_sha256").join(
        known, left_on="_ref", right_on="ref", how="left", maintain_order="left"
    )
    prefix = pl.col("_payload_sha256").str.slice(0, 8).str.to_integer(base=16)
    changed = (pl.col("status") == "accepted") & (pl.col("payload_prefix") != prefix)
    return joined.select(changed.fill_null(False)).to_series()


def _fingerprints(chunk: pl.DataFrame, rows: pl.Series, wanted: pl.Series) -> pl.DataFrame:
    """(`_row`, `_row_sha256`) of the rows of `chunk` numbered `wanted`: the SHA-256 of
    the row's column names and values (how a rejection is known again)."""
    mask = rows.is_in(wanted.implode())
    names = "\x1f".join(chunk.columns)
    values = (  # a time as its number: polars cannot render one past the year 9999
        (pl.col(c).to_physical() if dtype.is_temporal() else pl.col(c))
        .cast(pl.String)
        .fill_null("\x00")
        for c, dtype in chunk.schema.items()
    )
    content = pl.concat_str([pl.lit(names), *values], separator="\x1e")
    return chunk.filter(mask).select(
        pl.lit(rows.filter(mask)).alias("_row"), sha256(content).alias("_row_sha256")
    )


def _transform_chunk(
    chunk: pl.DataFrame,
    rows: pl.Series,
    config: Config,
    show: int,
    known: pl.DataFrame,
    oldest_ms: int,
    newest_ms: int,
    refs: pl.Series,
) -> _Transformed:
    """Transform and encode every row of one chunk, and flag what the ledger settled."""
    environment = config.destination.environment
    frame = transform(chunk, config.mapping, environment, rows, oldest_ms, newest_ms, refs)
    valid, rejected = split(frame)
    encoded, too_large = split(encode(valid, environment))
    rejected = pl.concat([rejected, too_large], how="diagonal")
    rejected = rejected.join(
        _fingerprints(chunk, rows, rejected["_row"]), on="_row", how="left"
    ).select(REJECTED_COLUMNS)
    # a row rejected here whose conversion was accepted before stays accepted
    accepted_before = (
        rejected["_ref"]
        .is_in(known.filter(pl.col("status") == "accepted")["ref"].implode())
        .fill_null(False)  # a row without a confirmationref was never accepted
    )
    if show:  # not a row an earlier one of this chunk repeats (dedup drops the rest)
        first = refs.is_first_distinct() | refs.is_null()
        valid = valid.filter(pl.col("_row").is_in(rows.filter(first).implode()))
    shown = encode(valid.head(show), environment, redact=True)
    return _Transformed(
        encoded.select(
            *ENCODED_COLUMNS,
            _settled=_settled_before(encoded, known),
            _changed=_changed_after_accept(encoded, known),
        ),
        rejected.with_columns(_accepted_before=accepted_before),
        split(shown)[0].select("_row", "_body"),
    )


def _content(sha256_hex: str) -> pl.Expr:
    """The first 32 bits of a SHA-256 (hex) column, as what the run's dedup compares."""
    return pl.col(sha256_hex).str.slice(0, 8).str.to_integer(base=16).cast(pl.UInt32)


def _deduplicate(
    part: _Transformed,
    chunk: pl.DataFrame,
    rows: pl.Series,
    refs: pl.Series,
    dedup: RunDedup,
    bulk: bool,
) -> Prepared:
    """Take the run's repeats out of one transformed chunk (in source order: the first
    row with a ref wins), spot those unlike the row that won by their payload (or, for
    a rejected row, its content), and pack the rest."""
    contents = pl.concat(
        [
            part.encoded.select("_row", _content("_payload_sha256").alias("c")),
            part.rejected.select("_row", _content("_row_sha256").alias("c")),
        ]
    ).sort("_row")["c"]
    duplicate, differs = dedup.check(refs, contents)
    encoded, rejected, shown = part.encoded, part.rejected, part.shown
    if duplicate.any():
        at = -rows[0] if rows.len() else 0

        def unique(frame: pl.DataFrame) -> pl.DataFrame:
            return frame.filter(~duplicate.gather(frame["_row"] + at))

        encoded, rejected, shown = unique(encoded), unique(rejected), unique(shown)
    differing = _fingerprints(chunk, rows, rows.filter(differs)) if differs.any() else _NONE
    differing = differing.with_columns(_ref=refs.filter(differs))
    amounts = encoded.select("_currency", "_amount")
    changed = encoded["_ref"].filter(encoded["_changed"])
    skipped = int(encoded["_settled"].sum()) + int(rejected["_accepted_before"].sum())
    encoded = encoded.filter(~pl.col("_settled")).select(ENCODED_COLUMNS)
    rejected = rejected.filter(~pl.col("_accepted_before")).select(REJECTED_COLUMNS)
    requests = pack(encoded["_body"], bulk)
    return Prepared(
        rows.len(),
        int(duplicate.sum()),
        differing,
        skipped,
        encoded,
        requests,
        rejected,
        changed,
        amounts,
        shown["_body"].to_list(),
    )


def prepare(
    config: Config,
    since: datetime,
    until: datetime,
    now: datetime,
    limit: int | None = None,
    show: int = 0,
    workers: int = 2,
    lookup: Lookup | None = None,
) -> Generator[Prepared]:
    """Each chunk of `[since, until)`: checked against the ledger (`lookup`),
    transformed, encoded, deduplicated and packed; a run at `now` rejects events older
    than `sync.max_event_age` as `too_old`, and later than now + `sync.max_clock_skew`
    as `future_event_time`. `show`: bodies of each chunk's first valid rows to print.

    Up to `workers` chunks are transformed and encoded at once (polars and DuckDB
    release the GIL); the ledger lookup before, and deduplication after, run on each
    chunk in source order, so the first row with a confirmationref wins and its
    repeats can be compared with it. Chunks come out in order.
    """
    dedup = RunDedup()
    nothing_known = pl.DataFrame(schema=KNOWN_SCHEMA)
    Pending = tuple[pl.DataFrame, pl.Series, pl.Series, Future[_Transformed]]
    in_flight: deque[Pending] = deque()

    def next_part() -> Prepared:
        chunk, rows, refs, future = in_flight.popleft()
        return _deduplicate(future.result(), chunk, rows, refs, dedup, config.destination.bulk)

    first_row, oldest_ms = 1, _oldest_ms(config, now)
    newest_ms = epoch_ms(now + config.sync.max_clock_skew)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prepare") as pool:
            for chunk in source.chunks(config.source, since, until, limit):
                rows = pl.int_range(first_row, first_row + chunk.height, eager=True)
                first_row += chunk.height
                refs = confirmationrefs(chunk)
                # each ref once: only the answer for a ref's first row is used
                known = lookup(refs.filter(refs.is_first_distinct())) if lookup else nothing_known
                future = pool.submit(
                    _transform_chunk, chunk, rows, config, show, known, oldest_ms, newest_ms, refs
                )
                in_flight.append((chunk, rows, refs, future))
                if len(in_flight) > workers:
                    yield next_part()
            while in_flight:
                yield next_part()
    finally:
        for *_, future in in_flight:
            future.cancel()


def _examples(seen: list[str], refs: pl.Series, most: int = 5) -> None:
    """Add refs not in `seen` yet to it, until it holds `most`."""
    if len(seen) < most:
        fresh = refs.drop_nulls().unique(maintain_order=True)
        seen += fresh.filter(~fresh.is_in(seen)).head(most - len(seen)).to_list()


def _amounts(amounts: pl.DataFrame) -> list[dict[str, object]]:
    """Rows, min, median and max of the amount, per currency (cents sent for dollars
    show as a median 100 times too large)."""
    return (
        amounts.group_by(pl.col("_currency").alias("currency"))
        .agg(
            pl.len().alias("rows"),
            pl.col("_amount").min().alias("min"),
            pl.col("_amount").median().alias("median"),
            pl.col("_amount").max().alias("max"),
        )
        .sort("rows", "currency", descending=[True, False], nulls_last=True)
        .to_dicts()
    )


def validate(
    config: Config,
    since: datetime,
    until: datetime,
    now: datetime,
    show: int = 0,
    examples_per_reason: int = 3,
    lookup: Lookup | None = None,
) -> ValidationReport:
    """Run the front half without sending; plain PII in shown payloads is redacted.
    With the ledger's `lookup`, rows it settled are counted as a sync would skip them."""
    report = ValidationReport(since=since, until=until)
    amounts = []
    for part in prepare(config, since, until, now, show=show, lookup=lookup):
        report.rows_read += part.rows_read
        report.valid += part.encoded.height
        report.duplicates += part.duplicates
        report.duplicates_differing += part.differing.height
        _examples(report.differing_examples, part.differing["_ref"])
        report.skipped += part.skipped
        report.changed_after_accept += part.changed.len()
        _examples(report.changed_examples, part.changed)
        report.warnings.update(part.warnings)
        amounts.append(part.amounts)
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
        report.request_bytes += sum(r.size for r in part.requests)
        report.payloads += part.shown[: show - len(report.payloads)]
    if amounts:
        report.amounts = _amounts(pl.concat(amounts))
    return report


def _pending(encoded: pl.DataFrame) -> pl.DataFrame:
    """Ledger rows written before their request leaves (write-ahead)."""
    return encoded.select(
        pl.col("_ref").alias("ref"),
        pl.lit("pending").alias("status"),
        pl.col("_request_id").alias("request_id"),
        pl.col("_payload_sha256").alias("payload_sha256"),
        pl.col("_warnings").alias("warnings"),
        *_LEDGER_FIELDS,
    )


def _local_rejections(rejected: pl.DataFrame) -> pl.DataFrame:
    """Ledger rows of rows rejected before sending (those with a confirmationref)."""
    return rejected.filter(pl.col("_ref").is_not_null()).select(
        pl.col("_ref").alias("ref"),
        pl.lit("rejected_local").alias("status"),
        pl.col("_reason").alias("reason"),
        *_LEDGER_FIELDS,
    )


_LEDGER_FIELDS = (
    pl.col("_identity_sha256").alias("identity_sha256"),
    pl.col("_conversiontype").alias("conversiontype"),
    pl.col("_amount").alias("amount"),
    pl.col("_currency").alias("currency"),
    pl.col("_event_ms").alias("event_ms"),
)


async def _in_thread(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`function` in a worker thread. A thread cannot be stopped: when the caller is
    cancelled, it still waits for the thread to finish, so nothing closes under it."""
    future = asyncio.ensure_future(asyncio.to_thread(function, *args, **kwargs))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


_TRIES_SCHEMA: dict[str, pl.DataType] = {
    "request": pl.Int64(),
    "attempt": pl.Int32(),
    "attempted_at": pl.Datetime("us", "UTC"),
    "http_status": pl.Int32(),
    "error": pl.String(),
    "message": pl.String(),
}


# The longest a conversion's answer waits for its ledger write.
SETTLE_WAIT_S = 10.0


class _Settler:
    """Writes final states and every attempt to the ledger off the event loop: a
    write waits for the answers of `rows_per_write` conversions (a sync: `chunk_rows`,
    as many as each write-ahead) or for `wait_s`, whichever comes first, and takes
    every answer that has gathered by then.

    Writes must be few: DuckDB keeps 4-10 KB for good after each UPDATE that joins
    the rows it changes (sql/ledger_settle.sql). Written as answers came in (a
    request or two a time), a 5,000,000-row sync in bench/memory.py grew by about
    55 MB of them.

    Sending never waits for the ledger: delivered requests queue up and one task
    writes them in a worker thread, states and attempts in one transaction. A crash
    before a write leaves those rows `pending`, which the next run resends with the
    same request ids; closing writes what has gathered at once.
    """

    def __init__(
        self, ledger: Ledger, run_id: str, rows_per_write: int, wait_s: float = SETTLE_WAIT_S
    ) -> None:
        self._ledger = ledger
        self._run_id = run_id
        self._rows_per_write = rows_per_write
        self._wait_s = wait_s
        self._queue: asyncio.Queue[tuple[pl.DataFrame, list[Attempt]] | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._write())

    def put(self, settled: pl.DataFrame, history: list[Attempt]) -> None:
        """`settled(ref, request_id, status, reason, attempt)` of one request."""
        if self._task.done():
            self._task.result()  # a failed ledger write stops the run now, not at its end
        self._queue.put_nowait((settled, history))

    async def close(self) -> None:
        self._queue.put_nowait(None)
        await self._task

    def _flush(self, delivered: list[tuple[pl.DataFrame, list[Attempt]]]) -> None:
        """One ledger write: number the requests, fan their attempts out in SQL."""
        settled = pl.concat(
            frame.with_columns(pl.lit(number, pl.Int64).alias("request"))
            for number, (frame, _) in enumerate(delivered)
        )
        tries = pl.DataFrame(
            [
                (number, a.number, a.at, a.http_status, a.error, a.message)
                for number, (_, history) in enumerate(delivered)
                for a in history
            ],
            schema=_TRIES_SCHEMA,
            orient="row",
        )
        self._ledger.settle(settled, tries, self._run_id)

    async def _gather(self) -> tuple[list[tuple[pl.DataFrame, list[Attempt]]], bool]:
        """The requests of the next write, and whether the settler was closed."""
        loop = asyncio.get_running_loop()
        item = await self._queue.get()
        deadline = loop.time() + self._wait_s
        ready: list[tuple[pl.DataFrame, list[Attempt]]] = []
        rows = 0
        while item is not None:
            ready.append(item)
            rows += item[0].height
            if not self._queue.empty():  # what has gathered goes in this write
                item = self._queue.get_nowait()
            elif rows >= self._rows_per_write:
                break
            else:
                try:
                    item = await asyncio.wait_for(self._queue.get(), deadline - loop.time())
                except TimeoutError:
                    break
        return ready, item is None

    async def _write(self) -> None:
        closed = False
        while not closed:
            ready, closed = await self._gather()
            if ready:
                _crash_point("settle")
                await _in_thread(self._flush, ready)


async def _send(sender: Sender, settler: _Settler, rows: pl.DataFrame, report: RunReport) -> None:
    """Deliver one request and queue its conversions' final states for the ledger."""
    try:
        delivery = await sender.deliver(rows)
    except DeliveryStopped as stopped:
        _account(settler, rows, stopped.delivery, report)
        raise
    _account(settler, rows, delivery, report)


def _account(settler: _Settler, rows: pl.DataFrame, delivery: Delivery, report: RunReport) -> None:
    """Queue what became of each conversion of a request, and count it in the report."""
    for settlement in delivery.settlements:
        if not settlement.status:  # never sent, or every batch resent alone
            continue
        states = settlement.status
        outcome = pl.DataFrame(
            {
                "_request_id": list(states),
                "status": [status for status, _, _ in states.values()],
                "reason": [reason for _, reason, _ in states.values()],
                "attempt": [attempt for _, _, attempt in states.values()],
            },
            schema={
                "_request_id": pl.String,
                "status": pl.String,
                "reason": pl.String,
                "attempt": pl.Int32,
            },
        )
        settled = (
            rows.select("_ref", "_request_id")
            .join(outcome, on="_request_id")
            .rename({"_ref": "ref", "_request_id": "request_id"})
        )
        settler.put(settled, settlement.history)
        counts = dict(settled["status"].value_counts().iter_rows())
        if counts.get("rejected"):
            reasons = settled.filter(pl.col("status") == "rejected")["reason"].fill_null("")
            report.rejected_by_reason.update(dict(reasons.value_counts().iter_rows()))
        report.accepted += counts.get("accepted", 0)
        report.rejected += counts.get("rejected", 0)
        report.failed += counts.get("failed", 0)
        report.batches_sent += counts.get("accepted", 0) + counts.get("rejected", 0)


async def _deliver_all(
    config: Config,
    since: datetime,
    until: datetime,
    now: datetime,
    limit: int | None,
    dry_run: bool,
    ledger: Ledger,
    sender: Sender,
    report: RunReport,
    progress: Progress | None,
    stopping: asyncio.Event,
) -> None:
    """Prepare, record and send every chunk; after `stopping` is set, start nothing new
    but let the requests in flight finish and settle."""
    transport = config.destination.transport.value
    # one chunk prepared at a time: sending is slower anyway, and memory stays small
    parts = prepare(config, since, until, now, limit, workers=1, lookup=ledger.lookup)
    settler = _Settler(ledger, report.run_id, rows_per_write=config.source.chunk_rows)
    tasks: set[asyncio.Task[None]] = set()
    high_water = 4 * config.destination.concurrency  # requests queued ahead of the wire
    queued = 0  # rows to send

    async def reap(wait_for_all: bool) -> None:
        nonlocal tasks
        while tasks and (wait_for_all or len(tasks) >= high_water):
            done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            # every failure is retrieved (none is left for the garbage collector to
            # report); the first is re-raised (FatalSendError)
            failures = [e for task in done if (e := task.exception()) is not None]
            if failures:
                raise failures[0]
            if progress:
                progress(report)

    try:
        while not stopping.is_set() and (part := await _in_thread(next, parts, None)):
            _crash_point("read")
            report.rows_read += part.rows_read
            report.rows_duplicate += part.duplicates
            report.rows_skipped_ledger += part.skipped
            report.rows_rejected_local += part.rejected.height
            report.rejected_by_reason.update(dict(part.rejected["_reason"].value_counts().rows()))
            report.changed_after_accept += part.changed.len()
            _examples(report.changed_examples, part.changed)
            report.warnings.update(part.warnings)
            queued += part.encoded.height
            report.duplicates_differing += part.differing.height
            _examples(report.differing_examples, part.differing["_ref"])
            # rows not sent, each remembered by its content: those seen before are known
            rejections = pl.concat(
                [
                    part.rejected.select("_row_sha256", reason="_reason"),
                    part.differing.select("_row_sha256", reason=pl.lit(DIFFERING)),
                ]
            ).rename({"_row_sha256": "row_sha256"})
            known = await _in_thread(ledger.known_rejections, rejections)
            report.rows_rejected_known += int(known.head(part.rejected.height).sum())
            report.duplicates_differing_known += int(known.tail(part.differing.height).sum())
            if not dry_run:
                # write-ahead: these rows are in the ledger before their requests leave
                rows_to_record = pl.concat(
                    [_local_rejections(part.rejected), _pending(part.encoded)], how="diagonal"
                )
                await _in_thread(ledger.record, rows_to_record, report.run_id, transport)
                await _in_thread(ledger.remember_rejections, rejections, report.run_id)
                _crash_point("recorded")
                for request in part.requests:
                    if stopping.is_set():
                        break  # its rows stay pending; the next run sends them
                    rows = part.encoded.slice(request.start, request.batches)
                    send = _send(sender, settler, rows, report)
                    tasks.add(asyncio.create_task(send))
                    await reap(wait_for_all=False)
            _allocator.release_free_memory()  # the bodies of the chunks sent so far
            if progress:
                progress(report)
        await reap(wait_for_all=True)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await settler.close()  # every answer received is in the ledger before the run ends
        finally:
            await _in_thread(parts.close)
            stats = sender.stats
            report.requests, report.retries, report.isolated = (
                stats.requests,
                stats.retries,
                stats.isolated,
            )
            report.pending = queued - report.accepted - report.rejected - report.failed


def _on_stop_signals(stopping: asyncio.Event, work: asyncio.Task[None] | None) -> None:
    """SIGINT/SIGTERM: the first stops starting new requests, a second cancels the run.

    Only where signals can be handled (the main thread); elsewhere the caller's own
    cancellation applies.
    """
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stopping.is_set() and work is not None:
            work.cancel()
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(sig, on_signal)


def _client(
    destination: DestinationConfig, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncClient:
    secret = destination.api_secret.get_secret_value() if destination.api_secret else ""
    return httpx.AsyncClient(
        auth=httpx.BasicAuth(destination.api_key.get_secret_value(), secret),
        headers={
            "User-Agent": f"rokt-connector/{__version__}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        },
        timeout=httpx.Timeout(destination.timeout_s),
        limits=httpx.Limits(max_connections=destination.concurrency),
        transport=transport,
    )


def check_transport(config: Config) -> None:
    """Refuse, before anything is read, a transport that is not built yet."""
    if config.destination.transport != Transport.EVENTS_API:
        raise ConfigError(
            f"destination.transport: {config.destination.transport} is not implemented yet; "
            "use events_api (nothing was sent)"
        )


async def run(
    config: Config,
    since: datetime,
    until: datetime,
    *,
    ledger: Ledger,
    stopping: asyncio.Event,
    now: datetime,
    mode: str = "sync",
    limit: int | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> RunReport:
    """One run over `[since, until)` on an open ledger, as of `now`.

    Every conversion is written `pending` before its request leaves and settled
    after the response; the run's report lands in the ledger's `runs` table. A fatal
    error (credentials refused, endpoint unreachable) ends the run with status
    `failed` and its message in `report.message`; once `stopping` is set no new
    request starts and the run ends `interrupted`. A dry run only reads the ledger
    (no `runs` row, no marker).
    """
    report = RunReport(run_id=str(uuid.uuid4()), mode="dry_run" if dry_run else mode)
    started = time.monotonic()
    if not dry_run:
        ledger.start_run(report.run_id, report.mode, since, until)
    logs.event("run_started", run_id=report.run_id, mode=report.mode, since=since, until=until)
    try:
        async with _client(config.destination, transport) as client:
            sender = Sender(client, config.destination, sleep=sleep, stopping=stopping)
            await _deliver_all(
                config,
                since,
                until,
                now,
                limit,
                dry_run,
                ledger,
                sender,
                report,
                progress,
                stopping,
            )
        report.finish(fatal=False, interrupted=stopping.is_set())
    except FatalSendError as exc:
        report.message = str(exc)
        report.finish(fatal=True)
    except asyncio.CancelledError:  # a second signal
        report.finish(fatal=False, interrupted=True)
    finally:
        report.duration_s = round(time.monotonic() - started, 3)
        if report.status == "running":
            report.status = "failed"
        if not dry_run:
            ledger.finish_run(report.as_dict(), report.message)
        fields = report.as_dict() | {"since": since, "until": until}
        logs.event("run_finished", logs.level(report.status), **fields)
    return report


async def until_stopped(work: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run `work(stopping)` with SIGINT/SIGTERM setting `stopping` (see `_on_stop_signals`)."""
    stopping = asyncio.Event()
    _on_stop_signals(stopping, asyncio.current_task())
    return await work(stopping)


def sync(
    config: Config,
    since: datetime,
    until: datetime,
    *,
    now: datetime | None = None,
    mode: str = "sync",
    limit: int | None = None,
    dry_run: bool = False,
    new_ledger: bool = False,
    progress: Progress | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> RunReport:
    """Send the conversions of `[since, until)` that the ledger has not settled (see
    `run`); `now` (default: the clock) decides which events are too old. `new_ledger`:
    start a new ledger although the marker beside `ledger.path` records one that is
    missing or was replaced (`Ledger.open`)."""
    check_transport(config)
    environment = config.destination.environment
    opened = Ledger.for_dry_run if dry_run else Ledger.open  # a dry run creates nothing
    with opened(config.ledger.path, environment, new_ledger=new_ledger) as ledger:
        return asyncio.run(
            until_stopped(
                lambda stopping: run(
                    config,
                    since,
                    until,
                    ledger=ledger,
                    stopping=stopping,
                    now=now or clock.now(),
                    mode=mode,
                    limit=limit,
                    dry_run=dry_run,
                    progress=progress,
                    transport=transport,
                    sleep=sleep,
                )
            )
        )
