"""`rokt-connector sync` end to end: the CLI, a real ledger file, real HTTP over
loopback to the sandbox. Each conversion is delivered once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from checks import accounted
from conftest import SandboxProcess, cli, sigkill_sync_when, sync_config

pytestmark = pytest.mark.e2e
WINDOW = ["--since", "2026-09-01", "--until", "2026-11-02"]
StartSandbox = Callable[..., SandboxProcess]


def ledger_counts(path: Path) -> dict[tuple[str, str | None], int]:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.sql("SELECT status, reason, count(*) FROM ledger GROUP BY ALL").fetchall()
    return {(status, reason): n for status, reason, n in rows}


def ledger_refs(path: Path, status: str) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.sql("SELECT confirmationref FROM ledger WHERE status = ?", params=[status])
        return {ref for (ref,) in rows.fetchall()}


def sync(config: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    result = cli("sync", "--config", str(config), *WINDOW, "--json", *extra)
    return result.returncode, json.loads(result.stdout), result.stderr


def test_sync_delivers_each_valid_conversion_once(
    tmp_path: Path, example_dir: Path, manifest: dict[str, Any], sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    config = sync_config(tmp_path, example_dir, sandbox.url)
    code, report, _ = sync(config)
    assert code == 1  # the example's dirty rows are rejected locally
    assert report["accepted"] == report["batches_sent"] == manifest["valid"]
    assert report["rows_read"] == manifest["rows"]
    assert report["rows_duplicate"] == manifest["duplicates"]
    assert report["rows_rejected_local"] == sum(manifest["rejected"].values())
    assert (report["rejected"], report["failed"], report["status"]) == (
        0,
        0,
        "completed_with_rejections",
    )
    assert report["rejected_by_reason"] == manifest["rejected"]
    assert report["warnings"] == manifest["warnings"]

    stats = sandbox.stats()
    assert stats["batches"] == stats["unique_confirmationrefs"] == manifest["valid"]
    assert stats["duplicate_confirmationrefs"] == 0 and stats["resent"] == 0
    ledger = tmp_path / "ledger.duckdb"
    assert ledger_refs(ledger, "accepted") == set(sandbox.accepted_refs())
    counts = ledger_counts(ledger)
    assert counts[("accepted", None)] == manifest["valid"]
    assert {r: n for (s, r), n in counts.items() if s == "rejected_local"} == manifest["rejected"]

    code, again, _ = sync(config)  # nothing left to send, no rejection it did not know
    assert code == 0 and again["status"] == "succeeded"
    rejected = sum(manifest["rejected"].values())
    assert again["rows_rejected_known"] == again["rows_rejected_local"] == rejected
    assert (again["requests"], again["accepted"]) == (0, 0)
    assert again["rows_skipped_ledger"] == manifest["valid"]
    assert sandbox.stats()["requests"] == stats["requests"]
    with duckdb.connect(str(ledger), read_only=True) as con:
        runs = con.sql("SELECT accepted, rows_skipped_ledger FROM runs ORDER BY started_at")
        assert runs.fetchall() == [(manifest["valid"], 0), (0, manifest["valid"])]


def test_dry_run_sends_nothing_and_writes_no_ledger(
    tmp_path: Path, example_dir: Path, manifest: dict[str, Any], sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    code, report, _ = sync(sync_config(tmp_path, example_dir, sandbox.url), "--dry-run")
    assert code == 1 and report["mode"] == "dry_run"
    assert (report["requests"], report["accepted"], report["rows_read"]) == (0, 0, manifest["rows"])
    assert sandbox.stats()["requests"] == 0
    assert not (tmp_path / "ledger.duckdb").exists()  # a dry run writes nothing


def test_faults_and_rate_limit_still_deliver_each_conversion_once(
    tmp_path: Path, example_dir: Path, manifest: dict[str, Any], sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory("--fail-rate", "0.2", "--rate-limit", "200", "--seed", "3")
    config = sync_config(
        tmp_path, example_dir, sandbox.url, max_batches_per_second=200, max_attempts=10
    )
    code, report, _ = sync(config)
    assert code == 1  # the same exit code as without faults
    assert report["accepted"] == manifest["valid"] and report["failed"] == 0
    assert report["retries"] > 0
    stats = sandbox.stats()
    assert stats["unique_confirmationrefs"] == manifest["valid"]
    assert stats["duplicate_confirmationrefs"] == 0
    failures = sum(n for status, n in stats["responses_by_status"].items() if status != "202")
    assert failures > 0  # faults really happened
    assert ledger_refs(tmp_path / "ledger.duckdb", "accepted") == set(sandbox.accepted_refs())


def test_wrong_secret_exits_3_quickly_without_printing_it(
    tmp_path: Path, example_dir: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    secret = "WRONG-secret-0c5e"
    config = sync_config(tmp_path, example_dir, sandbox.url, api_secret=secret)
    started = time.monotonic()
    result = cli("sync", "--config", str(config), *WINDOW, "--json")
    assert result.returncode == 3
    assert time.monotonic() - started < 20
    assert "credentials refused (HTTP 403)" in result.stderr
    assert secret not in result.stdout + result.stderr
    assert json.loads(result.stdout)["status"] == "failed"
    assert ledger_refs(tmp_path / "ledger.duckdb", "accepted") == set()
    assert sandbox.stats()["batches"] == 0


def test_a_202_rejecting_some_batches_marks_exactly_those_rows(
    tmp_path: Path, example_dir: Path, manifest: dict[str, Any], sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory("--reject-rate", "0.05", "--seed", "11")
    code, report, _ = sync(sync_config(tmp_path, example_dir, sandbox.url))
    stats = sandbox.stats()
    assert code == 1 and stats["rejected"] > 0
    assert report["rejected"] == stats["rejected"]
    assert report["accepted"] == stats["batches"] == manifest["valid"] - stats["rejected"]
    ledger = tmp_path / "ledger.duckdb"
    rejected = {r: n for (s, r), n in ledger_counts(ledger).items() if s == "rejected"}
    message = "BAD_REQUEST: sandbox --reject-rate rejected this batch (rejected_by_sandbox)."
    assert rejected == {message: stats["rejected"]}
    assert ledger_refs(ledger, "accepted") == set(sandbox.accepted_refs())
    # unchanged rejected payloads are not sent again
    code, again, _ = sync(sync_config(tmp_path, example_dir, sandbox.url))
    assert again["requests"] == 0 and again["rows_skipped_ledger"] == manifest["valid"]


def test_sigkill_mid_sync_then_rerun_loses_nothing(
    tmp_path: Path, example_dir: Path, manifest: dict[str, Any], sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    config = sync_config(tmp_path, example_dir, sandbox.url, max_batches_per_second=400)
    third = manifest["valid"] // 3
    sigkill_sync_when(config, WINDOW, lambda: sandbox.stats()["batches"] >= third)
    delivered = sandbox.stats()["batches"]
    assert 0 < delivered < manifest["valid"]

    code, report, _ = sync(config)
    # the killed run's chunks had their rejections recorded: known now, not new
    new_rejections = report["rows_rejected_local"] - report["rows_rejected_known"]
    assert code == (1 if new_rejections else 0) and report["failed"] == 0
    stats = sandbox.stats()
    assert stats["unique_confirmationrefs"] == stats["batches"] == manifest["valid"]
    assert stats["duplicate_confirmationrefs"] == 0  # resends carry the same request ids
    ledger = tmp_path / "ledger.duckdb"
    assert ledger_refs(ledger, "accepted") == set(sandbox.accepted_refs())
    assert ledger_refs(ledger, "pending") == set()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_gracefully_and_the_rerun_resends_nothing(
    tmp_path: Path,
    example_dir: Path,
    manifest: dict[str, Any],
    sandbox_factory: StartSandbox,
    sig: signal.Signals,
) -> None:
    sandbox = sandbox_factory()
    config = sync_config(tmp_path, example_dir, sandbox.url, max_batches_per_second=400)
    args = [sys.executable, "-m", "connector", "sync", "--config", str(config), *WINDOW, "--json"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while sandbox.stats()["batches"] < manifest["valid"] // 4:
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)  # polling the other process, not waiting out a timer
    process.send_signal(sig)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 130
    report = json.loads(out)
    assert report["status"] == "interrupted" and report["failed"] == 0
    assert 0 < report["accepted"] < manifest["valid"]
    ledger = tmp_path / "ledger.duckdb"
    assert ledger_refs(ledger, "accepted") == set(sandbox.accepted_refs())  # in flight settled
    # the report adds up: rows recorded but never sent are `pending`, as in the ledger
    assert report["pending"] == len(ledger_refs(ledger, "pending")) > 0
    assert report["rows_read"] == accounted(report)

    code, rerun, _ = sync(config)
    assert rerun["accepted"] == manifest["valid"] - report["accepted"]
    assert code == (1 if rerun["rows_rejected_local"] > rerun["rows_rejected_known"] else 0)
    stats = sandbox.stats()
    assert stats["unique_confirmationrefs"] == stats["batches"] == manifest["valid"]
    assert (stats["duplicate_confirmationrefs"], stats["resent"]) == (0, 0)


def test_the_first_second_keeps_to_max_batches_per_second(
    tmp_path: Path, small_example: tuple[Path, dict[str, Any]], sandbox_factory: StartSandbox
) -> None:
    """A sandbox limited to 270 batches/s, the connector at its default 270: the run
    starts with one request's worth of tokens, so the platform never says 429."""
    example, manifest = small_example
    sandbox = sandbox_factory("--rate-limit", "270")
    config = sync_config(tmp_path, example, sandbox.url, max_batches_per_second=270)
    code, report, stderr = sync(config)
    assert code == 1, stderr  # the example's dirty rows are rejected locally
    assert report["accepted"] == manifest["valid"] and report["retries"] == 0
    assert sandbox.stats()["responses_by_status"]["429"] == 0
