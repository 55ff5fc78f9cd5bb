"""The sandbox's fault injection: rate limit, --fail-rate, --reject-rate (a verdict fixed per
batch), latency, 503 bursts, 429 storms, dropped, hung and slow answers. No test sleeps: the
clock and the sleep are injected.
"""

from __future__ import annotations

from typing import Any

from sandbox_helpers import (
    BULK,
    EVENTS,
    Client,
    FakeClock,
    answer,
    batch,
    bulk,
    codes,
    compact,
    located,
)

from connector.sandbox import FAULTS, Sandbox, SandboxSettings


def test_rate_limit_answers_429_with_retry_after_until_the_clock_advances() -> None:
    clock = FakeClock()
    sandbox = Client(rate_limit=10, clock=clock)
    hundred = bulk([batch(i) for i in range(100)])  # the bucket holds max(10, 100)
    assert sandbox.post(BULK, hundred).status_code == 202
    thirty = bulk([batch(i) for i in range(100, 130)])
    limited = sandbox.post(BULK, thirty)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"  # 30 tokens at 10/s
    one = sandbox.post(EVENTS, compact(batch(200)))
    assert (one.status_code, one.headers["Retry-After"]) == (429, "1")  # at least 1
    clock.now += 2.9
    assert sandbox.post(BULK, thirty).headers["Retry-After"] == "1"
    clock.now += 0.1
    assert sandbox.post(BULK, thirty).status_code == 202
    stats = sandbox.stats()
    assert stats["batches"] == 130
    assert stats["responses_by_status"]["429"] == 3
    assert stats["rejected"] == 0


def test_rate_limit_retry_after_is_an_integer_for_slow_rates() -> None:
    clock = FakeClock()
    sandbox = Client(rate_limit=0.5, clock=clock)
    assert sandbox.post(BULK, bulk([batch(i) for i in range(100)])).status_code == 202
    limited = sandbox.post(EVENTS, compact(batch(100)))
    assert limited.headers["Retry-After"] == "2"
    clock.now += 2
    assert sandbox.post(EVENTS, compact(batch(100))).status_code == 202


def test_fail_rate_one_gives_only_faults_and_records_nothing() -> None:
    sandbox = Client(fail_rate=1.0, seed=11)
    seen: set[int] = set()
    for i in range(40):
        response = sandbox.post(BULK, bulk([batch(i)]))
        seen.add(response.status_code)
        if response.status_code == 429:
            assert response.headers["Retry-After"] in {"0", "1"}
        else:
            assert "Retry-After" not in response.headers
    assert seen == {status for status, _ in FAULTS}
    stats = sandbox.stats()
    assert (stats["batches"], stats["rejected"], stats["requests"]) == (0, 0, 40)
    assert sum(stats["responses_by_status"].values()) == 40
    assert sandbox.recorded()["total"] == 0


def test_faults_are_reproducible_with_a_seed() -> None:
    def statuses() -> list[int]:
        sandbox = Client(fail_rate=0.5, seed=5)
        return [sandbox.post(EVENTS, compact(batch())).status_code for _ in range(20)]

    first = statuses()
    assert first == statuses()
    assert 202 in first and len(set(first)) > 1


def test_reject_rate_one_rejects_every_valid_batch() -> None:
    sandbox = Client(reject_rate=1.0, seed=3)
    batches = [batch(i) for i in range(5)]
    response = sandbox.post(BULK, bulk(batches))
    assert response.status_code == 202
    errors = response.json()["errors"]
    assert [located(batches, e) for e in errors] == list(range(5))
    assert set(codes(response)) == {"rejected_by_sandbox"}
    assert {e["message"].partition(". Path ''")[0] for e in errors} == {
        "sandbox --reject-rate rejected this batch (rejected_by_sandbox)"
    }
    single = sandbox.post(EVENTS, compact(batch(9)))  # about its one batch: 400
    assert (single.status_code, codes(single)) == (400, ["rejected_by_sandbox"])
    stats = sandbox.stats()
    assert (stats["batches"], stats["rejected"]) == (0, 6)
    assert stats["rejections_by_code"] == {"rejected_by_sandbox": 6}


def rejected_by_rate(sandbox: Client, batches: list[Any]) -> set[int]:
    """The indexes of `batches` one bulk request to `sandbox` has rejected."""
    response = sandbox.post(BULK, bulk(batches))
    assert response.status_code == 202
    errors = response.json().get("errors", [])
    assert set(codes(response)) <= {"rejected_by_sandbox"}
    return {i for e in errors if (i := located(batches, e)) is not None}


