"""What a run tells its user: the run report of DESIGN.md and the validation report.

Owns: the report fields, their JSON form, and the exit code a report implies. Must
not: compute anything from rows (the pipeline fills the counts in).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime

from connector.errors import EXIT_FATAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_ROWS_NOT_ACCEPTED


@dataclass
class RunReport:
    """One sync or backfill: every row read is accounted for exactly once."""

    run_id: str
    mode: str  # sync | backfill | dry_run
    status: str = "running"  # succeeded | completed_with_rejections | failed | interrupted
    rows_read: int = 0
    rows_rejected_local: int = 0
    rows_skipped_ledger: int = 0
    rows_duplicate: int = 0
    batches_sent: int = 0
    requests: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    retries: int = 0
    duration_s: float = 0.0
    message: str | None = None  # why a failed run stopped

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @property
    def rows_done(self) -> int:
        """Rows with a final outcome (sent and answered, skipped, or set aside)."""
        settled = self.accepted + self.rejected + self.failed
        return settled + self.rows_rejected_local + self.rows_skipped_ledger + self.rows_duplicate

    def finish(self, fatal: bool, interrupted: bool = False) -> None:
        if fatal:
            self.status = "failed"
        elif interrupted:
            self.status = "interrupted"
            self.message = "stopped by a signal: answered requests are settled, the rest pending"
        elif self.rows_rejected_local or self.rejected or self.failed:
            self.status = "completed_with_rejections"
        else:
            self.status = "succeeded"

    @property
    def exit_code(self) -> int:
        codes = {"succeeded": EXIT_OK, "failed": EXIT_FATAL, "interrupted": EXIT_INTERRUPTED}
        return codes.get(self.status, EXIT_ROWS_NOT_ACCEPTED)


@dataclass
class ValidationReport:
    """What `validate` found: counts that add up to `rows_read`, and examples."""

    since: datetime
    until: datetime
    rows_read: int = 0
    valid: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_examples: dict[str, list[str]] = field(default_factory=dict)
    requests: int = 0
    request_bytes: int = 0
    payloads: list[str] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "rows_read": self.rows_read,
            "valid": self.valid,
            "duplicates": self.duplicates,
            "rejected": self.rows_rejected,
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "rejected_examples": self.rejected_examples,
            "requests": self.requests,
            "request_bytes": self.request_bytes,
        }
