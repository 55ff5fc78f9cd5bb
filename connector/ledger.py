"""The results ledger: what became of every conversion, one DuckDB file per project.

Owns: the ledger file (DDL and queries in `sql/ledger*.sql`), the lock that keeps
one run at a time (DuckDB's own file lock: a second process gets exit 4), its
identity (`ledger_meta`: id, environment, schema version and migrations; the marker
file beside it, `connector.ledger_marker`, so a lost ledger is noticed), the rules
of DESIGN.md (write-ahead `pending`, settle after the response, skip `accepted` and
unchanged `rejected`), the `attempts` history (written with each settle), and the `runs`
table (first-wins deduplication within a run is `connector.dedup`'s).
Must not: store raw PII (only `identity_sha256`), or decide what to send.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from connector import files, ledger_marker
from connector.digest import connect, sql_file
from connector.errors import EXIT_LOCKED, ConfigError, ConnectorError, LedgerWriteError
from connector.ref_index import RefIndex
from connector.report import COUNTS

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
_SCANS_BEFORE_INDEX = 2

# The ledger schema this code writes; sql/ledger_migrate_<n>_to_<n+1>.sql upgrades
# an older ledger step by step when it is opened (2: `ledger_meta.ledger_id`;
# 3: `runs.isolated`; 4: warnings, known rejections and the report's new counts).
SCHEMA_VERSION = 5


def _open_error(path: Path, exc: duckdb.Error, reading: bool = False) -> ConnectorError:
    """Exit 4 when another run holds the file; exit 2, never a fresh start, otherwise."""
    message = str(exc)
    if "lock" in message.lower():
        pid = re.search(r"PID (\d+)", message)
        holder = f" (process {pid.group(1)})" if pid else ""
        if reading:
            return LedgerLocked(
                f"another run{holder} is writing the ledger {path}, and DuckDB lets no other "
                "process read it meanwhile; run this again when that run has finished"
            )
        return LedgerLocked(f"another run holds the ledger {path}{holder}; wait for it to finish")
    return ConfigError(
        f"ledger.path: {path} cannot be opened as a DuckDB ledger ({message.splitlines()[0]}); "
        "restore it from a backup or move it aside: starting a new ledger would send "
        "every conversion again"
    )


def _other_environment(path: Path, recorded: str | None, environment: str) -> ConfigError:
    return ConfigError(
        f"ledger.path: {path} records environment {recorded!r}, this config sends to "
        f"{environment!r}; use one ledger per environment"
    )


def _checked_version(meta: dict[str, str], path: Path, environment: str) -> int:
    """The ledger's schema version, once its `ledger_meta` shows it is this
    environment's and not newer than this code."""
    if meta.get("environment") != environment:
        raise _other_environment(path, meta.get("environment"), environment)
    text = meta.get("schema_version", "")
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(
            f"ledger.path: {path} records no valid schema version ({text!r}); "
            "restore the ledger from a backup"
        )
    version = int(text)
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"ledger.path: {path} has schema version {version}, newer than this "
            f"rokt-connector understands ({SCHEMA_VERSION}); upgrade rokt-connector"
        )
    return version


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _check_path(path: Path, new_ledger: bool = False) -> None:
    """Before anything opens or creates the ledger: neither it, its WAL nor its marker
    is a symbolic link, and no marker records a ledger that is gone. DuckDB creates
    the ledger and its WAL itself, following a link: this check, and the umask of 077
    `Ledger.open` holds, are what keeps them from being redirected."""
    fix = f"set ledger.path to the file's own path ({path.resolve()})"
    files.refuse_link(path, "ledger.path", fix)
    files.refuse_link(_wal(path), "ledger.path's WAL")
    files.refuse_link(ledger_marker.marker_path(path), ledger_marker.WHAT)
    ledger_marker.check_missing(path, new_ledger)  # lost, not "not yet"


