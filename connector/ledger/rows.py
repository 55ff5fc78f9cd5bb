"""The ledger's rows, one per conversion: look-up, write-ahead record and settle (with
the `attempts` history), and the fingerprints of rows rejected before sending.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from connector.digest import sql_file
from connector.ledger.index import RefIndex
from connector.ledger.store import Store, writing

_ROW_COLUMNS: dict[str, pl.DataType] = {
    "ref": pl.String(),
    "status": pl.String(),
    "reason": pl.String(),
    "http_status": pl.Int32(),
    "attempts": pl.Int32(),
    "request_id": pl.String(),
    "payload_sha256": pl.String(),
    "identity_sha256": pl.String(),
    "conversiontype": pl.String(),
    "amount": pl.Float64(),
    "currency": pl.String(),
    "event_ms": pl.Int64(),
    "last_attempt_at": pl.Datetime("us", "UTC"),
    "accepted_at": pl.Datetime("us", "UTC"),
    "warnings": pl.String(),
}

# Chunks a run looks up in the ledger file before it builds an index of the ledger's refs
# in memory: a short run never pays for the index (about three scans' worth).
SCANS_BEFORE_INDEX = 2


class Rows(Store):
    """What the ledger knows of each conversion, read and written during a run."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        path: Path,
        environment: str,
        umask: int | None = None,
    ) -> None:
        super().__init__(con, path, environment, umask)
        self._lookups = 0
        self._index: RefIndex | None = None

    @property
    def indexed(self) -> bool:
        """Whether lookups now answer from the in-memory index of the ledger's refs."""
        return self._index is not None

    def lookup(self, refs: pl.Series) -> pl.DataFrame:
        """(ref, status, payload_sha256, payload_prefix) of the refs the ledger already
        has: the payload hash of the rejected ones (the only ones whose payload decides),
        the first 32 bits of the accepted ones' (`payload_prefix`).

        A run uses the answer for a ref's first row only. Its first chunks are looked up
        in the ledger file (a scan of it per chunk); from then on, in an index of the
        ledger's refs built once in memory (`RefIndex`), so a long run's check costs a
        binary search per ref rather than a scan of the whole ledger per chunk.
        """
        self._lookups += 1
        chunk = refs.drop_nulls()
        with self._busy, self._con.cursor() as con:
            if self._index is None and self._lookups > SCANS_BEFORE_INDEX:
                self._index = RefIndex.build(con, self.environment)
            if self._index is not None:
                return self._index.lookup(con, chunk)
            con.register("chunk_refs", pl.DataFrame({"ref": chunk}))
            known: pl.DataFrame = con.sql(sql_file("ledger_lookup.sql"), params=self._params()).pl()
        return known

    def record(self, rows: pl.DataFrame, run_id: str, transport: str) -> None:
        """Upsert one row per conversion; `rows` has any of the `_ROW_COLUMNS`."""
        if rows.is_empty():
            return
        full = rows.select(
            pl.col(name).cast(dtype) if name in rows.columns else pl.lit(None, dtype).alias(name)
            for name, dtype in _ROW_COLUMNS.items()
        ).with_columns(pl.col("attempts").fill_null(0))
        params = self._params(run_id=run_id, transport=transport, now=datetime.now(UTC))
        with self._busy, writing(self.path, "pending rows"), self._con.cursor() as con:
            con.register("rows", full)
            con.execute(sql_file("ledger_upsert.sql"), params)

    def known_rejections(self, rejections: pl.DataFrame) -> pl.Series:
        """Which rows of `rejections(row_sha256, reason)` were rejected before just so."""
        with self._busy, self._con.cursor() as con:
            con.register("chunk_rejections", rejections)
            known = con.sql(sql_file("rejected_rows_known.sql"), params=self._params()).pl()
        return rejections["row_sha256"].is_in(known["row_sha256"].implode())

    def remember_rejections(self, rejections: pl.DataFrame, run_id: str) -> None:
        """Record `rejections(row_sha256, reason)`, for `known_rejections` of later runs."""
        if rejections.is_empty():
            return
        params = self._params(run_id=run_id, now=datetime.now(UTC))
        with self._busy, writing(self.path, "rejected rows"), self._con.cursor() as con:
            con.register("chunk_rejections", rejections)
            con.execute(sql_file("rejected_rows_record.sql"), params)

    def settle(self, settled: pl.DataFrame, tries: pl.DataFrame, run_id: str) -> None:
        """Final states and every attempt behind them, in one transaction: `settled`
        and `tries` as sql/ledger_settle.sql describes them."""
        with self._busy, writing(self.path, "answers"), self._con.cursor() as con:
            con.register("settled", settled)
            con.register("tries", tries)
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(sql_file("ledger_attempts.sql"), self._params(run_id=run_id))
                con.execute(sql_file("ledger_settle.sql"), self._params(run_id=run_id))
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
