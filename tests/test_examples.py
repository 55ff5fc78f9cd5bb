"""The examples the README shows: each is included verbatim from `examples/`, and the
orchestrator task bodies run (without Airflow or Dagster) against a sandbox."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from conftest import REPO, SandboxProcess, sync_config

StartSandbox = Callable[..., SandboxProcess]
INCLUDE = re.compile(r"<!-- include: (\S+) -->\n```\w*\n(.*?)```\n", re.DOTALL)


def test_the_readme_shows_each_example_file_as_it_is() -> None:
    included = INCLUDE.findall((REPO / "README.md").read_text(encoding="utf-8"))
    assert {name for name, _ in included} >= {"examples/airflow_dag.py"}
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
