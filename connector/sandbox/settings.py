"""How the sandbox behaves: `SandboxSettings`, the flags of `rokt-connector sandbox`
checked once (rates within 0..1, positive limits) before anything is served.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

RATES = (
    "fail_rate",
    "reject_rate",
    "burst_503_rate",
    "storm_429_rate",
    "reset_rate",
    "slow_rate",
    "hang_rate",
)


@dataclass(frozen=True)
class SandboxSettings:
    """How the sandbox behaves; `clock`, `wall_clock` and `sleep` are injectable for tests."""

    api_key: str = "sandbox-key"
    api_secret: str = field(default="sandbox-secret", repr=False)
    write_key: str = field(default="sandbox-write-key", repr=False)  # the RudderStack pixel's
    rate_limit: float | None = None  # batches per second; None = unlimited
    fail_rate: float = 0.0
    reject_rate: float = 0.0
    latency_s: float = 0.0
    seed: int | None = None
    keep_bodies: int = 10_000
    # Each rate is the chance that one request meets that fault (0 = never).
    burst_503_rate: float = 0.0  # starts a burst: this and the next requests get 503
    storm_429_rate: float = 0.0  # starts a storm: this and the next requests get 429
    burst_length: int = 5  # requests in one burst or storm
    retry_after_max_s: int = 1  # Retry-After of injected 429s: whole seconds 0..this
    reset_rate: float = 0.0  # the connection drops mid-answer (half the time after recording)
    slow_rate: float = 0.0  # the batches are recorded but the answer comes `slow_s` late
    slow_s: float = 5.0
    hang_rate: float = 0.0  # never answered: held until the client gives up
    opaque_errors: bool = False  # bulk errors do not say which batch (no Path, no position)
    journal: Path | None = None  # JSON lines of what was received; replayed on start
    header_timeout_s: float = 10.0  # a connection's request headers must come within this
    max_connections: int = 256  # open at once; one more is closed as soon as it is accepted
    clock: Callable[[], float] = time.monotonic  # the token bucket's time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    wall_clock: Callable[[], float] = time.time  # `received_at` of recorded batches

    def __post_init__(self) -> None:
        for name in RATES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.burst_length < 1:
            raise ValueError("burst_length must be at least 1")
        if self.retry_after_max_s < 0:
            raise ValueError("retry_after_max_s must not be negative")
        if not self.slow_s >= 0:
            raise ValueError("slow_s must not be negative")
        if self.rate_limit is not None and not self.rate_limit > 0:
            raise ValueError("rate_limit must be a positive number of batches per second")
        if not self.latency_s >= 0:
            raise ValueError("latency_s must not be negative")
        if self.keep_bodies < 0:
            raise ValueError("keep_bodies must not be negative")
        if not self.header_timeout_s > 0:
            raise ValueError("header_timeout_s must be a positive number of seconds")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
