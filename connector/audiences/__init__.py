"""Audience membership sync: the warehouse's segments sent to Rokt as changes (`add`,
`drop`), each once. `members` reads and diffs, `plan` names the changes, `batch` builds
the Event API batches, `run` records, sends and settles them, `report` tells the user."""

from __future__ import annotations

from connector.audiences.report import AudienceReport
from connector.audiences.run import sync_audiences

__all__ = ["AudienceReport", "sync_audiences"]