def test_a_batch_rejected_by_rate_is_rejected_again_however_it_is_resent() -> None:
    """The verdict is the batch's, as a rejection of its content would be: resent alone,
    in another request or in another order it is the same; the seed reproduces it."""
    batches = [batch(i) for i in range(30)]
    sandbox = Client(reject_rate=0.5, seed=7)
    rejected = rejected_by_rate(sandbox, batches)
    assert 0 < len(rejected) < 30
    for i, target in enumerate(batches):
        alone = sandbox.post(EVENTS, compact(target))
        if i in rejected:
            assert (alone.status_code, codes(alone)) == (400, ["rejected_by_sandbox"])
        else:
            assert (alone.status_code, alone.json()) == (202, {})
    backwards = batches[::-1]
    assert {29 - i for i in rejected_by_rate(sandbox, backwards)} == rejected
    stats = sandbox.stats()
    assert (stats["batches"], stats["resent"]) == (30 - len(rejected), 2 * (30 - len(rejected)))
    assert stats["rejected"] == 3 * len(rejected)
    assert rejected_by_rate(Client(reject_rate=0.5, seed=7), batches) == rejected
    assert rejected_by_rate(Client(reject_rate=0.5, seed=8), batches) != rejected
    # without a source_request_id the confirmationref decides
    anonymous = [{k: v for k, v in b.items() if k != "source_request_id"} for b in batches]
    unnamed = Client(reject_rate=0.5, seed=7)
    verdicts = rejected_by_rate(unnamed, anonymous)
    assert 0 < len(verdicts) < 30
    assert {29 - i for i in rejected_by_rate(unnamed, anonymous[::-1])} == verdicts
    for i in sorted(verdicts)[:3]:
        alone = unnamed.post(EVENTS, compact(anonymous[i]))
        assert (alone.status_code, codes(alone)) == (400, ["rejected_by_sandbox"])


def test_latency_awaits_the_injected_sleep() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    sandbox = Client(latency_s=0.25, sleep=sleep)
    assert sandbox.post(EVENTS, compact(batch())).status_code == 202
    assert sandbox.post(EVENTS, "{bad").status_code == 400
    assert slept == [0.25, 0.25]
    assert sandbox.post(EVENTS, "{}", auth=None).status_code == 401  # auth answers at once
    assert slept == [0.25, 0.25]
    no_latency = Client(sleep=sleep)
    no_latency.post(EVENTS, compact(batch()))
    assert slept == [0.25, 0.25]


def test_503_bursts_come_in_runs_of_burst_length() -> None:
    sandbox = Client(burst_503_rate=0.1, burst_length=4, seed=2)
    statuses = [sandbox.post(EVENTS, compact(batch(i))).status_code for i in range(120)]
    runs = "".join("x" if s == 503 else "." for s in statuses).split(".")
    lengths = {len(run) for run in runs if run}
    assert lengths and lengths <= {4, 8, 12}  # back-to-back bursts join up
    assert set(statuses) == {202, 503}
    assert sandbox.stats()["faults_by_kind"] == {"burst_503": statuses.count(503)}


def test_429_storms_say_retry_after_up_to_the_maximum() -> None:
    sandbox = Client(storm_429_rate=1.0, burst_length=3, retry_after_max_s=5, seed=4)
    responses = [sandbox.post(EVENTS, compact(batch())) for _ in range(60)]
    assert {r.status_code for r in responses} == {429}
    waits = {int(r.headers["Retry-After"]) for r in responses}
    assert waits <= set(range(6)) and {0, 5} <= waits
    assert sandbox.stats()["faults_by_kind"] == {"storm_429": 60}
    assert sandbox.stats()["batches"] == 0
    failing = Client(fail_rate=1.0, retry_after_max_s=5, seed=4)
    fault_waits = {
        int(r.headers["Retry-After"])
        for r in (failing.post(EVENTS, compact(batch())) for _ in range(80))
        if r.status_code == 429
    }
    assert max(fault_waits) > 1  # --fail-rate's 429s use the same maximum


def test_a_dropped_answer_is_sometimes_lost_before_and_sometimes_after_recording() -> None:
    sandbox = Sandbox(SandboxSettings(reset_rate=1.0, seed=8))
    replies = [answer(sandbox, bulk([batch(i)])) for i in range(40)]
    assert {r.fate for r in replies} == {"drop"}
    recorded = {r["confirmationref"] for r in sandbox.recorded()["batches"]}
    assert 5 < len(recorded) < 35  # about half got in before the connection dropped
    assert sandbox.stats()["faults_by_kind"] == {"reset": 40}


def test_a_hung_request_records_nothing_and_a_slow_one_records_before_waiting() -> None:
    hung = Sandbox(SandboxSettings(hang_rate=1.0))
    assert answer(hung, bulk([batch()])).fate == "hang"
    assert hung.stats()["batches"] == 0

    waited: list[tuple[float, int]] = []

    async def sleep(seconds: float) -> None:
        waited.append((seconds, slow.stats()["batches"]))

    slow = Sandbox(SandboxSettings(slow_rate=1.0, slow_s=7.5, sleep=sleep))
    reply = answer(slow, bulk([batch(0), batch(1)]))
    assert (reply.status, reply.fate) == (202, "answer")
    assert waited == [(7.5, 2)]  # recorded first: the late answer may never be read
