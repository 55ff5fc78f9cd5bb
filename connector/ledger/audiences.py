"""The ledger's audience tables: the membership Rokt holds (`audience_members`) and every
change (`audience_changes`), read before a run, written ahead of each batch and settled
after its answer, in transactions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl

from connector.digest import sql_file
from connector.ledger.store import Store, writing

RECORD_SLICE = 10_000  # changes written pending in one transaction


def _statements(name: str) -> list[str]:
    """The statements of a sql/ file of several."""
    return [s for s in sql_file(name).split(";\n") if s.strip() and not _comment_only(s)]


def _comment_only(statement: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in statement.split("\n"))


class Audiences(Store):
    """What one environment's ledger knows of its audiences."""

    def _frame(self, name: str, **frames: pl.DataFrame) -> pl.DataFrame:
        with self._busy, self._con.cursor() as con:
            for key, registered in frames.items():
                con.register(key, registered)
            frame: pl.DataFrame = con.sql(sql_file(name), params=self._params()).pl()
        return frame

    def delivered_members(self) -> pl.DataFrame:
        """(audience, member_key, identities) of every member Rokt holds."""
        return self._frame("audience_delivered.sql")

    def open_changes(self) -> pl.DataFrame:
        """The latest change of each member whose latest is undelivered
        (sql/audience_open_changes.sql)."""
        return self._frame("audience_open_changes.sql")

    def last_changes(self, keys: pl.DataFrame) -> pl.DataFrame:
        """The latest change of each (audience, member_key) of `keys`
        (sql/audience_last_changes.sql)."""
        return self._frame("audience_last_changes.sql", keys=keys)

    def _transaction(self, what: str, name: str, frames: dict[str, Any], **params: Any) -> None:
        with self._busy, writing(self.path, what), self._con.cursor() as con:
            for key, frame in frames.items():
                con.register(key, frame)
            values = self._params(**params) | {"now": datetime.now(UTC)}
            con.execute("BEGIN TRANSACTION")
            try:
                for statement in _statements(name):  # each with the parameters it names
                    used = {k: v for k, v in values.items() if f"${k}" in statement}
                    con.execute(statement, used)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def record_changes(self, changes: pl.DataFrame, superseded: pl.Series, run_id: str) -> None:
        """Write `changes` pending (change_id, audience, member_key, action, seq,
        request_id, identities, attributes, event_ms) and close the `superseded` change
        ids, `RECORD_SLICE` changes to a transaction (within the ledger's memory limit)."""
        gone = superseded.to_frame("change_id")
        for start in range(0, max(changes.height, 1), RECORD_SLICE):
            frames = {"changes": changes.slice(start, RECORD_SLICE), "superseded": gone}
            self._transaction(
                "pending audience changes", "audience_record.sql", frames, run_id=run_id
            )
            gone = gone.clear()

    def settle_changes(self, settled: pl.DataFrame, run_id: str) -> None:
        """Final states (change_id, status, reason, attempts) and the membership they make."""
        if settled.is_empty():
            return
        self._transaction(
            "audience answers", "audience_settle.sql", {"settled": settled}, run_id=run_id
        )

    def audience_status(self) -> list[dict[str, Any]]:
        """Per audience: members delivered, pending, failed, rejected, adds, drops, last change."""
        rows: list[dict[str, Any]] = self._frame("audience_status.sql").to_dicts()
        return rows
