"""The examples the README shows: each is included verbatim from `examples/`, and the
orchestrator task bodies run (without Airflow or Dagster) against a sandbox."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from conftest import REPO, SandboxProcess, base_config, cli, sync_config, write_config

from connector.spec import REASONS, WARNINGS

StartSandbox = Callable[..., SandboxProcess]
INCLUDE = re.compile(r"<!-- include: (\S+) -->\n```\w*\n(.*?)```\n", re.DOTALL)
README = (REPO / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    """The README's text under `## title`, up to the next section."""
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_shows_each_example_file_as_it_is() -> None:
    included = INCLUDE.findall(README)
    assert {name for name, _ in included} >= {
        "examples/airflow_dag.py",
        "examples/dagster_assets.py",
    }
    for name, shown in included:
        assert shown == (REPO / name).read_text(encoding="utf-8"), f"README shows an old {name}"


def test_the_airflow_task_body_runs_a_scheduled_sync(
    tmp_path: Path, example_dir: Path, sandbox_factory: StartSandbox
) -> None:
    from airflow_dag import sync_conversions  # examples/airflow_dag.py, without Airflow

    sandbox = sandbox_factory()
    report = sync_conversions(str(sync_config(tmp_path, example_dir, sandbox.url)))
    assert report["mode"] == "sync" and report["status"] == "completed_with_rejections"
    assert report["accepted"] == sandbox.stats()["batches"] > 0


def test_the_dagster_asset_bodies_sync_and_send_history_once(
    tmp_path: Path, example_dir: Path, sandbox_factory: StartSandbox
) -> None:
    from dagster_assets import send_history, sync_conversions  # without Dagster

    sandbox = sandbox_factory()
    config = str(sync_config(tmp_path, example_dir, sandbox.url))
    days = datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 10, 12, tzinfo=UTC)
    history = send_history(*days, config=config)
    assert history["windows_finished"] == 7 and history["accepted"] > 0
    assert sandbox.stats()["batches"] == history["accepted"]
    again = send_history(*days, config=config)  # the partitions materialized again
    assert again["windows_skipped"] == 7 and again["requests"] == 0
    latest = sync_conversions(config)  # [now - 7d, now): after the history
    assert latest["accepted"] == sandbox.stats()["batches"] - history["accepted"] > 0


def test_the_readme_mapping_example_runs_on_the_example_warehouse(
    tmp_path: Path, example_dir: Path, manifest: dict[str, Any]
) -> None:
    """The query under "Mapping your warehouse" reads every row of the example warehouse
    (its created_at is text in mixed renderings), and keeps a row whose time it cannot
    read, rejected as invalid_event_time instead of lost."""
    (query,) = re.findall(r"```sql\n(.*?)```", _section("Mapping your warehouse"), re.DOTALL)
    (tmp_path / "query.sql").write_text(query, encoding="utf-8")
    shutil.copy(example_dir / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    config = str(write_config(tmp_path, base_config(tmp_path)))
    window = ["--since", "2026-09-01", "--until", "2026-11-02", "--json"]
    result = cli("validate", "--config", config, *window)
    assert result.returncode <= 1, result.stderr
    report = json.loads(result.stdout)
    assert (report["rows_read"], report["valid"]) == (manifest["rows"], manifest["valid"])
    assert report["rejected_by_reason"] == manifest["rejected"]

    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("UPDATE orders SET created_at = '28/10/2026 10:00' WHERE rowid < 2")
    result = cli("validate", "--config", config, *window)
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["rows_read"] == manifest["rows"]
    assert report["rejected_by_reason"]["invalid_event_time"] == 2


def test_the_readme_lists_every_reason_code_and_warning() -> None:
    text = " ".join(re.sub(r"\([^)]*\)", "", _section("Validate before you send")).split())
    reasons = re.search(r"Reason codes ?:(.*?)Each one's hint", text)
    warnings = re.search(r"Field warnings\..*?Codes ?:(.*?)\.", text)
    assert reasons and warnings, "the README's lists of reason codes and warnings moved"
    assert sorted(re.findall(r"`([a-z_]+)`", reasons[1])) == sorted(REASONS)
    assert sorted(re.findall(r"`([a-z_]+)`", warnings[1])) == sorted(WARNINGS)
