"""What the sandbox received and accepted, the memory its journal keeps across restarts: how
often each source_request_id arrived, the ids accepted (so a resend is known), the
confirmationrefs seen per environment, and the accepted batches kept for `/_sandbox/batches`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from connector.sandbox.checks_audience import AUDIENCE_PREFIX
from connector.sandbox.journal import Journal


class Records:
    """The memory of one sandbox, written through to `journal` (when given) as it grows."""

    def __init__(self, keep_bodies: int, journal: Journal | None) -> None:
        self._keep_bodies = keep_bodies
        self._journal = journal
        self._accepted: set[str] = set()
        self._receipts: dict[str, int] = {}  # source_request_id -> times it arrived
        self._refs: dict[tuple[str, str], str | None] = {}
        self._bodies: list[dict[str, Any]] = []
        self.batches = 0
        self.duplicate_confirmationrefs = 0
        self.resent = 0
        self.max_receipts = 0
        # audience batches: changes accepted by (audience, status), and by id
        self.audience_changes: Counter[tuple[str, str]] = Counter()
        self._changes: Counter[str] = Counter()

    @property
    def unique_confirmationrefs(self) -> int:
        return len(self._refs)

    def replay(self) -> None:
        """Take back what an earlier sandbox on this journal received and accepted."""
        if self._journal is None:
            return
        for event in self._journal.events():
            if "receipt" in event:
                self._receipt(event["receipt"])
            elif "accepted" in event:
                record = event["accepted"]
                record.setdefault("transport", "events_api")  # a line from before transports
                self._record(record)
            elif "resent" in event:
                self.resent += 1

    def receive(self, request_ids: list[str]) -> None:
        """Count one arrival of each id (journaled in one write)."""
        for request_id in request_ids:
            self._receipt(request_id)
        self._log("receipt", request_ids)

    def was_accepted(self, request_id: str | None) -> bool:
        return request_id is not None and request_id in self._accepted

    def resend(self, request_id: str) -> None:
        """Count a batch accepted before that arrived again (it is not recorded twice)."""
        self.resent += 1
        self._log("resent", [request_id])

    def accept(self, record: dict[str, Any]) -> None:
        """Record an accepted batch: `received_at`, `source_request_id`, `environment`,
        `confirmationref`, the `transport` it came by and the `batch` itself."""
        self._record(record)
        self._log("accepted", [record])

    def page(self, offset: int, limit: int) -> dict[str, Any]:
        """Accepted batches in order; `receipts`: how often each arrived (all attempts)."""
        page = self._bodies[offset : offset + limit]
        receipts = self._receipts
        shown = [{**r, "receipts": receipts.get(r["source_request_id"], 0)} for r in page]
        return {"total": self.batches, "batches": shown}

    def _log(self, key: str, values: list[Any]) -> None:
        if self._journal is not None:
            self._journal.append(key, values)

    def _receipt(self, request_id: str) -> None:
        count = self._receipts[request_id] = self._receipts.get(request_id, 0) + 1
        self.max_receipts = max(self.max_receipts, count)

    @property
    def duplicate_audience_changes(self) -> int:
        """Audience events accepted again in another batch (the same source_message_id)."""
        return sum(n - 1 for n in self._changes.values())

    def audience_stats(self) -> dict[str, dict[str, int]]:
        """Audience changes accepted, by audience and status."""
        shown: dict[str, dict[str, int]] = {}
        for (audience, status), n in sorted(self.audience_changes.items()):
            shown.setdefault(audience, {"add": 0, "drop": 0})[status] = n
        return shown

    def _record(self, record: dict[str, Any]) -> None:
        request_id: str | None = record["source_request_id"]
        if request_id is not None:
            self._accepted.add(request_id)
        if str(record["confirmationref"]).startswith(AUDIENCE_PREFIX):
            for event in record["batch"]["events"]:
                data = event["data"]
                attributes = data["custom_attributes"]
                self.audience_changes[attributes["audience_name"], attributes["status"]] += 1
                self._changes[data["source_message_id"]] += 1
            self.batches += 1
            if len(self._bodies) < self._keep_bodies:
                self._bodies.append(record)
            return
        key = (record["environment"], record["confirmationref"])
        if key not in self._refs:
            self._refs[key] = request_id
        elif request_id is None or self._refs[key] != request_id:
            self.duplicate_confirmationrefs += 1  # without an id, every arrival is new
        self.batches += 1
        if len(self._bodies) < self._keep_bodies:
            self._bodies.append(record)
