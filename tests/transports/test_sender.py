"""The sender's decisions, over httpx.MockTransport: nothing here sleeps for real."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

import httpx
import polars as pl
import pytest

from connector.config import DestinationConfig
from connector.errors import FatalSendError
from connector.transports.events_api import classify
from connector.transports.rate import TokenBucket
from connector.transports.sender import Delivery, DeliveryStopped, Sender

SECRET = "s3cr3t-sender-test"
Handler = Callable[[httpx.Request], httpx.Response]


def destination(**overrides: Any) -> DestinationConfig:
    values: dict[str, Any] = {
        "base_url": "http://127.0.0.1:9",
        "api_key": "k",
        "api_secret": SECRET,
        "max_attempts": 4,
        "max_batches_per_second": 100_000,
    }
    return DestinationConfig.model_validate(values | overrides)


def batches(n: int) -> pl.DataFrame:
    ids = [f"req-{i}" for i in range(n)]
    return pl.DataFrame({"_request_id": ids, "_body": [json.dumps({"id": i}) for i in ids]})


class Recorder:
    """A MockTransport handler that answers from a script and records each request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.seen: list[list[str]] = []
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.seen.append([b["id"] for b in body] if isinstance(body, list) else [body["id"]])
        self.paths.append(request.url.path)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def deliver(
    handler: Handler, frame: pl.DataFrame, **config: Any
) -> tuple[Delivery, Sender, list[float]]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def run() -> tuple[Delivery, Sender]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            sender = Sender(client, destination(**config), sleep=sleep, rng=random.Random(1))
            return await sender.deliver(frame), sender

    delivery, sender = asyncio.run(run())
    return delivery, sender, waits


def errors(*ids: str, code: str = "bad") -> dict[str, Any]:
    return {
        "errors": [{"code": code, "message": f"{i} is bad", "source_request_id": i} for i in ids]
    }


def test_accepted_in_one_attempt() -> None:
    recorder = Recorder(httpx.Response(202))
    delivery, sender, waits = deliver(recorder, batches(3))
    assert delivery.status == dict.fromkeys(["req-0", "req-1", "req-2"], ("accepted", None))
    assert (delivery.attempts, sender.stats.requests, sender.stats.retries, waits) == (1, 1, 0, [])


def test_202_with_errors_rejects_only_the_named_batches() -> None:
    recorder = Recorder(httpx.Response(202, json=errors("req-1", code="rejected_by_sandbox")))
    delivery, _, _ = deliver(recorder, batches(3))
    assert delivery.status["req-1"] == ("rejected", "rejected_by_sandbox: req-1 is bad")
    assert delivery.status["req-0"] == delivery.status["req-2"] == ("accepted", None)
    assert len(recorder.seen) == 1  # a 202 is final


def test_400_naming_some_batches_resends_the_others() -> None:
    recorder = Recorder(httpx.Response(400, json=errors("req-0")), httpx.Response(202))
    delivery, _, waits = deliver(recorder, batches(3))
    assert recorder.seen == [["req-0", "req-1", "req-2"], ["req-1", "req-2"]]
    assert delivery.status["req-0"][0] == "rejected"
    assert delivery.status["req-1"] == ("accepted", None) and waits == []


def test_every_attempt_is_reported_with_its_status_error_and_message() -> None:
    recorder = Recorder(
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.ConnectError("reset"),
        httpx.Response(400, json=errors("req-0")),
        httpx.Response(202),
    )
    delivery, _, _ = deliver(recorder, batches(3))
    [settlement] = delivery.settlements
    history = [(a.number, a.http_status, a.error, a.message) for a in settlement.history]
    assert history == [
        (1, 429, None, "rate limited (HTTP 429)"),
        (2, None, "ConnectError", "network error: ConnectError"),
        (3, 400, None, "resent: HTTP 400 rejected other batches of it"),
        (4, 202, None, "accepted"),
    ]
    assert settlement.status["req-0"] == ("rejected", "bad: req-0 is bad", 3)
    assert settlement.status["req-1"] == settlement.status["req-2"] == ("accepted", None, 4)
    assert all(a.at.tzinfo is not None for a in settlement.history)
    assert [a.at for a in settlement.history] == sorted(a.at for a in settlement.history)


def position_of(frame: pl.DataFrame, index: int) -> int:
    """A .NET reader's 1-based `position` inside batch `index` of the bulk body."""
    bodies = frame["_body"].to_list()
    return 1 + sum(len(b) + 1 for b in bodies[:index]) + 2


def dotnet(message: str) -> dict[str, Any]:
    return {"errors": [{"code": "BAD_REQUEST", "message": message}]}


