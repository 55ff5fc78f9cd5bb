"""Fault injection: 503 bursts, 429 storms, `--fail-rate` faults, requests dropped, answered
late or never (`Faults`, drawn from one seeded stream), the token-bucket rate limit
(`TokenBucket`) and `--reject-rate`'s verdict, fixed per batch (`RejectRate`).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from collections.abc import Callable
from typing import Literal

from connector.sandbox.reply import Reply, error
from connector.sandbox.settings import SandboxSettings
from connector.spec import MAX_BATCHES_PER_REQUEST

# --fail-rate picks one of these uniformly (429 with Retry-After 0..--retry-after-max).
FAULTS = (
    (500, "internal_error"),
    (502, "bad_gateway"),
    (503, "service_unavailable"),
    (429, "too_many_requests"),
)
# What befalls a valid request: never answered; dropped before it is recorded ("lost") or
# after ("drop"); answered `slow_s` late.
Mishap = Literal["hang", "lost", "drop", "slow"]


class Faults:
    """The faults requests meet, from `settings.seed`; `by_kind` counts them."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self._rng = random.Random(settings.seed)
        self._burst_kind, self._burst_left = "", 0
        self.by_kind: Counter[str] = Counter()

    def refusal(self) -> Reply | None:
        """A 503 of a burst, a 429 of a storm, or a --fail-rate fault; None for none."""
        settings = self.settings
        if not self._burst_left:
            for kind, rate in (
                ("burst_503", settings.burst_503_rate),
                ("storm_429", settings.storm_429_rate),
            ):
                if rate > 0 and self._rng.random() < rate:
                    self._burst_kind, self._burst_left = kind, settings.burst_length
                    break
        if self._burst_left:
            self._burst_left -= 1
            self.by_kind[self._burst_kind] += 1
            if self._burst_kind == "burst_503":
                return error(503, "service_unavailable", "sandbox --burst-503 injected a 503")
            return error(
                429, "too_many_requests", "sandbox --storm-429 injected a 429", self._wait()
            )
        rate = settings.fail_rate
        if rate <= 0 or self._rng.random() >= rate:
            return None
        status, code = self._rng.choice(FAULTS)
        self.by_kind["fail"] += 1
        headers = self._wait() if status == 429 else {}
        return error(status, code, f"sandbox --fail-rate injected a {status}", headers)

    def _wait(self) -> dict[str, str]:
        return {"Retry-After": str(self._rng.randint(0, self.settings.retry_after_max_s))}

    def mishap(self) -> Mishap | None:
        """Whether this valid request is never answered, dropped, or answered late."""
        settings = self.settings
        kinds: tuple[tuple[Literal["hang", "reset", "slow"], float], ...] = (
            ("hang", settings.hang_rate),
            ("reset", settings.reset_rate),
            ("slow", settings.slow_rate),
        )
        for kind, rate in kinds:
            if rate > 0 and self._rng.random() < rate:
                self.by_kind[kind] += 1
                if kind == "reset":
                    return "lost" if self._rng.random() < 0.5 else "drop"
                return kind
        return None


class TokenBucket:
    """`--rate-limit` batches per second (None: unlimited), in bursts of up to a full request."""

    def __init__(self, rate: float | None, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._clock = clock
        self._capacity = max(rate or 0.0, float(MAX_BATCHES_PER_REQUEST))
        self._tokens = self._capacity
        self._refilled_at = clock()

    def take(self, cost: int) -> Reply | None:
        """None when `cost` batches may pass now; else a 429 saying when to retry."""
        rate = self._rate
        if rate is None:
            return None
        now = self._clock()
        elapsed = max(0.0, now - self._refilled_at)
        self._tokens = min(self._capacity, self._tokens + elapsed * rate)
        self._refilled_at = now
        if self._tokens >= cost:
            self._tokens -= cost
            return None
        wait = max(1, math.ceil((cost - self._tokens) / rate))
        return error(
            429,
            "rate_limited",
            f"over {rate:g} batches per second; retry after {wait} s",
            {"Retry-After": str(wait)},
        )


class RejectRate:
    """--reject-rate's verdict on a valid batch: the same for the same batch, whenever and
    however it is sent, and for the life of the process (a reset keeps it)."""

    def __init__(self, rate: float, seed: int | None) -> None:
        self._rate = rate
        # Hashed with each batch's key: the seed, or (unseeded) a number fixed for the
        # life of this process.
        self._salt = str(seed if seed is not None else random.getrandbits(64))

    def rejects(self, request_id: str | None, confirmationref: str) -> bool:
        """By the batch's source_request_id, else its confirmationref."""
        if self._rate <= 0:
            return False
        key = f"id:{request_id}" if request_id is not None else f"ref:{confirmationref}"
        digest = hashlib.sha256(f"{self._salt}\0{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big") < self._rate * 2**64
