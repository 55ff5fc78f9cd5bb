"""The `rokt-connector` command line (also `python -m connector`).

Owns: parsing arguments, printing reports (stdout) and errors (stderr), and the exit
codes of DESIGN.md. Must not: contain pipeline logic, or print a secret or raw PII.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from connector import clock, jobs, logs
from connector.backfill_report import BackfillPlan, BackfillReport
from connector.config import Config, load_config
from connector.errors import EXIT_CONFIG, EXIT_OK, EXIT_ROWS_NOT_ACCEPTED, ConnectorError
from connector.jobs import sync_window
from connector.ledger.audit import Audit
from connector.logs import LogFormat
from connector.report import COUNTS, RunReport, ValidationReport
from connector.sandbox import SandboxSettings, serve
from connector.sources import source_for
from connector.spec import HINTS, REASONS, WARNINGS

app = typer.Typer(
    name="rokt-connector",
    help="Send conversions from a DuckDB/Parquet warehouse to Rokt, each exactly once.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Path to the YAML config.", show_default=False)
]
SinceOption = Annotated[
    str | None, typer.Option(help="Start of the window (ISO date/time; naive = UTC).")
]
UntilOption = Annotated[str | None, typer.Option(help="End of the window, exclusive.")]


@app.callback()
def _commands() -> None:
    """Send conversions from a DuckDB/Parquet warehouse to Rokt, each exactly once."""


def parse_time(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 date or timestamp (a naive one is UTC), or None when not given."""
    try:
        return None if text is None else clock.utc(text, option)
    except ValueError as exc:
        fail(str(exc))


_log_format = LogFormat.TEXT


def _start_logs(log_format: LogFormat) -> None:
    """Events (and errors) on stderr in `log_format`, through the console the progress
    bar uses, so lines never tear it."""
    global _log_format
    _log_format = log_format
    logs.configure(log_format, lambda line: stderr.out(line, highlight=False))


def _error(message: str) -> None:
    if _log_format == LogFormat.JSON:
        logs.event("error", logging.ERROR, message=message)
    else:
        stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)


def fail(message: str, code: int = EXIT_CONFIG) -> NoReturn:
    _error(message)
    raise typer.Exit(code)


def _window(
    config: Config, since: str | None, until: str | None, now: datetime
) -> tuple[datetime, datetime]:
    """The command's `[--since, --until)`, defaulting to the sync's window at `now`."""
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    return jobs.bounds(start, end, sync_window(config, now))


_DIFFERING = (
    "a duplicate confirmationref whose values differ from the first row's: only the "
    "first was sent; fix the source (a sync fails on each the first time)"
)
_CHANGED = (
    "accepted before, payload now differs: not resent (Rokt deduplicates by "
    "confirmationref; see the README on corrections)"
)


def _clip(text: str, most: int = 60) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _print_amounts(amounts: list[dict[str, object]]) -> None:
    table = _new_table("amount per currency (valid rows)")
    for name in ("currency", "rows", "min", "median", "max"):
        table.add_column(name, justify="left" if name == "currency" else "right", no_wrap=True)
    for row in amounts:
        table.add_row(*(_cell("-" if v is None else v) for v in row.values()))
    stdout.print(table)


