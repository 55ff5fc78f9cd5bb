"""The marker file beside the ledger (`<ledger>.marker.json`: its id, environment and
runs; no conversions, secrets or PII), so that a ledger lost, replaced by another or by
an older copy stops the run (exit 2) rather than every conversion being sent again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from connector import files
from connector.errors import ConfigError

SUFFIX = ".marker.json"
NEW_LEDGER_FLAG = "--new-ledger"
WHAT = "the ledger's marker"  # how errors name it


def marker_path(ledger: Path) -> Path:
    return ledger.with_name(ledger.name + SUFFIX)


@dataclass(frozen=True)
class History:
    """What a marker records, or what a ledger file holds (`runs` None: unknown)."""

    ledger_id: str | None
    environment: str | None
    runs: int | None
    last_run_id: str | None = None
    last_run_at: str | None = None

    def describe(self) -> str:
        runs = "an unknown number of runs" if self.runs is None else f"{self.runs} run(s)"
        last = f", the last {self.last_run_id} at {self.last_run_at}" if self.last_run_id else ""
        return f"ledger {self.ledger_id or '(unknown id)'} with {runs}{last}"


def read(ledger: Path) -> History | None:
    """The marker beside `ledger`, None when there is none. An unreadable marker
    still says a ledger was there (its fields are then unknown)."""
    path = marker_path(ledger)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return History(None, None, None)
    try:
        data: Any = json.loads(text)
    except ValueError:
        return History(None, None, None)
    if not isinstance(data, dict):
        return History(None, None, None)

    def text_field(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) else None

    runs = data.get("runs")
    return History(
        ledger_id=text_field("ledger_id"),
        environment=text_field("environment"),
        runs=runs if isinstance(runs, int) and not isinstance(runs, bool) else None,
        last_run_id=text_field("last_run_id"),
        last_run_at=text_field("last_run_at"),
    )


def write(ledger: Path, history: History) -> None:
    """Replace the marker beside `ledger`, as each run does when it opens the ledger and
    when it ends (owner-only from its first byte, never through a link: `connector.files`)."""
    with files.replacing(marker_path(ledger), WHAT) as out:
        json.dump({"ledger": ledger.name, **asdict(history)}, out, indent=2)
        out.write("\n")


def check_missing(ledger: Path, new_ledger: bool) -> None:
    """Before opening: a marker whose ledger file is gone stops the run."""
    marker = read(ledger)
    if marker is None or new_ledger or ledger.exists():
        return
    raise ConfigError(
        f"ledger.path: {ledger} does not exist, but {marker_path(ledger).name} beside it "
        f"records {marker.describe()}. A new ledger would send every conversion in the "
        "window again. Restore the ledger file from a backup (or set ledger.path to where "
        f"it was moved); to start over on purpose, rerun with {NEW_LEDGER_FLAG}"
    )


def check_same(ledger: Path, held: History, new_ledger: bool) -> None:
    """After opening an existing ledger: it must be the one the marker records, and
    hold at least its runs (an older copy would resend what was accepted since)."""
    marker = read(ledger)
    replaced = marker is not None and (
        (marker.ledger_id is not None and marker.ledger_id != held.ledger_id)
        or (marker.runs is not None and (held.runs or 0) < marker.runs)
    )
    if replaced and not new_ledger:
        assert marker is not None
        raise ConfigError(
            f"ledger.path: {ledger} is not the ledger the last run left: "
            f"{marker_path(ledger).name} records {marker.describe()}; the file holds "
            f"{held.describe()}. Conversions accepted since would be sent again. Restore "
            "the newest copy of the ledger; to carry on with this file on purpose, rerun "
            f"with {NEW_LEDGER_FLAG}"
        )
    if new_ledger and not replaced:
        raise ConfigError(
            f"{NEW_LEDGER_FLAG}: {ledger} already is the ledger of this project "
            f"({held.describe()}); there is nothing to start over. Rerun without "
            f"{NEW_LEDGER_FLAG} (to really start over, move the ledger aside first)"
        )
