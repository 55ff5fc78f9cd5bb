"""The back half of a sync: each prepared chunk recorded (write-ahead), its requests
sent through the transport's sender and their answers settled, with the run's counts
kept in its `RunReport`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import polars as pl

from connector import _allocator
from connector.config import Config
from connector.engine.crash import crash_point
from connector.engine.prepare import DIFFERING, add_examples, prepare
from connector.ledger import Ledger
from connector.ledger.writer import Settler, local_rejections, pending_rows
from connector.report import RunReport
from connector.status import Status
from connector.threads import in_thread
from connector.transports.sender import Delivery, DeliveryStopped, Sender

Progress = Callable[[RunReport], None]


async def _send(sender: Sender, settler: Settler, rows: pl.DataFrame, report: RunReport) -> None:
    """Deliver one request and queue its conversions' final states for the ledger."""
    try:
        delivery = await sender.deliver(rows)
    except DeliveryStopped as stopped:
        _account(settler, rows, stopped.delivery, report)
        raise
    _account(settler, rows, delivery, report)


def _account(settler: Settler, rows: pl.DataFrame, delivery: Delivery, report: RunReport) -> None:
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
        if counts.get(Status.REJECTED):
            reasons = settled.filter(pl.col("status") == Status.REJECTED)["reason"].fill_null("")
            report.rejected_by_reason.update(dict(reasons.value_counts().iter_rows()))
        accepted, rejected = counts.get(Status.ACCEPTED, 0), counts.get(Status.REJECTED, 0)
        report.accepted += accepted
        report.rejected += rejected
        report.failed += counts.get(Status.FAILED, 0)
        report.batches_sent += accepted + rejected


async def deliver_all(
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
    settler = Settler(ledger, report.run_id, rows_per_write=config.source.chunk_rows)
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
        while not stopping.is_set() and (part := await in_thread(next, parts, None)):
            crash_point("read")
            report.rows_read += part.rows_read
            report.rows_duplicate += part.duplicates
            report.rows_skipped_ledger += part.skipped
            report.rows_rejected_local += part.rejected.height
            report.rejected_by_reason.update(dict(part.rejected["_reason"].value_counts().rows()))
            report.changed_after_accept += part.changed.len()
            add_examples(report.changed_examples, part.changed)
            report.warnings.update(part.warnings)
            queued += part.encoded.height
            report.duplicates_differing += part.differing.height
            add_examples(report.differing_examples, part.differing["_ref"])
            # rows not sent, each remembered by its content: those seen before are known
            rejections = pl.concat(
                [
                    part.rejected.select("_row_sha256", reason="_reason"),
                    part.differing.select("_row_sha256", reason=pl.lit(DIFFERING)),
                ]
            ).rename({"_row_sha256": "row_sha256"})
            known = await in_thread(ledger.known_rejections, rejections)
            report.rows_rejected_known += int(known.head(part.rejected.height).sum())
            report.duplicates_differing_known += int(known.tail(part.differing.height).sum())
            if not dry_run:
                # write-ahead: these rows are in the ledger before their requests leave
                rows_to_record = pl.concat(
                    [local_rejections(part.rejected), pending_rows(part.encoded)], how="diagonal"
                )
                await in_thread(ledger.record, rows_to_record, report.run_id, transport)
                await in_thread(ledger.remember_rejections, rejections, report.run_id)
                crash_point("recorded")
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
            await in_thread(parts.close)
            stats = sender.stats
            report.requests, report.retries, report.isolated = (
                stats.requests,
                stats.retries,
                stats.isolated,
            )
            report.pending = queued - report.accepted - report.rejected - report.failed