def _print_validation(report: ValidationReport, config_path: Path) -> None:
    _say(
        f"Validated [bold]{config_path}[/]: window [{report.since:%Y-%m-%dT%H:%M:%SZ}, "
        f"{report.until:%Y-%m-%dT%H:%M:%SZ})"
    )
    table = _new_table()
    table.add_column("rows", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("what to do / examples", overflow="fold")
    table.add_row("read", str(report.rows_read), "")
    table.add_row("valid (would be sent)", str(report.valid), "")
    table.add_row("duplicate confirmationref", str(report.duplicates), "the first row wins")
    if report.duplicates_differing:
        examples = ", ".join(report.differing_examples)
        table.add_row(
            "  unlike the first",
            str(report.duplicates_differing),
            f"{_DIFFERING}; e.g. {examples}",
        )
    table.add_row("settled in the ledger", str(report.skipped), "a sync skips them")
    if report.changed_after_accept:
        examples = ", ".join(report.changed_examples)
        table.add_row(
            "  changed_after_accept",
            str(report.changed_after_accept),
            f"{_CHANGED}; e.g. {examples}",
        )
    table.add_row("rejected", str(report.rows_rejected), "")
    for reason, count in sorted(report.rejected.items(), key=lambda kv: -kv[1]):
        examples = ", ".join(report.rejected_examples.get(reason, []))
        table.add_row(f"  {reason}", str(count), f"{HINTS[reason]}; e.g. {examples}")
    for reason, count in sorted(report.warnings.items()):
        table.add_row(f"valid, field dropped: {reason}", str(count), WARNINGS[reason])
    stdout.print(table)
    if report.no_event_time:
        rows = "1 row has" if report.no_event_time == 1 else f"{report.no_event_time} rows have"
        reasons = ", ".join(f"{r} {n}" for r, n in report.no_event_time_by_reason.items() if n)
        _say(f"event time: {rows} none that parses ({reasons}); fix the query's formats")
    if report.amounts:
        _print_amounts(report.amounts)
    if report.ledger:
        _say(f"ledger not read: {report.ledger}")
    _say(f"{report.requests} request(s), {report.request_bytes:,} bytes; nothing was sent.")
    for i, body in enumerate(report.payloads, 1):
        stdout.print(f"\n[bold]payload {i}[/] (plain-text PII redacted):")
        stdout.print_json(body)


@app.command("validate")
def validate_command(
    config: ConfigOption,
    show: Annotated[int, typer.Option(min=0, help="Print N example payloads.")] = 0,
    since: SinceOption = None,
    until: UntilOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON report.")] = False,
) -> None:
    """Check config, query and mapping; report rows by outcome; send nothing.

    Exit 0 when every row would be sent (a duplicate confirmationref is skipped, as
    in sync), 1 when some rows are rejected, 2 on a config or query error. The window
    defaults to the sync's.
    """
    try:
        loaded, now = jobs.as_config(config), clock.now()
        start, end = _window(loaded, since, until, now)
        report = jobs.validate(loaded, start, end, now=now, show=show)
    except ConnectorError as exc:
        fail(str(exc), exc.exit_code)
    if as_json:
        document = report.as_dict() | {"payloads": [json.loads(p) for p in report.payloads]}
        sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
    else:
        _print_validation(report, config)
    clean = report.rows_rejected == 0 and report.duplicates_differing == 0
    raise typer.Exit(EXIT_OK if clean else EXIT_ROWS_NOT_ACCEPTED)


JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON report on stdout.")]
LogFormatOption = Annotated[
    LogFormat,
    typer.Option(help="Events on stderr: readable lines, or one JSON object per line."),
]
NewLedgerOption = Annotated[
    bool,
    typer.Option(
        "--new-ledger",
        help="Start a new ledger history where the marker beside ledger.path records a "
        "ledger that is missing or was replaced (conversions it does not hold as accepted "
        "are sent again). Refused when the ledger is fine.",
    ),
]


class _ProgressBar:
    """Rows done, `columns`, batches/s and ETA on stderr (only when it is a terminal)."""

    def __init__(self, label: str, total: int, show: bool, *columns: str, **fields: Any) -> None:
        self._bar = Progress(
            TextColumn(f"[bold]{label}[/]"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} rows"),
            *map(TextColumn, columns),
            TextColumn("{task.fields[rate]:,.0f} batches/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=stderr,
            transient=True,
            disable=not show,
        )
        self._task = self._bar.add_task(label, total=total, rate=0.0, **fields)
        self._started = time.monotonic()

    def __enter__(self) -> _ProgressBar:
        self._bar.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._bar.stop()

    def show(self, rows_done: int, batches_sent: int, **fields: Any) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        self._bar.update(self._task, completed=rows_done, rate=batches_sent / elapsed, **fields)


def _print_run(report: RunReport) -> None:
    _say(f"run {report.run_id} ({report.mode}): [bold]{report.status}[/] in {report.duration_s}s")
    table = _new_table()
    table.show_header = False
    table.add_column()
    table.add_column(justify="right")
    for key in COUNTS:
        table.add_row(key, f"{getattr(report, key):,}")
    for reason, count in report.rejected_by_reason.most_common():
        table.add_row(f"  rejected: {_clip(reason or '(no reason given)')}", f"{count:,}")
    for reason, count in sorted(report.warnings.items()):
        table.add_row(f"sent without a field: {reason}", f"{count:,}")
    stdout.print(table)
    if report.rows_rejected_known:
        _say(
            f"{report.rows_rejected_known:,} of the rejected rows were rejected before for the "
            "same reason and are unchanged (known: they alone do not fail the run)."
        )
    if report.duplicates_differing:
        examples = ", ".join(report.differing_examples)
        _say(
            f"duplicates_differing {report.duplicates_differing:,} "
            f"({report.duplicates_differing_known:,} seen before): {_DIFFERING}; e.g. {examples}"
        )
    if report.changed_after_accept:
        examples = ", ".join(report.changed_examples)
        _say(f"changed_after_accept {report.changed_after_accept:,}: {_CHANGED}; e.g. {examples}")


@app.command("sync")
def sync_command(
    config: ConfigOption,
    since: SinceOption = None,
    until: UntilOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read, check and count; send nothing.")
    ] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Read at most N rows.")] = None,
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
    _start_logs(log_format)
    try:
        loaded, now = jobs.as_config(config), clock.now()
        start, end = _window(loaded, since, until, now)
        show = stderr.is_terminal and not as_json
        total = source_for(loaded.source).counts([(start, end)])[0] if show else 0
        accepted = "{task.fields[accepted]:,} accepted"
        with _ProgressBar("sync", min(total, limit or total), show, accepted, accepted=0) as bar:

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
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict()) + "\n")
    else:
        _print_run(report)
    if report.message:
        _error(report.message)
    raise typer.Exit(report.exit_code)


