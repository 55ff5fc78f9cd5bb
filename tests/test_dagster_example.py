"""examples/dagster_assets.py run by Dagster itself against a sandbox: the definitions
load, `rokt_conversions` materializes with its counts and its check, history
partitions send their days once with each day's counts, and the run's log shows the
connector's events without a secret or raw PII."""

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from conftest import REPO, SandboxProcess, sync_config
from dagster_assets import defs, rokt_conversions, rokt_conversions_history
from test_logs import raw_pii

pytestmark = pytest.mark.orchestrators
StartSandbox = Callable[..., SandboxProcess]
CHECK = "no_new_rejections"
EXAMPLE = "examples/dagster_assets.py"
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance:
        yield instance


@pytest.fixture
def sandbox(
    tmp_path: Path,
    example_dir: Path,
    sandbox_factory: StartSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> SandboxProcess:
    """A sandbox, and ROKT_CONNECTOR_CONFIG naming a config that syncs into it."""
    started = sandbox_factory()
    monkeypatch.setenv(
        "ROKT_CONNECTOR_CONFIG", str(sync_config(tmp_path, example_dir, started.url))
    )
    return started


def materialized(result: dg.ExecuteInProcessResult, node: str) -> dict[str | None, Any]:
    """Each materialization's metadata values, by partition key (None: unpartitioned)."""
    return {
        m.partition: {key: value.value for key, value in m.metadata.items()}
        for m in result.asset_materializations_for_node(node)
    }


def check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == CHECK
    return evaluation


def run_log(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))


def test_the_definitions_load_in_dagster(tmp_path: Path) -> None:
    """What the issue ran: `dagster definitions validate -f examples/dagster_assets.py`."""
    validate = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-f", EXAMPLE],
        cwd=REPO,
        input="",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        check=False,
    )
    output = validate.stdout + validate.stderr
    assert validate.returncode == 0, output
    assert "All code locations passed validation" in output


def test_rokt_conversions_materializes_with_its_counts_check_and_events(
    tmp_path: Path,
    example_dir: Path,
    manifest: dict[str, Any],
    sandbox: SandboxProcess,
    instance: dg.DagsterInstance,
) -> None:
    result = dg.materialize([rokt_conversions], instance=instance)
    assert result.success
    report = materialized(result, "rokt_conversions")[None]
    assert report["status"] == "completed_with_rejections"
    assert report["accepted"] == sandbox.stats()["batches"] > 0
    evaluation = check(result)  # the example's dirty rows are new rejections
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    counts = {key: value.value for key, value in evaluation.metadata.items()}
    assert counts["new_local_rejections"] == report["rows_rejected_local"] > 0
    assert counts["rejected_by_reason"] == report["rejected_by_reason"]
    log = run_log(instance, result)
    assert f"run_id={report['run_id']}" in log and f"accepted={report['accepted']}" in log
    assert "status=completed_with_rejections" in log
    assert "sandbox-secret" not in log
    assert not [value for value in raw_pii(example_dir) if value in log]

    # The schedule's tick: its job materializes the asset again.
    schedule = defs.resolve_schedule_def("rokt_sync_schedule")
    assert schedule.cron_schedule == "*/15 * * * *"
    again = defs.resolve_job_def(schedule.job_name).execute_in_process(instance=instance)
    report = materialized(again, "rokt_conversions")[None]
    assert (report["status"], report["requests"]) == ("succeeded", 0)
    assert check(again).passed  # the same rejections, known: nothing new


def test_an_instance_that_manages_the_connector_logger_shows_each_event_once(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    """`python_logs.managed_python_loggers: [connector]` in dagster.yaml: Dagster takes
    the records itself, and the example does not forward them a second time."""
    python_logs = {"managed_python_loggers": ["connector"], "python_log_level": "INFO"}
    with dg.DagsterInstance.ephemeral(
        tempdir=str(tmp_path / "dagster"), settings={"python_logs": python_logs}
    ) as instance:
        result = dg.materialize([rokt_conversions], instance=instance)
        log = run_log(instance, result)
    report = materialized(result, "rokt_conversions")[None]
    assert log.count("run_finished ") == 1 and f"run_id={report['run_id']}" in log


def test_history_partitions_send_their_days_once_each_with_its_own_counts(
    sandbox: SandboxProcess, instance: dg.DagsterInstance
) -> None:
    history = [rokt_conversions_history]
    first = dg.materialize(history, instance=instance, partition_key="2026-10-20")
    day = materialized(first, "rokt_conversions_history")["2026-10-20"]
    assert (day["since"], day["until"], day["finished"]) == (
        "2026-10-20T00:00:00Z",
        "2026-10-21T00:00:00Z",
        True,
    )
    assert day["accepted"] == sandbox.stats()["batches"] > 0

    again = dg.materialize(history, instance=instance, partition_key="2026-10-20")
    assert materialized(again, "rokt_conversions_history")["2026-10-20"]["status"] == "skipped"
    assert sandbox.stats()["batches"] == day["accepted"]  # nothing sent twice
    assert check(again).passed

    # A single-run backfill of a week, as the UI launches it: one run, a range of days.
    week = dg.materialize(
        history, instance=instance, tags=dict(zip(RANGE, ("2026-10-20", "2026-10-26"), strict=True))
    )
    days = materialized(week, "rokt_conversions_history")
    assert sorted(days) == [f"2026-10-{d:02}" for d in range(20, 27)]
    assert days["2026-10-20"]["status"] == "skipped"
    sent = [days[key]["accepted"] for key in sorted(days)[1:]]
    assert sum(sent) + day["accepted"] == sandbox.stats()["batches"]
    assert len(set(sent)) > 1  # each day its own counts, not the run's
    assert not check(week).passed  # the week's dirty rows: new rejections
