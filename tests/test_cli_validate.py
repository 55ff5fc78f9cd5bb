"""`rokt-connector validate` end to end, as a user runs it, on the example warehouse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import REPO, SECRET, base_config, cli, write_config

from connector.config import load_config

pytestmark = pytest.mark.e2e
WINDOW = ["--since", "2026-09-01", "--until", "2026-11-02"]


def example_config(example_dir: Path, parquet: bool = False) -> Path:
    source: dict[str, Any] = {"query": str(REPO / "sql" / "conversions.sql")}
    if parquet:
        source["parquet"] = {"orders": "export/*.parquet"}
    else:
        source["database"] = "warehouse.duckdb"
    config = base_config(example_dir, source=source)
    if parquet:
        del config["source"]["database"]
    return write_config(example_dir, config, "parquet.yaml" if parquet else "duckdb.yaml")


@pytest.mark.parametrize("parquet", [False, True], ids=["duckdb", "parquet"])
def test_validate_reports_every_dirty_case(
    example_dir: Path, manifest: dict[str, Any], parquet: bool
) -> None:
    result = cli(
        "validate", "--config", str(example_config(example_dir, parquet)), *WINDOW, "--json"
    )
    assert result.returncode == 1, result.stderr  # dirty rows are rejected locally
    report = json.loads(result.stdout)
    assert report["rows_read"] == manifest["rows"]
    assert report["duplicates"] == manifest["duplicates"]
    assert report["rejected_by_reason"] == manifest["rejected"]
    assert report["valid"] == manifest["valid"]
    assert report["valid"] + report["duplicates"] + report["rejected"] == report["rows_read"]
    # small batches pack 100 per request; each 1,000-row chunk may end in a partial one
    full = -(-report["valid"] // 100)
    assert full <= report["requests"] <= full + -(-report["rows_read"] // 1000)


def raw_pii(example_dir: Path) -> set[str]:
    """Every plain email, name and phone in the example warehouse (3+ characters)."""
    with duckdb.connect(str(example_dir / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql(
            "SELECT DISTINCT trim(v) FROM (SELECT unnest([customer_email, first_name, "
            "last_name, phone]) AS v FROM orders) WHERE length(trim(v)) >= 3 "
            "AND NOT regexp_full_match(trim(v), '[0-9a-fA-F]{64}')"
        ).fetchall()
    return {v for (v,) in rows} | {v.lower() for (v,) in rows}


def test_show_prints_hashed_payloads_and_no_raw_pii(example_dir: Path) -> None:
    config = example_config(example_dir)
    result = cli("validate", "--config", str(config), *WINDOW, "--show", "3")
    assert result.returncode == 1, result.stderr
    assert result.stdout.count('"source_request_id"') == 3
    assert "missing_identity" in result.stdout and "nothing was sent" in result.stdout
    leaked = [v for v in raw_pii(example_dir) if v in result.stdout or v in result.stderr]
    assert leaked == []
    # with names left unhashed (allowed on purpose), --show still prints no plain name
    plain = ["firstname", "lastname", "mobile", "zip"]
    loaded = base_config(example_dir, mapping={"hash": ["email"], "allow_plain": plain})
    loaded["source"]["query"] = str(REPO / "sql" / "conversions.sql")
    result = cli(
        "validate", "--config", str(write_config(example_dir, loaded)), *WINDOW, "--show", "5"
    )
    assert '"firstname": "<redacted>"' in result.stdout
    leaked = [v for v in raw_pii(example_dir) if v in result.stdout]
    assert leaked == []


def test_config_and_query_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    config = base_config(tmp_path, destination={"pod": "MARS"})
    result = cli("validate", "--config", str(write_config(tmp_path, config)))
    assert result.returncode == 2
    assert "destination.pod" in result.stderr and "Traceback" not in result.stderr
    assert SECRET not in result.stderr + result.stdout

    (tmp_path / "query.sql").write_text(
        "SELECT * FROM missing_table WHERE $since < $until", encoding="utf-8"
    )
    duckdb.connect(str(tmp_path / "warehouse.duckdb")).close()
    result = cli("validate", "--config", str(write_config(tmp_path, base_config(tmp_path))))
    assert result.returncode == 2
    assert "query.sql" in result.stderr and "missing_table" in result.stderr
    assert "Traceback" not in result.stderr

    result = cli("validate", "--config", str(tmp_path / "config.yaml"), "--since", "soon")
    assert result.returncode == 2 and "--since" in result.stderr


def test_clean_source_exits_0(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute(
            "CREATE TABLE o AS SELECT 'R' || i AS confirmationref, 'u' || i || '@x.co' AS email,"
            " 'purchase' AS conversiontype, TIMESTAMP '2026-10-20 12:00' AS event_time "
            "FROM range(10) r(i)"
        )
    (tmp_path / "query.sql").write_text(
        "SELECT * FROM o WHERE event_time >= $since AND event_time < $until", encoding="utf-8"
    )
    result = cli(
        "validate", "--config", str(write_config(tmp_path, base_config(tmp_path))), *WINDOW
    )
    assert result.returncode == 0, result.stderr
    assert "nothing was sent" in result.stdout


def test_example_config_loads_with_documented_defaults() -> None:
    config = load_config(REPO / "config.example.yaml", env={})
    assert config.source.database == REPO / "examples" / "warehouse.duckdb"
    assert config.destination.root_url == "http://127.0.0.1:8787"
    assert config.destination.max_batches_per_second == 270
    assert config.source.query.is_file()
