"""The `rokt-connector` typer app: its global options (`--version`), its commands (one
module each, registered here) and `main`, the console script's entry point."""

from __future__ import annotations

from typing import Annotated

import typer

from connector._version import __version__
from connector.cli import audiences, ledger, sandbox, sync, validate
from connector.cli.options import Command, Group

app = typer.Typer(
    cls=Group,
    name="rokt-connector",
    help="Send conversions from a DuckDB/Parquet warehouse to Rokt, each exactly once.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        print(f"rokt-connector {__version__}")
        raise typer.Exit()


@app.callback()
def _commands(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Send conversions from a DuckDB/Parquet warehouse to Rokt, each exactly once."""


app.command("validate", cls=Command)(validate.validate_command)
app.command("sync", cls=Command)(sync.sync_command)
app.command("backfill", cls=Command)(sync.backfill_command)
app.command("sandbox", cls=Command)(sandbox.sandbox_command)
app.add_typer(ledger.app, name="ledger")
app.add_typer(audiences.app, name="audiences")


def main() -> None:
    """Console-script entry point."""
    app()
