"""What every chaos and crash test checks, and how they drive the CLI.

`assert_each_valid_conversion_once` is the property a user relies on after any fault
or crash: nothing lost, nothing accepted twice, retries within `max_attempts`; it also
adds the scenario's row to the table printed at the end of the session (`CHAOS_TABLE`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
from conftest import CHAOS_TABLE, SandboxProcess, cli

WINDOW = ["--since", "2026-09-01", "--until", "2026-11-02"]
StartSandbox = Callable[..., SandboxProcess]
Example = tuple[Path, dict[str, Any]]
CHUNK_ROWS = 25  # about two dozen bulk requests for the small example


class LedgerRow(NamedTuple):
    status: str
    reason: str | None
    attempts: int
    request_id: str | None
    payload_sha256: str | None
    transport: str | None


def ledger_rows(path: Path) -> dict[str, LedgerRow]:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.sql(
            "SELECT confirmationref, status, reason, attempts, request_id, payload_sha256, "
            "transport FROM ledger"
        ).fetchall()
    return {ref: LedgerRow(*rest) for ref, *rest in rows}


@dataclass
class Run:
    """One `sync --json` through the CLI."""

    code: int
    report: dict[str, Any]
    stderr: str
    wall_s: float


def start_sync(config: Path) -> tuple[subprocess.Popen[str], float]:
    args = [sys.executable, "-m", "connector", "sync", "--config", str(config), *WINDOW]
    process = subprocess.Popen(
        [*args, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return process, time.monotonic()


def finish_sync(process: subprocess.Popen[str], started: float) -> Run:
    out, err = process.communicate(timeout=180)
    return Run(process.returncode, json.loads(out), err, time.monotonic() - started)


def sync(config: Path) -> Run:
    started = time.monotonic()
    result = cli("sync", "--config", str(config), *WINDOW, "--json")
    wall = time.monotonic() - started
    return Run(result.returncode, json.loads(result.stdout), result.stderr, wall)


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[str] | None) -> None:
    """Poll another process's progress (a short loop with a deadline, not a timer)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert process is None or process.poll() is None, "the sync ended too early"
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def assert_each_valid_conversion_once(
    fault: str,
    ledger: Path,
    sandbox: SandboxProcess,
    manifest: dict[str, Any],
    runs: list[Run],
    max_attempts: int,
) -> None:
    """The properties every scenario must keep; adds the scenario's row to the table.

    Whatever the faults, the ledger's `accepted` is exactly what the sandbox accepted."""
    rows = ledger_rows(ledger)
    by_status: dict[str, set[str]] = {}
    for ref, row in rows.items():
        by_status.setdefault(row.status, set()).add(ref)
    accepted, rejected = by_status.get("accepted", set()), by_status.get("rejected", set())
    records = sandbox.records()
    stats = sandbox.stats()
    lost = manifest["valid"] - len(accepted) - len(rejected)
    CHAOS_TABLE.append(
        {
            "fault": fault,
            "conversions": manifest["valid"],
            "accepted once": sum(
                n == 1 for n in Counter(r["confirmationref"] for r in records).values()
            ),
            "rejected by API": len(rejected),
            "resent, same id": stats["resent"],
            "duplicates": stats["duplicate_confirmationrefs"],
            "lost": lost,
            "retries": sum(run.report["retries"] for run in runs),
            "resent alone": sum(run.report["isolated"] for run in runs),
            "max tries": stats["max_receipts"],
            "wall s": round(sum(run.wall_s for run in runs), 1),
        }
    )
    # nothing lost: each valid conversion ended accepted or rejected by the endpoint
    assert lost == 0, f"{lost} valid conversions neither accepted nor rejected"
    assert set(rows) - accepted - rejected == by_status.get("rejected_local", set())
    # accepted exactly once, and the ledger says so for exactly those
    assert sorted(r["confirmationref"] for r in records) == sorted(accepted)
    assert stats["duplicate_confirmationrefs"] == 0
    assert stats["unique_confirmationrefs"] == stats["batches"] == len(accepted)
    assert {r["confirmationref"]: r["source_request_id"] for r in records} == {
        ref: receipt_key(rows[ref]) for ref in accepted
    }
    assert sum(run.report["accepted"] for run in runs) == len(accepted)
    assert sum(run.report["rejected"] for run in runs) == len(rejected)
    # retries within max_attempts, by the ledger and by the sandbox: per request, and a
    # batch resent alone is a second request
    limit = max_attempts * len(runs) * (2 if any(run.report["isolated"] for run in runs) else 1)
    assert max(row.attempts for ref, row in rows.items() if ref in accepted | rejected) <= limit
    assert 1 <= stats["max_receipts"] <= limit


def receipt_key(row: LedgerRow) -> str | None:
    """The id the sandbox records a conversion under: an Event API batch's
    `source_request_id`, a pixel request's SHA-256 of its query (the ledger's
    `payload_sha256`, which leaves the write key out as the sandbox does)."""
    return row.request_id if row.transport == "events_api" else row.payload_sha256


# Where each row a run reads ends up: exactly one of these counts of its report.
OUTCOMES = (
    "accepted",
    "rejected",
    "failed",
    "pending",
    "rows_rejected_local",
    "rows_skipped_ledger",
    "rows_duplicate",
)


def accounted(report: dict[str, Any]) -> int:
    """The rows a run report accounts for (its `rows_read`, when it adds up)."""
    return sum(int(report[k]) for k in OUTCOMES)
