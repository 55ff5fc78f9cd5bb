"""The source: a real DuckDB file and real Parquet, streamed in chunks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import base_config, write_config

from connector import source
from connector.config import load_config
from connector.errors import ConfigError, SourceError

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


def test_source_is_opened_read_only(warehouse: Path) -> None:
    (warehouse / "query.sql").write_text(
        "DELETE FROM t WHERE $since < $until RETURNING id AS confirmationref", encoding="utf-8"
    )
    config = load_config(write_config(warehouse, base_config(warehouse)))
    with pytest.raises(SourceError, match="read-only"):
        list(source.chunks(config.source, SINCE, UNTIL))
    with duckdb.connect(str(warehouse / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM t").fetchall() == [(2500,)]
