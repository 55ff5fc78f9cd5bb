"""`rokt-connector backfill` end to end: windows, finished windows skipped on rerun (an
interrupted backfill resumes without redoing or resending anything), `--plan` numbers
that the run then matches, too-old history, the progress bar on a terminal."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import SandboxProcess, base_config, cli, sync_config, write_config

from connector.clock import NOW_VARIABLE

pytestmark = pytest.mark.e2e
StartSandbox = Callable[..., SandboxProcess]
RANGE = ["--since", "2026-10-05", "--until", "2026-11-02"]  # the example: [10-07, 11-01)


def backfill(config: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, Any]:
    result = cli("backfill", "--config", str(config), "--json", *args, env=env)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def query(ledger: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(ledger), read_only=True) as con:
        return con.sql(sql).fetchall()


def runs_per_window(ledger: Path) -> dict[tuple[datetime, datetime], int]:
    sql = "SELECT window_since, window_until, count(*) FROM runs WHERE mode = 'backfill'"
    rows = query(ledger, sql + " GROUP BY ALL")
    return {(since, until): n for since, until, n in rows}


def finished_windows(ledger: Path) -> set[tuple[datetime, datetime]]:
    return set(query(ledger, "SELECT window_since, window_until FROM backfill_windows"))


def assert_each_valid_conversion_once(
    sandbox: SandboxProcess, ledger: Path, manifest: dict[str, Any]
) -> None:
    stats = sandbox.stats()
    assert stats["unique_confirmationrefs"] == stats["batches"] == manifest["valid"]
    assert stats["duplicate_confirmationrefs"] == 0
    accepted = query(ledger, "SELECT confirmationref FROM ledger WHERE status = 'accepted'")
    assert {ref for (ref,) in accepted} == set(sandbox.accepted_refs())
    assert query(ledger, "SELECT count(*) FROM ledger WHERE status = 'pending'") == [(0,)]


def test_backfill_sends_every_window_and_a_rerun_skips_the_finished_ones(
    tmp_path: Path, example_dir: Path, manifest: dict[str, Any], sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    config = sync_config(tmp_path, example_dir, sandbox.url)
    ledger = tmp_path / "ledger.duckdb"
    code, report = backfill(config, *RANGE)
    assert code == 1 and report["status"] == "completed_with_rejections"  # dirty rows
    assert (report["windows_total"], report["windows_finished"], report["windows_left"]) == (
        28,
        28,
        0,
    )
    assert report["accepted"] == manifest["valid"] and report["rows_read"] == manifest["rows"]
    assert [w["status"] for w in report["windows"]][:2] == ["succeeded", "succeeded"]  # empty
    assert report["rejected_by_reason"] == manifest["rejected"]  # summed over the windows
    assert report["warnings"] == manifest["warnings"]
    assert sum(w["accepted"] for w in report["windows"]) == manifest["valid"]
    assert_each_valid_conversion_once(sandbox, ledger, manifest)
    assert len(finished_windows(ledger)) == 28
    assert set(runs_per_window(ledger).values()) == {1}

    # the same backfill again: nothing to do, nothing read
    code, again = backfill(config, *RANGE)
    assert code == 0 and again["status"] == "succeeded"
    assert (again["windows_skipped"], again["rows_read"], again["requests"]) == (28, 0, 0)
    # a longer range runs only the new days; 7-day windows inside finished days are done
    code, longer = backfill(config, "--since", "2026-10-05", "--until", "2026-11-04")
    assert (longer["windows_skipped"], longer["windows_finished"]) == (28, 2)
    code, weekly = backfill(config, *RANGE, "--window", "7d")
    assert (weekly["windows_total"], weekly["windows_skipped"]) == (4, 4)
    assert set(runs_per_window(ledger).values()) == {1}
    assert sandbox.stats()["requests"] == report["requests"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_an_interrupted_backfill_resumes_without_redoing_finished_windows(
    tmp_path: Path,
    example_dir: Path,
    manifest: dict[str, Any],
    sandbox_factory: StartSandbox,
    sig: signal.Signals,
) -> None:
    sandbox = sandbox_factory()
    config = sync_config(tmp_path, example_dir, sandbox.url, max_batches_per_second=400)
    ledger = tmp_path / "ledger.duckdb"
    args = [sys.executable, "-m", "connector", "backfill", "--config", str(config), *RANGE]
    process = subprocess.Popen(
        [*args, "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    deadline = time.monotonic() + 60
    while sandbox.stats()["batches"] < manifest["valid"] // 3:
        assert process.poll() is None, "the backfill ended before it could be stopped"
        assert time.monotonic() < deadline
        time.sleep(0.05)  # polling the other process, not waiting out a timer
    process.send_signal(sig)
    out, _ = process.communicate(timeout=60)
    delivered = sandbox.stats()["batches"]
    assert 0 < delivered < manifest["valid"]
    if sig == signal.SIGINT:  # a graceful stop reports what it did
        assert process.returncode == 130
        stopped = json.loads(out)
        assert stopped["status"] == "interrupted" and stopped["windows_left"] > 0
        statuses = {w["status"] for w in stopped["windows"]}
        assert {"interrupted", "not_started"} <= statuses
    finished_before = finished_windows(ledger)
    assert 0 < len(finished_before) < 28
    runs_before = runs_per_window(ledger)

    code, rerun = backfill(config, *RANGE)
    assert code == 1 and rerun["windows_left"] == 0
    assert rerun["windows_skipped"] == len(finished_before)
    skipped = {
        (datetime.fromisoformat(w["since"]), datetime.fromisoformat(w["until"]))
        for w in rerun["windows"]
        if w["status"] == "skipped"
    }
    assert skipped == finished_before
    runs_after = runs_per_window(ledger)
    assert {w: runs_after[w] for w in finished_before} == {w: 1 for w in finished_before}
    assert len(finished_windows(ledger)) == 28
    assert sum(runs_after.values()) == sum(runs_before.values()) + 28 - len(finished_before)
    assert_each_valid_conversion_once(sandbox, ledger, manifest)  # none lost, none twice


def clean_warehouse(tmp: Path, url: str) -> Path:
    """Unique valid orders every 3 hours from 2026-09-29 to 2026-10-06 (so 8 a day),
    and a config that sends them to `url`."""
    with duckdb.connect(str(tmp / "warehouse.duckdb")) as con:
        con.execute(
            "CREATE TABLE o AS SELECT 'R' || i AS confirmationref, 'u' || i || '@x.co' AS email,"
            " 'purchase' AS conversiontype,"
            " TIMESTAMPTZ '2026-09-29 01:00:00+00' + INTERVAL (3 * i) HOUR AS event_time"
            " FROM range(56) r(i)"
        )
    (tmp / "query.sql").write_text(
        "SELECT * FROM o WHERE event_time >= $since AND event_time < $until", encoding="utf-8"
    )
    destination = {"base_url": url, "api_key": "sandbox-key", "api_secret": "sandbox-secret"}
    destination |= {"max_batches_per_second": 50}
    return write_config(tmp, base_config(tmp, destination=destination))


def test_plan_numbers_match_what_the_backfill_then_does(
    tmp_path: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    config = clean_warehouse(tmp_path, sandbox.url)
    ledger = tmp_path / "ledger.duckdb"
    # now - 30d = 2026-10-01T12:00Z: days before it are too old, Oct 1 is split at noon
    env = {NOW_VARIABLE: "2026-10-31T12:00:00Z"}
    days = ["--since", "2026-09-29", "--until", "2026-10-06"]
    code, plan = backfill(config, *days, "--plan", env=env)
    assert code == 0 and not ledger.exists() and sandbox.stats()["requests"] == 0
    assert plan["oldest_event"] == "2026-10-01T12:00:00Z"
    assert [(w["rows"], w["too_old"], w["batches"]) for w in plan["windows"]] == [
        (8, 8, 0),  # 09-29
        (8, 8, 0),
        (8, 4, 4),  # 10-01: 01:00 04:00 07:00 10:00 too old; 13:00 ... 22:00 not
        (8, 0, 8),
        (8, 0, 8),
        (8, 0, 8),
        (8, 0, 8),  # 10-05
    ]
    assert (plan["rows"], plan["too_old"], plan["batches"]) == (56, 20, 36)
    assert plan["estimated_s"] == round(36 / 50, 1)

    code, report = backfill(config, *days, env=env)
    assert code == 1  # too-old rows are rejected locally
    for planned, done in zip(plan["windows"], report["windows"], strict=True):
        assert (planned["since"], planned["until"]) == (done["since"], done["until"])
        assert planned["rows"] == done["rows_read"]
        assert planned["too_old"] == done["rows_rejected_local"]
        assert planned["batches"] == done["batches_sent"] == done["accepted"]
    assert sandbox.stats()["batches"] == plan["batches"]
    reasons = query(
        ledger, "SELECT reason, count(*) FROM ledger WHERE status = 'rejected_local' GROUP BY 1"
    )
    assert reasons == [("too_old", 20)]

    code, after = backfill(config, *days, "--plan", env=env)
    assert all(w["done"] for w in after["windows"]) and after["rows"] == 0
    text = cli("backfill", "--config", str(config), *days, "--plan", env=env).stdout
    assert "7 window(s) finished earlier are skipped" in text and "Nothing was sent" in text


def test_plan_reads_the_ledger_without_its_write_lock(
    tmp_path: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    config = clean_warehouse(tmp_path, sandbox.url)
    ledger = tmp_path / "ledger.duckdb"
    env = {NOW_VARIABLE: "2026-10-31T12:00:00Z"}
    days = ["--since", "2026-10-02", "--until", "2026-10-04"]
    assert backfill(config, *days, env=env)[0] == 0
    # an auditor has the ledger open read-only: a plan still works, a backfill waits
    hold = "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
    hold += "print(1, flush=True); input()"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(ledger)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "1\n"
        wider = ["--since", "2026-10-02", "--until", "2026-10-06"]
        text = cli("backfill", "--config", str(config), *wider, "--plan", env=env)
        assert text.returncode == 0, text.stderr
        assert "2 window(s) finished earlier are skipped" in text.stdout
        blocked = cli("backfill", "--config", str(config), *wider, env=env)
        assert blocked.returncode == 4 and "another run holds the ledger" in blocked.stderr
    finally:
        holder.communicate("\n", timeout=30)


def test_too_old_history_is_recorded_not_sent(
    tmp_path: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    config = clean_warehouse(tmp_path, sandbox.url)
    env = {NOW_VARIABLE: "2026-12-31T00:00:00Z"}  # every order is over 30 days old
    code, report = backfill(config, "--since", "2026-09-29", "--until", "2026-10-06", env=env)
    assert code == 1 and report["windows_finished"] == 7  # a final outcome for every row
    assert (report["rows_rejected_local"], report["requests"]) == (56, 0)
    assert sandbox.stats()["requests"] == 0


def test_a_fatal_error_stops_the_backfill_at_the_first_window(
    tmp_path: Path, example_dir: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    config = sync_config(tmp_path, example_dir, sandbox.url, api_secret="WRONG-77")
    result = cli("backfill", "--config", str(config), *RANGE, "--json")
    assert result.returncode == 3 and "credentials refused" in result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "failed" and "credentials refused" in report["message"]
    statuses = [w["status"] for w in report["windows"]]
    assert statuses[:3] == ["succeeded", "succeeded", "failed"]  # two empty days, then refused
    assert set(statuses[3:]) == {"not_started"}
    assert finished_windows(tmp_path / "ledger.duckdb") == {
        (datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 10, 6, tzinfo=UTC)),
        (datetime(2026, 10, 6, tzinfo=UTC), datetime(2026, 10, 7, tzinfo=UTC)),
    }
    assert sandbox.stats()["batches"] == 0 and "WRONG-77" not in result.stdout + result.stderr


def test_the_progress_bar_shows_on_a_terminal(
    tmp_path: Path, example_dir: Path, manifest: dict[str, Any], sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    config = sync_config(tmp_path, example_dir, sandbox.url, max_batches_per_second=2000)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "connector", "backfill", "--config", str(config), *RANGE],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env={**os.environ, "COLUMNS": "200", "TERM": "xterm"},
    )
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the other end closed: the backfill ended
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    assert process.wait(timeout=60) == 1
    text = screen.decode(errors="replace")
    assert "backfill" in text and "/28 windows" in text and "batches/s" in text
    assert f"/{manifest['rows']:,} rows" in text  # the plan's total, counted beforehand
