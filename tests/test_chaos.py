"""Chaos: `rokt-connector sync` (a subprocess) against a real sandbox that misbehaves.

Each scenario runs the CLI against `rokt-connector sandbox` with one fault, then with
all of them at once: bursts of 503s, storms of 429s saying `Retry-After` 0-5 s,
connections dropped mid-answer, answers slower than `timeout_s`, bulk 202s rejecting
some batches (named by position, or by nothing), the sandbox killed mid-run and started
again on the same port (its `--journal` remembers what it accepted), an endpoint that
stays down, and one that never answers; the mix of them also for the two pixel
transports (one GET per conversion). Each asserts what a user relies on: every valid
conversion ends `accepted` in the ledger exactly once (or `rejected`, when the endpoint
said so), the sandbox accepted no conversion twice, no request was tried more than
`max_attempts` times, and the exit code is the documented one. Each adds a row to the
table printed at the end of the test session (`CHAOS_TABLE`).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from checks import (
    CHUNK_ROWS,
    Example,
    StartSandbox,
    accounted,
    assert_each_valid_conversion_once,
    finish_sync,
    ledger_rows,
    start_sync,
    sync,
    wait_until,
)
from conftest import pixel_sync_config, sync_config

pytestmark = pytest.mark.chaos

# Small timeouts and quick retries.
DESTINATION: dict[str, Any] = {
    "timeout_s": 0.5,
    "max_attempts": 20,
    "retry_base_s": 0.05,
    "retry_max_s": 0.25,
    "max_batches_per_second": 5000,
}
# A restart takes 1-2 s, more on a busy machine: 30 attempts waiting up to 1 s each
# (about 13 s in all) ride it out with a wide margin, and 150 batches/s stretches the
# run to a few seconds so it can be hit mid-run.
RIDE_OUT_RESTART: dict[str, Any] = {
    "max_attempts": 30,
    "retry_base_s": 0.1,
    "retry_max_s": 1.0,
    "max_batches_per_second": 150,
}


@dataclass(frozen=True)
class Fault:
    name: str
    sandbox: tuple[str, ...]  # `rokt-connector sandbox` options
    kinds: tuple[str, ...]  # faults the sandbox must have injected (`faults_by_kind`)
    destination: dict[str, Any] = field(default_factory=dict)
    restart: bool = False  # kill the sandbox a third of the way through, start it again
    transport: str = "events_api"


# The mix for the pixels, at rates per request: each conversion is a request of its own,
# so the Event API's rates per bulk request would fail most attempts of ~550 requests.
PIXEL_MIX = (
    *("--burst-503", "0.02", "--storm-429", "0.02", "--burst-length", "3"),
    *("--retry-after-max", "5", "--reset-rate", "0.05", "--slow-rate", "0.03"),
    *("--slow", "1.5", "--fail-rate", "0.05", "--latency", "0.05"),
)
PIXEL_KINDS_INJECTED = ("burst_503", "storm_429", "reset", "slow", "fail")


FAULTS = [
    Fault(
        "503 bursts", ("--burst-503", "0.1", "--burst-length", "4", "--seed", "1"), ("burst_503",)
    ),
    Fault(
        "429 storms, Retry-After 0-5 s",
        ("--storm-429", "0.1", "--burst-length", "4", "--retry-after-max", "5", "--seed", "2"),
        ("storm_429",),
        {"retry_max_s": 0.25},  # caps the wait Retry-After asks for
    ),
    Fault("connection resets", ("--reset-rate", "0.15", "--seed", "3"), ("reset",)),
    Fault(
        "answers slower than timeout_s",
        ("--slow-rate", "0.15", "--slow", "1.5", "--seed", "4"),
        ("slow",),
    ),
    Fault("bulk 202 naming batches by position", ("--reject-rate", "0.05", "--seed", "5"), ()),
    Fault(
        "errors that name no batch",
        ("--reject-rate", "0.05", "--opaque-errors", "--seed", "8"),
        (),
    ),
    Fault(
        "sandbox down mid-run, then back",
        ("--latency", "0.1"),  # so requests are in flight when it goes down
        (),
        RIDE_OUT_RESTART,
        restart=True,
    ),
    Fault(
        "all of them at once",
        (
            *("--burst-503", "0.2", "--storm-429", "0.2", "--burst-length", "3"),
            *("--retry-after-max", "5", "--reset-rate", "0.1", "--slow-rate", "0.1"),
            *("--slow", "1.5", "--reject-rate", "0.03", "--fail-rate", "0.1", "--seed", "8"),
            *("--latency", "0.05"),
        ),
        ("burst_503", "storm_429", "reset", "slow", "fail"),
        RIDE_OUT_RESTART,
        restart=True,
    ),
    Fault(
        "pixel: all of them at once",
        (*PIXEL_MIX, "--reject-rate", "0.03", "--seed", "9"),
        PIXEL_KINDS_INJECTED,
        RIDE_OUT_RESTART,
        restart=True,
        transport="pixel",
    ),
    # no --reject-rate: RudderStack's gateway answers a refusal 200 (docs/transports.md),
    # so the ledger would say accepted what the sandbox dropped: the known blind spot
    Fault(
        "rudderstack_pixel: all of them at once",
        (*PIXEL_MIX, "--seed", "10"),
        PIXEL_KINDS_INJECTED,
        RIDE_OUT_RESTART,
        restart=True,
        transport="rudderstack_pixel",
    ),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_each_valid_conversion_is_accepted_exactly_once_despite(
    fault: Fault, tmp_path: Path, small_example: Example, sandbox_factory: StartSandbox
) -> None:
    example, manifest = small_example
    journal = ("--journal", str(tmp_path / "sandbox.journal"))
    sandbox = sandbox_factory(*fault.sandbox, *journal)
    destination = DESTINATION | fault.destination
    if fault.transport == "events_api":
        config = sync_config(tmp_path, example, sandbox.url, chunk_rows=CHUNK_ROWS, **destination)
    else:  # the same rates, in requests per second
        config = pixel_sync_config(
            tmp_path, example, sandbox.url, fault.transport, chunk_rows=CHUNK_ROWS, **destination
        )
    process, started = start_sync(config)
    faults: Counter[str] = Counter()
    name = fault.name
    if fault.restart:
        seen: dict[str, Any] = {}

        def a_third_done_and_requests_in_flight() -> bool:
            seen.update(sandbox.stats())
            return seen["batches"] >= manifest["valid"] // 3 and seen["in_flight"] > 0

        wait_until(a_third_done_and_requests_in_flight, process)
        faults.update(seen["faults_by_kind"])
        down = time.monotonic()
        sandbox.kill()  # connections in flight break off; new ones are refused
        sandbox.restart()  # same port; the journal brings back what it had accepted
        name = name.replace("down", f"down {time.monotonic() - down:.1f} s")
    run = finish_sync(process, started)

    rows = ledger_rows(tmp_path / "ledger.duckdb").values()
    gave_up = {(r.reason, r.attempts) for r in rows if r.status == "failed"}
    assert not gave_up, f"requests gave up: {gave_up}"
    assert run.code == 1, run.stderr  # 1: the example's dirty rows are rejected locally
    assert (run.report["status"], run.report["failed"]) == ("completed_with_rejections", 0)
    assert run.report["rows_read"] == manifest["rows"]
    assert run.report["rows_rejected_local"] == sum(manifest["rejected"].values())
    assert run.report["rows_duplicate"] == manifest["duplicates"]
    stats = sandbox.stats()
    faults.update(stats["faults_by_kind"])
    for kind in fault.kinds:  # the fault really happened
        assert faults[kind] > 0, f"the sandbox injected no {kind}: {dict(faults)}"
    if fault.restart:  # requests in flight broke off and were sent again
        assert stats["max_receipts"] >= 2
    if fault.restart or fault.kinds:
        assert run.report["retries"] > 0
    if "--reject-rate" in fault.sandbox:
        assert stats["rejected"] > 0
    if "--opaque-errors" in fault.sandbox:  # each batch of those requests went alone
        assert run.report["isolated"] > 0
    assert_each_valid_conversion_once(
        name,
        tmp_path / "ledger.duckdb",
        sandbox,
        manifest,
        [run],
        destination["max_attempts"],
    )


def test_an_endpoint_that_stays_down_exits_3_and_the_rerun_sends_the_rest_once(
    tmp_path: Path, small_example: Example, sandbox_factory: StartSandbox
) -> None:
    example, manifest = small_example
    sandbox = sandbox_factory("--journal", str(tmp_path / "sandbox.journal"))
    destination = DESTINATION | {"max_attempts": 3, "retry_max_s": 0.2}
    config = sync_config(tmp_path, example, sandbox.url, chunk_rows=CHUNK_ROWS, **destination)
    process, started = start_sync(config)
    wait_until(lambda: sandbox.stats()["batches"] >= manifest["valid"] // 3, process)
    sandbox.kill()
    down = finish_sync(process, started)

    assert down.code == 3, down.stderr
    assert down.report["status"] == "failed"
    assert "unreachable after 3 attempts" in down.stderr
    assert 0 < down.report["accepted"] < manifest["valid"]
    settled = ledger_rows(tmp_path / "ledger.duckdb")
    unsettled = {ref for ref, row in settled.items() if row.status in ("pending", "failed")}
    assert unsettled, "the rows not yet answered stay for the next run"
    # the report adds up after exit 3: what no answer settled is `pending`, as in the ledger
    report = down.report
    assert report["pending"] == sum(row.status == "pending" for row in settled.values())
    assert report["rows_read"] == accounted(report)
    assert max(row.attempts for row in settled.values()) <= 3

    sandbox.restart()  # back, remembering what it accepted before it went down
    accepted_before = {r["confirmationref"] for r in sandbox.records()}
    assert {ref for ref, row in settled.items() if row.status == "accepted"} <= accepted_before
    rerun = sync(config)
    # rejections the first run recorded are known now: only new ones fail the rerun
    new = rerun.report["rows_rejected_local"] - rerun.report["rows_rejected_known"]
    assert rerun.code == (1 if new else 0), rerun.stderr
    assert (rerun.report["status"], rerun.report["failed"]) == (
        "completed_with_rejections" if new else "succeeded",
        0,
    )
    assert rerun.report["rows_skipped_ledger"] == manifest["valid"] - len(unsettled)
    assert_each_valid_conversion_once(
        "endpoint down for good (exit 3), then rerun",
        tmp_path / "ledger.duckdb",
        sandbox,
        manifest,
        [down, rerun],
        3,
    )


def test_an_endpoint_that_never_answers_cannot_hang_a_run(
    tmp_path: Path, small_example: Example, sandbox_factory: StartSandbox
) -> None:
    example, _ = small_example
    sandbox = sandbox_factory("--hang-rate", "1")
    timeout_s, attempts, retry_max_s = 0.5, 3, 0.1
    config = sync_config(
        tmp_path,
        example,
        sandbox.url,
        chunk_rows=CHUNK_ROWS,
        timeout_s=timeout_s,
        max_attempts=attempts,
        retry_base_s=0.05,
        retry_max_s=retry_max_s,
    )
    run = sync(config)

    assert run.code == 3, run.stderr
    assert f"unreachable after {attempts} attempts (timed out" in run.stderr
    assert run.report["status"] == "failed" and run.report["accepted"] == 0
    # each attempt met its deadline; a few seconds cover reading, preparing, the ledger
    assert run.report["duration_s"] < attempts * (timeout_s + retry_max_s) + 5
    rows = ledger_rows(tmp_path / "ledger.duckdb")
    failed = [row for row in rows.values() if row.status == "failed"]
    assert failed and {row.attempts for row in failed} == {attempts}
    assert "accepted" not in {row.status for row in rows.values()}
    wait_until(lambda: sandbox.stats()["in_flight"] == 0, None)  # the run hung up on exit
    stats = sandbox.stats()
    assert stats["batches"] == 0 and stats["faults_by_kind"]["hang"] >= attempts
