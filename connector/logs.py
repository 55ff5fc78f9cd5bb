"""Log events of the sync and the backfill, for people and for log shippers.

Owns: `event()`, which emits one named event with its fields on the `connector`
logger as a standard `LogRecord` whose message is the event's line, `name key=value
...` (so a log that shows messages only, as Airflow's and Dagster's task logs do,
shows the fields too), and `configure()`, the CLI's two formats on stderr: `text`
(that line after a timestamp and level) and `json` (one object per line:
`timestamp`, `level`, `event`, then the event's fields). Must not: log raw PII, a
secret, a request body or a row's values: events carry ids, window bounds, counts
and the connector's own messages only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum

from connector import clock
from connector.status import RunStatus

LOGGER = logging.getLogger("connector")


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def event(name: str, level: int = logging.INFO, **fields: object) -> None:
    """Log event `name` with `fields` (ids, times, counts, messages; never row values):
    the record's message is `line(name, fields)`, its `event_name` and `fields`
    attributes keep them apart (the CLI's JSON format)."""
    if LOGGER.isEnabledFor(level):
        LOGGER.log(level, line(name, fields), extra={"event_name": name, "fields": fields})


def line(name: str, fields: dict[str, object]) -> str:
    """`name key=value ...`: fields that are None are left out, a value with spaces or
    structure is JSON."""
    pairs = (f"{key}={_text(_plain(value))}" for key, value in fields.items() if value is not None)
    return " ".join([name, *pairs])


def level(status: str) -> int:
    """The level of a run's (or backfill's) last event by its status: info when every
    row was accepted or skipped, error when it failed, else warning."""
    levels: dict[str, int] = {RunStatus.SUCCEEDED: logging.INFO, RunStatus.FAILED: logging.ERROR}
    return levels.get(status, logging.WARNING)


def _plain(value: object) -> object:
    """A field as JSON has it (counts by code stay an object)."""
    if isinstance(value, datetime):
        return clock.iso(value)
    if value is None or isinstance(value, bool | int | float | dict | list):
        return value
    return str(value)


def _text(value: object) -> object:
    """A field on a text line: JSON where it has spaces or structure."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (
        json.dumps(value, ensure_ascii=False) if isinstance(value, str) and " " in value else value
    )


class _Formatter(logging.Formatter):
    def __init__(self, log_format: LogFormat) -> None:
        super().__init__()
        self._json = log_format == LogFormat.JSON

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        head = [when.replace("+00:00", "Z"), record.levelname.lower()]
        if not self._json:
            return " ".join([*head, record.getMessage()])
        fields = {k: _plain(v) for k, v in getattr(record, "fields", {}).items()}
        name = getattr(record, "event_name", record.getMessage())
        keys = dict(zip(("timestamp", "level", "event"), [*head, name], strict=True))
        return json.dumps(keys | fields, ensure_ascii=False)


class _Handler(logging.Handler):
    def __init__(self, write: Callable[[str], None]) -> None:
        super().__init__()
        self._write = write

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write(self.format(record))
        except Exception:  # a broken log sink must not break the run
            self.handleError(record)


def configure(log_format: LogFormat, write: Callable[[str], None]) -> None:
    """Send the connector's events at INFO and above to `write`, one line each."""
    handler = _Handler(write)
    handler.setFormatter(_Formatter(log_format))
    LOGGER.handlers = [handler]
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
