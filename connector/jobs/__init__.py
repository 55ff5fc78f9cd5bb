"""The users' jobs as a Python API, for orchestrators and for the CLI: validate, the
scheduled sync and the backfill (whose windows live in `connector.jobs.windows`).

Owns: accepting a config path or a loaded `Config`, the run's `now` (the clock unless
given), the sync's window, and turning a run that stopped early into an exception
an orchestrator understands: `FatalSendError` (exit code 3) or `Interrupted` (130),
with the run's report attached; `ConfigError`, `SourceError` (2) and `LedgerLocked`
(4) come from below, before anything is sent. A run that finished with rejected or
failed rows returns its report (`status` completed_with_rejections, `exit_code` 1).
Must not: print (events go through `connector.logs`), or hold engine logic.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from typing import TypeVar

from connector import clock
from connector.backfill_report import BackfillPlan, BackfillReport
from connector.config import Config, load_config, parse_duration
from connector.engine import run as engine
from connector.engine.deliver import Progress
from connector.errors import ConfigError, ConnectorError, FatalSendError, Interrupted
from connector.jobs import validation, windows
from connector.ledger import Ledger
from connector.report import RunReport, ValidationReport
from connector.sources import source_for
from connector.status import RunStatus

ConfigLike = Config | str | os.PathLike[str]
Moment = datetime | date | str


def sync_window(config: Config, now: datetime) -> tuple[datetime, datetime]:
    """`[now - sync.lookback, now)` in UTC."""
    return now - config.sync.lookback, now


def as_config(config: ConfigLike) -> Config:
    """A loaded config, or the file at a path loaded (ConfigError when it is wrong)."""
    return config if isinstance(config, Config) else load_config(config)


def run_now(now: Moment | None) -> datetime:
    """The run's present: `now` in UTC, or the clock."""
    return clock.now() if now is None else clock.utc(now, "now")


def bounds(
    since: Moment | None, until: Moment | None, default: tuple[datetime, datetime]
) -> tuple[datetime, datetime]:
    """`[since, until)` in UTC, each defaulting to `default`'s; ConfigError unless
    since < until."""
    try:
        start = default[0] if since is None else clock.utc(since, "since")
        end = default[1] if until is None else clock.utc(until, "until")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if start >= end:
        raise ConfigError(
            f"since ({start.isoformat()}) must be before until ({end.isoformat()}); "
            "the window is [since, until)"
        )
    return start, end


def sync_bounds(
    config: Config, since: Moment | None, until: Moment | None, now: datetime
) -> tuple[datetime, datetime]:
    """A sync's `[since, until)` at `now`: each bound as given, else the sync's window's
    (`[now - sync.lookback, now)`); ConfigError unless since < until."""
    return bounds(since, until, sync_window(config, now))


def rows_to_read(config: Config, since: datetime, until: datetime, limit: int | None) -> int:
    """How many rows a sync of `[since, until)` reads, at most `limit` (one count query:
    the total of a progress bar)."""
    total = source_for(config.source).counts([(since, until)])[0]
    return min(total, limit or total)


R = TypeVar("R", RunReport, BackfillReport)


def raise_if_stopped(report: R) -> R:
    """The report of a finished run; an exception (with `.report`) for one that stopped."""
    error: FatalSendError | Interrupted
    if report.status == RunStatus.FAILED:
        error = FatalSendError(report.message or "the run failed")
    elif report.status == RunStatus.INTERRUPTED:
        error = Interrupted(report.message or "stopped by a signal")
    else:
        return report
    error.report = report
    raise error


