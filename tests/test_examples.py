"""The examples the README shows: each is included verbatim from `examples/`, and the
orchestrator task bodies run (without Airflow or Dagster) against a sandbox."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from conftest import REPO, SandboxProcess, sync_config

StartSandbox = Callable[..., SandboxProcess]
INCLUDE = re.compile(r"<!-- include: (\S+) -->\n```\w*\n(.*?)```\n", re.DOTALL)


def test_the_readme_shows_each_example_file_as_it_is() -> None:
    included = INCLUDE.findall((REPO / "README.md").read_text(encoding="utf-8"))
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
