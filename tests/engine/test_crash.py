"""Crash safety: SIGKILL a `rokt-connector sync` at chosen points, then run it again.

The points are hit exactly with the test-only hook `ROKT_CONNECTOR_CRASH_AT=<point>:<n>`
(`connector.engine.crash.CRASH_AT_ENV`: the process SIGKILLs itself the n-th time it
reaches the point): while the query is being read, after a chunk is written `pending`
but before its requests leave, and after answers came back but before the ledger
settled them (the sandbox accepted, the ledger does not know). Requests in flight are
held by the sandbox (`--latency`) while the test kills the run from outside.

After each kill the rerun must lose nothing (every valid conversion accepted exactly
once), and resend exactly the batches that were in flight at the kill (those the
sandbox had received while the ledger still had them `pending`), under the same
`source_request_id`, so the platform recognises them.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from checks import (
    CHUNK_ROWS,
    WINDOW,
    Example,
    Run,
    StartSandbox,
    assert_each_valid_conversion_once,
    ledger_rows,
    start_sync,
    sync,
    wait_until,
)
from conftest import SandboxProcess, cli, sync_config

from connector.engine.crash import CRASH_AT_ENV

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]


def runs_by_status(ledger: Path) -> dict[str, int]:
    with duckdb.connect(str(ledger), read_only=True) as con:
        rows = con.sql("SELECT status, count(*) FROM runs GROUP BY status").fetchall()
    return dict(rows)


def rerun_resends_only_what_was_in_flight(
    what: str,
    killed_after_s: float,
    tmp_path: Path,
    config: Path,
    sandbox: SandboxProcess,
    manifest: dict[str, Any],
) -> tuple[int, int]:
    """Rerun after a kill; returns (rows pending at the kill, batches in flight then)."""
    wait_until(lambda: sandbox.stats()["in_flight"] == 0, None)  # it answers what it holds
    ledger = tmp_path / "ledger.duckdb"
    at_kill = ledger_rows(ledger)
    pending = {ref: row.request_id for ref, row in at_kill.items() if row.status == "pending"}
    received = {r["source_request_id"]: r["receipts"] for r in sandbox.records()}
    settled = {ref for ref, row in at_kill.items() if row.status == "accepted"}
    assert settled <= set(sandbox.accepted_refs()), "the ledger says accepted, the API does not"
    in_flight = {request_id for request_id in pending.values() if request_id in received}

    killed_runs = runs_by_status(ledger)
    assert killed_runs == {"running": 1}, "the killed run could not finish its runs row"

    rerun = sync(config)
    assert rerun.code == 1, rerun.stderr  # 1: the example's dirty rows are rejected locally
    # the rerun, taking the ledger, marks the killed run as what it was
    assert runs_by_status(ledger) == {"interrupted": 1, "completed_with_rejections": 1}
    assert (rerun.report["status"], rerun.report["failed"]) == ("completed_with_rejections", 0)
    skipped = rerun.report["rows_skipped_ledger"]
    assert skipped == len(settled), (
        f"the rerun skipped {skipped} of the {len(settled)} conversions settled before the kill"
    )
    after = {r["source_request_id"]: r["receipts"] for r in sandbox.records()}
    resent = {rid for rid, n in after.items() if rid in received and n > received[rid]}
    assert resent == in_flight, (
        f"the rerun resent {len(resent - in_flight)} batches that were not in flight at the "
        f"kill and left out {len(in_flight - resent)} that were"
    )
    assert sandbox.stats()["resent"] == len(in_flight)
    # a pending conversion is resent under the request id the ledger wrote ahead
    accepted_ids = {r["confirmationref"]: r["source_request_id"] for r in sandbox.records()}
    assert {ref: accepted_ids[ref] for ref in pending} == pending
    report = {"retries": 0, "isolated": 0, "accepted": len(settled), "rejected": 0}  # settled
    killed = Run(-signal.SIGKILL, report, "", killed_after_s)
    assert_each_valid_conversion_once(
        what, ledger, sandbox, manifest, [killed, rerun], max_attempts=8
    )
    return len(pending), len(in_flight)


POINTS = {
    "read:1": "the first chunk read; nothing recorded or sent",
    "read:8": "the query mid-way; earlier chunks sent or in flight",
    "recorded:5": "a chunk written pending; none of its requests sent",
    "settle:2": "answers received; the ledger not yet settled",
}


@pytest.mark.parametrize("point", POINTS, ids=list(POINTS.values()))
def test_sigkill_at_a_point_then_the_rerun_resends_only_what_was_in_flight(
    point: str, tmp_path: Path, small_example: Example, sandbox_factory: StartSandbox
) -> None:
    example, manifest = small_example
    sandbox = sandbox_factory("--latency", "0.05")  # answers take a moment, as over a network
    config = sync_config(
        tmp_path, example, sandbox.url, chunk_rows=CHUNK_ROWS, max_batches_per_second=5000
    )
    started = time.monotonic()
    killed = cli("sync", "--config", str(config), *WINDOW, "--json", env={CRASH_AT_ENV: point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    pending, in_flight = rerun_resends_only_what_was_in_flight(
        f"SIGKILL: {POINTS[point]}",
        time.monotonic() - started,
        tmp_path,
        config,
        sandbox,
        manifest,
    )
    if point == "read:1":
        assert (pending, sandbox.stats()["resent"]) == (0, 0)
    if point == "recorded:5":  # that chunk's rows were pending and never sent
        assert pending - in_flight >= CHUNK_ROWS // 2
    if point == "settle:2":  # the sandbox had accepted what the ledger had not settled
        assert in_flight > 0


def test_sigkill_while_requests_are_in_flight_then_the_rerun_resends_only_those(
    tmp_path: Path, small_example: Example, sandbox_factory: StartSandbox
) -> None:
    example, manifest = small_example
    sandbox = sandbox_factory("--latency", "0.3")  # holds each request 0.3 s
    config = sync_config(
        tmp_path, example, sandbox.url, chunk_rows=CHUNK_ROWS, max_batches_per_second=5000
    )
    process, started = start_sync(config)

    def some_accepted_and_more_in_flight() -> bool:
        stats = sandbox.stats()
        return stats["batches"] > 0 and stats["in_flight"] > 0

    wait_until(some_accepted_and_more_in_flight, process)
    process.kill()
    process.communicate(timeout=30)
    # the sandbox still answers what it received: accepted there, pending in the ledger
    _, in_flight = rerun_resends_only_what_was_in_flight(
        "SIGKILL: requests in flight",
        time.monotonic() - started,
        tmp_path,
        config,
        sandbox,
        manifest,
    )
    assert in_flight > 0