def test_202_naming_a_batch_by_position_rejects_only_that_one() -> None:
    frame = batches(3)
    message = f"Unexpected token. Path 'events[0]', line 1, position {position_of(frame, 2)}."
    delivery, sender, _ = deliver(Recorder(httpx.Response(202, json=dotnet(message))), frame)
    assert delivery.status["req-2"] == (
        "rejected",
        "BAD_REQUEST: Unexpected token. Path 'events[0]'.",
    )
    assert delivery.status["req-0"] == delivery.status["req-1"] == ("accepted", None)
    assert (sender.stats.requests, sender.stats.isolated) == (1, 0)


def test_400_naming_a_batch_by_path_index_resends_the_others_in_bulk() -> None:
    message = "Error converting value. Path '[1].device_info.ios_idfv', line 1, position 9."
    recorder = Recorder(httpx.Response(400, json=dotnet(message)), httpx.Response(202))
    delivery, _, _ = deliver(recorder, batches(3))
    assert recorder.seen == [["req-0", "req-1", "req-2"], ["req-0", "req-2"]]
    assert recorder.paths == ["/v2/bulkevents"] * 2
    assert delivery.status["req-1"][0] == "rejected"
    assert delivery.status["req-0"] == delivery.status["req-2"] == ("accepted", None)


UNREADABLE = [
    httpx.Response(202, json=dotnet("One or more batches could not be processed")),
    httpx.Response(202, text="<html>Accepted</html>"),
    httpx.Response(202, json={"errors": "some failed"}),
    httpx.Response(400, json=dotnet("Bad request")),
    httpx.Response(400),
]


@pytest.mark.parametrize("answer", UNREADABLE, ids=lambda r: f"{r.status_code}-{r.text[:20]}")
def test_an_answer_naming_no_batch_resends_each_alone_to_events(answer: httpx.Response) -> None:
    rejected = httpx.Response(400, json=dotnet("Bad value. Path 'ip', line 1, position 12."))
    recorder = Recorder(answer, httpx.Response(202), rejected, httpx.Response(202))
    frame = batches(3)
    delivery, sender, _ = deliver(recorder, frame)
    assert recorder.seen == [["req-0", "req-1", "req-2"], ["req-0"], ["req-1"], ["req-2"]]
    assert recorder.paths == ["/v2/bulkevents", "/v2/events", "/v2/events", "/v2/events"]
    assert delivery.status == {
        "req-0": ("accepted", None),
        "req-1": ("rejected", "BAD_REQUEST: Bad value. Path 'ip'."),
        "req-2": ("accepted", None),
    }
    assert (sender.stats.requests, sender.stats.isolated) == (4, 3)
    # each batch's history: the bulk attempt, then its own request
    lines = [s for s in delivery.settlements if s.status]
    assert [[(a.number, a.http_status) for a in s.history] for s in lines] == [
        [(1, answer.status_code), (2, 202)],
        [(1, answer.status_code), (2, 400)],
        [(1, answer.status_code), (2, 202)],
    ]
    assert lines[0].history[0].message.startswith("resent alone: HTTP")
    assert lines[0].status == {"req-0": ("accepted", None, 2)}


def test_an_isolated_batch_is_retried_on_its_own() -> None:
    recorder = Recorder(
        httpx.Response(202, json=dotnet("failed")),
        httpx.Response(503),
        httpx.Response(202),
        httpx.Response(202),
    )
    delivery, sender, waits = deliver(recorder, batches(2))
    assert recorder.seen == [["req-0", "req-1"], ["req-0"], ["req-0"], ["req-1"]]
    assert set(delivery.status.values()) == {("accepted", None)}
    assert (sender.stats.retries, len(waits)) == (1, 1)
    first = next(s for s in delivery.settlements if "req-0" in s.status)
    assert [a.http_status for a in first.history] == [202, 503, 202]
    assert first.status["req-0"] == ("accepted", None, 3)


def test_a_fatal_answer_while_isolating_fails_every_unsettled_batch() -> None:
    recorder = Recorder(httpx.Response(202, json=dotnet("failed")), httpx.Response(403))
    with pytest.raises(DeliveryStopped, match="HTTP 403") as stopped:
        deliver(recorder, batches(3))
    delivery = stopped.value.delivery
    assert len(recorder.seen) == 2
    assert {s for s, _ in delivery.status.values()} == {"failed"}
    assert len(delivery.status) == 3


