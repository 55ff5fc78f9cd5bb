"""Work in a worker thread from the event loop, which waits for the thread to finish
even when cancelled (so nothing closes under it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

T = TypeVar("T")

P = ParamSpec("P")


async def in_thread(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`function` in a worker thread. A thread cannot be stopped: when the caller is
    cancelled, it still waits for the thread to finish, so nothing closes under it."""
    future = asyncio.ensure_future(asyncio.to_thread(function, *args, **kwargs))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise
