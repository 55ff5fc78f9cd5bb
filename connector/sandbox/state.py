"""The sandbox's state, shared by its endpoint families: `Sandbox` holds the settings, the
records (journaled), the faults, the rate limit and the per-process `Tally`, and shows them
(`stats`, `recorded`) or forgets them (`reset`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from connector.sandbox.faults import Faults, RejectRate, TokenBucket
from connector.sandbox.journal import Journal
from connector.sandbox.records import Records
from connector.sandbox.settings import SandboxSettings

HEADER_TIMEOUT = "header_timeout"  # keys of `Sandbox.connections_closed`
OVER_LIMIT = "over_limit"
_SHOWN_STATUSES = ("200", "202", "400", "401", "403", "414", "429", "500", "502", "503")
ENDPOINTS = ("events_api", "pixel", "rudderstack_pixel")  # the families of `requests_by_endpoint`


@dataclass
class Tally:
    """Counts of this process's requests and answers (a restarted sandbox starts at 0)."""

    requests: int = 0
    requests_by_endpoint: Counter[str] = field(default_factory=Counter)
    bulk_requests: int = 0  # of `requests`, those to /v2/bulkevents
    in_flight: int = 0
    max_batches_per_request: int = 0
    rejected: int = 0
    rejections_by_code: Counter[str] = field(default_factory=Counter)
    request_errors_by_code: Counter[str] = field(default_factory=Counter)
    responses_by_status: Counter[int] = field(default_factory=Counter)


class Sandbox:
    """The emulator's state: records, faults, token bucket, tally.

    With `settings.journal`, every receipt and acceptance is appended to that file
    (flushed before the answer) and replayed on start, so a sandbox killed and started
    again on the same journal still knows what it accepted: resends and duplicates
    are detected across the restart. The tally is per process.
    """

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.reject_rate = RejectRate(settings.reject_rate, settings.seed)
        # Counted by the server's connection guards (`server.Guard`).
        self.connections_closed: Counter[str] = Counter()
        self._journal = None if settings.journal is None else Journal(settings.journal)
        self._start()
        self.records.replay()

    def reset(self) -> None:
        """Forget everything recorded (the journal too); the faults restart from the seed."""
        if self._journal is not None:
            self._journal.truncate()
        self._start()

    def _start(self) -> None:
        settings = self.settings
        self.faults = Faults(settings)
        self.bucket = TokenBucket(settings.rate_limit, settings.clock)
        self.records = Records(settings.keep_bodies, self._journal)
        self.tally = Tally()
        self.connections_closed.clear()

    def close(self) -> None:
        """Close the journal (the record stays in the file for the next sandbox)."""
        if self._journal is not None:
            self._journal.close()

    def stats(self) -> dict[str, Any]:
        tally, records = self.tally, self.records
        statuses = Counter(dict.fromkeys(_SHOWN_STATUSES, 0))
        statuses.update({str(s): n for s, n in tally.responses_by_status.items()})
        return {
            "requests": tally.requests,
            "requests_by_endpoint": {name: tally.requests_by_endpoint[name] for name in ENDPOINTS},
            "bulk_requests": tally.bulk_requests,
            "in_flight": tally.in_flight,
            "batches": records.batches,
            "unique_confirmationrefs": records.unique_confirmationrefs,
            "duplicate_confirmationrefs": records.duplicate_confirmationrefs,
            "resent": records.resent,
            "audience_changes": records.audience_stats(),
            "duplicate_audience_changes": records.duplicate_audience_changes,
            "rejected": tally.rejected,
            "rejections_by_code": dict(sorted(tally.rejections_by_code.items())),
            "request_errors_by_code": dict(sorted(tally.request_errors_by_code.items())),
            "responses_by_status": dict(sorted(statuses.items())),
            "max_batches_per_request": tally.max_batches_per_request,
            "max_receipts": records.max_receipts,
            "faults_by_kind": dict(sorted(self.faults.by_kind.items())),
            "connections_closed": {
                key: self.connections_closed[key] for key in (HEADER_TIMEOUT, OVER_LIMIT)
            },
        }

    def recorded(self, offset: int = 0, limit: int = 1000) -> dict[str, Any]:
        """Accepted batches in order; `receipts`: how often each arrived (all attempts)."""
        return self.records.page(offset, limit)
