"""The source: a real DuckDB file and real Parquet, streamed in chunks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import base_config, write_config

from connector import digest
from connector.config import load_config
from connector.errors import ConfigError, SourceError
from connector.ledger import Ledger, connect_read_only
from connector.sources import duckdb as source

SINCE = datetime(2026, 1, 1, tzinfo=UTC)
UNTIL = datetime(2026, 2, 1, tzinfo=UTC)
QUERY = """
SELECT id AS confirmationref, Email, ts AS event_time FROM t
WHERE ts >= $since AND ts < $until ORDER BY id
"""


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute(
            "CREATE TABLE t AS SELECT 'R' || lpad(i::VARCHAR, 5, '0') AS id, "
            "'u' || i || '@x.co' AS Email, "
            "TIMESTAMPTZ '2026-01-01 00:00:00+00' + INTERVAL (i) MINUTE AS ts "
            "FROM range(2500) r(i)"
        )
        con.execute(f"COPY t TO '{tmp_path / 't.parquet'}' (FORMAT parquet)")
    (tmp_path / "query.sql").write_text(QUERY, encoding="utf-8")
    return tmp_path


def test_duckdb_file_streams_in_chunks(warehouse: Path) -> None:
    config = load_config(write_config(warehouse, base_config(warehouse)))
    parts = list(source.chunks(config.source, SINCE, UNTIL))
    assert [p.height for p in parts] == [1000, 1000, 500]
    assert parts[0].columns == ["confirmationref", "email", "event_time"]  # lower-cased
    assert parts[0]["confirmationref"][0] == "R00000"
    assert parts[2]["confirmationref"][-1] == "R02499"


def test_window_and_limit_are_bound(warehouse: Path) -> None:
    config = load_config(write_config(warehouse, base_config(warehouse)))
    until = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)  # the first 60 minutes
    rows = pl.concat(source.chunks(config.source, SINCE, until))
    assert rows.height == 60
    assert pl.concat(source.chunks(config.source, SINCE, UNTIL, limit=7)).height == 7


def test_parquet_views(warehouse: Path) -> None:
    config = base_config(warehouse, source={"parquet": {"t": "*.parquet"}})
    del config["source"]["database"]
    loaded = load_config(write_config(warehouse, config))
    rows = pl.concat(source.chunks(loaded.source, SINCE, UNTIL))
    assert rows.height == 2500


def test_sql_error_names_the_file_and_duckdb_message(warehouse: Path) -> None:
    (warehouse / "query.sql").write_text(
        "SELECT nope FROM t WHERE ts >= $since AND ts < $until", encoding="utf-8"
    )
    config = load_config(write_config(warehouse, base_config(warehouse)))
    with pytest.raises(SourceError) as error:
        list(source.chunks(config.source, SINCE, UNTIL))
    assert "query.sql" in str(error.value)
    assert "nope" in str(error.value)


def test_query_must_use_both_parameters(warehouse: Path) -> None:
    (warehouse / "query.sql").write_text("SELECT * FROM t WHERE ts >= $since", encoding="utf-8")
    config = load_config(write_config(warehouse, base_config(warehouse)))
    with pytest.raises(ConfigError, match=r"must filter on \$since and \$until"):
        list(source.chunks(config.source, SINCE, UNTIL))


def test_missing_database_and_bad_parquet_glob(warehouse: Path) -> None:
    config = load_config(
        write_config(warehouse, base_config(warehouse, source={"database": "absent.duckdb"}))
    )
    with pytest.raises(SourceError, match="no DuckDB file"):
        list(source.chunks(config.source, SINCE, UNTIL))
    config = load_config(
        write_config(warehouse, base_config(warehouse, source={"parquet": {"t": "none/*.pq"}}))
    )
    with pytest.raises(SourceError, match=r"source.parquet.t"):
        list(source.chunks(config.source, SINCE, UNTIL))


def test_a_query_that_would_change_the_warehouse_is_refused(warehouse: Path) -> None:
    (warehouse / "query.sql").write_text(
        "DELETE FROM t WHERE $since < $until RETURNING id AS confirmationref", encoding="utf-8"
    )
    config = load_config(write_config(warehouse, base_config(warehouse)))
    with pytest.raises(ConfigError, match="must be a single SELECT statement, but statement 1 "):
        list(source.chunks(config.source, SINCE, UNTIL))  # (and the file is attached read-only)
    with duckdb.connect(str(warehouse / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM t").fetchall() == [(2500,)]


def _settings(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    names = ("autoinstall_known_extensions", "autoload_known_extensions", "lock_configuration")
    return {name: con.sql(f"SELECT current_setting('{name}')").fetchall()[0][0] for name in names}


def test_every_duckdb_installs_and_loads_no_extension_and_no_query_turns_that_back_on(
    warehouse: Path,
) -> None:
    config = load_config(write_config(warehouse, base_config(warehouse)))
    Ledger.open(warehouse / "ledger.duckdb", "development").close()
    off = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "lock_configuration": True,
    }
    with (
        digest.connect() as memory,
        source.connect(config.source) as query,
        connect_read_only(warehouse / "ledger.duckdb", "development") as ledger,
    ):
        for con in (memory, query, ledger):
            assert _settings(con) == off
            for setting in ("autoinstall_known_extensions", "autoload_known_extensions"):
                with pytest.raises(duckdb.Error, match="the configuration has been locked"):
                    con.execute(f"SET {setting} = true")
            with pytest.raises(duckdb.Error, match="the configuration has been locked"):
                con.execute("SET lock_configuration = false")
        query.execute("SET memory_limit = '100MB'")  # what the source itself adjusts


@pytest.mark.parametrize(
    ("before", "begins"),
    [
        ("INSTALL inet;", "'INSTALL inet'"),
        ("FORCE INSTALL inet FROM core;", "'FORCE INSTALL'"),
        ("LOAD inet;", "'LOAD inet'"),
        ("SET autoinstall_known_extensions = true;", "'SET autoinstall_known_extensions'"),
        ("UPDATE EXTENSIONS;", "'UPDATE EXTENSIONS'"),
        ("ATTACH 'other.duckdb';", "\"ATTACH 'other.duckdb'\""),
        ("SELECT 1;", "'SELECT id'"),  # the second SELECT
    ],
)
def test_a_query_of_more_than_one_select_is_refused_before_it_runs(
    warehouse: Path, before: str, begins: str
) -> None:
    (warehouse / "query.sql").write_text(f"{before}\n{QUERY}", encoding="utf-8")
    config = load_config(write_config(warehouse, base_config(warehouse)))
    with pytest.raises(ConfigError) as error:
        list(source.chunks(config.source, SINCE, UNTIL))
    assert str(error.value).startswith(
        "source.query: query.sql must be a single SELECT statement, but statement "
    )
    assert f"of 2 begins {begins}: " in str(error.value)
    assert "no INSTALL or LOAD: it loads no DuckDB extension" in str(error.value)
    assert not (warehouse / "other.duckdb").exists()


@pytest.mark.parametrize(
    ("select", "first_line", "instead"),
    [
        (
            "CAST(Email AS INET) AS ipaddress",
            'Catalog Error: Type with name "INET" is not in the catalog, but it exists in the '
            "inet extension.",
            "inet, which rokt-connector does not load (loading one runs code fetched from the "
            "internet): select the address as text, e.g. CAST(ip AS VARCHAR) AS ipaddress",
        ),
        (
            "ST_Point(1, 2) AS place",  # DuckDB names the function in lower case
            'Catalog Error: Scalar Function with name "st_point" is not in the catalog, but it '
            "exists in the spatial extension.",
            "spatial, which rokt-connector does not load (loading one runs code fetched from the "
            "internet): write that part with DuckDB's built-in functions and types.",
        ),
        (
            "(SELECT count(*) FROM 'https://example.com/t.parquet') AS n",
            "File https://example.com/t.parquet requires the extension httpfs to be loaded",
            "httpfs, which rokt-connector does not load (loading one runs code fetched from the "
            "internet): copy the files to local disk and read them from there.",
        ),
    ],
)
def test_a_query_needing_an_extension_gets_duckdbs_first_line_and_what_to_do(
    warehouse: Path, select: str, first_line: str, instead: str
) -> None:
    (warehouse / "query.sql").write_text(QUERY.replace("Email,", f"{select},"), encoding="utf-8")
    config = load_config(write_config(warehouse, base_config(warehouse)))
    with pytest.raises(SourceError) as error:
        list(source.chunks(config.source, SINCE, UNTIL))
    assert str(error.value).startswith(
        f"query.sql: {first_line} This query needs the DuckDB extension {instead}"
    )
    assert "autoinstall" not in str(error.value)  # DuckDB's advice, which cannot work here
