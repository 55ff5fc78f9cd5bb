"""How the sandbox is served, against `rokt-connector sandbox` processes on loopback.

`serve` answers real HTTP; a dropped answer and a hung request are network errors to the
client. A connection that does not finish its request headers in time is closed,
connections past the limit are closed at once, and the key and secret can come from the
environment so that `ps` shows no secret. Waits are bounded reads on sockets, never sleeps.
"""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import polars as pl
import pytest
from sandbox_helpers import BULK, REPO, batch, bulk, pipeline_bodies

from connector.spec import MAX_BATCHES_PER_REQUEST
from connector.transports.events_api_json import pack

AUTH = ("sandbox-key", "sandbox-secret")  # the command's defaults
STATS = b"GET /_sandbox/stats HTTP/1.1\r\nHost: sandbox\r\n\r\n"
PATIENCE_S = 5.0  # how long a test waits for the server before calling it stuck


@contextmanager
def connection(url: str) -> Iterator[socket.socket]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=PATIENCE_S) as sock:
        yield sock


def closed_after(sock: socket.socket) -> float:
    """Seconds until the server closes `sock`, reading what it sends meanwhile (none)."""
    started = time.monotonic()
    received = b""
    try:
        while chunk := sock.recv(4096):  # raises TimeoutError after PATIENCE_S
            received += chunk
    except ConnectionResetError:
        pass
    assert received == b"", received
    return time.monotonic() - started


def answered(sock: socket.socket) -> bytes:
    """Send a stats request on `sock` and read the whole answer (the connection stays)."""
    sock.sendall(STATS)
    received = b""
    while b"\r\n\r\n" not in received or len(received) < answer_size(received):
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection instead of answering"
        received += chunk
    return received


def answer_size(received: bytes) -> int:
    head, _, _ = received.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    assert length, head
    return len(head) + 4 + int(length.group(1))


def test_a_connection_that_does_not_finish_its_headers_is_closed(
    sandbox_factory: Callable[..., Any],
) -> None:
    sandbox = sandbox_factory("--header-timeout", "0.2", "--latency", "0.5")
    with connection(sandbox.url) as half:
        half.sendall(b"POST /v2/bulkevents HTTP/1.1\r\nHost: sandbox\r\nContent-Le")
        assert 0.1 < closed_after(half) < 2  # the default would be 10 s
    with connection(sandbox.url) as silent:
        assert closed_after(silent) < 2
    with connection(sandbox.url) as kept:  # after an answer, the next headers are timed too
        assert answered(kept).startswith(b"HTTP/1.1 200")
        kept.sendall(b"GET /_sandbox/stats HTTP/1.1\r\n")
        assert closed_after(kept) < 2
    # Only headers are timed: an answer slower than the timeout still comes.
    with httpx.Client(base_url=sandbox.url, auth=AUTH, timeout=PATIENCE_S) as client:
        response = client.post("/v2/bulkevents", content=b"[]")
    assert (response.status_code, response.json()["errors"][0]["code"]) == (400, "BAD_REQUEST")
    assert sandbox.stats()["connections_closed"] == {"header_timeout": 3, "over_limit": 0}


def test_connections_past_the_limit_are_closed_at_once(
    sandbox_factory: Callable[..., Any],
) -> None:
    sandbox = sandbox_factory("--max-connections", "2")
    with connection(sandbox.url) as first, connection(sandbox.url) as second:
        for open_one in (first, second):  # answered: the server holds both
            assert answered(open_one).startswith(b"HTTP/1.1 200")
        with connection(sandbox.url) as third:
            third.sendall(STATS)
            assert closed_after(third) < 2
        assert answered(second).startswith(b"HTTP/1.1 200")  # the open ones still serve
    deadline = time.monotonic() + PATIENCE_S
    while True:  # once the server has seen them close, it takes new connections again
        try:
            stats = httpx.get(sandbox.url + "/_sandbox/stats", timeout=PATIENCE_S).json()
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the sandbox never took a connection again"
    assert stats["connections_closed"]["over_limit"] >= 1
    assert stats["connections_closed"]["header_timeout"] == 0


def test_the_keys_can_come_from_the_environment_and_ps_shows_no_secret(
    sandbox_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "env-Only-Secret-5d1c"
    monkeypatch.setenv("ROKT_SANDBOX_API_KEY", "env-key")
    monkeypatch.setenv("ROKT_SANDBOX_API_SECRET", secret)
    sandbox = sandbox_factory()
    with httpx.Client(base_url=sandbox.url, timeout=PATIENCE_S) as client:
        # An empty bulk body: authorized, it is refused for its content (400); else 403.
        statuses = [
            client.post("/v2/bulkevents", content=b"[]", auth=auth).status_code
            for auth in [("env-key", secret), AUTH]
        ]
    assert statuses == [400, 403]
    shown = subprocess.run(
        ["ps", "-ww", "-o", "args=", "-p", str(sandbox.process.pid)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "connector sandbox" in shown
    assert secret not in shown and "--api-secret" not in shown


def test_serve_for_real_over_loopback() -> None:
    code = (
        "from connector.sandbox import serve, SandboxSettings; "
        "serve(SandboxSettings(), port=0, ready=lambda u: print(u, flush=True))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            deadline = time.monotonic() + 30
            ready: list[Any] = []
            while not ready and time.monotonic() < deadline and process.poll() is None:
                ready, _, _ = select.select([process.stdout], [], [], 0.1)
            assert ready, "the sandbox did not print its URL"
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            batches = pl.Series(pipeline_bodies()[:150])
            requests = pack(batches)
            with httpx.Client(base_url=url, auth=("sandbox-key", "sandbox-secret")) as client:
                for request in requests:
                    response = client.post(BULK, content=request.body(batches))
                    assert (response.status_code, response.json()) == (202, {})
                assert client.post(BULK, content=b"[]").status_code == 400
                stats = client.get("/_sandbox/stats").json()
            assert stats["batches"] == stats["unique_confirmationrefs"] == 150
            assert stats["max_batches_per_request"] == MAX_BATCHES_PER_REQUEST
            assert stats["responses_by_status"]["202"] == len(requests) == 2
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        assert process.stderr is not None
        assert "sandbox-secret" not in process.stderr.read()


def test_over_loopback_a_dropped_answer_and_a_hung_request_are_network_errors(
    sandbox_factory: Callable[..., Any],
) -> None:
    dropping = sandbox_factory("--reset-rate", "1", "--seed", "8")
    hanging = sandbox_factory("--hang-rate", "1")
    body = bulk([batch(0)]).encode()
    with httpx.Client(auth=("sandbox-key", "sandbox-secret"), timeout=0.5) as client:
        with pytest.raises(httpx.RemoteProtocolError):  # the headers came, the body never
            client.post(dropping.url + BULK, content=body)
        with pytest.raises(httpx.ReadTimeout):
            client.post(hanging.url + BULK, content=body)
    assert dropping.stats()["faults_by_kind"] == {"reset": 1}
    deadline = time.monotonic() + 10
    while hanging.stats()["in_flight"]:  # released once the client hung up
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert hanging.stats()["faults_by_kind"] == {"hang": 1}
