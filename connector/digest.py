"""Vectorized digests of polars columns: SHA-256 hex and RFC 4122 UUIDv5.

Owns: the one place the connector derives hashes and ids, all inside polars
(`polars-hash`: SHA-256 with the CPU's SHA instructions, and the SHA-1 of UUIDv5);
and the helpers every module uses to open DuckDB and read the `sql/` files. Must
not: loop over rows in Python.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
import weakref
from functools import cache
from pathlib import Path

import duckdb
import polars as pl
import polars_hash  # noqa: F401  (registers `chash` and `nchash`)

# A checkout (or editable install) has the repository's sql/ beside the package; a
# wheel ships the same files as connector/sql/ (see pyproject.toml).
_PACKAGE = Path(__file__).resolve().parent
SQL_DIR = _PACKAGE / "sql" if (_PACKAGE / "sql").is_dir() else _PACKAGE.parent / "sql"
MEMORY_LIMIT = "64MB"  # per DuckDB database (bench/memory.py: 5,000,000 rows)
# DuckDB's allocator keeps what its threads freed until a task has used this much
# (128 MB by default: more than both databases may hold, so it never let go);
# bench/memory.py peaked 15 MB lower with 8 MB.
ALLOCATOR_FLUSH = "8MB"
_VARIANT = {f"{i:x}": f"{(i & 3) | 8:x}" for i in range(16)}


@cache
def sql_file(name: str) -> str:
    """The text of a query file in `sql/`."""
    return (SQL_DIR / name).read_text(encoding="utf-8")


# No query may make DuckDB fetch or run an extension's code: autoinstall downloads it
# from the internet, autoload runs what an earlier install left on disk. Given when
# the database opens (its catalog, read then, may name an extension's type), then
# locked with every other setting.
EXTENSIONS_OFF = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def connect(
    database: str = ":memory:",
    read_only: bool = False,
    memory_limit: str = MEMORY_LIMIT,
    threads: int | None = None,
    adjustable: tuple[str, ...] = (),
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection; every module opens its DuckDB through this one.

    Extensions are neither installed nor loaded (`EXTENSIONS_OFF`), the session time
    zone is UTC, and then the configuration is locked (`lock_configuration`): a query
    cannot change a setting, but for those named in `adjustable`. Another connection
    to the same file in this process must pass `EXTENSIONS_OFF` too, as its config.

    DuckDB draws a progress bar on stdout for queries slower than 2 s; it would break
    `--json` (one JSON report on stdout), so it is off. Each database may hold
    `memory_limit` (DuckDB's own default is 80% of the machine, and a sorted source
    query of millions of rows took gigabytes); beyond it sorts, joins and aggregates
    spill to disk: beside the file of a file database, in a private temporary folder
    (removed with the connection) for an in-memory one. `threads` (default: one per
    core): fewer threads need less memory to sort. DuckDB's allocator hands freed
    memory back after each task that used more than `ALLOCATOR_FLUSH`.
    """
    config: dict[str, str | bool | int | float | list[str]] = dict(EXTENSIONS_OFF)
    if adjustable:
        config["allowed_configs"] = list(adjustable)
    con = duckdb.connect(database, read_only=read_only, config=config)
    try:
        con.execute("SET enable_progress_bar = false")  # its cursors inherit the setting
        con.execute(f"SET memory_limit = {quote_literal(memory_limit)}")
        if threads is not None:
            con.execute(f"SET threads = {int(threads)}")
        con.execute(f"SET allocator_flush_threshold = {quote_literal(ALLOCATOR_FLUSH)}")
        con.execute("SET TimeZone = 'UTC'")
        if database == ":memory:":
            spill = tempfile.mkdtemp(prefix="rokt-connector-duckdb-")
            con.execute(f"SET temp_directory = {quote_literal(spill)}")
            weakref.finalize(con, shutil.rmtree, spill, True)
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sha256(expr: pl.Expr) -> pl.Expr:
    """Lowercase hex SHA-256 of the UTF-8 text (null stays null)."""
    return expr.chash.sha2_256()  # type: ignore[attr-defined, no-any-return]


def uuid5(names: pl.Series, namespace: uuid.UUID, prefix: str = "") -> pl.Series:
    """`str(uuid.uuid5(namespace, prefix + name))` for every name (null stays null), in
    order."""
    # binary: concatenated
    name = pl.lit(namespace.bytes + prefix.encode()) + pl.col("name").cast(pl.Binary)
    hashed = pl.DataFrame({"name": names}).select(name.nchash.sha1().alias("h"))  # type: ignore[attr-defined]
    hx = pl.col("h")
    return (
        hashed.select(
            pl.format(
                "{}-{}-5{}-{}{}-{}",
                hx.str.slice(0, 8),
                hx.str.slice(8, 4),
                hx.str.slice(13, 3),
                hx.str.slice(16, 1).replace(_VARIANT),  # every value is a hex digit
                hx.str.slice(17, 3),
                hx.str.slice(20, 12),
            )
        )
        .to_series()
        .rename(names.name)
    )
