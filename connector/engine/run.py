"""One run of the engine on an open ledger (`run`) and on a ledger it opens (`sync`):
the run's row in `runs`, its client and sender, its events, and stopping on
SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

import httpx

from connector import clock, logs
from connector.config import Config
from connector.engine.deliver import Progress, deliver_all
from connector.errors import FatalSendError
from connector.ledger import Ledger
from connector.report import RunReport
from connector.status import RunStatus
from connector.threads import T
from connector.transports import transport_for
from connector.transports.sender import Sender


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
        wire = transport_for(config.destination)
        async with wire.client(transport) as client:
            sender = Sender(
                client, config.destination, transport=wire, sleep=sleep, stopping=stopping
            )
            await deliver_all(
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
        if report.status == RunStatus.RUNNING:
            report.status = RunStatus.FAILED.value
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
    transport_for(config.destination)  # refuses one not built yet, before anything is read
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
