"""What a backfill tells its user: the plan (windows, rows, batches, duration) and
the report (each window's run, and their counts summed), with their JSON form."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.report import BY_CODE, COUNTS, RunReport, exit_code_of, iso
from connector.status import RunStatus


@dataclass
class WindowPlan:
    """One window of a backfill plan; `rows` is None for a window finished earlier."""

    since: datetime
    until: datetime
    done: bool  # finished by an earlier backfill: skipped
    rows: int | None = None  # the query's count for the window
    too_old: int = 0  # rows before the plan's `oldest_event`: recorded, never sent

    @property
    def batches(self) -> int:
        """At most this many batches: duplicates and rows rejected for bad values are
        not sent either (`validate` counts those)."""
        return (self.rows or 0) - self.too_old


@dataclass
class BackfillPlan:
    """What `backfill` would do now: its windows, rows and the time it takes."""

    since: datetime
    until: datetime
    window: timedelta
    now: datetime
    oldest_event: datetime  # now - sync.max_event_age
    rate: float  # conversions per second the destination is sent
    windows: list[WindowPlan]
    unit: str = "batches"  # what the rate counts: batches (Event API), requests (pixels)

    @property
    def to_run(self) -> list[WindowPlan]:
        return [w for w in self.windows if not w.done]

    def total(self, count: str) -> int:
        """`rows`, `too_old` or `batches`, summed over the windows to run."""
        return sum(int(getattr(w, count) or 0) for w in self.to_run)

    def estimated_s(self, batches: int) -> float:
        """Seconds to send `batches` at `rate`."""
        return round(batches / self.rate, 1)

    def as_dict(self) -> dict[str, object]:
        return {
            "since": iso(self.since),
            "until": iso(self.until),
            "window_s": self.window.total_seconds(),
            "now": iso(self.now),
            "oldest_event": iso(self.oldest_event),
            f"max_{self.unit}_per_second": self.rate,
            "windows_total": len(self.windows),
            "windows_done": len(self.windows) - len(self.to_run),
            "rows": self.total("rows"),
            "too_old": self.total("too_old"),
            "batches": self.total("batches"),
            "estimated_s": self.estimated_s(self.total("batches")),
            "windows": [
                {
                    "since": iso(w.since),
                    "until": iso(w.until),
                    "done": w.done,
                    "rows": w.rows,
                    "too_old": w.too_old,
                    "batches": w.batches,
                    "estimated_s": self.estimated_s(w.batches),
                }
                for w in self.windows
            ],
        }


@dataclass
class WindowReport:
    """One window of a backfill and what became of it."""

    since: datetime
    until: datetime
    status: str = "not_started"  # skipped (finished earlier) | not_started | its run's status
    finished: bool = False  # recorded in the ledger's backfill_windows
    run: RunReport | None = None

    def as_dict(self) -> dict[str, object]:
        window: dict[str, object] = {
            "since": iso(self.since),
            "until": iso(self.until),
            "status": self.status,
            "finished": self.finished,
        }
        if self.run is not None:
            run = self.run.as_dict()
            window |= {k: run[k] for k in ("run_id", *COUNTS, *BY_CODE, "duration_s", "message")}
        return window


@dataclass
class BackfillReport:
    """One backfill: its windows, and the counts of the runs it made, summed."""

    backfill_id: str
    since: datetime
    until: datetime
    window: timedelta
    windows: list[WindowReport]
    status: str = RunStatus.RUNNING.value  # as a RunReport's
    duration_s: float = 0.0
    message: str | None = None

    def total(self, count: str) -> int:
        return sum(int(getattr(w.run, count)) for w in self.windows if w.run is not None)

    def counter(self, name: str) -> Counter[str]:
        """`warnings` or `rejected_by_reason`, summed over the windows' runs."""
        return sum((getattr(w.run, name) for w in self.windows if w.run), Counter[str]())

    @property
    def rows_done(self) -> int:
        return sum(w.run.rows_done for w in self.windows if w.run is not None)

    def finish(self) -> None:
        """The status of the whole: the first run that failed or was interrupted ends
        it; else rejected or failed rows anywhere make it completed_with_rejections."""
        runs = [w.run for w in self.windows if w.run is not None]
        stopped = [r for r in runs if r.status in (RunStatus.FAILED, RunStatus.INTERRUPTED)]
        if stopped:
            self.status, self.message = stopped[0].status, stopped[0].message
        elif any(r.status != RunStatus.SUCCEEDED for r in runs):
            self.status = RunStatus.COMPLETED_WITH_REJECTIONS.value
        else:
            self.status = RunStatus.SUCCEEDED.value

    @property
    def exit_code(self) -> int:
        return exit_code_of(self.status)

    def as_dict(self) -> dict[str, object]:
        statuses = Counter(w.status for w in self.windows)
        return {
            "backfill_id": self.backfill_id,
            "since": iso(self.since),
            "until": iso(self.until),
            "window_s": self.window.total_seconds(),
            "status": self.status,
            "windows_total": len(self.windows),
            "windows_skipped": statuses["skipped"],
            "windows_finished": sum(w.finished for w in self.windows) - statuses["skipped"],
            "windows_left": sum(not w.finished for w in self.windows),
            **{count: self.total(count) for count in COUNTS},
            **{name: dict(self.counter(name).most_common()) for name in BY_CODE},
            "duration_s": self.duration_s,
            "message": self.message,
            "windows": [w.as_dict() for w in self.windows],
        }
