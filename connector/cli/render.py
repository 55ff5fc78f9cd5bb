"""How the CLI prints, and the one module that loads rich: the consoles (reports on
stdout; errors, events and the progress bar on stderr), tables, cells and errors.
Must not: print a secret or raw PII."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from typing import Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from connector import logs
from connector.errors import EXIT_CONFIG
from connector.logs import LogFormat

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)
ISO = "%Y-%m-%dT%H:%M:%SZ"

_log_format = LogFormat.TEXT


def start_logs(log_format: LogFormat) -> None:
    """Events (and errors) on stderr in `log_format`, through the console the progress
    bar uses, so lines never tear it."""
    global _log_format
    _log_format = log_format
    logs.configure(log_format, lambda line: stderr.out(line, highlight=False))


def error(message: str) -> None:
    """An error on stderr: a line, or an `error` event under `--log-format json`."""
    if _log_format == LogFormat.JSON:
        logs.event("error", logging.ERROR, message=message)
    else:
        stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)


def fail(message: str, code: int = EXIT_CONFIG) -> NoReturn:
    """End the command: the error on stderr, and exit `code`."""
    error(message)
    raise typer.Exit(code)


def say(text: str) -> None:
    """A line of text, wrapped at words to the terminal's width."""
    stdout.print(text, highlight=False, soft_wrap=False)


def _json_value(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_json(document: object, ensure_ascii: bool = False) -> None:
    """`document` as one line of JSON on stdout (times in ISO 8601)."""
    text = json.dumps(document, default=_json_value, ensure_ascii=ensure_ascii)
    sys.stdout.write(text + "\n")


def clip(text: str, most: int = 60) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def cell(value: object, short: bool = False) -> str:
    """A value as text; a time to the millisecond, or `short`: to the second."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if short:
            return f"{value:%Y-%m-%d %H:%M:%S}"
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return f"{value:,}" if isinstance(value, int) else str(value)


def when(moment: datetime) -> str:
    """A window bound, short: the date alone at midnight UTC."""
    return f"{moment:%Y-%m-%d}" if moment.time() == time_of_day(0) else f"{moment:%Y-%m-%d %H:%M}"


def span(length: timedelta) -> str:
    """A window length as config writes durations: 1d, 12h, 30m, 45s."""
    seconds = int(length.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def new_table(title: str | None = None) -> Table:
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


def table(
    rows: list[dict[str, Any]], title: str | None = None, wrap: tuple[str, ...] = ()
) -> Table:
    """Rows (dicts with the same keys) as a table, one column per key. Only the
    columns in `wrap` (free text) wrap; numbers are right-aligned; times (UTC) are
    shown to the second."""
    result = new_table(title)
    for name in rows[0] if rows else []:
        numbers = all(isinstance(row[name], int | float | None) for row in rows)
        result.add_column(
            name,
            justify="right" if numbers else "left",
            no_wrap=name not in wrap,
            overflow="fold" if name in wrap else "ellipsis",
        )
    for row in rows:
        result.add_row(*(cell(v, short=True) for v in row.values()))
    return result


def details(pairs: dict[str, object]) -> Table:
    """Keys and values in two columns, no header and no borders; long values fold."""
    result = Table(show_header=False, box=None, pad_edge=False, collapse_padding=True)
    result.add_column(no_wrap=True)
    result.add_column(overflow="fold")  # a hash (64) fits beside the longest key
    for key, value in pairs.items():
        result.add_row(key, cell(value))
    return result


class ProgressBar:
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

    def __enter__(self) -> ProgressBar:
        self._bar.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._bar.stop()

    def show(self, rows_done: int, batches_sent: int, **fields: Any) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        self._bar.update(self._task, completed=rows_done, rate=batches_sent / elapsed, **fields)
