"""Delivering requests to any transport: rate limit, concurrency, retries, deadlines.

Owns: the token bucket on batches per second (every batch of a bulk request counts)
and `Sender.deliver`, which sends one request until each of its batches is settled:
retrying what the transport's `classify` calls retry (429 honouring `Retry-After`,
5xx, timeouts, connection errors) with full-jitter backoff up to `max_attempts`;
rejecting the batches the transport's `read` names; resending the others of a 400,
and alone each batch an answer may concern but does not name (docs/delivery.md);
stopping the run on a fatal outcome. Every attempt has a deadline of `timeout_s`, and
is reported (`Settlement.history`) for the ledger's `attempts` table. Must not: touch
the ledger, log a secret or a body, or sleep except through the injected `sleep`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import polars as pl

from connector.config import DestinationConfig
from connector.errors import FatalSendError
from connector.status import Status
from connector.transports import transport_for
from connector.transports.base import Outcome, Transport
from connector.transports.rate import Sleep, TokenBucket

State = tuple[str, str | None]  # (status, reason) of one batch


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt. `message` is what it meant for the batches its response did
    not name; a batch it rejected by name has its own (in `Settlement.status`)."""

    number: int  # 1, 2, ... along one line of attempts (a request, then a batch isolated)
    at: datetime  # when the request left
    http_status: int | None
    error: str | None  # the transport error's type when no response came
    message: str


@dataclass
class Settlement:
    """Batches settled along one line of attempts: a request's, or, for a batch resent
    alone, the request's attempts up to its isolation followed by its own."""

    history: list[Attempt]
    status: dict[str, tuple[str, str | None, int]] = field(default_factory=dict)
    # request_id -> (status, reason, the attempt that settled it)


@dataclass
class Delivery:
    """The final state of one request's batches, and every attempt it took."""

    settlements: list[Settlement] = field(default_factory=list)
    http_status: int | None = None
    attempts: int = 0  # HTTP requests made, isolated resends included

    @property
    def status(self) -> dict[str, State]:
        """request_id -> (status, reason), over every settlement."""
        return {
            rid: (state, reason)
            for settlement in self.settlements
            for rid, (state, reason, _) in settlement.status.items()
        }


class DeliveryStopped(FatalSendError):
    """A fatal outcome (credentials refused, endpoint unreachable) in the middle of a
    delivery; `delivery` holds the attempts made and the unsettled batches as failed."""

    def __init__(self, message: str, delivery: Delivery) -> None:
        super().__init__(message, delivery.attempts)
        self.delivery = delivery


@dataclass
class SendStats:
    requests: int = 0  # HTTP attempts
    retries: int = 0
    isolated: int = 0  # batches resent alone


@dataclass
class _Line:
    """Batches still to settle along one line of attempts, and how they are sent."""

    rows: pl.DataFrame  # _request_id, _body
    bulk: bool
    settlement: Settlement
    tries: int = 0  # attempts of this line's own requests

    def settle(self, ids: list[str], state: State, attempt: int) -> None:
        self.settlement.status |= dict.fromkeys(ids, (*state, attempt))
        self.rows = self.rows.filter(~pl.col("_request_id").is_in(ids))