def test_a_one_batch_request_whose_2xx_cannot_be_read_is_failed_not_accepted() -> None:
    delivery, sender, _ = deliver(Recorder(httpx.Response(202, text="<html/>")), batches(1))
    status, reason = delivery.status["req-0"]
    assert status == "failed" and "could not be read" in str(reason)
    assert (sender.stats.requests, sender.stats.isolated) == (1, 0)


def test_a_fatal_stop_still_reports_the_attempts_made() -> None:
    recorder = Recorder(httpx.Response(503), httpx.Response(403))
    with pytest.raises(DeliveryStopped, match="HTTP 403") as stopped:
        deliver(recorder, batches(2))
    delivery = stopped.value.delivery
    [settlement] = delivery.settlements
    assert [(a.number, a.http_status) for a in settlement.history] == [(1, 503), (2, 403)]
    assert {status for status, _ in delivery.status.values()} == {"failed"}


def test_a_400_of_one_batch_rejects_it_without_retry() -> None:
    response = httpx.Response(400, json={"errors": [{"code": "invalid_json", "message": "bad"}]})
    delivery, sender, _ = deliver(Recorder(response), batches(1))
    assert delivery.status == {"req-0": ("rejected", "invalid_json: bad")}
    assert sender.stats.requests == 1


def test_a_404_rejects_the_whole_request_without_retry() -> None:
    response = httpx.Response(404, json={"errors": [{"code": "not_found", "message": "no"}]})
    delivery, sender, _ = deliver(Recorder(response), batches(2))
    assert set(delivery.status.values()) == {("rejected", "no")}
    assert sender.stats.requests == 1


@pytest.mark.parametrize("status", [401, 403])
def test_credentials_refused_is_fatal_at_once(status: int) -> None:
    recorder = Recorder(httpx.Response(status))
    with pytest.raises(FatalSendError, match=f"HTTP {status}") as error:
        deliver(recorder, batches(2))
    assert len(recorder.seen) == 1
    assert "api_secret" in str(error.value) and SECRET not in str(error.value)


def test_429_honours_retry_after_then_5xx_backs_off_with_full_jitter() -> None:
    recorder = Recorder(
        httpx.Response(429, headers={"Retry-After": "3"}),
        httpx.Response(503),
        httpx.Response(202),
    )
    delivery, sender, waits = deliver(recorder, batches(2), retry_base_s=0.5, retry_max_s=30)
    assert waits[0] == 3.0
    assert 0 <= waits[1] <= 1.0  # second attempt: uniform in [0, 0.5 * 2]
    assert delivery.status["req-0"] == ("accepted", None)
    assert (delivery.attempts, sender.stats.retries) == (3, 2)


def test_retry_max_s_caps_retry_after_too() -> None:
    recorder = Recorder(
        httpx.Response(429, headers={"Retry-After": "5"}),
        httpx.Response(503, headers={"Retry-After": "120"}),
        httpx.Response(202),
    )
    delivery, _, waits = deliver(recorder, batches(1), retry_max_s=2)
    assert waits == [2.0, 2.0]
    assert delivery.status == {"req-0": ("accepted", None)}


def test_an_endpoint_that_never_answers_meets_the_deadline_of_each_attempt() -> None:
    seen: list[int] = []

    async def hang(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        await asyncio.Event().wait()  # accepted the request; never answers
        raise AssertionError("unreachable")

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(hang)) as client:
            sender = Sender(client, destination(max_attempts=3, timeout_s=0.05), sleep=no_sleep)
            await sender.deliver(batches(1))

    with pytest.raises(FatalSendError, match=r"unreachable after 3 attempts \(timed out") as error:
        asyncio.run(run())
    assert (len(seen), error.value.attempts) == (3, 3)


async def no_sleep(_: float) -> None:
    pass


def test_backoff_ceiling_doubles_and_is_capped() -> None:
    async def run() -> list[float]:
        async with httpx.AsyncClient(
            transport=httpx.MockTransport(Recorder(httpx.Response(202)))
        ) as c:
            sender = Sender(c, destination(retry_base_s=1, retry_max_s=5), rng=random.Random(7))
            return [max(sender.backoff(a) for _ in range(2000)) for a in (1, 2, 3, 4, 5)]

    highest = asyncio.run(run())
    for observed, ceiling in zip(highest, [1, 2, 4, 5, 5], strict=True):
        assert ceiling * 0.95 <= observed <= ceiling


def test_gives_up_after_max_attempts_and_marks_failed() -> None:
    recorder = Recorder(httpx.Response(500))
    delivery, _, waits = deliver(recorder, batches(2), max_attempts=3)
    assert len(recorder.seen) == 3 and len(waits) == 2
    assert {s for s, _ in delivery.status.values()} == {"failed"}
    assert "gave up after 3 attempts" in str(delivery.status["req-0"][1])
    assert delivery.http_status == 500


