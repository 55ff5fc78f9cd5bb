"""One audience sync (`sync_audiences`): the query's members diffed with the ledger, the
mass-drop guard, every change written `pending`, one batch per member sent by the
generic sender (rate, retries, partial failures, deadlines) and each answer settled."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

import httpx
import polars as pl

from connector import clock, logs
from connector.audiences.batch import encode
from connector.audiences.members import check_drops, diff, held, read_members
from connector.audiences.plan import CHANGE_COLUMNS, plan
from connector.audiences.report import AudienceReport
from connector.config import Config, load_config
from connector.engine.crash import crash_point
from connector.engine.run import until_stopped
from connector.errors import ConfigError, ConnectorError, FatalSendError
from connector.ledger import Ledger
from connector.spec import MAX_BATCH_BYTES
from connector.status import RunStatus
from connector.threads import in_thread
from connector.transports import transport_for
from connector.transports.events_api_json import pack
from connector.transports.sender import Delivery, DeliveryStopped, Sender


def _settled(delivery: Delivery, ids: pl.DataFrame) -> pl.DataFrame:
    """(change_id, status, reason, attempts) of the changes a delivery settled; `ids`
    maps each change to its batch's `_request_id`."""
    answered = {r: state for s in delivery.settlements for r, state in s.status.items()}
    outcome = pl.DataFrame(
        {
            "_request_id": list(answered),
            "status": [status for status, _, _ in answered.values()],
            "reason": [reason for _, reason, _ in answered.values()],
        },
        schema={"_request_id": pl.String, "status": pl.String, "reason": pl.String},
    )
    return (
        ids.join(outcome, on="_request_id")
        .select("change_id", "status", "reason")
        .with_columns(attempts=pl.lit(delivery.attempts, pl.Int32))
    )


async def _deliver(
    sender: Sender, rows: pl.DataFrame, ids: pl.DataFrame, ledger: Ledger, report: AudienceReport
) -> None:
    """Send one request and settle its changes (a fatal stop settles what it can first)."""
    mine = ids.filter(pl.col("_request_id").is_in(rows["_request_id"].implode()))

    async def settle(delivery: Delivery) -> None:
        settled = _settled(delivery, mine)
        crash_point("settle")
        await in_thread(ledger.settle_changes, settled, report.run_id)
        report.count(settled)

    try:
        delivery = await sender.deliver(rows)
    except DeliveryStopped as stopped:
        await settle(stopped.delivery)
        raise
    await settle(delivery)


async def _refuse_oversized(
    batches: pl.DataFrame, ids: pl.DataFrame, ledger: Ledger, report: AudienceReport
) -> pl.DataFrame:
    """`batches` within the Event API's batch size; the changes of any larger one are
    settled `rejected` (`batch_too_large`) without being sent."""
    large = batches["_body"].str.len_bytes() > MAX_BATCH_BYTES
    if not large.any():
        return batches
    refused = ids.filter(
        pl.col("_request_id").is_in(batches.filter(large)["_request_id"].implode())
    )
    settled = refused.select(
        "change_id",
        status=pl.lit("rejected"),
        reason=pl.lit("batch_too_large"),
        attempts=pl.lit(0, pl.Int32),
    )
    await in_thread(ledger.settle_changes, settled, report.run_id)
    report.count(settled)
    return batches.filter(~large)


async def _wait(tasks: set[asyncio.Task[None]], most: int) -> set[asyncio.Task[None]]:
    """Wait until at most `most` tasks are running; re-raise the first failure."""
    while len(tasks) > most:
        done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        failures = [e for task in done if (e := task.exception()) is not None]
        if failures:
            raise failures[0]
    return tasks


async def _send(
    config: Config,
    ledger: Ledger,
    batches: pl.DataFrame,
    ids: pl.DataFrame,
    report: AudienceReport,
    stopping: asyncio.Event,
    transport: httpx.AsyncBaseTransport | None,
    sleep: Callable[[float], Awaitable[None]],
) -> None:
    """Send `batches` (one per member) in requests; settle each answer in the ledger."""
    wire = transport_for(config.destination)
    async with wire.client(transport) as client:
        sender = Sender(client, config.destination, transport=wire, sleep=sleep, stopping=stopping)
        tasks: set[asyncio.Task[None]] = set()
        try:
            for request in pack(batches["_body"], config.destination.bulk):
                if stopping.is_set():
                    break  # the rest stay pending: the next run sends them
                rows = batches.slice(request.start, request.batches)
                tasks.add(asyncio.create_task(_deliver(sender, rows, ids, ledger, report)))
                tasks = await _wait(tasks, 4 * config.destination.concurrency - 1)
            tasks = await _wait(tasks, 0)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            report.requests, report.retries = sender.stats.requests, sender.stats.retries


