"""The options several commands share, and the command classes whose `--help` names
each option's value (FILE, TIME, N) and shows none for a flag, never `<bool>`.
Loads no more than typer: `--help` and `--version` import this."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from connector import clock
from connector.logs import LogFormat

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config", "-c", help="Path to the YAML config.", show_default=False, metavar="FILE"
    ),
]
SinceOption = Annotated[
    str | None,
    typer.Option(help="Start of the window (ISO date/time; naive = UTC).", metavar="TIME"),
]
UntilOption = Annotated[
    str | None, typer.Option(help="End of the window, exclusive.", metavar="TIME")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON report on stdout.")]
LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        help="Events on stderr: readable lines, or one JSON object per line.",
        metavar="|".join(LogFormat),
    ),
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


def parse_time(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 date or timestamp (a naive one is UTC), or None when not given;
    a wrong one ends the command (exit 2)."""
    try:
        return None if text is None else clock.utc(text, option)
    except ValueError as exc:
        from connector.cli.render import fail  # rich loads only to print the error

        fail(str(exc))


def window_options(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """`--since` and `--until` as UTC times (None when not given)."""
    return parse_time(since, "--since"), parse_time(until, "--until")


def _bare_flags(params: list[Any]) -> list[Any]:
    """`params`, each flag (`--json`, `--help`) given an empty metavar: typer's help
    would show it as taking a `<bool>`."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    """A command whose `--help` shows no value for a flag."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _bare_flags(super().get_params(ctx))


class Group(TyperGroup):
    """A group of commands whose `--help` shows no value for a flag."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _bare_flags(super().get_params(ctx))
