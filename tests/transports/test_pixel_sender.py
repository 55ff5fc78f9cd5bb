"""The pixel transports under the generic sender, over httpx.MockTransport: one GET per
conversion, what each status means, the rate in requests per second, and URLs (which
hold a key) kept out of httpx's log records."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import httpx
import polars as pl
import pytest

from connector.config import DestinationConfig
from connector.errors import FatalSendError
from connector.transports.sender import Delivery, DeliveryStopped, Sender

KEY = "pixel-key-s3cr3t"
WRITE_KEY = "write-key-s3cr3t"
CONFIGS: dict[str, dict[str, Any]] = {
    "pixel": {"transport": "pixel", "api_key": KEY, "base_url": "http://127.0.0.1:9"},
    "rudderstack_pixel": {
        "transport": "rudderstack_pixel",
        "write_key": WRITE_KEY,
        "base_url": "http://127.0.0.1:9",
    },
}


def destination(kind: str, **overrides: Any) -> DestinationConfig:
    values = CONFIGS[kind] | {"max_attempts": 3, "max_requests_per_second": 100_000}
    return DestinationConfig.model_validate(values | overrides)


def rows(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"_request_id": [f"r{i}" for i in range(n)], "_body": [f"a=1&ref={i}" for i in range(n)]}
    )


def deliver(kind: str, answer: Any, frame: pl.DataFrame, **config: Any) -> tuple[Delivery, list]:
    seen: list[httpx.Request] = []
    waits: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request) if callable(answer) else answer

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def run() -> Delivery:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            sender = Sender(client, destination(kind, **config), sleep=sleep, rng=random.Random(1))
            return await sender.deliver(frame)

    return asyncio.run(run()), seen


def test_each_pixel_conversion_is_one_get_with_the_key_in_the_path() -> None:
    delivery, seen = deliver("pixel", httpx.Response(200), rows(1))
    [request] = seen
    assert request.method == "GET" and request.content == b""
    assert str(request.url) == f"http://127.0.0.1:9/v1/{KEY}/Pixel?a=1&ref=0"
    assert delivery.status == {"r0": ("accepted", None)}


def test_rudderstack_sends_the_write_key_first_in_the_query() -> None:
    delivery, seen = deliver("rudderstack_pixel", httpx.Response(200), rows(1))
    [request] = seen
    assert str(request.url) == f"http://127.0.0.1:9/pixel/v1/track?writeKey={WRITE_KEY}&a=1&ref=0"
    assert delivery.status == {"r0": ("accepted", None)}
    [attempt] = delivery.settlements[0].history  # what the ledger's attempts table keeps
    assert attempt.message.startswith("accepted by RudderStack's gateway")


@pytest.mark.parametrize("kind", ["pixel", "rudderstack_pixel"])
def test_429_is_retried_after_its_retry_after_and_400_rejects(kind: str) -> None:
    answers = [httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200)]
    delivery, seen = deliver(kind, lambda r: answers.pop(0), rows(1))
    assert len(seen) == 2 and delivery.status == {"r0": ("accepted", None)}
    bad = httpx.Response(400, json={"errors": [{"code": "x", "message": "bad ct"}]})
    delivery, _ = deliver(kind, bad, rows(1))
    assert delivery.status == {"r0": ("rejected", "bad ct")}


@pytest.mark.parametrize(
    ("kind", "setting"), [("pixel", "api_key"), ("rudderstack_pixel", "write_key")]
)
def test_a_refused_key_stops_the_run_and_names_the_setting_not_the_key(
    kind: str, setting: str
) -> None:
    with pytest.raises(DeliveryStopped) as stopped:
        deliver(kind, httpx.Response(403), rows(1))
    assert isinstance(stopped.value, FatalSendError)
    assert f"destination.{setting}" in str(stopped.value)
    assert KEY not in str(stopped.value) and WRITE_KEY not in str(stopped.value)


def test_the_rate_is_max_requests_per_second_one_conversion_per_request() -> None:
    slow = destination("pixel", max_requests_per_second=5)
    assert (slow.rate, slow.per_request) == (5, 1)
    assert destination("rudderstack_pixel").per_request == 1
    assert DestinationConfig.model_validate(CONFIGS["pixel"]).rate == 100  # the default


@pytest.mark.parametrize("kind", ["pixel", "rudderstack_pixel"])
def test_httpx_log_records_show_the_host_alone(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        deliver(kind, httpx.Response(200), rows(1))
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("httpx")]
    assert lines and all("http://127.0.0.1:9/<hidden>" in line for line in lines)
    assert KEY not in caplog.text and WRITE_KEY not in caplog.text and "ref=" not in caplog.text
