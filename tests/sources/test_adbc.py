"""The warehouse source (`source.kind: adbc`): a real PostgreSQL server (and a real SQLite
file) for streaming, types, errors and read-only sessions; a stand-in driver module for
Snowflake and BigQuery, whose services no test reaches, to see what each driver is given."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from conftest import REPO, base_config, cli, write_config
from postgres_server import PASSWORD

from connector.config import load_config
from connector.errors import ConfigError, SourceError
from connector.sources import source_for
from connector.sources.adbc import DIALECTS, read_query, rechunk

SINCE = datetime(2026, 1, 1, tzinfo=UTC)
UNTIL = datetime(2026, 2, 1, tzinfo=UTC)
QUERY = """-- $since and $until in a comment or a string are no parameters
SELECT "Id" AS confirmationref, "Email", ts AS event_time, '$until' AS note
FROM t WHERE ts >= $since AND ts < $until ORDER BY "Id"
"""


@pytest.fixture(scope="module")
def database(postgres: Any) -> str:
    """A database with `t`: 2500 rows, one a minute from 2026-01-01 00:00 UTC."""
    postgres.execute("CREATE DATABASE sources")
    postgres.execute(
        """CREATE TABLE t AS SELECT 'R' || lpad(i::text, 5, '0') AS "Id",
           'u' || i || '@x.co' AS "Email",
           TIMESTAMPTZ '2026-01-01 00:00:00+00' + i * INTERVAL '1 minute' AS ts
           FROM generate_series(0, 2499) AS i""",
        database="sources",
    )
    uri: str = postgres.uri("sources")
    return uri


def config_for(tmp: Path, uri: str, query: str = QUERY, **source: Any) -> Path:
    (tmp / "query.sql").write_text(query, encoding="utf-8")
    config = base_config(tmp)
    config["source"] = {
        "warehouse": {"driver": "postgresql", "uri": uri},
        "query": "query.sql",
        "chunk_rows": 1000,
        **source,
    }
    return write_config(tmp, config)


def source(tmp: Path, uri: str, query: str = QUERY, **settings: Any) -> Any:
    return source_for(load_config(config_for(tmp, uri, query, **settings)).source)


def test_postgres_rows_stream_in_chunks_with_lower_cased_names(
    tmp_path: Path, database: str
) -> None:
    warehouse = source(tmp_path, database)
    parts = list(warehouse.chunks(SINCE, UNTIL))
    assert [p.height for p in parts] == [1000, 1000, 500]
    assert parts[0].columns == ["confirmationref", "email", "event_time", "note"]
    assert parts[0]["note"][0] == "$until"  # a string is left as it is
    assert (parts[0]["confirmationref"][0], parts[2]["confirmationref"][-1]) == ("R00000", "R02499")
    assert parts[0].schema["event_time"] == pl.Datetime("us", "UTC")


def test_postgres_window_limit_and_counts_are_bound_parameters(
    tmp_path: Path, database: str
) -> None:
    warehouse = source(tmp_path, database)
    hour = datetime(2026, 1, 1, 1, tzinfo=UTC)
    assert pl.concat(warehouse.chunks(SINCE, hour)).height == 60
    assert [p.height for p in warehouse.chunks(SINCE, UNTIL, limit=1500)] == [1000, 500]
    assert warehouse.counts([(SINCE, hour), (hour, UNTIL), (UNTIL, UNTIL)]) == [60, 2440, 0]
    assert list(warehouse.chunks(UNTIL, UNTIL)) == []


def test_audience_members_run_a_query_without_a_window_in_the_warehouse(
    tmp_path: Path, database: str
) -> None:
    members = tmp_path / "members.sql"
    members.write_text(
        """SELECT 'vip' AS Audience_Name, "Email" AS email FROM t WHERE "Id" < 'R01500'""",
        encoding="utf-8",
    )
    parts = list(source(tmp_path, database).members(members))
    assert [p.height for p in parts] == [1000, 500]  # chunk_rows at a time
    assert parts[0].columns == ["audience_name", "email"]
    with pytest.raises(ConfigError, match=r"audiences\.query: cannot read"):
        source(tmp_path, database).members(tmp_path / "absent.sql")


def test_the_query_is_rewritten_to_each_drivers_own_placeholders(tmp_path: Path) -> None:
    (tmp_path / "q.sql").write_text(QUERY + "  AND ts <> $since;\n", encoding="utf-8")
    config = load_config(write_config(tmp_path, base_config(tmp_path, source={"query": "q.sql"})))
    written = {name: read_query(config.source, dialect) for name, dialect in DIALECTS.items()}
    where = "WHERE ts >= {0} AND ts < {1} ORDER BY"
    assert where.format("$1", "$2") in written["postgresql"][0]
    assert written["postgresql"][0].endswith("AND ts <> $1")
    assert written["postgresql"][1] == ("since", "until")
    for name in ("snowflake", "sqlite", "flightsql"):  # `?`: bound in the order they appear
        assert where.format("?", "?") in written[name][0]
        assert written[name][1] == ("since", "until", "since")
    assert where.format("@since", "@until") in written["bigquery"][0]
    for sql, _ in written.values():
        assert "-- $since and $until in a comment" in sql and "'$until' AS note" in sql
        assert "2026" not in sql  # no value is ever pasted into the text


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1 WHERE $since < $until; DELETE FROM t",
        "DELETE FROM t WHERE ts >= $since AND ts < $until RETURNING 1",
        "SET search_path = evil; SELECT 1 WHERE $since < $until",
    ],
)
def test_a_query_that_is_no_single_select_is_refused_before_connecting(
    tmp_path: Path, query: str
) -> None:
    warehouse = source(tmp_path, "postgresql://nobody@127.0.0.1:9/none", query)
    with pytest.raises(ConfigError, match="must be a single SELECT statement"):
        list(warehouse.chunks(SINCE, UNTIL))


def test_postgres_sessions_are_read_only_and_utc(
    tmp_path: Path, database: str, postgres: Any
) -> None:
    postgres.execute("CREATE SEQUENCE s", database="sources")
    query = "SELECT nextval('s') AS n FROM t WHERE ts >= $since AND ts < $until"
    with pytest.raises(SourceError, match="read-only transaction") as error:
        list(source(tmp_path, database, query).chunks(SINCE, UNTIL))
    assert str(error.value).startswith("query.sql: ")
    query = (
        "SELECT current_setting('TimeZone') AS zone, "
        "TIMESTAMP '2026-01-01 00:00' = $since AS naive_is_utc WHERE $since < $until"
    )
    [row] = pl.concat(source(tmp_path, database, query).chunks(SINCE, UNTIL)).to_dicts()
    assert row == {"zone": "UTC", "naive_is_utc": True}


# Each type Postgres returns, and the DuckDB expression whose column the transform reads
# alike: the same polars type and the same values.
TYPES = {
    "numeric(12,2)": ("19.90::numeric(12,2)", "19.90::DECIMAL(12,2)"),
    "numeric": ("19.9::numeric", "19.9::DOUBLE"),
    "timestamptz": (
        "TIMESTAMPTZ '2026-11-10 14:03:22.5+02'",
        "TIMESTAMPTZ '2026-11-10 14:03:22.5+02'",
    ),
    "timestamp": ("TIMESTAMP '2026-11-10 14:03:22'", "TIMESTAMP '2026-11-10 14:03:22'"),
    "date": ("DATE '1990-05-17'", "DATE '1990-05-17'"),
    "text": ("'Zoë'::text", "'Zoë'::VARCHAR"),
    "varchar": ("'a'::varchar(5)", "'a'::VARCHAR"),
    "integer": ("7::integer", "7::INTEGER"),
    "bigint": ("7::bigint", "7::BIGINT"),
    "smallint": ("7::smallint", "7::SMALLINT"),
    "double precision": ("1.5::double precision", "1.5::DOUBLE"),
    "boolean": ("true", "true"),
    "uuid": (
        "'5A3E4B2C-1D0F-4E6A-9B8C-7D6E5F4A3B2C'::uuid",
        "'5a3e4b2c-1d0f-4e6a-9b8c-7d6e5f4a3b2c'::UUID",
    ),
    "null": ("NULL::text", "NULL::VARCHAR"),
}


def test_each_type_reads_as_its_duckdb_counterpart(tmp_path: Path, database: str) -> None:
    def one_row(config: dict[str, Any], query: str, name: str) -> pl.DataFrame:
        (tmp_path / f"{name}.sql").write_text(query, encoding="utf-8")
        config["source"]["query"] = f"{name}.sql"
        loaded = load_config(write_config(tmp_path, config, f"{name}.yaml"))
        return pl.concat(source_for(loaded.source).chunks(SINCE, UNTIL))

    columns = [(f"c{i}", pg, duck) for i, (pg, duck) in enumerate(TYPES.values())]
    where = " WHERE $since < $until"
    pg = "SELECT " + ", ".join(f"{p} AS {c}" for c, p, _ in columns) + where
    duck = "SELECT " + ", ".join(f"{d} AS {c}" for c, _, d in columns) + where
    postgres = {"source": {"warehouse": {"driver": "postgresql", "uri": database}}}
    from_postgres = one_row(base_config(tmp_path) | postgres, pg, "postgres")
    from_duckdb = one_row(base_config(tmp_path, source={"database": None}), duck, "duckdb")
    for (column, _, _), kind in zip(columns, TYPES, strict=True):
        assert from_postgres.schema[column] == from_duckdb.schema[column], kind
        assert from_postgres[column].to_list() == from_duckdb[column].to_list(), kind


@pytest.mark.parametrize(
    ("expression", "kind", "cast"),
    [
        ("'{\"a\": 1}'::json", "json", "text"),
        ("'{\"a\": 1}'::jsonb", "jsonb", "text"),
        ("ARRAY[1, 2]", "_int4", "text"),
        ("'\\x00'::bytea", "bytea", "text"),
        ("INTERVAL '1 day'", "interval", "text"),
        ("12.5::money", "money", "numeric"),
        ("'10.0.0.1'::inet", "inet", "text"),
        ("TIME '10:00'", "time", "text"),
    ],
)
def test_another_type_stops_with_the_column_and_a_cast(
    tmp_path: Path, database: str, expression: str, kind: str, cast: str
) -> None:
    query = f"SELECT 'R1' AS confirmationref, {expression} AS Payload WHERE $since < $until"
    with pytest.raises(SourceError) as error:
        list(source(tmp_path, database, query).chunks(SINCE, UNTIL))
    assert str(error.value) == (
        f"query.sql: column payload has type {kind}, which the connector cannot read; "
        f"cast it in the query, e.g. CAST(payload AS {cast})"  # Postgres lower-cased the name
    )


def test_a_syntax_error_gives_the_servers_message_and_the_file(
    tmp_path: Path, database: str
) -> None:
    query = "SELECT nope FROM t\nWHERE ts >= $since AND ts < $until"
    with pytest.raises(SourceError) as error:
        list(source(tmp_path, database, query).chunks(SINCE, UNTIL))
    assert str(error.value).startswith('query.sql: column "nope" does not exist')
    assert "SQLSTATE 42703" in str(error.value) and "Query was" not in str(error.value)
    with pytest.raises(SourceError, match=r'query.sql: column "nope" does not exist'):
        source(tmp_path, database, query).counts([(SINCE, UNTIL)])


def test_a_failed_cast_never_shows_the_rows_value(tmp_path: Path, database: str) -> None:
    query = 'SELECT "Email"::integer AS quantity FROM t WHERE ts >= $since AND ts < $until'
    with pytest.raises(SourceError) as error:
        list(source(tmp_path, database, query).chunks(SINCE, UNTIL))
    assert "invalid input syntax for type integer" in str(error.value)
    assert '"<value>"' in str(error.value) and "@x.co" not in str(error.value)


def test_a_refused_password_is_said_and_never_shown(tmp_path: Path, postgres: Any) -> None:
    wrong = "Wrong-Pa55-7e1d0c"
    config = config_for(tmp_path, postgres.uri("sources", password=wrong))
    result = cli(
        "validate", "--config", str(config), "--since", "2026-01-01", "--until", "2026-02-01"
    )
    assert result.returncode == 2
    assert "source.warehouse: cannot connect (postgresql)" in result.stderr
    assert 'password authentication failed for user "rokt"' in result.stderr
    assert wrong not in result.stdout + result.stderr and PASSWORD not in result.stderr


def test_a_missing_driver_names_the_extra_to_install(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "adbc_driver_snowflake.dbapi", None)  # not installed
    config = base_config(tmp_path)
    config["source"] = {"warehouse": {"driver": "snowflake", "uri": "u:p@acct"}, "query": "q.sql"}
    (tmp_path / "q.sql").write_text(QUERY, encoding="utf-8")
    warehouse = source_for(load_config(write_config(tmp_path, config)).source)
    with pytest.raises(ConfigError) as error:
        list(warehouse.chunks(SINCE, UNTIL))
    assert str(error.value) == (
        "source.warehouse.driver: snowflake needs the ADBC driver adbc-driver-snowflake, "
        "which is not installed: pip install 'rokt-connector[snowflake]'"
    )


def test_sqlite_binds_in_order_with_question_marks(tmp_path: Path) -> None:
    import adbc_driver_sqlite.dbapi as sqlite

    with sqlite.connect(str(tmp_path / "w.sqlite")) as con, con.cursor() as cursor:
        cursor.execute("CREATE TABLE t (id TEXT, ts TEXT)")
        cursor.execute(
            "INSERT INTO t VALUES ('A', '2026-01-01 10:00:00'), ('B', '2026-02-01 10:00:00')"
        )
        con.commit()
    config = base_config(tmp_path)
    query = (
        "SELECT id AS confirmationref FROM t "
        "WHERE datetime(ts) >= datetime($since) AND datetime(ts) < datetime($until)"
    )
    (tmp_path / "q.sql").write_text(query, encoding="utf-8")
    config["source"] = {
        "warehouse": {"driver": "sqlite", "uri": str(tmp_path / "w.sqlite")},
        "query": "q.sql",
    }
    warehouse = source_for(load_config(write_config(tmp_path, config)).source)
    assert pl.concat(warehouse.chunks(SINCE, UNTIL))["confirmationref"].to_list() == ["A"]
    assert warehouse.counts([(SINCE, UNTIL), (UNTIL, datetime(2026, 3, 1, tzinfo=UTC))]) == [1, 1]


def test_rechunk_makes_chunks_of_chunk_rows_whatever_the_drivers_batches() -> None:
    batches = [
        pa.record_batch({"n": pa.array(range(k), pa.int64())}) for k in (3, 700, 0, 1500, 41)
    ]
    assert [t.num_rows for t in rechunk(iter(batches), 1000)] == [1000, 1000, 244]
    assert [t.num_rows for t in rechunk(iter(batches), 1000, limit=1200)] == [1000, 200]
    assert [t.num_rows for t in rechunk(iter(batches), 5000)] == [2244]


# ------------------------------------------------ Snowflake and BigQuery, without the service


class Driver:
    """A stand-in for an `adbc_driver_*.dbapi` module: records what it is given."""

    def __init__(self) -> None:
        self.connected: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.executed: list[tuple[str, dict[str, Any] | None]] = []
        self.options: dict[str, str] = {}

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        self.connected.append((args, kwargs))
        return self

    def cursor(self) -> Any:
        return self

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        return None

    @property
    def adbc_statement(self) -> Any:
        return types.SimpleNamespace(set_options=lambda **options: self.options.update(options))

    def execute(self, sql: str, parameters: pa.RecordBatch | None = None) -> Any:
        self.executed.append((sql, parameters.to_pylist()[0] if parameters else None))
        return self

    def fetch_record_batch(self) -> pa.RecordBatchReader:
        rows = pa.record_batch({"CONFIRMATIONREF": ["R1", "R2"], "N": [1, 2]})
        return pa.RecordBatchReader.from_batches(rows.schema, [rows])

    def fetchone(self) -> tuple[int]:
        return (2,)


def stand_in(monkeypatch: Any, driver: str) -> Driver:
    fake = Driver()
    monkeypatch.setitem(sys.modules, f"adbc_driver_{driver}.dbapi", fake)
    return fake


def test_snowflake_gets_the_uri_its_options_utc_and_question_marks(
    tmp_path: Path, monkeypatch: Any
) -> None:
    fake = stand_in(monkeypatch, "snowflake")
    config = load_config(REPO / "examples" / "warehouse_snowflake.yaml", env={
        "WAREHOUSE_URI": "me:Sn0w-Secret@acct/db/sch", "ROKT_API_KEY": "k", "ROKT_API_SECRET": "s",
        "SNOWFLAKE_ROLE": "READER"})  # fmt: skip
    warehouse = source_for(config.source)
    rows = pl.concat(warehouse.chunks(SINCE, UNTIL))
    assert rows.columns == ["confirmationref", "n"] and rows.height == 2
    options = {"adbc.snowflake.sql.warehouse": "COMPUTE_WH", "adbc.snowflake.sql.role": "READER"}
    uri = ("me:Sn0w-Secret@acct/db/sch",)
    assert fake.connected == [(uri, {"autocommit": True, "db_kwargs": options})]
    (setup, _), (sql, bound) = fake.executed
    assert setup == "ALTER SESSION SET TIMEZONE = 'UTC'"
    assert "OR (created_utc >= ? AND created_utc < ?)" in sql
    assert bound == {"since": SINCE, "until": UNTIL}
    assert warehouse.counts([(SINCE, UNTIL)]) == [2]
    assert fake.executed[-1][0].startswith("SELECT count(*) FROM (-- conversions_snowflake.sql")


def test_bigquery_gets_its_project_and_named_parameters(tmp_path: Path, monkeypatch: Any) -> None:
    fake = stand_in(monkeypatch, "bigquery")
    config = load_config(REPO / "examples" / "warehouse_bigquery.yaml", env={
        "BIGQUERY_PROJECT": "shop-123", "ROKT_API_KEY": "k", "ROKT_API_SECRET": "s"})  # fmt: skip
    warehouse = source_for(config.source)
    assert pl.concat(warehouse.chunks(SINCE, UNTIL)).height == 2
    options = {"adbc.bigquery.sql.project_id": "shop-123", "adbc.bigquery.sql.dataset_id": "shop"}
    assert fake.connected == [((), {"autocommit": True, "db_kwargs": options})]  # no uri
    [(sql, bound)] = fake.executed  # no session setup: BigQuery's zone is UTC
    assert "created_utc >= @since AND created_utc < @until" in sql
    assert bound == {"since": SINCE, "until": UNTIL}  # the batch's names are the parameters'
    assert fake.options == {
        "adbc.bigquery.sql.query.parameter_mode": "adbc.bigquery.sql.query.parameter_mode_named"
    }


def test_a_connection_error_shows_no_secret_of_the_uri_or_the_options(
    tmp_path: Path, monkeypatch: Any
) -> None:
    import adbc_driver_manager

    _IO = adbc_driver_manager.AdbcStatusCode.IO
    fake = stand_in(monkeypatch, "snowflake")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        message = f"IO: could not log in with {args} {kwargs}"
        raise adbc_driver_manager.OperationalError(message, status_code=_IO)

    fake.connect = refuse  # type: ignore[method-assign]
    config = base_config(tmp_path)
    uri = "me:S3cret%2Fpart@acct/db?token=Tok-123456&warehouse=WH"
    options = {"adbc.snowflake.sql.client_option.jwt_private_key": "Key-987654", "role": "R"}
    config["source"] = {
        "warehouse": {"driver": "snowflake", "uri": uri, "options": options},
        "query": "q.sql",
    }
    (tmp_path / "q.sql").write_text(QUERY, encoding="utf-8")
    with pytest.raises(SourceError) as error:
        list(source_for(load_config(write_config(tmp_path, config)).source).chunks(SINCE, UNTIL))
    message = str(error.value)
    assert message.startswith("source.warehouse: cannot connect (snowflake): could not log in")
    for secret in ("S3cret", "Tok-123456", "Key-987654", "me:"):
        assert secret not in message


@pytest.mark.parametrize(
    ("source_keys", "message"),
    [
        (
            {"warehouse": {"driver": "postgresql", "uri": "x"}, "database": "w.duckdb"},
            "database is for a DuckDB source",
        ),
        (
            {"warehouse": {"driver": "postgresql", "uri": "x"}, "memory_limit": "1GB"},
            "memory_limit is for a DuckDB source",
        ),
        (
            {"warehouse": {"driver": "postgresql", "uri": "x"}, "kind": "duckdb"},
            "remove `kind: duckdb`",
        ),
        ({"kind": "adbc"}, "kind adbc reads source.warehouse, which is not set"),
        ({"warehouse": {"driver": "postgresql"}}, "uri is required with driver postgresql"),
        ({"warehouse": {"driver": "bigquery", "uri": "bq://p"}}, "bigquery takes no uri"),
        (
            {"warehouse": {"driver": "sqlite", "uri": "w.db", "options": {"a": 1}}},
            "sqlite takes no options",
        ),
        (
            {"warehouse": {"driver": "mysql", "uri": "x"}},
            "source.warehouse.driver: Input should be",
        ),
    ],
)
def test_a_warehouse_config_is_checked(
    tmp_path: Path, source_keys: dict[str, Any], message: str
) -> None:
    config = base_config(tmp_path)
    config["source"] = {"query": "q.sql", **source_keys}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(write_config(tmp_path, config))


def test_kind_is_adbc_with_a_warehouse_and_the_uri_is_never_shown(tmp_path: Path) -> None:
    config = base_config(tmp_path)
    config["source"] = {"warehouse": {"driver": "postgresql", "uri": "${URI}"}, "query": "q.sql"}
    loaded = load_config(write_config(tmp_path, config), env={"URI": "postgresql://u:Pw-4242@h/d"})
    assert loaded.source.kind == "adbc" and "Pw-4242" not in repr(loaded) + str(loaded)
    config["source"]["warehouse"] = {"driver": "postgresql", "uri": ["postgresql://u:Pw-4242@h/d"]}
    config["source"]["warehouse"]["options"] = {"password": {"Secret-Option-99": 1}}
    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, config))
    assert "source.warehouse.uri" in str(error.value) and "source.warehouse.options" in str(
        error.value
    )
    assert "Pw-4242" not in str(error.value) and "Secret-Option-99" not in str(error.value)


def test_a_large_result_streams_in_bounded_memory(tmp_path: Path, database: str) -> None:
    """1,500,000 rows of some 130 bytes (about 200 MB as Arrow): read through the source,
    chunk_rows 10,000, the process's peak memory stays far below the result's size."""
    query = (
        "SELECT 'R' || i AS confirmationref, repeat('x', 120) || i AS padding "
        "FROM generate_series(1, 1500000) AS i WHERE $since < $until"
    )
    config = config_for(tmp_path, database, query, chunk_rows=10_000)
    script = f"""
import resource, sys
from datetime import datetime, UTC
from connector.config import load_config
from connector.sources import source_for
source = source_for(load_config({str(config)!r}).source)
since, until = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rows = sum(chunk.height for chunk in source.chunks(since, until))
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
print({{"rows": rows, "grown_mb": grown / 1024}})
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    measured = json.loads(result.stdout.replace("'", '"'))
    assert measured["rows"] == 1_500_000
    assert measured["grown_mb"] < 100, measured  # the whole result would be 200 MB and more
