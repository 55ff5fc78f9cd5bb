"""The warehouse source (`source.kind: adbc`): the query runs in the warehouse through its ADBC
driver, `$since` / `$until` bound in the driver's style, the rows streamed back in chunks."""

from __future__ import annotations

import importlib
import re
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import polars as pl
import pyarrow as pa

from connector.config import SourceConfig, WarehouseConfig
from connector.errors import ConfigError, SourceError
from connector.sources.adbc_dialects import DIALECTS, Dialect

# fmt: off
_PG_READ = {"numeric", "int2", "int4", "int8", "float4", "float8", "bool", "text", "varchar",
            "bpchar", "name", "date", "timestamp", "timestamptz", "uuid"}
_READABLE = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal, pa.types.is_null,
             pa.types.is_boolean, pa.types.is_string, pa.types.is_large_string,
             pa.types.is_string_view, pa.types.is_date, pa.types.is_timestamp)
# strings, quoted names and comments (where `$since` is no parameter), then the parameters
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|--[^\n]*|/\*.*?\*/"
                    r"|\$(since|until)\b|\$(\w*)\$.*?\$\2\$", re.DOTALL)
# fmt: on
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_SECRETISH = re.compile(r"pass|secret|token|key|credential|auth", re.IGNORECASE)
_SETTING = re.compile(r"(\w+)\s*=\s*('[^']*'|[^\s&;]+)")


