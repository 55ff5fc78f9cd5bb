"""`rokt-connector ledger`: the commands that audit the ledger (show, summary, export,
report, reconcile). They read the ledger and send nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from connector import clock
from connector.cli.options import (
    Command,
    ConfigOption,
    Group,
    JsonOption,
    SinceOption,
    UntilOption,
    parse_time,
    window_options,
)
from connector.errors import EXIT_OK, EXIT_ROWS_NOT_ACCEPTED, ConnectorError

if TYPE_CHECKING:
    from connector.config import Config
    from connector.ledger.audit import Audit

app = typer.Typer(
    cls=Group,
    help="Audit the ledger: what became of each conversion. Reads only; sends nothing.",
    no_args_is_help=True,
)


@contextmanager
def _audit(config: Path) -> Iterator[tuple[Config, Audit]]:
    """The config and its ledger, open read-only; errors end the command with their
    exit code."""
    from connector.cli.render import fail
    from connector.config import load_config
    from connector.ledger.audit import Audit

    try:
        loaded = load_config(config)
        with Audit.open(loaded.ledger.path, loaded.destination.environment) as audit:
            yield loaded, audit
    except ConnectorError as exc:
        fail(str(exc), exc.exit_code)


@app.command("show", cls=Command)
def ledger_show_command(
    config: ConfigOption,
    ref: Annotated[str | None, typer.Argument(help="The conversion's confirmationref.")] = None,
    identity: Annotated[
        str | None,
        typer.Option(
            help="List the conversions of the email with this SHA-256 instead.", metavar="SHA256"
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """One conversion's history: its state and every HTTP attempt.

    Each attempt with its run, time, HTTP status (or transport error), outcome and the
    platform's message. Exit 0 when found, 1 when the ledger has no such conversion,
    2 on a config error, 4 while a run is writing the ledger.
    """
    from connector.cli.render import fail, write_json
    from connector.cli.render_ledger import print_conversion, print_identity

    if (ref is None) == (identity is None):
        fail("give a confirmationref, or --identity SHA256 (not both)")
    with _audit(config) as (_, audit):
        if identity is not None:
            found = audit.identity(identity)
            if as_json:
                write_json({"identity_sha256": identity.strip().lower(), "conversions": found})
            elif found:
                print_identity(found)
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
        write_json(conversion)
        return
    print_conversion(conversion)


@app.command("summary", cls=Command)
def ledger_summary_command(
    config: ConfigOption,
    days: Annotated[
        int, typer.Option(min=1, help="Show the latest N event days to today.", metavar="N")
    ] = 14,
    runs: Annotated[int, typer.Option(min=1, help="Show the latest N runs.", metavar="N")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Conversions by status, by reason and by event day (UTC), and the latest runs.

    Exit 0, 2 on a config error, 4 while a run is writing the ledger.
    """
    from connector.cli.render import write_json
    from connector.cli.render_ledger import print_summary

    with _audit(config) as (_, audit):
        summary = audit.summary(clock.now(), days=days, runs=runs)
    if as_json:
        write_json(summary)
        return
    print_summary(summary, days)


@app.command("export", cls=Command)
def ledger_export_command(
    config: ConfigOption,
    out: Annotated[
        Path, typer.Option(help="FILE.csv or FILE.parquet (written owner-only).", metavar="FILE")
    ],
    status: Annotated[
        list[str] | None,
        typer.Option(help="Only this status (repeatable).", show_default=False, metavar="STATUS"),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Event time from (ISO; naive = UTC).", metavar="TIME")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Event time before (exclusive).", metavar="TIME")
    ] = None,
) -> None:
    """Write the ledger's rows to CSV or Parquet (no raw PII is in the ledger).

    Exit 0, 2 on a config or usage error, 4 while a run is writing the ledger.
    """
    from connector.cli.render import fail
    from connector.cli.render_ledger import print_export

    start = parse_time(since, "--since") if since else None
    end = parse_time(until, "--until") if until else None
    if start and end and start >= end:
        fail(f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})")
    with _audit(config) as (_, audit):
        written = audit.export(out, status or (), start, end)
    print_export(written, out)


@app.command("report", cls=Command)
def ledger_report_command(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="FILE.html (written owner-only).", metavar="FILE")],
    since: Annotated[
        str | None, typer.Option(help="Event time from (ISO; naive = UTC).", metavar="TIME")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Event time before (exclusive).", metavar="TIME")
    ] = None,
) -> None:
    """Write the audit as one HTML page: numbers, charts and tables, offline.

    Conversions by status and event day, rejections by reason, time to acceptance,
    and the runs; one self-contained file (no script, nothing fetched). Exit 0, 2 on
    a config or usage error, 4 while a run is writing the ledger.
    """
    from connector.cli.render import fail
    from connector.cli.render_ledger import print_report

    start, end = window_options(since, until)
    if start and end and start >= end:
        fail(f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})")
    with _audit(config) as (_, audit):
        written = audit.report(out, start, end, clock.now())
    print_report(written)


@app.command("reconcile", cls=Command)
def ledger_reconcile_command(
    config: ConfigOption,
    since: SinceOption = None,
    until: UntilOption = None,
    examples: Annotated[
        int, typer.Option(min=0, help="Conversions listed per state.", metavar="N")
    ] = 10,
    as_json: JsonOption = False,
) -> None:
    """Compare the source's conversions of the window with the ledger.

    Each conversion is accepted, rejected, rejected_local, pending, failed, or missing
    from the ledger. Runs the source query (sends nothing); the window defaults to the
    sync's. Exit 0 when every conversion is accepted or rejected (by the platform or
    locally), 1 when any is missing, pending or failed (a sync sends those), 2 on a
    config or query error, 4 while a run is writing the ledger.
    """
    from connector import jobs
    from connector.cli.render import write_json
    from connector.cli.render_ledger import print_reconcile

    with _audit(config) as (loaded, audit):
        now = clock.now()
        start, end = jobs.sync_bounds(loaded, *window_options(since, until), now)
        result = audit.reconcile(loaded.source, start, end, examples)
    code = EXIT_ROWS_NOT_ACCEPTED if result["undelivered"] else EXIT_OK
    if as_json:
        write_json(result)
        raise typer.Exit(code)
    print_reconcile(result, config, start, end, code)
    raise typer.Exit(code)
