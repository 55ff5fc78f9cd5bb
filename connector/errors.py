"""The connector's exception types and the exit code each one maps to.

Owns: the error hierarchy (docs/exit-codes.md) and `exit_code_for`. Every message says what
went wrong and what to do next. Must not: carry secrets or raw PII in a message.
"""

from __future__ import annotations

from typing import Protocol

EXIT_OK = 0
EXIT_ROWS_NOT_ACCEPTED = 1
EXIT_CONFIG = 2
EXIT_FATAL = 3
EXIT_LOCKED = 4
EXIT_INTERRUPTED = 130  # SIGINT/SIGTERM: stopped gracefully


class RunOutcome(Protocol):
    """What a run's report says of it (a `RunReport` or a `BackfillReport`)."""

    status: str
    message: str | None

    @property
    def exit_code(self) -> int: ...

    def as_dict(self) -> dict[str, object]: ...


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose.

    `report` is set when a run (or backfill) had started: what it did before it
    stopped, as the ledger's `runs` table also records it.
    """

    exit_code = EXIT_CONFIG
    report: RunOutcome | None = None


class ConfigError(ConnectorError):
    """The config file, a setting or the environment is wrong; nothing was sent."""


class SourceError(ConnectorError):
    """The source could not be opened or the query failed; nothing was sent."""


class MassDrop(ConnectorError):
    """An audience sync would drop more of an audience than `audiences.max_drop_fraction`
    (or all of a missing one); nothing was sent (`--allow-mass-drop` to go ahead)."""


class RowRejected(ConnectorError):
    """One row cannot be sent; it is recorded with a reason code and skipped."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


class RetryableSendError(ConnectorError):
    """A send failed in a way that may succeed later (429, 5xx, timeout, network)."""

    exit_code = EXIT_FATAL


class FatalSendError(ConnectorError):
    """Credentials refused or endpoint unreachable after retries; the run stops."""

    exit_code = EXIT_FATAL

    def __init__(self, message: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts  # HTTP attempts made for the request that failed


class LedgerWriteError(FatalSendError):
    """The ledger refused a write (disk full, I/O error, a damaged file); the run stops
    as after a fatal send error (exit 3): rows not yet settled stay `pending`."""


class Interrupted(ConnectorError):
    """SIGINT/SIGTERM stopped the run: answered requests are settled, the rest stays
    `pending` for the next run, which resends it with the same request ids."""

    exit_code = EXIT_INTERRUPTED


def exit_code_for(error: BaseException) -> int:
    """The process exit code for an error that ended a command."""
    if isinstance(error, ConnectorError):
        return error.exit_code
    return EXIT_CONFIG
