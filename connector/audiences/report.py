"""What an audience sync tells its user (`AudienceReport`): the rows read, the changes
planned (adds, drops, resent, superseded), what became of them, per-audience counts, the
status and exit code (as for `sync`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import polars as pl

from connector.report import COUNTS, exit_code_of
from connector.status import RunStatus

if TYPE_CHECKING:
    from connector.audiences.members import Members
    from connector.audiences.plan import Plan


@dataclass
class AudienceReport:
    """One audience sync. Every change planned ends accepted, rejected, failed or
    pending (no answer: the next run resends it with the same id)."""

    run_id: str
    mode: str  # audiences | dry_run
    status: str = RunStatus.RUNNING.value
    rows_read: int = 0
    rows_without_audience: int = 0  # no audience_name: not a member of anything
    rows_without_identity: int = 0  # no email, email_sha256, customerid (or device id)
    rows_too_long: int = 0  # a value longer than the Event API takes: not a member
    rows_duplicate: int = 0  # the same member of the same audience again
    members: int = 0  # (audience, member) pairs in the result
    adds: int = 0
    drops: int = 0
    resent: int = 0  # of those, left pending or failed by an earlier run
    superseded: int = 0  # earlier undelivered changes no longer wanted
    rejected_known: int = 0  # rejected before as they are now: not resent
    batches: int = 0  # one per member with changes
    requests: int = 0
    retries: int = 0
    accepted: int = 0  # changes
    rejected: int = 0
    failed: int = 0
    duration_s: float = 0.0
    message: str | None = None
    audiences: dict[str, dict[str, int]] = field(default_factory=dict)

    def read(self, members: Members) -> None:
        self.rows_read = members.rows_read
        self.rows_without_audience = members.rows_without_audience
        self.rows_without_identity = members.rows_without_identity
        self.rows_too_long = members.rows_too_long
        self.rows_duplicate = members.duplicates
        self.members = members.frame.height

    def planned(self, plan: Plan) -> None:
        actions = plan.changes["action"]
        self.adds = int((actions == "add").sum())
        self.drops = int((actions == "drop").sum())
        self.resent = int(plan.changes["resent"].sum())
        self.superseded = plan.superseded.len()
        self.rejected_known = plan.rejected_known

    def count(self, settled: pl.DataFrame) -> None:
        """Add the changes of one answered request."""
        statuses = settled["status"]
        self.accepted += int((statuses == "accepted").sum())
        self.rejected += int((statuses == "rejected").sum())
        self.failed += int((statuses == "failed").sum())

    @property
    def pending(self) -> int:
        """Changes planned to be sent with no answer (a dry run: all of them)."""
        return self.adds + self.drops - self.accepted - self.rejected - self.failed

    def finish(self, fatal: bool, interrupted: bool = False) -> None:
        if fatal:
            self.status = RunStatus.FAILED.value
        elif interrupted:
            self.status = RunStatus.INTERRUPTED.value
            self.message = "stopped by a signal: answered changes are settled, the rest pending"
        elif self.rejected or self.failed:
            self.status = RunStatus.COMPLETED_WITH_REJECTIONS.value
        else:
            self.status = RunStatus.SUCCEEDED.value

    @property
    def exit_code(self) -> int:
        return exit_code_of(self.status)

    def run_counts(self) -> dict[str, Any]:
        """The `runs` row's counts (its rows are members, its batches and answers changes)."""
        left_out = self.rows_without_audience + self.rows_without_identity + self.rows_too_long
        counts = dict.fromkeys(COUNTS, 0) | {
            "rows_read": self.rows_read,
            "rows_rejected_local": left_out,
            "rows_duplicate": self.rows_duplicate,
            "rows_rejected_known": self.rejected_known,
            "pending": self.pending,
            "batches_sent": self.batches,
            "requests": self.requests,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "failed": self.failed,
            "retries": self.retries,
        }
        extra = {"warnings": None, "rejected_by_reason": None}
        return counts | extra | {k: getattr(self, k) for k in ("duration_s", "run_id", "status")}

    def as_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return values | {"pending": self.pending}
