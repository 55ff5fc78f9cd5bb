"""The states the ledger records, as string enums whose values are what it stores.

Owns: `Status` (a conversion's state in the `ledger` table) and `RunStatus` (a run's
in the `runs` table). Must not: import anything from the connector.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """What became of a conversion (in the order the audit lists them)."""

    ACCEPTED = "accepted"
    PENDING = "pending"  # written before its request leaves; no answer yet
    FAILED = "failed"  # no final answer after the retries: resent by the next run
    REJECTED = "rejected"  # by the platform
    REJECTED_LOCAL = "rejected_local"  # by the connector's checks, never sent


class RunStatus(StrEnum):
    """How a run ended (`running` until it does)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    COMPLETED_WITH_REJECTIONS = "completed_with_rejections"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
