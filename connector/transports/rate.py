"""The rate limit every transport keeps: a token bucket on batches per second, its
waits made through an injected `sleep` and `clock` (so tests never sleep)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """`rate` tokens per second, at most `capacity` saved, `initial` at the start (by
    default a full bucket); waiters are served in order."""

    def __init__(
        self,
        rate: float,
        capacity: float,
        clock: Callable[[], float],
        sleep: Sleep,
        initial: float | None = None,
    ) -> None:
        self.rate, self.capacity = rate, capacity
        self._tokens = capacity if initial is None else min(initial, capacity)
        self._stamp = clock()
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
                if self._tokens >= tokens - 1e-9:  # a float short of it is there
                    self._tokens = max(0.0, self._tokens - tokens)
                    return True
                await self._sleep((tokens - self._tokens) / self.rate)
