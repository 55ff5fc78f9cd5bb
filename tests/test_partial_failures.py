"""Partly failed bulk requests, answered as the platform answers them, end to end.

`rokt-connector sync` (a subprocess) against a sandbox that rejects some batches the
way mParticle's Event API does: a 202 whose errors name each failed batch only by the
`position` of a .NET JSON reader in the body, or (`--opaque-errors`) by nothing at all.
The rule: the ledger records `accepted` exactly what the sandbox accepted, `rejected`
the rest with the platform's message, `ledger reconcile` lists them, and the report
adds up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from checks import WINDOW, Example, Run, StartSandbox, ledger_rows, sync
from conftest import cli, sync_config

pytestmark = pytest.mark.e2e

REJECTED = "BAD_REQUEST: sandbox --reject-rate rejected this batch (rejected_by_sandbox)."
# The example's valid conversions are sent in requests of 100 batches: a rejection
# rate of 5% leaves every request with some failed batch.
OPTIONS = ("--reject-rate", "0.05", "--seed", "12")


def sync_against(tmp: Path, example: Path, url: str) -> Run:
    return sync(sync_config(tmp, example, url, chunk_rows=1000))


def assert_ledger_is_the_sandbox(
    tmp: Path, run: Run, manifest: dict[str, Any], accepted_by_sandbox: list[str]
) -> dict[str, str]:
    """The ledger's accepted rows are exactly the sandbox's; every other valid
    conversion is rejected with the platform's message; the report adds up. Returns
    the rejected conversions and their reasons."""
    rows = ledger_rows(tmp / "ledger.duckdb")
    accepted = {ref for ref, row in rows.items() if row.status == "accepted"}
    rejected = {ref: str(row.reason) for ref, row in rows.items() if row.status == "rejected"}
    assert sorted(accepted) == sorted(accepted_by_sandbox)
    assert len(accepted) + len(rejected) == manifest["valid"]  # nothing lost, nothing failed
    assert rejected and set(rejected.values()) == {REJECTED}
    report = run.report
    assert run.code == 1, run.stderr
    assert (report["accepted"], report["rejected"], report["failed"]) == (
        len(accepted),
        len(rejected),
        0,
    )
    done = report["accepted"] + report["rejected"] + report["rows_skipped_ledger"]
    done += report["rows_rejected_local"] + report["rows_duplicate"]
    assert done == report["rows_read"] == manifest["rows"]
    assert report["batches_sent"] == manifest["valid"]
    return rejected


def assert_reconcile_lists(config: Path, rejected: dict[str, str]) -> None:
    args = ("ledger", "reconcile", "--config", str(config), *WINDOW, "--json")
    result = cli(*args, "--examples", str(len(rejected)))
    assert result.returncode == 0, result.stderr  # rejected is final, not undelivered
    data = json.loads(result.stdout)
    assert data["by_state"]["rejected"] == len(rejected)
    listed = {e["confirmationref"]: e["reason"] for e in data["examples"]["rejected"]}
    assert listed == rejected


def test_a_202_naming_batches_by_position_rejects_exactly_those(
    tmp_path: Path, small_example: Example, sandbox_factory: StartSandbox
) -> None:
    example, manifest = small_example
    sandbox = sandbox_factory(*OPTIONS)
    run = sync_against(tmp_path, example, sandbox.url)

    rejected = assert_ledger_is_the_sandbox(tmp_path, run, manifest, sandbox.accepted_refs())
    stats = sandbox.stats()
    assert stats["responses_by_status"]["202"] == stats["requests"]
    assert_reconcile_lists(tmp_path / "config.yaml", rejected)
    # a position falls in one batch whether bytes or UTF-16 units are counted, unless
    # text before it is not ASCII (the example's names are hashed; its products are not)
    assert run.report["isolated"] < len(rejected) * 100
    assert stats["duplicate_confirmationrefs"] == 0


def test_errors_that_name_no_batch_are_resent_alone_and_never_taken_as_accepted(
    tmp_path: Path, small_example: Example, sandbox_factory: StartSandbox
) -> None:
    example, manifest = small_example
    sandbox = sandbox_factory(*OPTIONS, "--opaque-errors")
    run = sync_against(tmp_path, example, sandbox.url)

    rejected = assert_ledger_is_the_sandbox(tmp_path, run, manifest, sandbox.accepted_refs())
    stats = sandbox.stats()
    # every batch of a request with an unnamed error went again alone, to /v2/events
    assert run.report["isolated"] > 0
    assert (
        run.report["requests"]
        == stats["requests"]
        == stats["bulk_requests"] + run.report["isolated"]
    )
    assert stats["resent"] == run.report["isolated"] - len(rejected)
    assert_reconcile_lists(tmp_path / "config.yaml", rejected)
    assert stats["duplicate_confirmationrefs"] == 0
