"""The numbers behind `ledger report`: one environment's ledger aggregated over an
event-time window by the DuckDB queries of `sql/report_*.sql` (no conversion comes into
Python one by one), with the hint that explains each reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import duckdb

from connector.digest import sql_file
from connector.report import exit_code_of
from connector.spec import HINTS, WARNINGS
from connector.status import Status

STATUSES = tuple(status.value for status in Status)
REASONS_SHOWN = 12  # the reasons charted and listed, largest first
RUNS_CHARTED = 500  # the latest runs in the run charts
WEEKLY_AFTER_DAYS = 400  # a longer span is charted by week
# What a reason of each status is, beside a reason code's own hint (`spec.HINTS`).
STATUS_HINTS = {
    Status.REJECTED: "the platform's message; sent again only when its payload changes "
    "(docs/delivery.md)",
    Status.FAILED: "the last error, after every attempt; the next sync sends it again",
}
# The hook for audience membership changes (issue 20): a section appears when the
# ledger has this table with these columns (`sql/report_audiences.sql` reads them).
AUDIENCE_TABLE = "audience_changes"
AUDIENCE_COLUMNS = frozenset(
    {"environment", "audience", "action", "status", "recorded_at", "settled_at"}
)


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows; small lists of aggregates, never the ledger's rows."""

    ledger: str
    environment: str
    since: datetime | None
    until: datetime | None
    now: datetime
    by_status: dict[str, int]
    attempts: int
    days: list[dict[str, Any]]  # event_day, end (the next day or week), status, conversions
    weekly: bool
    reasons: list[dict[str, Any]]  # status, reason, conversions, examples, hint
    reasons_total: int  # conversions rejected or failed, over every reason
    warnings: list[dict[str, Any]]  # warning, conversions, hint
    delay: list[dict[str, Any]]  # bucket, delay, conversions
    delay_quantiles: tuple[float, float, float] | None  # median, p90, p99 (s)
    runs: list[dict[str, Any]]  # newest first
    runs_total: int
    audiences: list[dict[str, Any]] | None  # None: the ledger has no audience changes

    @property
    def conversions(self) -> int:
        return sum(self.by_status.values())

    @property
    def accepted_share(self) -> float | None:
        total = self.conversions
        return self.by_status[Status.ACCEPTED] / total if total else None

    @property
    def charted_days(self) -> int:
        """Conversions in the day chart (the rest have no event day up to today)."""
        return sum(row["conversions"] for row in self.days)


def _hint(status: str, reason: str) -> str:
    if status == Status.REJECTED_LOCAL:
        return HINTS.get(reason, "")
    return STATUS_HINTS.get(Status(status), "")


class Query:
    """The report's queries over one connection, with the window's parameters."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        environment: str,
        since: datetime | None,
        until: datetime | None,
    ) -> None:
        self._con = con
        self._params = {"environment": environment, "since": since, "until": until}

    def rows(self, name: str, **params: Any) -> list[dict[str, Any]]:
        relation = self._con.execute(sql_file(name), self._params | params)
        columns = [column[0] for column in relation.description or ()]
        return [dict(zip(columns, row, strict=True)) for row in relation.fetchall()]

    def audiences(self) -> list[dict[str, Any]] | None:
        """Audience changes by day, audience and change, when the ledger records some
        (a ledger before schema 6 has no such table)."""
        found = self._con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = $table",
            {"table": AUDIENCE_TABLE},
        ).fetchall()
        if not {name for (name,) in found} >= AUDIENCE_COLUMNS:
            return None
        return self.rows("report_audiences.sql") or None


def gather(
    con: duckdb.DuckDBPyConnection,
    ledger: str,
    environment: str,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
) -> ReportData:
    """The report's numbers for conversions with an event time in [since, until) and
    runs started then (None: unbounded), as of `now` (days after its day are left out
    of the day chart)."""
    query = Query(con, environment, since, until)
    statuses = query.rows("report_status.sql", now=now)
    by_status = dict.fromkeys(STATUSES, 0) | {s["status"]: s["conversions"] for s in statuses}
    firsts = [s["first_day"] for s in statuses if s["first_day"] is not None]
    lasts = [s["last_day"] for s in statuses if s["last_day"] is not None]
    weekly = bool(firsts and lasts) and max(lasts) - min(firsts) > WEEKLY_AFTER_DAYS
    step = timedelta(days=7 if weekly else 1)
    days = [
        row | {"end": (date.fromisoformat(row["event_day"]) + step).isoformat()}
        for row in query.rows("report_days.sql", now=now, bucket=7 if weekly else 1)
    ]
    reasons = [
        row | {"hint": _hint(row["status"], row["reason"])}
        for row in query.rows("report_reasons.sql", limit=REASONS_SHOWN)
    ]
    delay = query.rows("report_delay.sql")
    quantiles = delay[0]["quantiles"] if delay else None
    runs = query.rows("report_runs.sql", limit=RUNS_CHARTED)
    for run in runs:
        run["exit_code"] = None if run["status"] == "running" else exit_code_of(run["status"])
    return ReportData(
        ledger=ledger,
        environment=environment,
        since=since,
        until=until,
        now=now,
        by_status=by_status,
        attempts=sum(s["attempts"] for s in statuses),
        days=days,
        weekly=weekly,
        reasons=reasons,
        reasons_total=sum(by_status[s] for s in ("rejected_local", "rejected", "failed")),
        warnings=[
            row | {"hint": WARNINGS.get(row["warning"], "")}
            for row in query.rows("report_warnings.sql")
        ],
        delay=[{k: v for k, v in row.items() if k != "quantiles"} for row in delay],
        delay_quantiles=tuple(quantiles) if quantiles else None,
        runs=runs,
        runs_total=runs[0]["runs_total"] if runs else 0,
        audiences=query.audiences(),
    )