async def _run(
    config: Config,
    ledger: Ledger,
    stopping: asyncio.Event,
    now: datetime,
    dry_run: bool,
    allow_mass_drop: bool,
    transport: httpx.AsyncBaseTransport | None,
    sleep: Callable[[float], Awaitable[None]],
) -> AudienceReport:
    report = AudienceReport(run_id=str(uuid.uuid4()), mode="dry_run" if dry_run else "audiences")
    started = time.monotonic()
    if not dry_run:
        await in_thread(ledger.start_run, report.run_id, report.mode, None, None)
    logs.event("audiences_started", run_id=report.run_id, mode=report.mode)
    try:
        members = await in_thread(read_members, config)
        report.read(members)
        last = await in_thread(ledger.last_changes)
        surely, maybe = held(await in_thread(ledger.delivered_members), last)
        changes = diff(members.frame, surely, maybe)
        fraction = 1.0 if allow_mass_drop else config.audiences.max_drop_fraction
        report.audiences = check_drops(
            members.frame, maybe, changes, fraction, allow_missing=allow_mass_drop
        )
        environment = config.destination.environment
        planned = plan(changes, last, environment, clock.epoch_ms(now))
        report.planned(planned)
        if not dry_run and (planned.changes.height or planned.superseded.len()):
            prefix = config.audiences.attribute_prefix
            batches = encode(planned.changes, environment, prefix)
            report.batches = batches.height
            ids = batches.select("change_ids", "_request_id").explode("change_ids")
            ids = ids.rename({"change_ids": "change_id"})
            recorded = planned.changes.select(CHANGE_COLUMNS).join(ids, on="change_id")
            recorded = recorded.rename({"_request_id": "request_id"})
            await in_thread(ledger.record_changes, recorded, planned.superseded, report.run_id)
            crash_point("recorded")
            batches = await _refuse_oversized(batches, ids, ledger, report)
            await _send(config, ledger, batches, ids, report, stopping, transport, sleep)
        report.finish(fatal=False, interrupted=stopping.is_set())
    except FatalSendError as exc:
        report.message = str(exc)
        report.finish(fatal=True)
    except asyncio.CancelledError:
        report.finish(fatal=False, interrupted=True)
    except ConnectorError as exc:  # the guard, the query: nothing sent
        report.message = str(exc)
        raise
    finally:
        report.duration_s = round(time.monotonic() - started, 3)
        if report.status == RunStatus.RUNNING:
            report.status = RunStatus.FAILED.value
        if not dry_run:
            await in_thread(ledger.finish_run, report.run_counts(), report.message)
        logs.event("audiences_finished", logs.level(report.status), **report.as_dict())
    return report


def sync_audiences(
    config: Config | str | os.PathLike[str],
    *,
    dry_run: bool = False,
    allow_mass_drop: bool = False,
    now: datetime | None = None,
    new_ledger: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AudienceReport:
    """Send each audience's membership changes since the ledger's last delivered state
    (`audiences.query`): `add` for new members, `drop` for departed ones, each change
    once. `config`: a `Config` or the path of a config file. Raises `MassDrop` (exit 2,
    nothing sent) when an audience is missing from the result or would lose more than
    `audiences.max_drop_fraction` of its members, unless `allow_mass_drop`."""
    config = config if isinstance(config, Config) else load_config(config)
    if config.audiences.query is None:
        raise ConfigError("audiences.query: not set; audiences sync needs the membership query")
    transport_for(config.destination)
    opened = Ledger.for_dry_run if dry_run else Ledger.open
    environment = config.destination.environment
    with opened(config.ledger.path, environment, new_ledger=new_ledger) as ledger:
        return asyncio.run(
            until_stopped(
                lambda stopping: _run(
                    config,
                    ledger,
                    stopping,
                    now or clock.now(),
                    dry_run,
                    allow_mass_drop,
                    transport,
                    sleep,
                )
            )
        )
