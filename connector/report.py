"""What a run tells its user: the run report (counts, status, exit code) and the
validation report, and their JSON form. Must not: compute anything from rows (the
engine fills the counts in)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import datetime

from connector import clock
from connector.errors import EXIT_FATAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_ROWS_NOT_ACCEPTED
from connector.status import RunStatus


@dataclass
class RunReport:
    """One sync or backfill: every row read is accounted for exactly once."""

    run_id: str
    mode: str  # sync | backfill | dry_run
    status: str = RunStatus.RUNNING.value
    rows_read: int = 0
    rows_rejected_local: int = 0
    rows_rejected_known: int = 0  # of those, rejected before for the same reason, unchanged
    rows_skipped_ledger: int = 0
    changed_after_accept: int = 0  # of those, accepted before, but the payload now differs
    rows_duplicate: int = 0
    duplicates_differing: int = 0  # of those, unlike the row that won (not a plain repeat)
    duplicates_differing_known: int = 0  # of those, seen by an earlier run
    pending: int = 0  # to send, but no answer: left pending (a dry run: not sent)
    batches_sent: int = 0
    requests: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    retries: int = 0
    isolated: int = 0  # batches resent alone: an answer did not say which batch it meant
    duration_s: float = 0.0
    message: str | None = None  # why a failed run stopped
    # rows sent without a field, by the warning that dropped it (spec.WARNINGS)
    warnings: Counter[str] = field(default_factory=Counter)
    # rows rejected here (reason code) or by the platform (its message), by reason
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    changed_examples: list[str] = field(default_factory=list)  # refs, a few
    differing_examples: list[str] = field(default_factory=list)  # refs, a few

    def as_dict(self) -> dict[str, object]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return values | {
            "warnings": dict(sorted(self.warnings.items())),
            "rejected_by_reason": dict(self.rejected_by_reason.most_common()),
        }

    @property
    def rows_done(self) -> int:
        """Rows accounted for: answered, pending, skipped or set aside (= rows_read
        once the run has ended)."""
        sent = self.accepted + self.rejected + self.failed + self.pending
        return sent + self.rows_rejected_local + self.rows_skipped_ledger + self.rows_duplicate

    def finish(self, fatal: bool, interrupted: bool = False) -> None:
        """The status; rejections (and differing duplicates) the ledger knew already
        leave a run `succeeded`, so a scheduler alerts on new ones only."""
        if fatal:
            self.status = RunStatus.FAILED.value
        elif interrupted:
            self.status = RunStatus.INTERRUPTED.value
            self.message = "stopped by a signal: answered requests are settled, the rest pending"
        elif (
            self.rows_rejected_local > self.rows_rejected_known
            or self.duplicates_differing > self.duplicates_differing_known
            or self.rejected
            or self.failed
        ):
            self.status = RunStatus.COMPLETED_WITH_REJECTIONS.value
        else:
            self.status = RunStatus.SUCCEEDED.value

    @property
    def exit_code(self) -> int:
        return exit_code_of(self.status)


def exit_code_of(status: str) -> int:
    codes: dict[str, int] = {
        RunStatus.SUCCEEDED: EXIT_OK,
        RunStatus.FAILED: EXIT_FATAL,
        RunStatus.INTERRUPTED: EXIT_INTERRUPTED,
    }
    return codes.get(status, EXIT_ROWS_NOT_ACCEPTED)


BY_CODE = ("warnings", "rejected_by_reason")  # a run's counts by code


COUNTS = (
    "rows_read",
    "rows_rejected_local",
    "rows_rejected_known",
    "rows_skipped_ledger",
    "changed_after_accept",
    "rows_duplicate",
    "duplicates_differing",
    "duplicates_differing_known",
    "pending",
    "batches_sent",
    "requests",
    "accepted",
    "rejected",
    "failed",
    "retries",
    "isolated",
)


def iso(moment: datetime) -> str:
    return clock.iso(moment)


@dataclass
class ValidationReport:
    """What `validate` found: counts that add up to `rows_read`, and examples."""

    since: datetime
    until: datetime
    rows_read: int = 0
    valid: int = 0  # would be sent
    duplicates: int = 0
    duplicates_differing: int = 0  # of those, unlike the row that won
    differing_examples: list[str] = field(default_factory=list)  # their refs, a few
    skipped: int = 0  # settled in the ledger already: a sync would not send them
    changed_after_accept: int = 0  # of those, accepted with a payload that now differs
    changed_examples: list[str] = field(default_factory=list)  # their refs, a few
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_examples: dict[str, list[str]] = field(default_factory=dict)
    warnings: Counter[str] = field(default_factory=Counter)  # valid rows, a field dropped
    requests: int = 0
    request_bytes: int = 0
    payloads: list[str] = field(default_factory=list)
    # the amount of the valid rows per currency: currency, rows, min, median, max
    amounts: list[dict[str, object]] = field(default_factory=list)
    ledger: str | None = None  # why the ledger was not read, when it was not
    notes: list[str] = field(default_factory=list)  # how the transport carries the rows

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    @property
    def no_event_time_by_reason(self) -> dict[str, int]:
        """Rows rejected for want of an event time that parses (the query's formats)."""
        return {r: self.rejected[r] for r in ("invalid_event_time", "missing_event_time")}

    @property
    def no_event_time(self) -> int:
        return sum(self.no_event_time_by_reason.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "rows_read": self.rows_read,
            "valid": self.valid,
            "duplicates": self.duplicates,
            "duplicates_differing": self.duplicates_differing,
            "differing_examples": self.differing_examples,
            "skipped": self.skipped,
            "changed_after_accept": self.changed_after_accept,
            "changed_examples": self.changed_examples,
            "rejected": self.rows_rejected,
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "no_event_time": self.no_event_time,
            "rejected_examples": self.rejected_examples,
            "warnings": dict(sorted(self.warnings.items())),
            "requests": self.requests,
            "request_bytes": self.request_bytes,
            "amounts": self.amounts,
            "ledger": self.ledger,
            "notes": self.notes,
        }
