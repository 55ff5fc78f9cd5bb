"""`rokt-connector sync` and `backfill`: send a window's conversions, or a history one
window at a time, with a progress bar on a terminal; the report on stdout."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from connector import clock
from connector.cli.options import (
    ConfigOption,
    JsonOption,
    LogFormatOption,
    NewLedgerOption,
    SinceOption,
    UntilOption,
    parse_time,
    window_options,
)
from connector.errors import EXIT_OK, ConnectorError
from connector.logs import LogFormat

if TYPE_CHECKING:
    from connector.backfill_report import BackfillReport
    from connector.report import RunReport


def _answer(
    report: RunReport | BackfillReport, as_json: bool, show: Callable[[Any], None]
) -> NoReturn:
    """The report on stdout (JSON, or `show`n), its message on stderr, and its exit code."""
    from connector.cli.render import error, write_json

    if as_json:
        write_json(report.as_dict(), ensure_ascii=True)
    else:
        show(report)
    if report.message:
        error(report.message)
    raise typer.Exit(report.exit_code)


def sync_command(
    config: ConfigOption,
    since: SinceOption = None,
    until: UntilOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read, check and count; send nothing.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Read at most N rows.", metavar="N")
    ] = None,
    as_json: JsonOption = False,
    log_format: LogFormatOption = LogFormat.TEXT,
    new_ledger: NewLedgerOption = False,
) -> None:
    """Send the conversions of the window that the ledger has not settled.

    The window defaults to [now - sync.lookback, now). Exit 0 when every row was
    accepted or skipped, 1 when rows were rejected or failed, 2 on a config or query
    error, 3 when credentials were refused or the endpoint was unreachable, 4 when
    another run holds the ledger.
    """
    from connector import jobs
    from connector.cli.render import ProgressBar, fail, start_logs, stderr
    from connector.cli.render_runs import print_run
    from connector.report import RunReport

    start_logs(log_format)
    try:
        loaded, now = jobs.as_config(config), clock.now()
        start, end = jobs.sync_bounds(loaded, *window_options(since, until), now)
        show = stderr.is_terminal and not as_json
        total = jobs.rows_to_read(loaded, start, end, limit) if show else 0
        accepted = "{task.fields[accepted]:,} accepted"
        with ProgressBar("sync", total, show, accepted, accepted=0) as bar:

            def progress(run: RunReport) -> None:
                bar.show(run.rows_done, run.batches_sent, accepted=run.accepted)

            report = jobs.sync(
                loaded,
                start,
                end,
                now=now,
                limit=limit,
                dry_run=dry_run,
                new_ledger=new_ledger,
                progress=progress,
            )
    except ConnectorError as exc:
        if not isinstance(exc.report, RunReport):
            fail(str(exc), exc.exit_code)
        report = exc.report
    _answer(report, as_json, print_run)


def backfill_command(
    config: ConfigOption,
    since: Annotated[
        str,
        typer.Option(help="Start of the history (ISO date/time; naive = UTC).", metavar="TIME"),
    ],
    until: Annotated[str, typer.Option(help="End of the history, exclusive.", metavar="TIME")],
    window: Annotated[
        str, typer.Option(help="Length of each window: 1d, 12h, 1w, ...", metavar="DURATION")
    ] = "1d",
    plan: Annotated[
        bool, typer.Option("--plan", help="Print windows, rows and duration; send nothing.")
    ] = False,
    as_json: JsonOption = False,
    log_format: LogFormatOption = LogFormat.TEXT,
    new_ledger: NewLedgerOption = False,
) -> None:
    """Send the history in [--since, --until), one window at a time; a rerun skips the
    windows already finished, so an interrupted backfill resumes where it stopped.

    Each window runs as a sync (mode backfill); events older than sync.max_event_age
    are rejected locally (too_old). Exit codes as sync's; --plan exits 0.
    """
    from connector import jobs
    from connector.backfill_report import BackfillReport
    from connector.cli.render import ProgressBar, fail, start_logs, stderr, write_json
    from connector.cli.render_runs import print_backfill, print_plan

    start_logs(log_format)
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    assert start is not None and end is not None  # required options
    show = stderr.is_terminal and not as_json and not plan
    try:
        loaded, now = jobs.as_config(config), clock.now()
        planned = (
            jobs.plan_backfill(loaded, start, end, window, now=now, new_ledger=new_ledger)
            if plan or show
            else None
        )
        if plan and planned:
            if as_json:
                write_json(planned.as_dict(), ensure_ascii=True)
            else:
                print_plan(planned)
            raise typer.Exit(EXIT_OK)
        total = planned.total("rows") if planned else 0
        windows_done = "{task.fields[windows]}/{task.fields[of]} windows"
        with ProgressBar("backfill", total, show, windows_done, windows=0, of=0) as bar:

            def progress(backfill: BackfillReport) -> None:
                finished = sum(w.finished for w in backfill.windows)
                batches = backfill.total("batches_sent")
                bar.show(backfill.rows_done, batches, windows=finished, of=len(backfill.windows))

            report = jobs.backfill(
                loaded, start, end, window, now=now, new_ledger=new_ledger, progress=progress
            )
    except ConnectorError as exc:
        if not isinstance(exc.report, BackfillReport):
            fail(str(exc), exc.exit_code)
        report = exc.report
    _answer(report, as_json, print_backfill)