def test_network_errors_then_success() -> None:
    recorder = Recorder(
        httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.Response(202)
    )
    delivery, sender, _ = deliver(recorder, batches(1))
    assert delivery.status == {"req-0": ("accepted", None)} and sender.stats.retries == 2


def test_unreachable_endpoint_is_fatal_after_retries() -> None:
    recorder = Recorder(httpx.ConnectError("refused"))
    with pytest.raises(FatalSendError, match="unreachable after 4 attempts"):
        deliver(recorder, batches(1))
    assert len(recorder.seen) == 4


def test_classify_is_the_one_mapping() -> None:
    assert classify(httpx.Response(202)).action == "accept"
    assert classify(httpx.Response(400)).action == "reject"
    assert classify(httpx.Response(404)).action == "reject"
    assert classify(httpx.Response(408)).action == "retry"
    assert classify(httpx.Response(502)).action == "retry"
    assert classify(httpx.Response(429, headers={"Retry-After": "oops"})).retry_after is None
    assert classify(httpx.Response(429, headers={"Retry-After": "-1"})).retry_after is None
    assert classify(httpx.Response(429, headers={"Retry-After": "99999"})).retry_after == 300
    assert classify(None, httpx.ReadTimeout("x")).message.startswith("timed out")
    assert classify(httpx.Response(403)).action == "fatal"


def test_token_bucket_paces_batches_per_second() -> None:
    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    async def run() -> None:
        bucket = TokenBucket(rate=100, capacity=100, clock=lambda: now[0], sleep=sleep)
        for _ in range(10):
            await bucket.acquire(50)  # 500 batches at 100/s after a full bucket of 100

    asyncio.run(run())
    assert now[0] == pytest.approx(4.0)
    assert all(w == pytest.approx(0.5) for w in waits)


def test_a_run_starts_with_one_request_of_tokens_not_a_full_second() -> None:
    """With max_batches_per_second 270, the first second sends one bulk request's 100
    batches and then 270 a second: never the 540 a full bucket would let through."""
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    async def run() -> list[float]:
        sent_at: list[float] = []

        def answer(request: httpx.Request) -> httpx.Response:
            sent_at.extend([now[0]] * len(json.loads(request.content)))
            return httpx.Response(202)

        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            sender = Sender(
                client,
                destination(max_batches_per_second=270, concurrency=1),
                sleep=sleep,
                clock=lambda: now[0],
            )
            for _ in range(10):
                await sender.deliver(batches(100))
        return sent_at

    sent_at = asyncio.run(run())
    assert len(sent_at) == 1000
    assert sum(t < 1.0 for t in sent_at) <= 100 + 270
    assert sent_at[:100] == [0.0] * 100 and sent_at[100] > 0  # only the first went at once


def test_stopping_skips_unsent_requests_but_settles_sent_ones() -> None:
    async def run() -> tuple[Delivery, Delivery, int]:
        stopping = asyncio.Event()
        recorder = Recorder(httpx.Response(503), httpx.Response(202))

        async def sleep(_: float) -> None:
            stopping.set()  # the stop arrives while the first request waits to retry

        async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
            sender = Sender(client, destination(), sleep=sleep, stopping=stopping)
            sent = await sender.deliver(batches(2))
            unsent = await sender.deliver(batches(1))
        return sent, unsent, len(recorder.seen)

    sent, unsent, requests = asyncio.run(run())
    assert set(sent.status.values()) == {("accepted", None)}  # retried until settled
    assert (unsent.status, unsent.attempts, requests) == ({}, 0, 2)  # never sent


def test_stopping_releases_requests_still_waiting_for_tokens() -> None:
    now = [0.0]
    slept: list[float] = []

    async def run() -> list[Delivery]:
        stopping = asyncio.Event()

        async def sleep(seconds: float) -> None:
            slept.append(seconds)
            now[0] += seconds
            stopping.set()  # Ctrl-C while the bucket makes a request wait

        recorder = Recorder(httpx.Response(202))
        async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
            sender = Sender(
                client,
                destination(max_batches_per_second=1),  # the bucket holds 100 batches
                sleep=sleep,
                clock=lambda: now[0],
                stopping=stopping,
            )
            frames = [batches(100) for _ in range(4)]
            return await asyncio.gather(*(sender.deliver(f) for f in frames))

    deliveries = asyncio.run(run())
    assert [len(d.status) for d in deliveries] == [100, 0, 0, 0]  # one sent, three never
    assert len(slept) == 1  # not 100 s per request waiting for tokens it will not use