def read_query(config: SourceConfig, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    """The query file as the driver takes it: with the driver's placeholders, and what each
    parameter bound is (`since` or `until`, in order)."""
    path, found = config.query, []
    try:
        text = path.read_text(encoding="utf-8").rstrip().rstrip(";")
    except OSError as exc:
        raise ConfigError(f"source.query: cannot read {path}: {exc.strerror}") from None

    def placeholder(match: re.Match[str]) -> str:
        if match[1] is None:  # a string, a quoted name or a comment: as it is
            return match[0]
        found.append(match[1])
        if dialect.style == "$1":
            return f"${('since', 'until').index(match[1]) + 1}"
        return "?" if dialect.style == "?" else f"@{match[1]}"

    sql = _TOKEN.sub(placeholder, text)
    missing = " and ".join(f"${m}" for m in sorted({"since", "until"} - set(found)))
    if missing:
        raise ConfigError(
            f"source.query: {path.name} must filter on $since and $until (missing "
            f"{missing}), e.g. WHERE event_time >= $since AND event_time < $until"
        )
    code = _TOKEN.sub(" ", text).strip().lower()
    if ";" in code or not code.startswith(("select", "with", "values", "table", "from", "(")):
        raise ConfigError(
            f"source.query: {path.name} must be a single SELECT statement (WITH ..., "
            "VALUES ... too): the connector runs nothing else in the warehouse"
        )
    return sql, tuple(found) if dialect.style == "?" else ("since", "until")


def parameters(order: tuple[str, ...], since: datetime, until: datetime) -> pa.RecordBatch:
    """One row of parameters, one column each, named as the `@` style binds them."""
    value = {"since": since, "until": until}
    columns = [pa.array([value[name]], pa.timestamp("us", "UTC")) for name in order]
    return pa.record_batch(columns, names=list(order))


def _secrets(warehouse: WarehouseConfig) -> list[str]:
    """What a message must never show, longest first: the URI, its password, each of its
    secret-looking settings (`password=`, `token=`) and of the options."""
    uri = warehouse.uri.get_secret_value() if warehouse.uri else ""
    try:
        password = urlsplit(uri if "://" in uri else f"//{uri}").password or ""
    except ValueError:  # not a URL: a libpq keyword=value string
        password = ""
    found = [uri, password, unquote(password)]
    found += [value.strip("'") for key, value in _SETTING.findall(uri) if _SECRETISH.search(key)]
    found += [str(v) for k, v in warehouse.options.items() if _SECRETISH.search(k)]
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


def _message(exc: Exception, secrets: list[str], sql: str | None = None) -> str:
    """The server's message, without ADBC's status, the SQL it repeats, or a secret; with
    `sql`, a quoted value not in it (a row's, in a failed cast) becomes `<value>`."""
    text, state = str(exc).strip(), getattr(exc, "sqlstate", None)
    text = re.sub(r"\s*(Query was: .*?)?\.? SQLSTATE: \w+$", "", text, flags=re.DOTALL)
    head, found, rest = text.partition("ERROR:  ")
    text = (rest if found else re.sub(r"^[A-Z_]+: ", "", head)).strip()
    known = (sql or "").lower()
    for quoted in {m[0] for m in _QUOTED.finditer(text)} if sql is not None else ():
        if quoted[1:-1].lower() not in known:
            text = text.replace(quoted, f"{quoted[0]}<value>{quoted[0]}")
    for secret in secrets:
        text = text.replace(secret, "***")
    return f"{text} (SQLSTATE {state})" if state else text


def rechunk(
    parts: Iterator[pa.RecordBatch], rows: int, limit: int | None = None
) -> Iterator[pa.Table]:
    """Tables of `rows` rows (the last one fewer), at most `limit` rows in all."""
    pending: list[pa.RecordBatch] = []
    held = total = 0
    for part in parts:
        part = part if limit is None else part.slice(0, limit - total)
        pending.append(part)
        held, total = held + part.num_rows, total + part.num_rows
        while held >= rows:
            whole = pa.Table.from_batches(pending)
            yield whole.slice(0, rows)
            pending, held = whole.slice(rows).to_batches(), held - rows
        if total == limit:
            break
    if held:
        yield pa.Table.from_batches(pending)


def plan(schema: pa.Schema, query: str, dialect: Dialect) -> dict[str, str]:
    """How each column that needs it becomes what the transform reads (`uuid`, `decimal
    P S` or `float`); a type it cannot read stops with the column's name and a cast."""
    seen: set[str] = set()
    conversions = {}
    for column in schema:
        name, kind, metadata = column.name, column.type, column.metadata or {}
        if name.lower() in seen:
            raise SourceError(f"{query}: column {name} appears twice (names are case-blind)")
        seen.add(name.lower())
        postgres = metadata.get(b"POSTGRESQL:type", b"").decode()
        unreadable = isinstance(kind, pa.BaseExtensionType) or not any(c(kind) for c in _READABLE)
        if isinstance(kind, pa.UuidType):
            conversions[name] = "uuid"
        elif isinstance(kind, pa.OpaqueType) and kind.type_name == "numeric":
            typmod = int(metadata.get(b"POSTGRESQL:typmod", b"-1")) - 4
            digits, scale = typmod >> 16, typmod & 0xFFFF
            fits = 0 <= scale <= digits <= 38  # numeric(P, S); a bare numeric reads as a float
            conversions[name] = f"decimal {digits} {scale}" if fits else "float"
        elif (postgres and postgres not in _PG_READ) or unreadable:
            cast = "numeric" if postgres == "money" else dialect.text
            raise SourceError(
                f"{query}: column {name} has type {postgres or kind}, which the connector "
                f"cannot read; cast it in the query, e.g. CAST({name} AS {cast})"
            )
    return conversions


def frame(table: pa.Table, conversions: dict[str, str]) -> pl.DataFrame:
    """`table` as polars, each column as its DuckDB counterpart reads, names lower-cased."""
    extension = pa.BaseExtensionType
    columns = [c.cast(c.type.storage_type) if isinstance(c.type, extension) else c for c in table]
    data = pl.from_arrow(pa.table(columns, names=table.column_names))
    assert isinstance(data, pl.DataFrame)
    for name, kind in conversions.items():
        column = data[name]
        if kind == "uuid":  # as DuckDB writes one: 8-4-4-4-12 lower-case hex digits
            pattern = r"^(.{8})(.{4})(.{4})(.{4})(.{12})$"
            column = column.bin.encode("hex").str.replace(pattern, "${1}-${2}-${3}-${4}-${5}")
        elif kind.startswith("decimal"):
            _, digits, scale = kind.split()
            exact = column.cast(pl.Decimal(int(digits), int(scale)), strict=False)
            # NaN and Infinity are no decimals: then the chunk's column reads as floats
            lost = (exact.is_null() & column.is_not_null()).any()
            column = column.cast(pl.Float64, strict=False) if lost else exact
        else:
            column = column.cast(pl.Float64, strict=False)
        data = data.with_columns(column.alias(name))
    return data.rename(str.lower)


class ADBCSource:
    """A warehouse through its ADBC driver (`source.kind: adbc`, with `source.warehouse`)."""

    def __init__(self, config: SourceConfig) -> None:
        assert config.warehouse is not None  # kind adbc
        self.config, self.warehouse = config, config.warehouse
        self.dialect = DIALECTS[self.warehouse.driver]
        self.secrets = _secrets(self.warehouse)
        self.errors: tuple[type[Exception], ...] = ()  # the driver's, once it is loaded

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A connection set up for the query: UTC, read-only where the driver can say so."""
        warehouse, dialect = self.warehouse, self.dialect
        try:
            module = importlib.import_module(f"{dialect.package}.dbapi")
            import adbc_driver_manager
        except ImportError:
            raise ConfigError(
                f"source.warehouse.driver: {warehouse.driver} needs the ADBC driver "
                f"{dialect.package.replace('_', '-')}, which is not installed: "
                f"pip install 'rokt-connector[{dialect.extra}]'"
            ) from None
        self.errors = (adbc_driver_manager.Error, pa.ArrowException, pl.exceptions.PolarsError)
        options = {
            dialect.names.get(k, k): str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in warehouse.options.items()
        }
        args = [warehouse.uri.get_secret_value()] if warehouse.uri else []
        kwargs: dict[str, Any] = {"db_kwargs": options} if options else {}
        con = None
        try:
            con = module.connect(*args, **kwargs, autocommit=not dialect.cursor)
            with con.cursor() as cursor:
                for statement in dialect.setup:
                    cursor.execute(statement)
            if dialect.cursor:
                con.commit()
        except (*self.errors, ValueError) as exc:
            if con is not None:
                con.close()
            message = f"cannot connect ({warehouse.driver}): {_message(exc, self.secrets)}"
            raise SourceError(f"source.warehouse: {message}") from None
        try:
            yield con
        finally:
            con.close()

    def _parts(self, con: Any, sql: str, bound: pa.RecordBatch | None) -> Generator[pa.RecordBatch]:
        """The result as the driver hands it over, never whole."""
        with con.cursor() as cursor:
            cursor.adbc_statement.set_options(**self.dialect.statement)
            if not self.dialect.cursor:
                yield from cursor.execute(sql, bound).fetch_record_batch()
                return
            cursor.adbc_statement.set_options(**{"adbc.postgresql.use_copy": "false"})
            cursor.execute(f"DECLARE rokt_rows NO SCROLL CURSOR FOR {sql}", bound)
            fetch = f"FETCH FORWARD {self.config.chunk_rows} FROM rokt_rows"
            while (part := cursor.execute(fetch).fetch_arrow_table()).num_rows:
                yield from part.to_batches()

    def chunks(
        self, since: datetime, until: datetime, limit: int | None = None
    ) -> Iterator[pl.DataFrame]:
        """Rows of `[since, until)`, `chunk_rows` at a time (at most `limit`)."""
        sql, order = read_query(self.config, self.dialect)
        bound = parameters(order, since, until)
        return self._read(sql, bound, self.config.query.name, limit)

    def members(self, query: Path) -> Iterator[pl.DataFrame]:
        """Every row of the query file `query`, which has no window (audiences)."""
        try:
            sql = query.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"audiences.query: cannot read {query}: {exc.strerror}") from None
        return self._read(sql, None, query.name)

    def _read(
        self, sql: str, bound: pa.RecordBatch | None, name: str, limit: int | None = None
    ) -> Iterator[pl.DataFrame]:
        conversions: dict[str, str] | None = None
        with self.connect() as con:
            try:  # the cursor closes before the connection, also when `limit` ends early
                with closing(self._parts(con, sql, bound)) as parts:
                    for table in rechunk(parts, self.config.chunk_rows, limit):
                        if conversions is None:
                            conversions = plan(table.schema, name, self.dialect)
                        yield frame(table, conversions)
            except self.errors as exc:
                raise SourceError(f"{name}: {_message(exc, self.secrets, sql)}") from None

    def counts(self, windows: Sequence[tuple[datetime, datetime]]) -> list[int]:
        """How many rows each `[since, until)` has: counted in the warehouse."""
        query, order = read_query(self.config, self.dialect)
        sql = f"SELECT count(*) FROM ({query}\n) AS rokt_counted"
        with self.connect() as con, con.cursor() as cursor:
            try:
                cursor.adbc_statement.set_options(**self.dialect.statement)
                bound = [parameters(order, since, until) for since, until in windows]
                return [int(cursor.execute(sql, b).fetchone()[0]) for b in bound]
            except self.errors as exc:
                message = _message(exc, self.secrets, sql)
                raise SourceError(f"{self.config.query.name}: {message}") from None
