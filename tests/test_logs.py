"""`--log-format text|json` end to end: events on stderr for people and log shippers,
the `--json` report alone on stdout, and no secret or raw PII in either."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import SandboxProcess, cli, sync_config

pytestmark = pytest.mark.e2e
WINDOW = ["--since", "2026-09-01", "--until", "2026-11-02"]
StartSandbox = Callable[..., SandboxProcess]


def raw_pii(example_dir: Path) -> set[str]:
    with duckdb.connect(str(example_dir / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql(
            "SELECT DISTINCT trim(v) FROM (SELECT unnest([customer_email, last_name, phone]) "
            "AS v FROM orders) WHERE length(trim(v)) >= 6"
        ).fetchall()
    return {v for (v,) in rows}


def json_lines(text: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in text.splitlines()]
    assert all({"timestamp", "level", "event"} <= set(e) for e in events)
    return events


def test_json_logs_on_stderr_and_one_report_on_stdout(
    tmp_path: Path, example_dir: Path, manifest: dict[str, Any], sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    config = sync_config(tmp_path, example_dir, sandbox.url)
    result = cli("sync", "--config", str(config), *WINDOW, "--json", "--log-format", "json")
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 1
    report = json.loads(result.stdout)
    events = json_lines(result.stderr)  # every stderr line is one JSON object
    assert [e["event"] for e in events] == ["run_started", "run_finished"]
    started, finished = events
    assert started["run_id"] == finished["run_id"] == report["run_id"]
    assert (started["since"], started["until"]) == ("2026-09-01T00:00:00Z", "2026-11-02T00:00:00Z")
    assert finished["level"] == "warning"  # rows were rejected
    for key in ("status", "rows_read", "accepted", "rows_rejected_local", "batches_sent"):
        assert finished[key] == report[key]
    assert finished["rejected_by_reason"] == report["rejected_by_reason"] == manifest["rejected"]
    assert finished["accepted"] == manifest["valid"]
    output = result.stdout + result.stderr
    assert not [value for value in raw_pii(example_dir) if value in output]
    assert "sandbox-secret" not in output


def test_text_logs_are_the_default(
    tmp_path: Path, example_dir: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    config = sync_config(tmp_path, example_dir, sandbox.url)
    result = cli("sync", "--config", str(config), "--json")
    report = json.loads(result.stdout)
    lines = result.stderr.splitlines()
    assert [line.split()[1:3] for line in lines] == [
        ["info", "run_started"],
        ["warning", "run_finished"],
    ]
    assert f"run_id={report['run_id']}" in lines[1]
    assert f"accepted={report['accepted']}" in lines[1]
    reasons = json.dumps(report["rejected_by_reason"], separators=(",", ":"))
    assert f"rejected_by_reason={reasons}" in lines[1]


def test_errors_are_json_events_too_and_carry_no_secret(
    tmp_path: Path, example_dir: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    secret = "WRONG-secret-77aa"
    config = sync_config(tmp_path, example_dir, sandbox.url, api_secret=secret)
    result = cli("sync", "--config", str(config), *WINDOW, "--json", "--log-format", "json")
    assert result.returncode == 3
    assert json.loads(result.stdout)["status"] == "failed"
    events = json_lines(result.stderr)
    assert [e["event"] for e in events] == ["run_started", "run_finished", "error"]
    assert events[1]["level"] == events[2]["level"] == "error"
    assert "credentials refused (HTTP 403)" in events[2]["message"]
    assert secret not in result.stdout + result.stderr

    result = cli("sync", "--config", str(tmp_path / "missing.yaml"), "--log-format", "json")
    assert result.returncode == 2 and result.stdout == ""
    (error,) = json_lines(result.stderr)
    assert error["event"] == "error" and "cannot read config file" in error["message"]
