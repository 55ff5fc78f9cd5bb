"""The Python API for orchestrators (`connector.sync`, `connector.validate`), in
process against a real sandbox: a config path or a loaded Config, the sync window at
the run's `now`, and failures raised as ConnectorErrors with the CLI's exit codes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import SandboxProcess, sync_config

import connector
from connector import jobs

StartSandbox = Callable[..., SandboxProcess]


def test_sync_takes_a_path_or_a_config_and_returns_the_run_report(
    tmp_path: Path, example_dir: Path, manifest: dict[str, Any], sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    path = sync_config(tmp_path, example_dir, sandbox.url)
    report = connector.sync(path)  # [now - 7d, now): now is pinned to the example's anchor
    assert report.mode == "sync" and report.exit_code == 1  # dirty rows are rejected
    assert type(report.status) is str  # plain data: orchestrators serialize it (Dagster)
    assert 0 < report.accepted < manifest["valid"]
    assert sandbox.stats()["batches"] == report.accepted

    wider = connector.sync(connector.load_config(path), since="2026-09-01", until="2026-11-02")
    assert wider.accepted == manifest["valid"] - report.accepted
    assert wider.rows_skipped_ledger == report.accepted
    stats = sandbox.stats()
    assert stats["unique_confirmationrefs"] == stats["batches"] == manifest["valid"]
    with duckdb.connect(str(tmp_path / "ledger.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM runs WHERE status <> 'running'").fetchall() == [(2,)]

    checked = connector.validate(path, since="2026-09-01", until="2026-11-02")
    assert checked.rows_read == manifest["rows"] and checked.ledger is None  # read it
    assert (checked.valid, checked.skipped) == (0, manifest["valid"])  # all sent already


def test_failures_raise_connector_errors_with_exit_codes(
    tmp_path: Path, example_dir: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    with pytest.raises(connector.ConfigError, match="cannot read config file") as missing:
        connector.sync(tmp_path / "nope.yaml")
    assert missing.value.exit_code == 2
    good = sync_config(tmp_path, example_dir, sandbox.url)
    with pytest.raises(connector.ConfigError, match="must be before until"):
        connector.sync(good, since="2026-11-02", until="2026-11-01")

    wrong = sync_config(tmp_path, example_dir, sandbox.url, api_secret="WRONG-0c5e")
    with pytest.raises(connector.FatalSendError, match="credentials refused") as refused:
        connector.sync(wrong)
    assert refused.value.exit_code == 3
    assert refused.value.report is not None and refused.value.report.status == "failed"
    assert "WRONG-0c5e" not in str(refused.value)

    hold = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); input()"
    holder = subprocess.Popen(  # another process holds the ledger
        [sys.executable, "-c", hold, str(tmp_path / "ledger.duckdb")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(connector.LedgerLocked, match="another run holds the ledger") as held:
            connector.sync(good)
        assert held.value.exit_code == 4
    finally:
        holder.communicate("\n", timeout=30)
    assert sandbox.stats()["batches"] == 0


def test_backfill_and_its_plan_in_process(
    tmp_path: Path, example_dir: Path, manifest: dict[str, Any], sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    path = sync_config(tmp_path, example_dir, sandbox.url)
    since, until = datetime(2026, 10, 5, tzinfo=UTC), date(2026, 11, 2)
    plan = connector.plan_backfill(path, since, until, window=timedelta(days=7))
    assert len(plan.windows) == 4 and plan.total("rows") == manifest["rows"]
    report = connector.backfill(path, since, until, window="7d")
    assert isinstance(report, connector.BackfillReport) and report.exit_code == 1
    assert report.total("accepted") == manifest["valid"] == sandbox.stats()["batches"]
    assert all(w.finished for w in report.windows)
    assert all(w.done for w in connector.plan_backfill(path, since, until, "7d").windows)
    with pytest.raises(connector.ConfigError, match="window: expected a duration"):
        connector.backfill(path, since, until, window="weekly")

    (tmp_path / "wrong").mkdir()
    wrong = sync_config(tmp_path / "wrong", example_dir, sandbox.url, api_secret="WRONG-0c5e")
    with pytest.raises(connector.FatalSendError) as refused:
        connector.backfill(wrong, since, until)
    assert isinstance(refused.value.report, connector.BackfillReport)
    assert refused.value.exit_code == 3 and refused.value.report.status == "failed"


def test_the_sync_window_and_the_rows_a_sync_reads(
    tmp_path: Path, example_dir: Path, manifest: dict[str, Any]
) -> None:
    """What the CLI asks before a run: its window, and the total of its progress bar."""
    config = connector.load_config(sync_config(tmp_path, example_dir, "http://127.0.0.1:9"))
    now = datetime(2026, 11, 1, tzinfo=UTC)
    assert jobs.sync_bounds(config, None, None, now) == (now - config.sync.lookback, now)
    since, until = jobs.sync_bounds(config, "2026-10-05", date(2026, 11, 2), now)
    assert (since, until) == (datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
    assert jobs.rows_to_read(config, since, until, None) == manifest["rows"]
    assert jobs.rows_to_read(config, since, until, limit=10) == 10
    with pytest.raises(connector.ConfigError, match="must be before until"):
        jobs.sync_bounds(config, "2026-11-02", None, now)
