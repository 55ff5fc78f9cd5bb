"""One audience sync (`sync_audiences`): the query's members diffed with the ledger, the
mass-drop guard, the changes encoded and written `pending` a slice at a time, one batch
per member sent by the generic sender (rate, retries, partial failures, deadlines) and
each answer settled."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

import httpx
import polars as pl

from connector import clock, logs
from connector.audiences.batch import encode
from connector.audiences.members import check_drops, diff, held, read_members
from connector.audiences.plan import CHANGE_COLUMNS, Plan, plan
from connector.audiences.report import AudienceReport
from connector.config import Config, load_config
from connector.engine.crash import crash_point
from connector.engine.run import until_stopped
from connector.errors import ConfigError, ConnectorError, FatalSendError
from connector.ledger import Ledger
from connector.ledger.writer import Settler
from connector.spec import MAX_BATCH_BYTES
from connector.status import RunStatus
from connector.threads import in_thread
from connector.transports import transport_for
from connector.transports.events_api_json import pack
from connector.transports.sender import Delivery, DeliveryStopped, Sender

# Changes encoded and written `pending` at a time: a first run holds the batches of one
# slice, not of the whole membership.
SLICE_CHANGES = 50_000


def _change_ids(batches: pl.DataFrame) -> pl.DataFrame:
    """(change_id, _request_id): each change of `batches` and its batch's request id."""
    return batches.select(change_id="change_ids", _request_id="_request_id").explode("change_id")


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


class _Changes:
    """The ledger's audience changes as a `Settler` writes them (in batches of answers;
    the attempts of a change are counted, not listed)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def settle(self, settled: pl.DataFrame, tries: pl.DataFrame, run_id: str) -> None:
        self._ledger.settle_changes(settled.drop("request"), run_id)


async def _deliver(
    sender: Sender, rows: pl.DataFrame, settler: Settler, report: AudienceReport
) -> None:
    """Send one request and hand its answers to the settler (a fatal stop: those it
    had first)."""

    def account(delivery: Delivery) -> None:
        settled = _settled(delivery, _change_ids(rows))
        settler.put(settled, [])
        report.count(settled)

    try:
        delivery = await sender.deliver(rows)
    except DeliveryStopped as stopped:
        account(stopped.delivery)
        raise
    account(delivery)


async def _refuse_oversized(
    batches: pl.DataFrame, ledger: Ledger, report: AudienceReport
) -> pl.DataFrame:
    """`batches` within the Event API's batch size; the changes of any larger one are
    settled `rejected` (`batch_too_large`) without being sent."""
    large = batches["_body"].str.len_bytes() > MAX_BATCH_BYTES
    if not large.any():
        return batches
    settled = _change_ids(batches.filter(large)).select(
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


def _slices(changes: pl.DataFrame) -> list[pl.DataFrame]:
    """`changes` (sorted by member) in slices of about SLICE_CHANGES, never splitting a
    member's changes; one empty slice when there are none."""
    numbered = changes.with_row_index("_slice")
    number = (pl.col("_slice") // SLICE_CHANGES).first().over("member_key")
    parts = numbered.with_columns(number).partition_by(
        "_slice", maintain_order=True, include_key=False
    )
    return parts or [changes]


async def _prepared(
    config: Config, ledger: Ledger, planned: Plan, report: AudienceReport
) -> AsyncIterator[pl.DataFrame]:
    """The batches of each slice of the planned changes, written `pending` before they
    are handed out (the superseded closed with the first); oversized ones refused."""
    superseded = planned.superseded
    environment, prefix = config.destination.environment, config.audiences.attribute_prefix
    for part in _slices(planned.changes):
        batches = encode(part, environment, prefix)
        report.batches += batches.height
        recorded = part.select(CHANGE_COLUMNS).join(_change_ids(batches), on="change_id")
        recorded = recorded.rename({"_request_id": "request_id"})
        await in_thread(ledger.record_changes, recorded, superseded, report.run_id)
        superseded = superseded.clear()
        crash_point("recorded")
        yield await _refuse_oversized(batches, ledger, report)


async def _send(
    config: Config,
    ledger: Ledger,
    prepared: AsyncIterator[pl.DataFrame],
    report: AudienceReport,
    stopping: asyncio.Event,
    transport: httpx.AsyncBaseTransport | None,
    sleep: Callable[[float], Awaitable[None]],
) -> None:
    """Send the `prepared` batches (one per member) in requests; settle each answer in
    the ledger."""
    wire = transport_for(config.destination)
    async with wire.client(transport) as client:
        sender = Sender(client, config.destination, transport=wire, sleep=sleep, stopping=stopping)
        settler = Settler(_Changes(ledger), report.run_id, config.source.chunk_rows)
        tasks: set[asyncio.Task[None]] = set()
        try:
            async for batches in prepared:
                for request in pack(batches["_body"], config.destination.bulk):
                    if stopping.is_set():
                        break  # the rest stay pending: the next run sends them
                    rows = batches.slice(request.start, request.batches)
                    tasks.add(asyncio.create_task(_deliver(sender, rows, settler, report)))
                    tasks = await _wait(tasks, 4 * config.destination.concurrency - 1)
                if stopping.is_set():
                    break  # the slices not written yet: the next run plans them again
            tasks = await _wait(tasks, 0)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            report.requests, report.retries = sender.stats.requests, sender.stats.retries
            await settler.close()  # every answer received is in the ledger before the end


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
        unanswered = await in_thread(ledger.open_changes)
        surely, maybe = held(await in_thread(ledger.delivered_members), unanswered)
        changes = diff(members.frame, surely, maybe)
        fraction = 1.0 if allow_mass_drop else config.audiences.max_drop_fraction
        report.audiences = check_drops(
            members.frame, maybe, changes, fraction, allow_missing=allow_mass_drop
        )
        environment = config.destination.environment
        last = await in_thread(ledger.last_changes, changes.select("audience", "member_key"))
        planned = plan(changes, last, environment, clock.epoch_ms(now))
        report.planned(planned)
        if not dry_run and (planned.changes.height or planned.superseded.len()):
            prepared = _prepared(config, ledger, planned, report)
            await _send(config, ledger, prepared, report, stopping, transport, sleep)
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