ledger_app = typer.Typer(
    help="Audit the ledger: what became of each conversion. Reads only; sends nothing.",
    no_args_is_help=True,
)
app.add_typer(ledger_app, name="ledger")


def _json_value(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _print_json(document: object) -> None:
    sys.stdout.write(json.dumps(document, default=_json_value, ensure_ascii=False) + "\n")


def _cell(value: object, short: bool = False) -> str:
    """A value as text; a time to the millisecond, or `short`: to the second."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if short:
            return f"{value:%Y-%m-%d %H:%M:%S}"
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _say(text: str) -> None:
    """A line of text, wrapped at words to the terminal's width."""
    stdout.print(text, highlight=False, soft_wrap=False)


def _new_table(title: str | None = None) -> Table:
    """A table that fits 80 columns: no borders, a rule under the header, two spaces
    between columns."""
    return Table(
        title=title,
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )


# A run's rows by outcome: table headers, and RunReport fields (the ledger's runs
# columns). `rej. local`: by the connector's checks; `skipped`: the ledger had them.
_ROW_COUNTS = {
    "read": "rows_read",
    "accepted": "accepted",
    "rejected": "rejected",
    "rej. local": "rows_rejected_local",
    "skipped": "rows_skipped_ledger",
    "failed": "failed",
}


def _table(
    rows: list[dict[str, Any]], title: str | None = None, wrap: tuple[str, ...] = ()
) -> Table:
    """Rows (dicts with the same keys) as a table, one column per key. Only the
    columns in `wrap` (free text) wrap; numbers are right-aligned; times (UTC) are
    shown to the second."""
    table = _new_table(title)
    for name in rows[0] if rows else []:
        numbers = all(isinstance(row[name], int | float | None) for row in rows)
        table.add_column(
            name,
            justify="right" if numbers else "left",
            no_wrap=name not in wrap,
            overflow="fold" if name in wrap else "ellipsis",
        )
    for row in rows:
        table.add_row(*(_cell(v, short=True) for v in row.values()))
    return table


@contextmanager
def _audit(config: Path) -> Iterator[tuple[Config, Audit]]:
    """The config and its ledger, open read-only; errors end the command with their
    exit code."""
    try:
        loaded = load_config(config)
        with Audit.open(loaded.ledger.path, loaded.destination.environment) as audit:
            yield loaded, audit
    except ConnectorError as exc:
        fail(str(exc), exc.exit_code)


@ledger_app.command("show")
def ledger_show_command(
    config: ConfigOption,
    ref: Annotated[str | None, typer.Argument(help="The conversion's confirmationref.")] = None,
    identity: Annotated[
        str | None,
        typer.Option(help="List the conversions of the email with this SHA-256 instead."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """One conversion's history: its state and every HTTP attempt.

    Each attempt with its run, time, HTTP status (or transport error), outcome and the
    platform's message. Exit 0 when found, 1 when the ledger has no such conversion,
    2 on a config error, 4 while a run is writing the ledger.
    """
    if (ref is None) == (identity is None):
        fail("give a confirmationref, or --identity SHA256 (not both)")
    with _audit(config) as (_, audit):
        if identity is not None:
            found = audit.identity(identity)
            if as_json:
                _print_json({"identity_sha256": identity.strip().lower(), "conversions": found})
            elif found:
                rows = [
                    {
                        "confirmationref": c["confirmationref"],
                        "status": c["status"],
                        "reason": c["reason"],
                        "event time (UTC)": c["event_time"],
                        "amount": " ".join(_cell(c[k]) for k in ("amount", "currency")).strip(),
                    }
                    for c in found
                ]
                stdout.print(_table(rows, wrap=("reason",)))
            if not found:
                fail(f"no conversion in {audit.path} has identity_sha256 {identity}", 1)
            return
        assert ref is not None
        conversion = audit.conversion(ref)
        if conversion is None:
            fail(
                f"confirmationref {ref!r} is not in the ledger {audit.path} "
                f"({audit.environment}): no sync has read it. `rokt-connector ledger "
                "reconcile` compares the source with the ledger",
                EXIT_ROWS_NOT_ACCEPTED,
            )
    if as_json:
        _print_json(conversion)
        return
    history = conversion.pop("history")
    _say(
        f"[bold]{conversion['confirmationref']}[/]: [bold]{conversion['status']}[/]"
        + (f" ({conversion['reason']})" if conversion["reason"] else "")
    )
    details = Table(show_header=False, box=None, pad_edge=False, collapse_padding=True)
    details.add_column(no_wrap=True)
    details.add_column(overflow="fold")  # a hash (64) fits beside the longest key
    for key, value in conversion.items():
        if key not in ("confirmationref", "status", "reason"):
            details.add_row(key, _cell(value))
    stdout.print(details)
    if history:
        attempts = [
            {
                "run": a["run_id"][:8],
                "#": a["attempt"],
                "time (UTC)": a["attempted_at"],
                "HTTP": a["http_status"] or a["error"],
                "outcome": a["outcome"],
                "message": a["message"],
            }
            for a in history
        ]
        stdout.print(_table(attempts, f"{len(history)} attempt(s)", wrap=("message",)))
    else:
        stdout.print("no HTTP attempts (it was never sent)", highlight=False)


@ledger_app.command("summary")
def ledger_summary_command(
    config: ConfigOption,
    days: Annotated[int, typer.Option(min=1, help="Show the latest N event days to today.")] = 14,
    runs: Annotated[int, typer.Option(min=1, help="Show the latest N runs.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Conversions by status, by reason and by event day (UTC), and the latest runs.

    Exit 0, 2 on a config error, 4 while a run is writing the ledger.
    """
    with _audit(config) as (_, audit):
        summary = audit.summary(clock.now(), days=days, runs=runs)
    if as_json:
        _print_json(summary)
        return
    _say(
        f"Ledger {summary['ledger']} ({summary['environment']}): "
        f"[bold]{summary['conversions']:,}[/] conversions"
    )
    sections = [
        ("by status", summary["by_status"]),
        ("not accepted, by reason", summary["by_reason"]),
        ("sent without a field, by warning", summary["by_warning"]),
        (f"by event day (UTC), latest {days}", summary["by_day"]),
    ]
    for title, rows in sections:
        if rows:
            stdout.print(_table(rows, title, wrap=("reason",)))
    if summary["runs"]:
        latest = [
            {
                "run": run["run_id"][:8],
                "started (UTC)": run["started_at"],
                "mode": run["mode"],
                "status": run["status"],
                "took": _duration(run["duration_s"]) if run["duration_s"] is not None else "",
            }
            for run in summary["runs"]
        ]
        stdout.print(_table(latest, f"runs, latest {len(latest)} of {summary['runs_total']}"))
        columns = {**_ROW_COUNTS, "retries": "retries"}
        counts = [
            {"run": run["run_id"][:8]} | {name: run[count] for name, count in columns.items()}
            for run in summary["runs"]
        ]
        stdout.print(_table(counts, "rows per run"))


@ledger_app.command("export")
def ledger_export_command(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="FILE.csv or FILE.parquet (written owner-only).")],
    status: Annotated[
        list[str] | None, typer.Option(help="Only this status (repeatable).", show_default=False)
    ] = None,
    since: Annotated[str | None, typer.Option(help="Event time from (ISO; naive = UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Event time before (exclusive).")] = None,
) -> None:
    """Write the ledger's rows to CSV or Parquet (no raw PII is in the ledger).

    Exit 0, 2 on a config or usage error, 4 while a run is writing the ledger.
    """
    start = parse_time(since, "--since") if since else None
    end = parse_time(until, "--until") if until else None
    if start and end and start >= end:
        fail(f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})")
    with _audit(config) as (_, audit):
        written = audit.export(out, status or (), start, end)
    stdout.print(f"exported {written:,} conversions to {out}", highlight=False)


@ledger_app.command("reconcile")
def ledger_reconcile_command(
    config: ConfigOption,
    since: SinceOption = None,
    until: UntilOption = None,
    examples: Annotated[int, typer.Option(min=0, help="Conversions listed per state.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Compare the source's conversions of the window with the ledger.

    Each conversion is accepted, rejected, rejected_local, pending, failed, or missing
    from the ledger. Runs the source query (sends nothing); the window defaults to the
    sync's. Exit 0 when every conversion is accepted or rejected (by the platform or
    locally), 1 when any is missing, pending or failed (a sync sends those), 2 on a
    config or query error, 4 while a run is writing the ledger.
    """
    with _audit(config) as (loaded, audit):
        start, end = _window(loaded, since, until, clock.now())
        result = audit.reconcile(loaded.source, start, end, examples)
    code = EXIT_ROWS_NOT_ACCEPTED if result["undelivered"] else EXIT_OK
    if as_json:
        _print_json(result)
        raise typer.Exit(code)
    _say(
        f"Reconciled [{start:%Y-%m-%dT%H:%M:%SZ}, {end:%Y-%m-%dT%H:%M:%SZ}): "
        f"{result['source_rows']:,} source rows, {result['conversions']:,} conversions"
    )
    table = _new_table()
    table.add_column("state", no_wrap=True)
    table.add_column("conversions", justify="right", no_wrap=True)
    table.add_column("examples", overflow="fold")
    for state, count in result["by_state"].items():
        listed = [
            e["confirmationref"] + (f" ({e['reason']})" if e["reason"] else "")
            for e in result["examples"].get(state) or []
        ]
        if count > len(listed) > 0:
            listed.append(f"and {count - len(listed):,} more")
        table.add_row(state, f"{count:,}", ", ".join(listed))
    stdout.print(table)
    if result["rows_without_confirmationref"]:
        _say(
            f"{result['rows_without_confirmationref']:,} source rows have no confirmationref "
            "(sync rejects them: missing_confirmationref)"
        )
    if result["duplicate_rows"]:
        _say(
            f"{result['duplicate_rows']:,} source rows repeat a confirmationref (the first "
            "row counts)"
        )
    if result["ledger_only"]:
        gone = ", ".join(
            f"{e['confirmationref']} ({e['status']})" for e in result["ledger_only_examples"]
        )
        _say(
            f"{result['ledger_only']:,} conversions of this window are in the ledger but no "
            "longer in the source" + (f": {gone}" if gone else "")
        )
    if code:
        _say(
            f"[bold]{result['undelivered']:,} conversion(s) not delivered[/] (missing, pending "
            "or failed). This sends them:"
        )
        stdout.print(  # one line, not wrapped: to copy
            f"  rokt-connector sync --config {config} --since {start:%Y-%m-%dT%H:%M:%SZ} "
            f"--until {end:%Y-%m-%dT%H:%M:%SZ}",
            highlight=False,
            markup=False,
        )
        _say("and `rokt-connector ledger show REF` tells what happened to one.")
    raise typer.Exit(code)


_ISO = "%Y-%m-%dT%H:%M:%SZ"


def _when(moment: datetime) -> str:
    """A window bound, short: the date alone at midnight UTC."""
    return f"{moment:%Y-%m-%d}" if moment.time() == time_of_day(0) else f"{moment:%Y-%m-%d %H:%M}"


def _span(length: timedelta) -> str:
    """A window length as config writes durations: 1d, 12h, 30m, 45s."""
    seconds = int(length.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def _print_plan(plan: BackfillPlan) -> None:
    _say(
        f"Backfill plan: [{plan.since:{_ISO}}, {plan.until:{_ISO}}) in {len(plan.windows)} "
        f"windows of {_span(plan.window)}, as of {plan.now:{_ISO}}"
    )
    table = _new_table()
    for column in ("since", "until", "rows", "too old", "batches", "time"):
        table.add_column(
            column, justify="left" if column in ("since", "until") else "right", no_wrap=True
        )
    for window in plan.windows:
        since, until = _when(window.since), _when(window.until)
        if window.done:
            table.add_row(since, until, "done", "", "", "skipped")
        else:
            numbers = (window.rows or 0, window.too_old, window.batches)
            time_s = _duration(plan.estimated_s(window.batches))
            table.add_row(since, until, *(f"{n:,}" for n in numbers), time_s)
    stdout.print(table)
    batches = plan.total("batches")
    _say(
        f"{len(plan.windows) - len(plan.to_run)} window(s) finished earlier are skipped. "
        f"To run: {plan.total('rows'):,} rows, at most {batches:,} batches, about "
        f"{_duration(plan.estimated_s(batches))} at {plan.max_batches_per_second:,g} batches/s."
    )
    if plan.total("too_old"):
        _say(
            f"{plan.total('too_old'):,} rows are before {plan.oldest_event:{_ISO}} "
            f"and will be recorded as rejected_local, not sent: {REASONS['too_old']}."
        )
    stdout.print("Nothing was sent.")


def _print_backfill(report: BackfillReport) -> None:
    document = report.as_dict()
    _say(
        f"backfill {report.backfill_id}: [bold]{report.status}[/] in {report.duration_s}s; "
        f"windows: {document['windows_finished']} finished now, {document['windows_skipped']} "
        f"skipped (finished earlier), {document['windows_left']} left"
    )
    windows = [
        {
            "since": _when(w.since),
            "until": _when(w.until),
            "status": w.status,
            "run": w.run.run_id[:8] if w.run else "",
        }
        for w in report.windows
    ]
    stdout.print(_table(windows))
    counts = [
        {"since": _when(w.since)}
        | {name: getattr(w.run, count) if w.run else None for name, count in _ROW_COUNTS.items()}
        for w in report.windows
    ]
    table = _table(counts, "rows per window")
    table.add_row("total", *(f"{report.total(c):,}" for c in _ROW_COUNTS.values()), style="bold")
    stdout.print(table)


@app.command("backfill")
def backfill_command(
    config: ConfigOption,
    since: Annotated[str, typer.Option(help="Start of the history (ISO date/time; naive = UTC).")],
    until: Annotated[str, typer.Option(help="End of the history, exclusive.")],
    window: Annotated[str, typer.Option(help="Length of each window: 1d, 12h, 1w, ...")] = "1d",
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
    _start_logs(log_format)
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
                sys.stdout.write(json.dumps(planned.as_dict()) + "\n")
            else:
                _print_plan(planned)
            raise typer.Exit(EXIT_OK)
        total = planned.total("rows") if planned else 0
        windows_done = "{task.fields[windows]}/{task.fields[of]} windows"
        with _ProgressBar("backfill", total, show, windows_done, windows=0, of=0) as bar:

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
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict()) + "\n")
    else:
        _print_backfill(report)
    if report.message:
        _error(report.message)
    raise typer.Exit(report.exit_code)


@app.command("sandbox")
def sandbox_command(
    host: Annotated[str, typer.Option(help="Loopback address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="0 picks a free port.")] = 8787,
    api_key: Annotated[
        str, typer.Option(envvar="ROKT_SANDBOX_API_KEY", help="Key the sandbox accepts.")
    ] = "sandbox-key",
    api_secret: Annotated[
        str,
        typer.Option(
            envvar="ROKT_SANDBOX_API_SECRET",
            help="Secret it accepts; better set in the environment (ps shows arguments).",
        ),
    ] = "sandbox-secret",
    rate_limit: Annotated[
        float | None, typer.Option(min=0.001, help="Batches per second before 429.")
    ] = None,
    fail_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Fraction of requests failing (5xx/429).")
    ] = 0.0,
    reject_rate: Annotated[
        float,
        typer.Option(
            min=0, max=1, help="Fraction of valid batches rejected (each always the same way)."
        ),
    ] = 0.0,
    latency: Annotated[float, typer.Option(min=0, help="Seconds before each answer.")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed of the fault injection.")] = None,
    burst_503: Annotated[
        float, typer.Option(min=0, max=1, help="Chance a request starts a burst of 503s.")
    ] = 0.0,
    storm_429: Annotated[
        float, typer.Option(min=0, max=1, help="Chance a request starts a storm of 429s.")
    ] = 0.0,
    burst_length: Annotated[
        int, typer.Option(min=1, help="Requests in one 503 burst or 429 storm.")
    ] = 5,
    retry_after_max: Annotated[
        int, typer.Option(min=0, help="Injected 429s say Retry-After 0..N seconds.")
    ] = 1,
    reset_rate: Annotated[
        float,
        typer.Option(
            min=0, max=1, help="Fraction of requests whose connection drops before the answer."
        ),
    ] = 0.0,
    slow_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Fraction answered --slow seconds late.")
    ] = 0.0,
    slow: Annotated[float, typer.Option(min=0, help="Delay of a late answer (s).")] = 5.0,
    hang_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Fraction of requests never answered.")
    ] = 0.0,
    journal: Annotated[
        Path | None,
        typer.Option(help="Remember what was received in this file, across restarts."),
    ] = None,
    keep_bodies: Annotated[
        int, typer.Option(min=0, help="Accepted batches kept for /_sandbox/batches.")
    ] = 10_000,
    header_timeout: Annotated[
        float,
        typer.Option(
            min=0.001, help="Seconds a connection has to send a request's headers, else closed."
        ),
    ] = 10.0,
    max_connections: Annotated[
        int, typer.Option(min=1, help="Connections open at once; one more is closed at once.")
    ] = 256,
    opaque_errors: Annotated[
        bool,
        typer.Option(
            "--opaque-errors",
            help="Bulk answers' errors do not say which batch failed (no Path, no position).",
        ),
    ] = False,
) -> None:
    """Run the local Event API emulator (strict as the platform; see DESIGN.md)."""
    settings = SandboxSettings(
        api_key=api_key,
        api_secret=api_secret,
        rate_limit=rate_limit,
        fail_rate=fail_rate,
        reject_rate=reject_rate,
        latency_s=latency,
        seed=seed,
        keep_bodies=keep_bodies,
        burst_503_rate=burst_503,
        storm_429_rate=storm_429,
        burst_length=burst_length,
        retry_after_max_s=retry_after_max,
        reset_rate=reset_rate,
        slow_rate=slow_rate,
        slow_s=slow,
        hang_rate=hang_rate,
        journal=journal,
        opaque_errors=opaque_errors,
        header_timeout_s=header_timeout,
        max_connections=max_connections,
    )
    try:
        serve(
            settings, host, port, ready=lambda url: print(f"sandbox listening on {url}", flush=True)
        )
    except (ValueError, ConnectorError) as exc:
        fail(str(exc))


def main() -> None:
    """Console-script entry point."""
    app()