def connect_read_only(path: Path, environment: str) -> duckdb.DuckDBPyConnection:
    """The ledger of `environment`, for reading only (the audit commands).

    Several readers may share it, but not with a run writing it: then exit 4. Exit 2
    when there is no ledger, it is another environment's, or it needs an upgrade
    (which only a writing run performs), or it, its WAL or its marker is a link.
    """
    _check_path(path)
    if not path.is_file():
        raise ConfigError(f"ledger.path: no ledger at {path} yet; a sync creates it")
    try:
        con = connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise _open_error(path, exc, reading=True) from None
    try:
        tables = {name for (name,) in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()}
        if not {"ledger", "attempts", "runs", "ledger_meta"} <= tables:
            raise ConfigError(
                f"ledger.path: {path} is not a rokt-connector ledger, or one written by an "
                "older version: the next sync upgrades it"
            )
        meta = dict(con.execute("SELECT key, value FROM ledger_meta").fetchall())
        if _checked_version(meta, path, environment) < SCHEMA_VERSION:
            raise ConfigError(
                f"ledger.path: {path} was written by an older rokt-connector; the next sync "
                "upgrades it"
            )
    except BaseException:
        con.close()
        raise
    return con


class LedgerLocked(ConnectorError):
    """Another process has the ledger open: one run at a time."""

    exit_code = EXIT_LOCKED


@contextmanager
def _writing(path: Path, what: str) -> Iterator[None]:
    """A DuckDB error while writing `what` becomes a `LedgerWriteError` naming the file."""
    try:
        yield
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LedgerWriteError(
            f"ledger.path: writing {what} to {path} failed: {first}. Conversions not yet "
            "settled stay pending; once the cause is fixed (if DuckDB calls the file "
            "corrupt, restore it from a copy), the next run resends them with the same "
            "request ids"
        ) from None