def sync(
    config: ConfigLike,
    since: Moment | None = None,
    until: Moment | None = None,
    *,
    now: Moment | None = None,
    dry_run: bool = False,
    limit: int | None = None,
    new_ledger: bool = False,
    progress: Progress | None = None,
) -> RunReport:
    """Send the conversions of `[since, until)` (default: `[now - sync.lookback, now)`)
    that the ledger has not settled; return the run report.

    Times may be datetimes, dates or ISO 8601 text; naive ones are UTC. `now`
    (default: the clock, or `ROKT_CONNECTOR_NOW`) also decides which events are
    older than `sync.max_event_age`. Raises `ConfigError`, `SourceError`,
    `LedgerLocked` before sending, `FatalSendError` when credentials are refused or
    the endpoint stays unreachable, `Interrupted` on SIGINT/SIGTERM; each has
    `exit_code`, and the last two carry the run's `report`. `new_ledger`: start a new
    ledger where the marker beside `ledger.path` records one that is missing or was
    replaced (otherwise that stops the run with a `ConfigError`).
    """
    loaded, moment = as_config(config), run_now(now)
    start, end = sync_bounds(loaded, since, until, moment)
    report = engine.sync(
        loaded,
        start,
        end,
        now=moment,
        dry_run=dry_run,
        limit=limit,
        new_ledger=new_ledger,
        progress=progress,
    )
    return raise_if_stopped(report)


def validate(
    config: ConfigLike,
    since: Moment | None = None,
    until: Moment | None = None,
    *,
    now: Moment | None = None,
    show: int = 0,
) -> ValidationReport:
    """Check config, query and mapping over the sync's window (or `[since, until)`)
    and count rows by outcome, as `sync` would at `now`, the ledger read if it can
    be (`ValidationReport.ledger` says why not); send and record nothing."""
    loaded, moment = as_config(config), run_now(now)
    start, end = sync_bounds(loaded, since, until, moment)
    path, environment = loaded.ledger.path, loaded.destination.environment
    reader: Ledger | None = None
    why: str | None = f"no ledger at {path} yet"
    if path.exists() or path.is_symlink():  # a link: `why` says it is refused
        try:
            reader, why = Ledger.read_only(path, environment), None
        except ConnectorError as exc:
            why = str(exc)
    try:
        report = validation.validate(
            loaded, start, end, moment, show=show, lookup=reader.lookup if reader else None
        )
    finally:
        if reader:
            reader.close()
    report.ledger = why
    return report


def _window_length(window: timedelta | str) -> timedelta:
    try:
        length = parse_duration(window)
    except ValueError as exc:
        raise ConfigError(f"window: {exc}") from None
    if length <= timedelta(0):
        raise ConfigError("window: must be longer than 0s, e.g. 1d or 12h")
    return length


def plan_backfill(
    config: ConfigLike,
    since: Moment,
    until: Moment,
    window: timedelta | str = "1d",
    *,
    now: Moment | None = None,
    new_ledger: bool = False,
) -> BackfillPlan:
    """What `backfill` would do: each window of `[since, until)`, whether an earlier
    backfill finished it, its rows (one count query each), the rows older than
    `sync.max_event_age` at `now`, and the batches and time at
    `max_batches_per_second`. Sends nothing and writes nothing; raises LedgerLocked
    while a run holds the ledger, ConfigError when the ledger is lost (`new_ledger`:
    plan as `backfill(new_ledger=True)` would start over)."""
    loaded, moment = as_config(config), run_now(now)
    start, end = bounds(since, until, (moment, moment))
    return windows.plan(loaded, start, end, _window_length(window), moment, new_ledger)


def backfill(
    config: ConfigLike,
    since: Moment,
    until: Moment,
    window: timedelta | str = "1d",
    *,
    now: Moment | None = None,
    new_ledger: bool = False,
    progress: windows.BackfillProgress | None = None,
) -> BackfillReport:
    """Send the history in `[since, until)`, one window (`1d`, `12h`, a timedelta)
    at a time, each a run of mode `backfill`; return the backfill's report.

    A window is recorded as finished when every row it read got a final outcome;
    a rerun skips finished windows, so an interrupted backfill resumes where it
    stopped (the ledger skips conversions already accepted in the window it was
    in). Events older than `sync.max_event_age` at `now` are rejected locally as
    `too_old`. Raises as `sync` does, with the backfill's report on `FatalSendError`
    and `Interrupted`; `new_ledger` as `sync`'s.
    """
    loaded, moment = as_config(config), run_now(now)
    start, end = bounds(since, until, (moment, moment))
    length = _window_length(window)
    report = windows.backfill(
        loaded, start, end, length, moment, progress=progress, new_ledger=new_ledger
    )
    return raise_if_stopped(report)
