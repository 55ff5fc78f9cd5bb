"""The backfill: a long range split into windows, each run as a sync, resumable.

Owns: splitting `[since, until)` into windows; which windows are already done (a
window that lies inside windows the ledger's `backfill_windows` records as finished
is skipped, whichever backfill finished them); the plan (a count query per window,
the rows older than `sync.max_event_age`, batches and duration at
`destination.rate`); and running the windows left, oldest first, as runs of
mode `backfill` in one event loop on one open ledger, recording each window whose
every row got a final outcome. Must not: read, transform or send rows itself (each
window is an `engine.run`), or take the ledger's write lock for a plan.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from connector import logs
from connector.backfill_report import BackfillPlan, BackfillReport, WindowPlan, WindowReport
from connector.clock import oldest_event
from connector.config import Config, Transport
from connector.engine import run as engine
from connector.ledger import Ledger, finished_windows
from connector.report import RunReport
from connector.sources import source_for
from connector.status import RunStatus
from connector.transports import transport_for

Window = tuple[datetime, datetime]
BackfillProgress = Callable[[BackfillReport], None]


def split(since: datetime, until: datetime, window: timedelta) -> list[Window]:
    """`[since, until)` as consecutive windows of `window` (the last may be shorter)."""
    edges = [since]
    while edges[-1] < until:
        edges.append(min(edges[-1] + window, until))
    return list(itertools.pairwise(edges))


def covered(window: Window, finished: list[Window]) -> bool:
    """True when `window` lies inside the union of the `finished` windows."""
    reached = window[0]
    for since, until in sorted(finished):
        if since > reached:
            break
        reached = max(reached, until)
        if reached >= window[1]:
            return True
    return False


def plan(
    config: Config,
    since: datetime,
    until: datetime,
    window: timedelta,
    now: datetime,
    new_ledger: bool = False,
) -> BackfillPlan:
    """The windows, their rows (one count query each) and what a backfill at `now`
    would send; reads the ledger without its write lock and sends nothing."""
    path, environment = config.ledger.path, config.destination.environment
    finished = [] if new_ledger else finished_windows(path, environment)
    oldest = oldest_event(now, config.sync.max_event_age)
    windows = [WindowPlan(s, u, covered((s, u), finished)) for s, u in split(since, until, window)]
    to_run = [w for w in windows if not w.done]
    straddling = [w for w in to_run if w.since < oldest < w.until]
    numbers = source_for(config.source).counts(
        [(w.since, w.until) for w in to_run] + [(w.since, oldest) for w in straddling]
    )
    for w, rows in zip(to_run, numbers[: len(to_run)], strict=True):
        w.rows = rows
        w.too_old = rows if w.until <= oldest else 0
    for w, too_old in zip(straddling, numbers[len(to_run) :], strict=True):
        w.too_old = too_old
    destination = config.destination
    unit = "batches" if destination.transport == Transport.EVENTS_API else "requests"
    return BackfillPlan(since, until, window, now, oldest, destination.rate, windows, unit)


async def _run_windows(
    config: Config,
    report: BackfillReport,
    ledger: Ledger,
    stopping: asyncio.Event,
    now: datetime,
    progress: BackfillProgress | None,
) -> None:
    """Run each window not yet finished, oldest first, until one fails or a signal."""
    for window in report.windows:
        if window.status == "skipped":
            continue
        if stopping.is_set():
            break

        def live(run: RunReport, window: WindowReport = window) -> None:
            window.run = run
            if progress:
                progress(report)

        run = await engine.run(
            config,
            window.since,
            window.until,
            ledger=ledger,
            stopping=stopping,
            now=now,
            mode="backfill",
            progress=live,
        )
        window.run, window.status = run, run.status
        ended = (RunStatus.SUCCEEDED, RunStatus.COMPLETED_WITH_REJECTIONS)
        window.finished = run.status in ended and not run.failed
        if window.finished:
            ledger.finish_window(window.since, window.until, report.backfill_id, run.run_id)
        logs.event(
            "window_finished",
            backfill_id=report.backfill_id,
            run_id=run.run_id,
            since=window.since,
            until=window.until,
            status=run.status,
            finished=window.finished,
        )
        if progress:
            progress(report)
        if run.status == RunStatus.FAILED:
            break  # credentials refused or endpoint unreachable: the next window would fail


def backfill(
    config: Config,
    since: datetime,
    until: datetime,
    window: timedelta,
    now: datetime,
    progress: BackfillProgress | None = None,
    new_ledger: bool = False,
) -> BackfillReport:
    """Run every window of `[since, until)` that no earlier backfill finished; the
    ledger stays open (and locked) for the whole backfill. SIGINT/SIGTERM stop it
    after the requests in flight (the window it was in is redone by the next run)."""
    transport_for(config.destination)  # refuses one not built yet, before anything is read
    started = time.monotonic()
    environment = config.destination.environment
    with Ledger.open(config.ledger.path, environment, new_ledger=new_ledger) as ledger:
        finished = ledger.finished_windows()
        report = BackfillReport(
            backfill_id=str(uuid.uuid4()),
            since=since,
            until=until,
            window=window,
            windows=[
                WindowReport(s, u, "skipped", True)
                if covered((s, u), finished)
                else WindowReport(s, u)
                for s, u in split(since, until, window)
            ],
        )
        logs.event(
            "backfill_started",
            backfill_id=report.backfill_id,
            since=since,
            until=until,
            window_s=window.total_seconds(),
            windows=len(report.windows),
            windows_skipped=sum(w.status == "skipped" for w in report.windows),
        )
        try:
            asyncio.run(
                engine.until_stopped(
                    lambda stopping: _run_windows(config, report, ledger, stopping, now, progress)
                )
            )
        finally:
            report.finish()
            report.duration_s = round(time.monotonic() - started, 3)
            summary = report.as_dict()
            del summary["windows"]
            logs.event("backfill_finished", logs.level(report.status), **summary)
    return report
