"""The DuckDB source: a DuckDB file and/or Parquet globs, the query file, streamed chunks.

Owns: opening the warehouse read-only, registering each `source.parquet` entry as a
view, running `source.query` with `$since` / `$until` bound as parameters (never
interpolated), and yielding the result as polars frames of at most `chunk_rows`
rows with lower-cased column names (each once, of a type polars reads). The session
time zone is UTC, so a naive timestamp in the SQL means UTC. The query is one SELECT
statement, and DuckDB installs and loads no extension for it (`digest.connect`).
Must not: hold the whole result in memory, change the warehouse, interpret column
values (that is `transform`'s job), or repeat a value of the data in an error message.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from connector.config import SourceConfig
from connector.digest import connect as connect_duckdb
from connector.digest import quote_identifier, quote_literal
from connector.errors import ConfigError, SourceError

_PARAMETER = re.compile(r"\$(since|until)\b")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def read_query(config: SourceConfig) -> str:
    """The query text, checked to filter on both `$since` and `$until`."""
    try:
        sql = config.query.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"source.query: cannot read {config.query}: {exc.strerror}") from None
    missing = {"since", "until"} - set(_PARAMETER.findall(sql))
    if missing:
        names = " and ".join(f"${m}" for m in sorted(missing))
        raise ConfigError(
            f"source.query: {config.query.name} must filter on $since and $until "
            f"(missing {names}), e.g. WHERE event_time >= $since AND event_time < $until"
        )
    _check_one_select(sql, config.query.name)
    return sql


def _check_one_select(sql: str, name: str) -> None:
    """The query is one SELECT (`WITH ...`, `FROM ...` and `VALUES ...` are too), never
    INSTALL or LOAD (an extension's code), SET, ATTACH, COPY or a second statement."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        return  # a syntax error: running the query reports it, with its line
    kinds = []
    for statement in statements:
        try:
            kinds.append(statement.type)
        except ValueError:  # a kind the Python API has no name for (UPDATE EXTENSIONS)
            kinds.append(duckdb.StatementType.INVALID)
    if kinds == [duckdb.StatementType.SELECT]:
        return
    # the first statement that is no SELECT, else the second SELECT
    number = next((i for i, kind in enumerate(kinds) if kind != duckdb.StatementType.SELECT), 1)
    words = " ".join(statements[number].query.split()[:2]).rstrip(";")
    raise ConfigError(
        f"source.query: {name} must be a single SELECT statement, but statement "
        f"{number + 1} of {len(statements)} begins {words!r}: the connector runs nothing "
        "else (no INSTALL or LOAD: it loads no DuckDB extension; no SET, ATTACH or COPY)"
    )


# DuckDB moves rows in vectors of 2048 values of 16 bytes per column, several at a time:
# a very wide query or Parquet file needs more than `source.memory_limit` just to run.
_BYTES_PER_COLUMN = 2048 * 16 * 4
_SIZE = re.compile(r"([\d.]+) ?(bytes|KiB|MiB|GiB|TiB)")
_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def _fit_memory(con: duckdb.DuckDBPyConnection, relation: duckdb.DuckDBPyRelation) -> str:
    """Raise DuckDB's memory limit to what reading `relation` needs (never lower it);
    returns the limit now set."""
    needed = len(relation.columns) * _BYTES_PER_COLUMN
    setting = con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
    size = _SIZE.fullmatch(str(setting))
    if size is None or needed > float(size[1]) * _UNITS[size[2]]:
        con.execute(f"SET memory_limit = '{needed}B'")
        return f"{needed}B"
    return str(setting)


# Copies of file blocks (the warehouse's tables, Parquet files) DuckDB keeps once read
_READ_BLOCKS = """
SELECT coalesce(sum(memory_usage_bytes) FILTER (tag IN ('BASE_TABLE', 'EXTERNAL_FILE_CACHE')), 0),
       sum(memory_usage_bytes)
FROM duckdb_memory()
"""
_KEEP_READ_BYTES = 8 << 20


def _drop_read_blocks(con: duckdb.DuckDBPyConnection, limit: str) -> None:
    """Evict the file blocks the query has read, and restore the memory `limit`.

    DuckDB keeps every block it reads until its memory limit is reached, yet a query
    read once from start to end never reads a block twice: they filled 50 of the
    source's 64 MB in bench/memory.py. Lowering the limit is how DuckDB is told to
    evict; what a sort holds pinned stays (then the lowered limit is refused).
    """
    [(read, used)] = con.execute(_READ_BLOCKS).fetchall()
    if read < _KEEP_READ_BYTES:
        return
    with contextlib.suppress(duckdb.OutOfMemoryException):
        con.execute(f"SET memory_limit = '{max(int(used) - int(read), 1 << 20)}B'")
    con.execute(f"SET memory_limit = {quote_literal(limit)}")


@contextmanager
def connect(config: SourceConfig) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection with the warehouse attached read-only and the Parquet views."""
    # one thread: the query outruns the rest of the pipeline, and sorts in half the
    # memory; the memory limit moves as the query reads (`_fit_memory`, `_drop_read_blocks`)
    con = connect_duckdb(memory_limit=config.memory_limit, threads=1, adjustable=("memory_limit",))
    try:
        if config.database is not None:
            if not config.database.is_file():
                raise SourceError(f"source.database: no DuckDB file at {config.database}")
            try:
                path = quote_literal(str(config.database))
                con.execute(f"ATTACH {path} AS warehouse (READ_ONLY)")
            except duckdb.Error as exc:
                raise SourceError(
                    f"source.database: cannot open {config.database}: {exc}"
                ) from None
            con.execute("USE warehouse")
        for name, pattern in config.parquet.items():
            try:
                con.execute(
                    f"CREATE TEMP VIEW {quote_identifier(name)} AS "
                    f"SELECT * FROM read_parquet({quote_literal(pattern)})"
                )
                view = con.sql(f"SELECT * FROM {quote_identifier(name)}")
                _fit_memory(con, view)
                view.limit(0).fetchall()
            except duckdb.Error as exc:
                raise SourceError(f"source.parquet.{name}: {pattern}: {exc}") from None
        yield con
    finally:
        con.close()


# Extensions a query may reach for, and what to write instead.
_EXTENSION = re.compile(
    r"exists in the (\w+) extension|requires the extension (\w+)|"
    r'Extension "(\w+)" is an existing extension'
)
_INSTEAD = {
    "inet": "select the address as text, e.g. CAST(ip AS VARCHAR) AS ipaddress (the "
    "connector checks it is an IPv4 or IPv6 address)",
    "httpfs": "copy the files to local disk and read them from there",
}
_INSTEAD_ANY = "write that part with DuckDB's built-in functions and types"


def _needs_extension(message: str) -> str | None:
    """What to do when DuckDB's error `message` says an extension is missing."""
    found = _EXTENSION.search(message)
    if found is None:
        return None
    name = next(group for group in found.groups() if group)
    return (
        f"This query needs the DuckDB extension {name}, which rokt-connector does not "
        f"load (loading one runs code fetched from the internet): "
        f"{_INSTEAD.get(name, _INSTEAD_ANY)}."
    )


def _query_error(config: SourceConfig, sql: str, exc: Exception) -> SourceError:
    """The query's error, without the values DuckDB quotes from the data (a failed
    cast prints the row's value: a customer's email); what the SQL itself says stays
    (DuckDB may lower-case a name), and a missing extension gets what to do instead."""
    if isinstance(exc, duckdb.OutOfMemoryException):
        return SourceError(
            f"{config.query.name}: {str(exc).splitlines()[0]}; raise source.memory_limit "
            f"(now {config.memory_limit}) or simplify the query"
        )
    query, lowered = config.query, sql.lower()
    head, _, rest = str(exc).partition("\n")
    head = _QUOTED.sub(
        lambda m: m[0] if m[0][1:-1].lower() in lowered else f"{m[0][0]}<value>{m[0][0]}", head
    )
    hint = _needs_extension(str(exc))
    context = rest[rest.find("LINE ") :].rstrip() if "LINE " in rest else ""  # the SQL, marked
    return SourceError(
        f"{query.name}: {head}" + (f" {hint}" if hint else "") + (f"\n{context}" if context else "")
    )


def counts(config: SourceConfig, windows: Sequence[tuple[datetime, datetime]]) -> list[int]:
    """How many rows the query returns for each `[since, until)` (for progress and plans)."""
    sql = f"SELECT count(*) FROM (\n{read_query(config).rstrip().rstrip(';')}\n)"
    with connect(config) as con:
        try:
            return [
                int(con.sql(sql, params={"since": since, "until": until}).fetchall()[0][0])
                for since, until in windows
            ]
        except duckdb.Error as exc:
            raise _query_error(config, sql, exc) from None


def _check_columns(schema: pa.Schema, query: str) -> None:
    """Each column name once (case-blind), and of a type polars can read."""
    seen: set[str] = set()
    for field in schema:
        if field.name.lower() in seen:
            raise SourceError(f"{query}: column {field.name} appears twice (names are case-blind)")
        seen.add(field.name.lower())
        if pa.types.is_interval(field.type):  # polars cannot import these (it panics)
            raise SourceError(
                f"{query}: column {field.name} has type INTERVAL, which the connector cannot "
                f"read; cast it in the query, e.g. CAST({field.name} AS VARCHAR)"
            )


def chunks(
    config: SourceConfig, since: datetime, until: datetime, limit: int | None = None
) -> Iterator[pl.DataFrame]:
    """Rows of the query for `[since, until)`, `chunk_rows` at a time (at most `limit`)."""
    sql = read_query(config)
    if limit is not None:
        sql = f"SELECT * FROM (\n{sql.rstrip().rstrip(';')}\n) LIMIT {int(limit)}"
    with connect(config) as con:
        try:
            relation = con.sql(sql, params={"since": since, "until": until})
            memory_limit = _fit_memory(con, relation)
            reader = relation.to_arrow_reader(config.chunk_rows)
        except duckdb.Error as exc:
            raise _query_error(config, sql, exc) from None
        _check_columns(reader.schema, config.query.name)
        try:
            with con.cursor() as settings:  # `con` is busy with the query
                for batch in reader:
                    _drop_read_blocks(settings, memory_limit)
                    frame = pl.from_arrow(batch)
                    assert isinstance(frame, pl.DataFrame)
                    if frame.height:
                        yield frame.rename(str.lower)
        except (duckdb.Error, pl.exceptions.PolarsError, pa.ArrowException) as exc:
            raise _query_error(config, sql, exc) from None


def members(config: SourceConfig, query: Path) -> Iterator[pl.DataFrame]:
    """Every row of the query file `query`, which has no window (`audiences.query`), run
    against the source's warehouse and views, `chunk_rows` at a time."""
    try:
        sql = query.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"audiences.query: cannot read {query}: {exc.strerror}") from None
    _check_one_select(sql, query.name)
    window = config.model_copy(update={"query": query})  # errors name this file
    with connect(config) as con:
        try:
            reader = con.sql(sql).to_arrow_reader(config.chunk_rows)
        except duckdb.Error as exc:
            raise _query_error(window, sql, exc) from None
        _check_columns(reader.schema, query.name)
        try:
            for batch in reader:
                frame = pl.from_arrow(batch)
                assert isinstance(frame, pl.DataFrame)
                if frame.height:
                    yield frame.rename(str.lower)
        except (duckdb.Error, pl.exceptions.PolarsError, pa.ArrowException) as exc:
            raise _query_error(window, sql, exc) from None


class DuckDBSource:
    """A DuckDB file and/or Parquet globs (`source.kind: duckdb`, the default)."""

    def __init__(self, config: SourceConfig) -> None:
        self.config = config

    def chunks(
        self, since: datetime, until: datetime, limit: int | None = None
    ) -> Iterator[pl.DataFrame]:
        return chunks(self.config, since, until, limit)

    def counts(self, windows: Sequence[tuple[datetime, datetime]]) -> list[int]:
        return counts(self.config, windows)

    def members(self, query: Path) -> Iterator[pl.DataFrame]:
        return members(self.config, query)
