"""The CLI over a warehouse source: the example warehouse loaded into a real PostgreSQL
server (started by the tests), then validate, sync, a sync killed and rerun, backfill with
its plan, and ledger reconcile, as a user runs them, each checked against what the same
rows give from the DuckDB file. The URI's password shows nowhere."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import SandboxProcess, cli, sigkill_sync_when, sync_config, warehouse_config
from postgres_server import PASSWORD

pytestmark = pytest.mark.e2e
WINDOW = ["--since", "2026-09-01", "--until", "2026-11-02"]
RANGE = ["--since", "2026-10-05", "--until", "2026-11-02", "--window", "1w"]
StartSandbox = Callable[..., SandboxProcess]


def run(config: Path, uri: str, *args: str) -> tuple[int, Any, str]:
    """`rokt-connector ARGS --config CONFIG --json` with the URI in the environment."""
    result = cli(*args, "--config", str(config), "--json", env={"WAREHOUSE_URI": uri})
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout), result.stdout + result.stderr


def ledger_refs(path: Path, status: str) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.sql("SELECT confirmationref FROM ledger WHERE status = ?", params=[status])
        return {ref for (ref,) in rows.fetchall()}


def assert_no_secret(uri: str, *places: str | bytes) -> None:
    for place in places:
        text = place.decode("latin-1") if isinstance(place, bytes) else place
        assert PASSWORD not in text and uri not in text


def files_of(folder: Path) -> list[bytes]:
    return [path.read_bytes() for path in folder.rglob("*") if path.is_file()]


def test_validate_and_sync_from_postgres_send_what_the_duckdb_file_sends(
    tmp_path: Path,
    example_dir: Path,
    manifest: dict[str, Any],
    postgres_example: str,
    sandbox_factory: StartSandbox,
) -> None:
    from_postgres, from_duckdb = sandbox_factory(), sandbox_factory()
    (tmp_path / "pg").mkdir()
    (tmp_path / "duck").mkdir()
    config = warehouse_config(tmp_path / "pg", from_postgres.url)
    duck_config = sync_config(tmp_path / "duck", example_dir, from_duckdb.url)

    code, validated, said = run(config, postgres_example, "validate", *WINDOW)
    assert code == 1  # the example's dirty rows are rejected
    assert (validated["rows_read"], validated["valid"]) == (manifest["rows"], manifest["valid"])
    assert validated["rejected_by_reason"] == manifest["rejected"]
    assert validated["warnings"] == manifest["warnings"]
    output = [said]

    code, report, said = run(config, postgres_example, "sync", *WINDOW)
    duck_code, duck_report, _ = run(duck_config, postgres_example, "sync", *WINDOW)
    assert code == duck_code == 1 and report["accepted"] == manifest["valid"]
    same = ("rows_read", "accepted", "rows_rejected_local", "rows_duplicate", "warnings")
    assert {k: report[k] for k in same} == {k: duck_report[k] for k in same}
    # byte for byte the same batches: their ids are hashes of the payloads
    assert sorted(r["source_request_id"] for r in from_postgres.records()) == sorted(
        r["source_request_id"] for r in from_duckdb.records()
    )
    code, again, said_again = run(config, postgres_example, "sync", *WINDOW)
    assert again["requests"] == 0 and again["rows_skipped_ledger"] == manifest["valid"]

    code, reconciled, said_reconcile = run(config, postgres_example, "ledger", "reconcile", *WINDOW)
    assert code == 0 and reconciled["undelivered"] == 0
    assert reconciled["by_state"]["accepted"] == manifest["valid"]
    assert reconciled["source_rows"] == manifest["rows"]
    output += [said, said_again, said_reconcile]
    assert_no_secret(postgres_example, *output, *files_of(tmp_path / "pg"))


def test_a_sigkilled_sync_from_postgres_reruns_and_loses_nothing(
    tmp_path: Path, manifest: dict[str, Any], postgres_example: str, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    config = warehouse_config(tmp_path, sandbox.url)
    text = config.read_text().replace(
        "max_batches_per_second: 20000", "max_batches_per_second: 400"
    )
    config.write_text(text)
    third = manifest["valid"] // 3
    sigkill_sync_when(
        config,
        WINDOW,
        lambda: sandbox.stats()["batches"] >= third,
        env={"WAREHOUSE_URI": postgres_example},
    )
    assert 0 < sandbox.stats()["batches"] < manifest["valid"]

    code, report, _ = run(config, postgres_example, "sync", *WINDOW)
    new_rejections = report["rows_rejected_local"] - report["rows_rejected_known"]
    assert code == (1 if new_rejections else 0) and report["failed"] == 0
    stats = sandbox.stats()
    assert stats["unique_confirmationrefs"] == stats["batches"] == manifest["valid"]
    assert stats["duplicate_confirmationrefs"] == 0  # resends carry the same request ids
    ledger = tmp_path / "ledger.duckdb"
    assert ledger_refs(ledger, "accepted") == set(sandbox.accepted_refs())
    assert ledger_refs(ledger, "pending") == set()


def test_backfill_from_postgres_plans_counted_in_the_warehouse_then_sends_each_once(
    tmp_path: Path,
    example_dir: Path,
    manifest: dict[str, Any],
    postgres_example: str,
    sandbox_factory: StartSandbox,
) -> None:
    sandbox = sandbox_factory()
    (tmp_path / "pg").mkdir()
    (tmp_path / "duck").mkdir()
    config = warehouse_config(tmp_path / "pg", sandbox.url)
    duck_config = sync_config(tmp_path / "duck", example_dir, sandbox.url)
    code, plan, said_plan = run(config, postgres_example, "backfill", *RANGE, "--plan")
    _, duck_plan, _ = run(duck_config, postgres_example, "backfill", *RANGE, "--plan")
    assert code == 0 and len(plan["windows"]) == 4
    assert plan["windows"] == duck_plan["windows"] and plan["rows"] == duck_plan["rows"] > 0

    code, report, said_run = run(config, postgres_example, "backfill", *RANGE)
    assert code == 1  # the example's dirty rows
    assert [w["rows_read"] for w in report["windows"]] == [w["rows"] for w in plan["windows"]]
    stats = sandbox.stats()
    assert stats["batches"] == stats["unique_confirmationrefs"] == manifest["valid"]
    run(config, postgres_example, "backfill", *RANGE)
    assert sandbox.stats()["batches"] == manifest["valid"]  # finished windows are skipped
    assert_no_secret(postgres_example, said_plan, said_run, *files_of(tmp_path / "pg"))


def test_a_query_error_and_a_refused_password_show_the_file_and_no_secret(
    tmp_path: Path, postgres: Any, postgres_example: str
) -> None:
    (tmp_path / "broken.sql").write_text(
        "SELECT order_id AS confirmationref FROM orders\n"
        "WHERE created_at::timestamptz >= $since AND created_at::timestamptz < $until\n"
        "  AND customer_email::integer > 0",
        encoding="utf-8",
    )
    config = warehouse_config(tmp_path, "http://127.0.0.1:9", query=str(tmp_path / "broken.sql"))
    result = cli("sync", "--config", str(config), *WINDOW, env={"WAREHOUSE_URI": postgres_example})
    assert result.returncode == 2, result.stderr
    assert "error: broken.sql: invalid input syntax for type integer" in result.stderr
    assert '"<value>"' in result.stderr and "@" not in result.stderr  # no email of a row
    for command in (["validate", *WINDOW], ["backfill", *RANGE, "--plan"], ["sync", *WINDOW]):
        wrong = postgres_example.replace(PASSWORD, "Not-The-Pa55word-0b9")
        result = cli(*command, "--config", str(config), env={"WAREHOUSE_URI": wrong})
        assert result.returncode == 2
        assert "password authentication failed" in result.stderr
        assert_no_secret(wrong, result.stdout + result.stderr)
        assert "Not-The-Pa55word-0b9" not in result.stdout + result.stderr