class Sender:
    """Sends request bodies to one destination; settle each with `deliver`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        destination: DestinationConfig,
        *,
        transport: Transport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self.client = client
        self.destination = destination
        self.transport = transport or transport_for(destination)
        self.stats = SendStats()
        self._sleep = sleep
        self._rng = rng or random.Random()
        rate = destination.rate
        # a run starts with one request's worth of tokens, not a full second's: the
        # first second then sends no more than the rate allows after a burst of one
        first = float(destination.per_request)
        self._bucket = TokenBucket(rate, max(rate, 100.0), clock, sleep, initial=first)
        self._slots = asyncio.Semaphore(destination.concurrency)
        self._stopping = stopping or asyncio.Event()

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]."""
        ceiling = self.destination.retry_base_s * 2 ** (attempt - 1)
        return self._rng.uniform(0, min(self.destination.retry_max_s, ceiling))

    async def _attempt(
        self, line: _Line, first: bool
    ) -> tuple[Outcome, httpx.Response | None, datetime] | None:
        """One HTTP attempt, its response and when it left; None when stopping before a
        delivery's first attempt."""
        batches = line.rows.height
        if not await self._bucket.acquire(batches, self._stopping if first else None):
            return None  # stopping: a request never sent does not wait for tokens
        async with self._slots:
            if first and self._stopping.is_set():
                return None
            self.stats.requests += 1
            method, url, body = self.transport.request(line.rows["_body"], line.bulk)
            at = datetime.now(UTC)
            try:
                async with asyncio.timeout(self.destination.timeout_s):
                    response = await self.client.request(method, url, content=body)
            except TimeoutError:
                timeout = httpx.TimeoutException("no answer within timeout_s")
                return self.transport.classify(None, timeout), None, at
            except httpx.TransportError as exc:
                return self.transport.classify(None, exc), None, at
            return self.transport.classify(response, None), response, at

    async def deliver(self, batches: pl.DataFrame) -> Delivery:
        """Send one request of `batches` (`_request_id`, `_body`) until each is settled.

        Once `stopping` is set, a request not yet sent is not sent (empty `status`); one
        already sent is still retried until it is settled. A fatal outcome raises
        `DeliveryStopped`, whose delivery marks the unsettled batches failed.
        """
        delivery = Delivery()
        rows = batches.select("_request_id", "_body")
        lines = [_Line(rows, self.destination.per_request > 1, Settlement([]))]
        while lines:
            line = lines.pop(0)
            delivery.settlements.append(line.settlement)
            try:
                isolated = await self._settle(line, delivery)
            except DeliveryStopped:
                for waiting in lines:  # sent before, never answered by name
                    delivery.settlements.append(waiting.settlement)
                    number = len(waiting.settlement.history)
                    state = (Status.FAILED, "not resent alone: the run stopped")
                    waiting.settle(waiting.rows["_request_id"].to_list(), state, number)
                raise
            if isolated is None:
                return delivery  # stopping before the first attempt: nothing was sent
            lines += isolated
        return delivery

    async def _settle(self, line: _Line, delivery: Delivery) -> list[_Line] | None:
        """Attempt `line` until its batches are settled; returns the lines of batches
        to resend alone (None when stopping before the delivery's first attempt)."""
        history = line.settlement.history
        outcome = Outcome("retry", None, "not sent")
        while line.rows.height:
            attempted = await self._attempt(line, first=not delivery.attempts)
            if attempted is None:
                return None
            outcome, response, at = attempted
            delivery.attempts += 1
            line.tries += 1
            delivery.http_status = outcome.http_status
            number = len(history) + 1
            last = line.tries >= self.destination.max_attempts
            answered = outcome.http_status is not None or any(a.http_status for a in history)
            if outcome.action == "retry" and last and not answered:
                unreachable = (
                    f"endpoint {self.destination.root_url} unreachable after "
                    f"{line.tries} attempts ({outcome.message})"
                )
                outcome = Outcome("fatal", None, unreachable, error=outcome.error)
            message, isolate = outcome.message, list[str]()
            if response is not None and outcome.action in ("accept", "reject"):
                message, isolate = self._read(line, outcome, response, number)
            history.append(Attempt(number, at, outcome.http_status, outcome.error, message))
            if isolate:
                return self._isolate(line, isolate)
            if outcome.action == "fatal":
                line.settle(line.rows["_request_id"].to_list(), (Status.FAILED, message), number)
                raise DeliveryStopped(message, delivery)
            if outcome.action == "retry":
                if last:
                    gave_up = f"gave up after {line.tries} attempts: {outcome.message}"
                    line.settle(
                        line.rows["_request_id"].to_list(), (Status.FAILED, gave_up), number
                    )
                    break
                self.stats.retries += 1
                wait = outcome.retry_after
                if wait is None:
                    wait = self.backoff(line.tries)
                await self._sleep(min(wait, self.destination.retry_max_s))
        return []

    def _read(
        self, line: _Line, outcome: Outcome, response: httpx.Response, number: int
    ) -> tuple[str, list[str]]:
        """Settle what an answer says of `line`'s batches; returns the attempt's message
        for the batches it leaves unsettled, and the ids of those to resend alone."""
        ids: list[str] = line.rows["_request_id"].to_list()
        status = response.status_code
        if outcome.action == "reject" and status != 400:  # 404, 413, ...: the whole request
            line.settle(ids, (Status.REJECTED, outcome.message), number)
            return outcome.message, []
        texts: list[str] = line.rows["_body"].to_list()
        verdict = self.transport.read(response.content, texts, ids, line.bulk)
        for index, reason in verdict.named.items():
            line.settle([ids[index]], (Status.REJECTED, reason), number)
        unnamed = line.rows["_request_id"].to_list()
        if not unnamed:
            return outcome.message, []
        if outcome.action == "accept" and not verdict.unattributed:
            line.settle(unnamed, (Status.ACCEPTED, None), number)
            return outcome.message, []
        if len(ids) == 1:  # the answer concerns this batch, but says nothing readable
            if outcome.action == "accept":
                unread = f"HTTP {status} with an answer that could not be read; resent next run"
                line.settle(unnamed, (Status.FAILED, unread), number)
            else:
                line.settle(unnamed, (Status.REJECTED, outcome.message), number)
            return outcome.message, []
        if verdict.unattributed or not verdict.named:
            return f"resent alone: HTTP {status} did not name the batch of every error", unnamed
        return f"resent: HTTP {status} rejected other batches of it", []

    def _isolate(self, line: _Line, ids: list[str]) -> list[_Line]:
        """A line of its own for each batch in `ids`, sent alone to /v2/events."""
        self.stats.isolated += len(ids)
        rows = line.rows.filter(pl.col("_request_id").is_in(ids))
        history = line.settlement.history
        return [
            _Line(rows.slice(i, 1), bulk=False, settlement=Settlement(list(history)))
            for i in range(rows.height)
        ]
