"""`rokt-connector validate` end to end, as a user runs it, on the example warehouse."""

from __future__ import annotations

import json
import re
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


def clean_source(tmp: Path) -> None:
    """warehouse.duckdb and query.sql in `tmp`: ten valid conversions in WINDOW."""
    with duckdb.connect(str(tmp / "warehouse.duckdb")) as con:
        con.execute(
            "CREATE TABLE o AS SELECT 'R' || i AS confirmationref, 'u' || i || '@x.co' AS email,"
            " 'purchase' AS conversiontype, TIMESTAMP '2026-10-20 12:00' AS event_time "
            "FROM range(10) r(i)"
        )
    (tmp / "query.sql").write_text(
        "SELECT * FROM o WHERE event_time >= $since AND event_time < $until", encoding="utf-8"
    )


def test_clean_source_exits_0(tmp_path: Path) -> None:
    clean_source(tmp_path)
    result = cli(
        "validate", "--config", str(write_config(tmp_path, base_config(tmp_path))), *WINDOW
    )
    assert result.returncode == 0, result.stderr
    assert "nothing was sent" in result.stdout


@pytest.mark.parametrize(
    "destination",
    [{"base_url": "https://example.invalid"}, {"base_url": None, "pod": "EU1"}],
    ids=["base_url", "pod"],
)
def test_a_config_sending_to_rokt_must_name_its_environment(
    tmp_path: Path, destination: dict[str, Any]
) -> None:
    clean_source(tmp_path)
    config = base_config(tmp_path, destination=destination)
    result = cli("validate", "--config", str(write_config(tmp_path, config)), *WINDOW)
    assert result.returncode == 2 and result.stdout == ""
    assert "destination.environment: not set" in result.stderr
    assert "environment: production" in result.stderr
    assert "environment: development" in result.stderr
    assert "Traceback" not in result.stderr and SECRET not in result.stderr
    config["destination"]["environment"] = "production"
    result = cli(
        "validate", "--config", str(write_config(tmp_path, config)), *WINDOW, "--show", "1"
    )
    assert result.returncode == 0, result.stderr
    assert '"environment": "production"' in result.stdout


def test_the_local_sandbox_needs_no_environment(tmp_path: Path) -> None:
    clean_source(tmp_path)
    config = base_config(tmp_path)  # base_url http://127.0.0.1:9, no environment
    assert "environment" not in config["destination"]
    result = cli(
        "validate", "--config", str(write_config(tmp_path, config)), *WINDOW, "--show", "1"
    )
    assert result.returncode == 0, result.stderr
    assert '"environment": "development"' in result.stdout


def test_example_config_reads_the_credentials_from_the_environment(
    tmp_path: Path, example_dir: Path, sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config.example.yaml as the README says to run it: without ROKT_API_KEY it stops
    naming the variable; with the sandbox's key and secret exported it syncs into it."""
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "warehouse.duckdb").symlink_to(example_dir / "warehouse.duckdb")
    (tmp_path / "sql").symlink_to(REPO / "sql")
    config = tmp_path / "config.example.yaml"
    config.write_text((REPO / "config.example.yaml").read_text(encoding="utf-8"))
    for name in ("ROKT_API_KEY", "ROKT_API_SECRET", "ROKT_BASE_URL", "ROKT_LEDGER_PATH"):
        monkeypatch.delenv(name, raising=False)
    result = cli("validate", "--config", str(config))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "destination.api_key: environment variable ROKT_API_KEY is not set" in result.stderr
    sandbox = sandbox_factory()
    exported = {
        "ROKT_API_KEY": "sandbox-key",
        "ROKT_API_SECRET": "sandbox-secret",
        "ROKT_BASE_URL": sandbox.url,
    }
    result = cli("sync", "--config", str(config), "--limit", "50", "--json", env=exported)
    assert result.returncode <= 1, result.stderr
    assert json.loads(result.stdout)["accepted"] == sandbox.stats()["batches"] > 0


def test_example_config_lists_every_key_with_its_default() -> None:
    env = {"ROKT_API_KEY": "sandbox-key", "ROKT_API_SECRET": "sandbox-secret"}
    config = load_config(REPO / "config.example.yaml", env=env)
    assert config.source.database == REPO / "examples" / "warehouse.duckdb"
    assert config.source.query.is_file()
    assert config.destination.root_url == "http://127.0.0.1:8787"
    assert config.destination.environment == "development"  # a loopback base_url
    assert config.ledger.path == REPO / "ledger.duckdb"
    text = (REPO / "config.example.yaml").read_text(encoding="utf-8")
    example = {"database", "query", "base_url", "api_key", "api_secret", "environment", "path"}
    for name, section in config:
        if name == "path":  # where the file was found
            continue
        for key, field in type(section).model_fields.items():
            assert re.search(rf"^  (# )?{key}:", text, re.MULTILINE), f"{name}.{key} is not listed"
            if key not in example:
                assert getattr(section, key) == field.get_default(call_default_factory=True), (
                    f"{name}.{key} is not its default"
                )
