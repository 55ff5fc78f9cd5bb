"""`rokt-connector audiences`: `sync` sends the audiences' membership changes (adds and
drops since the last delivered state), `status` shows what the ledger says Rokt holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from connector.cli.options import Command, ConfigOption, Group, JsonOption, LogFormatOption
from connector.errors import EXIT_OK, ConnectorError
from connector.logs import LogFormat

if TYPE_CHECKING:
    from connector.audiences import AudienceReport

app = typer.Typer(
    cls=Group,
    help="Audience membership: send each audience's adds and drops to Rokt, each once.",
    no_args_is_help=True,
)

_SHOWN = (
    "rows_read",
    "members",
    "adds",
    "drops",
    "resent",
    "superseded",
    "rejected_known",
    "batches",
    "requests",
    "accepted",
    "rejected",
    "failed",
    "pending",
)


# rows read that are no member, shown when there are any
_LEFT_OUT = ("rows_without_audience", "rows_without_identity", "rows_too_long", "rows_duplicate")


def _print(report: AudienceReport) -> None:
    from connector.cli.render import details, stdout, table

    facts = report.as_dict()
    pairs = {"run_id": report.run_id, "status": report.status}
    shown = [_SHOWN[0], *(key for key in _LEFT_OUT if facts[key]), *_SHOWN[1:]]
    stdout.print(details(pairs | {key: facts[key] for key in shown}))
    rows = [{"audience": name} | counts for name, counts in report.audiences.items()]
    if rows:
        stdout.print(table(rows, "audiences"))


def _short(row: dict[str, Any]) -> dict[str, Any]:
    """A status row for an 80-column table: the last change to the minute."""
    last = row["last_change_at"]
    return {k: v for k, v in row.items() if k != "last_change_at"} | {
        "last change": f"{last:%Y-%m-%d %H:%M}" if last else ""
    }


@app.command("sync", cls=Command)
def sync_command(
    config: ConfigOption,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read and diff; record and send nothing.")
    ] = False,
    allow_mass_drop: Annotated[
        bool,
        typer.Option(
            "--allow-mass-drop",
            help="Send drops past audiences.max_drop_fraction, and empty a missing audience.",
        ),
    ] = False,
    as_json: JsonOption = False,
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Send each audience's changes since the last run: add for new members, drop for
    departed ones, nothing for the unchanged.

    Exit 0 when every change was accepted, 1 when some were rejected or failed, 2 on a
    config or query error or a mass drop (nothing sent), 3 when credentials were
    refused or the endpoint was unreachable, 4 when another run holds the ledger.
    """
    from connector import jobs
    from connector.audiences import sync_audiences
    from connector.cli.render import error, fail, start_logs, write_json

    start_logs(log_format)
    try:
        loaded = jobs.as_config(config)
        report = sync_audiences(loaded, dry_run=dry_run, allow_mass_drop=allow_mass_drop)
    except ConnectorError as exc:
        fail(str(exc), exc.exit_code)
    if as_json:
        write_json(report.as_dict(), ensure_ascii=True)
    else:
        _print(report)
    if report.message:
        error(report.message)
    raise typer.Exit(report.exit_code)


@app.command("status", cls=Command)
def status_command(config: ConfigOption, as_json: JsonOption = False) -> None:
    """Per audience: members Rokt holds (delivered), changes pending, failed and
    rejected, and when the last change was accepted. Reads the ledger only."""
    from connector import jobs
    from connector.cli.render import fail, say, stdout, table, write_json
    from connector.ledger import Ledger

    try:
        loaded = jobs.as_config(config)
        with Ledger.read_only(loaded.ledger.path, loaded.destination.environment) as ledger:
            rows = ledger.audience_status()
    except ConnectorError as exc:
        fail(str(exc), exc.exit_code)
    if as_json:
        write_json({"audiences": rows}, ensure_ascii=True)
    elif rows:
        stdout.print(table([_short(row) for row in rows], "audiences", wrap=("audience",)))
    else:
        say("no audience changes recorded yet")
    raise typer.Exit(EXIT_OK)
