"""The ledger's `runs` table (each run's report, from start to finish) and its
`backfill_windows` (the backfill windows whose every row got a final outcome).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector.digest import sql_file
from connector.ledger.store import Store, check_path, connect_read_only, writing
from connector.report import COUNTS


class Runs(Store):
    """The runs and finished backfill windows of one environment's ledger."""

    def start_run(
        self, run_id: str, mode: str, since: datetime | None, until: datetime | None
    ) -> None:
        params = self._params(run_id=run_id, mode=mode, since=since, until=until)
        self._con.execute(sql_file("run_start.sql"), params | {"now": datetime.now(UTC)})

    def finish_run(self, report: dict[str, Any], message: str | None) -> None:
        """Store the run report (`RunReport.as_dict()`, `AudienceReport.run_counts()`) in
        its `runs` row."""
        params = {k: report[k] for k in (*COUNTS, "duration_s", "run_id", "status")}
        for key in ("warnings", "rejected_by_reason"):
            params[key] = json.dumps(report[key]) if report[key] else None
        with writing(self.path, "the run report"):
            self._con.execute(
                sql_file("run_finish.sql"), params | {"now": datetime.now(UTC), "message": message}
            )
        self.write_marker()

    def finished_windows(self) -> list[tuple[datetime, datetime]]:
        """`[since, until)` of every backfill window finished in this environment."""
        rows = self._con.sql(sql_file("backfill_finished.sql"), params=self._params()).fetchall()
        return [(since, until) for since, until in rows]

    def finish_window(
        self, since: datetime, until: datetime, backfill_id: str, run_id: str
    ) -> None:
        params = self._params(since=since, until=until, backfill_id=backfill_id, run_id=run_id)
        self._con.execute(sql_file("backfill_finish.sql"), params | {"now": datetime.now(UTC)})


def finished_windows(path: Path, environment: str) -> list[tuple[datetime, datetime]]:
    """`Runs.finished_windows`, read without taking the ledger's write lock (for a
    plan), none when there is no ledger yet; errors as `connect_read_only`'s."""
    check_path(path)
    if not path.is_file():
        return []
    with connect_read_only(path, environment) as con:
        tables = con.sql("SELECT table_name FROM duckdb_tables()").fetchall()
        if ("backfill_windows",) not in tables:  # a ledger from before backfills
            return []
        return Runs(con, path, environment).finished_windows()
