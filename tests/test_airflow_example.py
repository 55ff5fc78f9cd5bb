"""examples/airflow_dag.py run by Airflow 3 against a sandbox, each Airflow command in
its own process with AIRFLOW_HOME in a tmp dir (a SQLite metadata database): the DAGs
folder parses without an import error or a warning, and `dag.test()` runs the sync,
whose events, with their fields, are in the task's log."""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import REPO, SandboxProcess, sync_config
from test_logs import raw_pii

pytestmark = pytest.mark.orchestrators
StartSandbox = Callable[..., SandboxProcess]


def airflow(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, env=env, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_airflow_parses_the_dag_and_its_test_run_syncs_into_the_sandbox(
    tmp_path: Path, example_dir: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(REPO / "examples" / "airflow_dag.py", dags)  # "put this file in your DAGs folder"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "ROKT_CONNECTOR_CONFIG": str(sync_config(tmp_path, example_dir, sandbox.url)),
    }
    airflow(["-m", "airflow", "db", "migrate"], env)
    out = tmp_path / "airflow_run.json"
    run = airflow([str(REPO / "tests" / "airflow_run.py"), str(out)], env)
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))

    assert result["dag_ids"] == ["rokt_conversions"]
    assert result["import_errors"] == {} and result["warnings"] == {}  # no deprecated import
    assert result["state"] == "success" and result["tasks"] == {"sync_conversions": "success"}
    (report,) = result["xcom"]  # the task's return value: the run report
    assert report["status"] == "completed_with_rejections"
    assert report["accepted"] == sandbox.stats()["batches"] > 0
    with duckdb.connect(str(tmp_path / "ledger.duckdb"), read_only=True) as con:
        runs = con.sql("SELECT run_id, status, accepted FROM runs").fetchall()
    assert runs == [(report["run_id"], report["status"], report["accepted"])]

    log = run.stdout + run.stderr  # the task's log: dag.test() writes it here
    for field in ("run_id", "status", "rows_read", "accepted", "rows_rejected_local"):
        assert f"{field}={report[field]}" in log, field
    assert "sandbox-secret" not in log
    assert not [value for value in raw_pii(example_dir) if value in log]
