"""Delivering request bodies to the Event API: rate limit, concurrency, retries.

Owns: `classify`, the one function that maps an HTTP outcome (response or network
error) to an action; the token bucket on batches per second (every batch of a bulk
request counts); and `Sender.deliver`, which sends one request until it is settled:
retrying 429 (honouring `Retry-After`, capped at `retry_max_s`), 5xx, timeouts and
connection errors with full-jitter exponential backoff up to `max_attempts`, rejecting
only the batches a 400 or 202 names, and raising `FatalSendError` on 401/403 or an
endpoint that never answers. Every attempt has a deadline of `timeout_s` from the
request's first byte to its answer's last, so an endpoint that hangs (or trickles)
cannot hang a run. It reports every attempt (`Delivery.history`, also on a fatal stop)
for the ledger's `attempts` table. The HTTP client is injected (`httpx.MockTransport`
in unit tests). Must not: touch the ledger, log a secret or a request body, or sleep
except through the injected `sleep`.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

import httpx
import polars as pl

from connector.config import DestinationConfig
from connector.errors import FatalSendError
from connector.payload import request_body

Sleep = Callable[[float], Awaitable[None]]
Action = Literal["accept", "reject", "retry", "fatal"]
MAX_RETRY_AFTER_S = 300.0


@dataclass(frozen=True)
class Outcome:
    """What one HTTP attempt came to, and what to do next."""

    action: Action
    http_status: int | None
    message: str
    retry_after: float | None = None
    named: dict[str, str] = field(default_factory=dict)  # source_request_id -> message
    error: str | None = None  # the transport error's type when no response came


def _named_errors(response: httpx.Response) -> dict[str, str]:
    """The batches a response's `{"errors": [...]}` body names, by source_request_id."""
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return {}
    named: dict[str, str] = {}
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict) and isinstance(error.get("source_request_id"), str):
            code, message = error.get("code", ""), error.get("message", "rejected")
            named[error["source_request_id"]] = f"{code}: {message}" if code else str(message)
    return named


def _first_error(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or [{}]
        first = errors[0]
        return str(first.get("message") or first.get("code") or response.reason_phrase)
    except (ValueError, AttributeError, IndexError, TypeError):
        return response.reason_phrase or f"HTTP {response.status_code}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(seconds, MAX_RETRY_AFTER_S) if math.isfinite(seconds) and seconds >= 0 else None


def classify(response: httpx.Response | None, error: Exception | None = None) -> Outcome:
    """Map one attempt's response (or network error) to accept/reject/retry/fatal."""
    if response is None:
        kind = "timed out" if isinstance(error, httpx.TimeoutException) else "network error"
        name = type(error).__name__
        return Outcome("retry", None, f"{kind}: {name}", error=name)
    status = response.status_code
    if 200 <= status < 300:
        return Outcome("accept", status, "accepted", named=_named_errors(response))
    if status in (401, 403):
        what = "missing" if status == 401 else "refused"
        return Outcome(
            "fatal",
            status,
            f"credentials {what} (HTTP {status}); check destination.api_key and api_secret",
        )
    if status == 429:
        return Outcome("retry", status, "rate limited (HTTP 429)", _retry_after(response))
    if status >= 500 or status == 408:
        return Outcome("retry", status, f"server error (HTTP {status})", _retry_after(response))
    return Outcome("reject", status, _first_error(response), named=_named_errors(response))


class TokenBucket:
    """`rate` tokens per second, at most `capacity` saved; waiters are served in order."""

    def __init__(
        self, rate: float, capacity: float, clock: Callable[[], float], sleep: Sleep
    ) -> None:
        self.rate, self.capacity = rate, capacity
        self._tokens, self._stamp = capacity, clock()
        self._clock, self._sleep = clock, sleep
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int, abandon: asyncio.Event | None = None) -> bool:
        """Wait for `tokens`; False (none taken) once `abandon` is set."""
        async with self._lock:
            while True:
                if abandon is not None and abandon.is_set():
                    return False
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= tokens:
                    self._tokens -= tokens
                    return True
                await self._sleep((tokens - self._tokens) / self.rate)


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt of a request. `message` is what it meant for the batches its
    response did not name; a batch it rejected by name has its own (in `status`)."""

    number: int  # 1, 2, ... within this delivery
    at: datetime  # when the request left
    http_status: int | None
    error: str | None  # the transport error's type when no response came
    message: str


@dataclass
class Delivery:
    """The final state of one request's batches, and every attempt it took."""

    status: dict[str, tuple[str, str | None]]  # request_id -> (status, reason)
    http_status: int | None
    attempts: int
    history: list[Attempt] = field(default_factory=list)
    # batches settled before the last attempt (rejected by name in a 400 that made the
    # others be resent): request_id -> the attempt that settled them
    settled_early: dict[str, int] = field(default_factory=dict)


