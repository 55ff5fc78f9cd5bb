"""The ledger file: opening it safely (one writer at a time: exit 4 for a second),
creating its schema (`sql/ledger.sql`), migrating an older one, and the read-only
and dry-run modes; each open checks the file against its marker (`ledger.marker`).
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import duckdb

from connector import files
from connector.digest import connect, sql_file
from connector.errors import EXIT_LOCKED, ConfigError, ConnectorError, LedgerWriteError
from connector.ledger import marker

# The ledger schema this code writes; sql/ledger_migrate_<n>_to_<n+1>.sql (each says
# what its step adds) upgrades an older ledger step by step when it is opened.
SCHEMA_VERSION = 7


class LedgerLocked(ConnectorError):
    """Another process has the ledger open: one run at a time."""

    exit_code = EXIT_LOCKED


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


def check_path(path: Path, new_ledger: bool = False) -> None:
    """Before anything opens or creates the ledger: neither it, its WAL nor its marker
    is a symbolic link, and no marker records a ledger that is gone. DuckDB creates
    the ledger and its WAL itself, following a link: this check, and the umask of 077
    `Store.open` holds, are what keeps them from being redirected."""
    fix = f"set ledger.path to the file's own path ({path.resolve()})"
    files.refuse_link(path, "ledger.path", fix)
    files.refuse_link(_wal(path), "ledger.path's WAL")
    files.refuse_link(marker.marker_path(path), marker.WHAT)
    marker.check_missing(path, new_ledger)  # lost, not "not yet"


def connect_read_only(path: Path, environment: str) -> duckdb.DuckDBPyConnection:
    """The ledger of `environment`, for reading only (the audit commands).

    Several readers may share it, but not with a run writing it: then exit 4. Exit 2
    when there is no ledger, it is another environment's, or it needs an upgrade
    (which only a writing run performs), or it, its WAL or its marker is a link.
    """
    check_path(path)
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


@contextmanager
def writing(path: Path, what: str) -> Iterator[None]:
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


class Store:
    """One environment's ledger file, open (and, for writing, locked) while in use."""

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
        # one lookup, record or settle at a time (a run calls them from several
        # threads; each is short): overlapping writes to one table are not trusted
        self._busy = threading.Lock()

    @classmethod
    def open(cls, path: Path, environment: str, *, new_ledger: bool = False) -> Self:
        """Open (or create, owner-only) the ledger and check it is this environment's,
        and the one the marker beside it records (`new_ledger`: start a new history
        where the marker's ledger is missing or replaced)."""
        check_path(path, new_ledger)
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
        store = cls(con, path, environment, umask)
        try:
            con.execute(sql_file("ledger.sql"))
            store._check_meta()
            con.execute(sql_file("runs_interrupted.sql"))
            if existed:
                marker.check_same(path, store.history(), new_ledger)
            store.write_marker()
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def read_only(cls, path: Path, environment: str) -> Self:
        """The ledger for reading only, errors as `connect_read_only`'s."""
        return cls(connect_read_only(path, environment), path, environment)

    @classmethod
    def for_dry_run(cls, path: Path, environment: str, *, new_ledger: bool = False) -> Self:
        """What a dry run looks up, creating and writing nothing: the ledger read-only,
        checked against its marker as `open` checks it; when there is none yet, an
        empty one in memory (nothing settled, no rejection known)."""
        check_path(path, new_ledger)
        if not path.exists():
            empty = cls(connect(), path, environment)
            empty._con.execute(sql_file("ledger.sql"))
            return empty
        store = cls.read_only(path, environment)
        try:
            marker.check_same(path, store.history(), new_ledger)
        except BaseException:
            store.close()
            raise
        return store

    def history(self) -> marker.History:
        """This ledger's id, environment and runs (what its marker records)."""
        [(ledger_id, runs, last_run_id, last_run_at)] = self._con.execute(
            sql_file("ledger_history.sql")
        ).fetchall()  # all: an unfinished result would block the connection
        started = last_run_at.isoformat() if last_run_at is not None else None
        return marker.History(ledger_id, self.environment, runs, last_run_id, started)

    def write_marker(self) -> None:
        marker.write(self.path, self.history())

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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _params(self, **extra: Any) -> dict[str, Any]:
        return {"environment": self.environment, **extra}