class Ledger:
    """The ledger of one environment, open (and locked) for the length of a run."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        path: Path,
        environment: str,
        umask: int | None = None,
    ) -> None:
        self._con = con
        self._umask = umask  # the process's own while `open` holds 077; restored on close
        self.path = path
        self.environment = environment
        self._lookups = 0
        self._index: RefIndex | None = None
        # one lookup, record or settle at a time (a run calls them from several threads):
        # each is short, and overlapping writes to one table are where DuckDB once
        # reported a corrupted string segment in a 5,000,000-row run (not reproduced)
        self._busy = threading.Lock()

    @classmethod
    def open(cls, path: Path, environment: str, *, new_ledger: bool = False) -> Ledger:
        """Open (or create, owner-only) the ledger and check it is this environment's,
        and the one the marker beside it records (`new_ledger`: start a new history
        where the marker's ledger is missing or replaced)."""
        _check_path(path, new_ledger)
        existed = path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        # A ledger or WAL made by an older version, or by hand, becomes owner-only
        # before DuckDB opens it: closing a descriptor of the file once DuckDB holds it
        # would drop DuckDB's lock (POSIX record locks belong to the process).
        for file in (path, _wal(path)):
            files.restrict(file)
        # Owner-only while the ledger is open: the file, its WAL (which DuckDB creates
        # again after every checkpoint) and the marker, from their first byte.
        umask = os.umask(0o077)
        try:
            con = connect(str(path), threads=1)
        except duckdb.Error as exc:
            os.umask(umask)
            raise _open_error(path, exc) from None
        ledger = cls(con, path, environment, umask)
        try:
            con.execute(sql_file("ledger.sql"))
            ledger._check_meta()
            con.execute(sql_file("runs_interrupted.sql"))
            if existed:
                ledger_marker.check_same(path, ledger.history(), new_ledger)
            ledger.write_marker()
        except BaseException:
            ledger.close()
            raise
        return ledger

    @classmethod
    def read_only(cls, path: Path, environment: str) -> Ledger:
        """The ledger for `lookup` only, errors as `connect_read_only`'s."""
        return cls(connect_read_only(path, environment), path, environment)

    @classmethod
    def for_dry_run(cls, path: Path, environment: str, *, new_ledger: bool = False) -> Ledger:
        """What a dry run looks up, creating and writing nothing: the ledger read-only,
        checked against its marker as `open` checks it; when there is none yet, an
        empty one in memory (nothing settled, no rejection known)."""
        _check_path(path, new_ledger)
        if not path.exists():
            empty = cls(connect(), path, environment)
            empty._con.execute(sql_file("ledger.sql"))
            return empty
        ledger = cls.read_only(path, environment)
        try:
            ledger_marker.check_same(path, ledger.history(), new_ledger)
        except BaseException:
            ledger.close()
            raise
        return ledger

    def history(self) -> ledger_marker.History:
        """This ledger's id, environment and runs (what its marker records)."""
        [(ledger_id, runs, last_run_id, last_run_at)] = self._con.execute(
            sql_file("ledger_history.sql")
        ).fetchall()  # all: an unfinished result would block the connection
        started = last_run_at.isoformat() if last_run_at is not None else None
        return ledger_marker.History(ledger_id, self.environment, runs, last_run_id, started)

    def write_marker(self) -> None:
        ledger_marker.write(self.path, self.history())

    def _check_meta(self) -> None:
        meta = dict(self._con.execute("SELECT key, value FROM ledger_meta").fetchall())
        if not meta:  # a new ledger (or one from before ledger_meta): adopt it
            rows = self._con.execute("SELECT DISTINCT environment FROM ledger").fetchall()
            others = sorted({env for (env,) in rows} - {self.environment})
            if others:
                raise _other_environment(self.path, others[0], self.environment)
            self._con.executemany(
                "INSERT INTO ledger_meta VALUES (?, ?)",
                [
                    ["schema_version", str(SCHEMA_VERSION)],
                    ["environment", self.environment],
                    ["ledger_id", str(uuid.uuid4())],
                ],
            )
            return
        version = _checked_version(meta, self.path, self.environment)
        for step in range(version, SCHEMA_VERSION):  # migrations, oldest first
            self._con.begin()
            self._con.execute(sql_file(f"ledger_migrate_{step}_to_{step + 1}.sql"))
            self._con.commit()

    def close(self) -> None:
        self._con.close()
        if self._umask is not None:
            os.umask(self._umask)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _params(self, **extra: Any) -> dict[str, Any]:
        return {"environment": self.environment, **extra}

    def lookup(self, refs: pl.Series) -> pl.DataFrame:
        """(ref, status, payload_sha256, payload_prefix) of the refs the ledger already
        has: the payload hash of the rejected ones (the only ones whose payload decides),
        the first 32 bits of the accepted ones' (`payload_prefix`).

        A run uses the answer for a ref's first row only. Its first chunks are looked
        up in the ledger file (a scan of it per chunk); from then on, in an index of the
        ledger's refs built once in memory (`RefIndex`), so a long run's check costs a
        binary search per ref rather than a scan of the whole ledger per chunk.
        """
        self._lookups += 1
        chunk = refs.drop_nulls()
        with self._busy, self._con.cursor() as con:
            if self._index is None and self._lookups > _SCANS_BEFORE_INDEX:
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
        with self._busy, _writing(self.path, "pending rows"), self._con.cursor() as con:
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
        with self._busy, _writing(self.path, "rejected rows"), self._con.cursor() as con:
            con.register("chunk_rejections", rejections)
            con.execute(sql_file("rejected_rows_record.sql"), params)

    def settle(self, settled: pl.DataFrame, tries: pl.DataFrame, run_id: str) -> None:
        """Final states and every attempt behind them, in one transaction: `settled`
        and `tries` as sql/ledger_settle.sql describes them."""
        with self._busy, _writing(self.path, "answers"), self._con.cursor() as con:
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

    def start_run(self, run_id: str, mode: str, since: datetime, until: datetime) -> None:
        params = self._params(run_id=run_id, mode=mode, since=since, until=until)
        self._con.execute(sql_file("run_start.sql"), params | {"now": datetime.now(UTC)})

    def finish_run(self, report: dict[str, Any], message: str | None) -> None:
        """Store the run report (`RunReport.as_dict()`) in its `runs` row."""
        params = {k: report[k] for k in (*COUNTS, "duration_s", "run_id", "status")}
        for key in ("warnings", "rejected_by_reason"):
            params[key] = json.dumps(report[key]) if report[key] else None
        with _writing(self.path, "the run report"):
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
    """`Ledger.finished_windows`, read without taking the ledger's write lock (for a
    plan), none when there is no ledger yet; errors as `connect_read_only`'s."""
    _check_path(path)
    if not path.is_file():
        return []
    with connect_read_only(path, environment) as con:
        tables = con.sql("SELECT table_name FROM duckdb_tables()").fetchall()
        if ("backfill_windows",) not in tables:  # a ledger from before backfills
            return []
        return Ledger(con, path, environment).finished_windows()