class DeliveryStopped(FatalSendError):
    """A fatal outcome (credentials refused, endpoint unreachable) in the middle of a
    delivery; `delivery` holds the attempts made and the request's batches as failed."""

    def __init__(self, message: str, delivery: Delivery) -> None:
        super().__init__(message, delivery.attempts)
        self.delivery = delivery


@dataclass
class SendStats:
    requests: int = 0  # HTTP attempts
    retries: int = 0


class Sender:
    """Sends request bodies to one destination; settle each with `deliver`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        destination: DestinationConfig,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self.client = client
        self.destination = destination
        self.url = destination.root_url + ("/v2/bulkevents" if destination.bulk else "/v2/events")
        self.stats = SendStats()
        self._sleep = sleep
        self._rng = rng or random.Random()
        rate = destination.max_batches_per_second
        self._bucket = TokenBucket(rate, max(rate, 100.0), clock, sleep)
        self._slots = asyncio.Semaphore(destination.concurrency)
        self._stopping = stopping or asyncio.Event()

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]."""
        ceiling = self.destination.retry_base_s * 2 ** (attempt - 1)
        return self._rng.uniform(0, min(self.destination.retry_max_s, ceiling))

    async def _attempt(
        self, body: bytes, batches: int, first: bool
    ) -> tuple[Outcome, datetime] | None:
        """One HTTP attempt and when it left; None when stopping before a request's
        first attempt."""
        if not await self._bucket.acquire(batches, self._stopping if first else None):
            return None  # stopping: a request never sent does not wait for tokens
        async with self._slots:
            if first and self._stopping.is_set():
                return None
            self.stats.requests += 1
            at = datetime.now(UTC)
            try:
                async with asyncio.timeout(self.destination.timeout_s):
                    response = await self.client.post(self.url, content=body)
            except TimeoutError:
                return classify(None, httpx.TimeoutException("no answer within timeout_s")), at
            except httpx.TransportError as exc:
                return classify(None, exc), at
            return classify(response), at

    async def deliver(self, batches: pl.DataFrame) -> Delivery:
        """Send one request of `batches` (`_request_id`, `_body`) until it is settled.

        Once `stopping` is set, a request not yet sent is not sent (empty `status`); one
        already sent is still retried until it is settled. A fatal outcome raises
        `DeliveryStopped`, whose delivery marks the unsettled batches failed.
        """
        delivery = Delivery({}, None, 0)
        remaining = batches.select("_request_id", "_body")
        body = request_body(remaining["_body"], self.destination.bulk)
        reached = False
        outcome = Outcome("retry", None, "not sent")
        while remaining.height:
            attempted = await self._attempt(body, remaining.height, first=not delivery.attempts)
            if attempted is None:  # never sent: the rows stay pending
                return delivery
            outcome, at = attempted
            delivery.attempts = number = delivery.attempts + 1
            delivery.http_status = outcome.http_status
            reached = reached or outcome.http_status is not None
            last = number >= self.destination.max_attempts
            if outcome.action == "retry" and last and not reached:
                unreachable = (
                    f"endpoint {self.destination.root_url} unreachable after {number} "
                    f"attempts ({outcome.message})"
                )
                outcome = replace(outcome, action="fatal", message=unreachable)
            message = outcome.message
            if outcome.action in ("accept", "reject"):
                for request_id, named in outcome.named.items():
                    delivery.status[request_id] = ("rejected", named)
                unnamed = remaining.filter(~pl.col("_request_id").is_in(list(outcome.named)))
                settled: tuple[str, str | None] = ("accepted", None)
                if outcome.action == "reject":
                    settled = ("rejected", outcome.message)
                if outcome.action == "reject" and 0 < unnamed.height < remaining.height:
                    # a 400 naming some batches: the others were refused with them; resend
                    delivery.settled_early |= dict.fromkeys(outcome.named, number)
                    message = f"resent: HTTP {outcome.http_status} rejected other batches of it"
                    remaining = unnamed
                    body = request_body(remaining["_body"])
                else:
                    delivery.status |= dict.fromkeys(unnamed["_request_id"].to_list(), settled)
                    remaining = unnamed.clear()
            delivery.history.append(
                Attempt(number, at, outcome.http_status, outcome.error, message)
            )
            if outcome.action == "fatal":
                stopped = dict.fromkeys(remaining["_request_id"].to_list(), ("failed", message))
                delivery.status |= stopped
                raise DeliveryStopped(message, delivery)
            if outcome.action == "retry":
                if last:
                    break
                self.stats.retries += 1
                wait = outcome.retry_after
                if wait is None:
                    wait = self.backoff(number)
                await self._sleep(min(wait, self.destination.retry_max_s))
        failed = ("failed", f"gave up after {delivery.attempts} attempts: {outcome.message}")
        delivery.status |= dict.fromkeys(remaining["_request_id"].to_list(), failed)
        return delivery
