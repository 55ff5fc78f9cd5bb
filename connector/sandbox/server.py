"""How the sandbox is served (`serve`): uvicorn on a socket it binds itself, loopback only
unless asked, until interrupted; its guards close connections slow to send their headers
(`Guard.header_timeout_s`) or past `Guard.max_connections`, counted in `Guard.closed`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from connector.config import is_loopback_host
from connector.sandbox.app import create_app
from connector.sandbox.settings import SandboxSettings
from connector.sandbox.state import HEADER_TIMEOUT, OVER_LIMIT, Sandbox


@dataclass(frozen=True)
class Guard:
    """The limits on connections, and where the connections they close are counted.

    A client must finish its request headers within `header_timeout_s` (of connecting, or
    of the end of its previous answer) or its connection is closed; past `max_connections`
    open connections a new one is closed at once.
    """

    header_timeout_s: float
    max_connections: int
    closed: Counter[str]


class _Guarded(asyncio.Protocol):
    """Mixed in before uvicorn's HTTP protocol (see `_protocol`): the connection guards."""

    guard: ClassVar[Guard]
    # Set by uvicorn's protocol.
    server_state: Any
    cycle: Any  # the request being answered, or the last one answered; None before one
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    _refused = False
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if len(self.server_state.connections) >= self.guard.max_connections:
            self._refused = True
            self.guard.closed[OVER_LIMIT] += 1
            transport.close()
            return
        super().connection_made(transport)
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        if not self._refused:
            super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._await_headers()

    def _await_headers(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.guard.header_timeout_s, self._headers_late)

    def _headers_late(self) -> None:
        """Close the connection unless a request's headers came and it is being answered
        (its answer's end starts a new deadline)."""
        self._deadline = None
        if self.cycle is None or self.cycle.response_complete:
            self.guard.closed[HEADER_TIMEOUT] += 1
            self.transport.close()


def _protocol(guard: Guard) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (h11, or httptools when installed) with `guard` on it."""
    return type("GuardedHTTPProtocol", (_Guarded, AutoHTTPProtocol), {"guard": guard})


class _Server(uvicorn.Server):
    """uvicorn, calling back once its listener is serving."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_started is not None:
            self._on_started()


class _QuietDrops(logging.Filter):
    """Keeps uvicorn from logging each connection the sandbox drops on purpose as an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


def refuse_remote(host: str, allow_remote: bool) -> None:
    """Raise ValueError for a host other than loopback unless `allow_remote`."""
    if not allow_remote and not is_loopback_host(host):
        raise ValueError(
            f"refusing to serve the sandbox on non-loopback host {host!r}; "
            "use 127.0.0.1 or pass allow_remote=True"
        )


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def run(
    app: ASGIApp, host: str, port: int, guard: Guard, ready: Callable[[str], None] | None
) -> None:
    """Serve `app` on `host:port` (port 0 picks a free one) until interrupted.

    `ready(url)` is called with the real `http://host:port` once it is serving.
    Ctrl-C (SIGINT) returns normally after a graceful shutdown; SIGTERM ends the
    process as uvicorn does.
    """
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"http://{shown}:{bound_port}"
    config = uvicorn.Config(app, log_level="warning", lifespan="off", http=_protocol(guard))
    logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
    server = _Server(config, (lambda: ready(url)) if ready is not None else None)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # Ctrl-C: uvicorn has shut down gracefully and re-raised the signal
    finally:
        sock.close()


def serve(
    settings: SandboxSettings,
    host: str = "127.0.0.1",
    port: int = 8787,
    ready: Callable[[str], None] | None = None,
    *,
    allow_remote: bool = False,
) -> None:
    """Run the sandbox on `host:port` until interrupted (`run`: port 0 picks a free one;
    `ready(url)` once it serves). A host other than loopback is refused (ValueError)
    unless `allow_remote`; a journal that cannot be used safely (ConfigError) before
    anything is bound.
    """
    refuse_remote(host, allow_remote)
    app = create_app(settings)
    sandbox: Sandbox = app.state.sandbox
    guard = Guard(settings.header_timeout_s, settings.max_connections, sandbox.connections_closed)
    try:
        run(app, host, port, guard, ready)
    finally:
        sandbox.close()
