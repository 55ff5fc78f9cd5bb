"""A strict local emulator of the Rokt Event API (mParticle's server-to-server `/v2`).

Owns: the ASGI app (`create_app`) answering `POST /v2/events` and `POST /v2/bulkevents`
as the real service does (HTTP Basic auth, request limits, per-batch validation by
`sandbox_checks`; 202 / 400 / 401 / 403 / 429 / 5xx; 400s worded by `sandbox_errors`,
locating a batch only by its position in the body), fault injection (fail rate, bursts
of 503s, storms of 429s, a reject rate whose verdict is fixed per batch, token-bucket
rate limit, latency, dropped connections, late answers, requests never answered, bulk
errors that do not say which batch), the record of what it received and accepted
(`/_sandbox/stats`, `/_sandbox/batches`, `/_sandbox/reset`; optionally journaled to a
file, created 0600 and never through a symlink, so a restarted sandbox remembers; a
request refused as a whole records nothing), and `serve` (through `sandbox_server`,
which guards the connections).
Must not: import the connector's sending code or decide anything for it; echo the
Authorization header, the secret or any batch value (messages name fields, never their
contents); read time or sleep except through the injected `clock`, `wall_clock` and
`sleep`; await between reading and writing its shared state.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import hashlib
import hmac
import json
import math
import os
import random
import stat
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from connector import files
from connector.errors import ConfigError
from connector.sandbox_checks import Checked, Invalid, judge, parse_body
from connector.sandbox_errors import batch_error, batch_spans, opaque_error, position, request_error
from connector.sandbox_server import HEADER_TIMEOUT, OVER_LIMIT, Guard, refuse_remote, run
from connector.spec import MAX_BATCHES_PER_REQUEST, MAX_REQUEST_BYTES

REJECTED_BY_SANDBOX = "rejected_by_sandbox"
# --fail-rate picks one of these uniformly (429 with Retry-After 0..--retry-after-max).
FAULTS = (
    (500, "internal_error"),
    (502, "bad_gateway"),
    (503, "service_unavailable"),
    (429, "too_many_requests"),
)
_SHOWN_STATUSES = ("202", "400", "401", "403", "429", "500", "502", "503")
_MAX_PAGE = 10_000


@dataclass(frozen=True)
class SandboxSettings:
    """How the sandbox behaves; `clock`, `wall_clock` and `sleep` are injectable for tests."""

    api_key: str = "sandbox-key"
    api_secret: str = field(default="sandbox-secret", repr=False)
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
        for name in _RATES:
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


_RATES = (
    "fail_rate",
    "reject_rate",
    "burst_503_rate",
    "storm_429_rate",
    "reset_rate",
    "slow_rate",
    "hang_rate",
)


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    fate: Literal["answer", "drop", "hang"] = "answer"  # drop: the connection breaks mid-answer


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"errors": [{"code": code, "message": message}]}, headers or {})


def _open_journal(path: Path) -> IO[str]:
    """`path` opened to read and append, created owner-only (it holds hashed PII), never
    through a symbolic link, and only a regular file of this user with no other link;
    ConfigError otherwise."""
    what = "--journal"
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, files.OWNER_ONLY)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            files.refuse_link(path, what, "give the path of a regular file")
        raise ConfigError(f"{what}: {path} cannot be opened: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            problem = "is not a regular file"
        elif info.st_uid != os.geteuid():
            problem = "belongs to another user"
        elif info.st_nlink > 1:
            problem = "has other hard links (it would write through them)"
        else:
            problem = ""
        if problem:
            raise ConfigError(f"{what}: {path} {problem}; give another path")
        os.fchmod(fd, files.OWNER_ONLY)
        return os.fdopen(fd, "a+", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


class Sandbox:
    """The emulator's state: counters, idempotency memory, token bucket, kept bodies.

    With `settings.journal`, every receipt and acceptance is appended to that file
    (flushed before the answer) and replayed on start, so a sandbox killed and started
    again on the same journal still knows what it accepted: resends and duplicates
    are detected across the restart. Counters of requests and responses are per process.
    """

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self._credentials = f"{settings.api_key}:{settings.api_secret}".encode()
        # --reject-rate's verdicts hash this with each batch's id: the seed, or (unseeded)
        # a number fixed for the life of this process.
        self._verdict_salt = str(
            settings.seed if settings.seed is not None else random.getrandbits(64)
        )
        self._journal: IO[str] | None = None
        # Counted by the server's connection guards (`sandbox_server.Guard`).
        self.connections_closed: Counter[str] = Counter()
        self.reset()
        if settings.journal is not None:
            self._journal = _open_journal(settings.journal)
            self._replay(self._journal)

    def reset(self) -> None:
        """Forget everything recorded (the journal too); the faults restart from the seed."""
        if self._journal is not None:
            self._journal.truncate(0)
        self._rng = random.Random(self.settings.seed)
        rate = self.settings.rate_limit
        self._capacity = max(rate or 0.0, float(MAX_BATCHES_PER_REQUEST))
        self._tokens = self._capacity
        self._refilled_at = self.settings.clock()
        self._accepted: set[str] = set()
        self._receipts: dict[str, int] = {}  # source_request_id -> times it arrived
        self._refs: dict[tuple[str, str], str | None] = {}
        self._bodies: list[dict[str, Any]] = []
        self._burst_kind, self._burst_left = "", 0
        self.requests = 0
        self.bulk_requests = 0  # of `requests`, those to /v2/bulkevents
        self.in_flight = 0
        self.max_receipts = 0
        self.batches = 0
        self.duplicate_confirmationrefs = 0
        self.resent = 0
        self.rejected = 0
        self.max_batches_per_request = 0
        self.rejections_by_code: Counter[str] = Counter()
        self.request_errors_by_code: Counter[str] = Counter()
        self.responses_by_status: Counter[int] = Counter()
        self.faults_by_kind: Counter[str] = Counter()
        self.connections_closed.clear()

    def close(self) -> None:
        """Close the journal (the record stays in the file for the next sandbox)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def _replay(self, journal: IO[str]) -> None:
        """Take back what an earlier sandbox on this journal received and accepted."""
        journal.seek(0)
        for line in journal:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # the last line, cut short when that sandbox was killed
            if "receipt" in event:
                self._receipt(event["receipt"])
            elif "accepted" in event:
                self._record(event["accepted"])
            elif "resent" in event:
                self.resent += 1
        journal.seek(0, os.SEEK_END)

    def _log(self, key: str, values: Iterable[object]) -> None:
        """Append a `{key: value}` line per value to the journal, if any, and flush."""
        if self._journal is not None:
            lines = "".join(json.dumps({key: v}, separators=(",", ":")) + "\n" for v in values)
            if lines:
                self._journal.write(lines)
                self._journal.flush()

    def _receipt(self, request_id: str) -> None:
        count = self._receipts[request_id] = self._receipts.get(request_id, 0) + 1
        self.max_receipts = max(self.max_receipts, count)

    def stats(self) -> dict[str, Any]:
        statuses = Counter(dict.fromkeys(_SHOWN_STATUSES, 0))
        statuses.update({str(s): n for s, n in self.responses_by_status.items()})
        return {
            "requests": self.requests,
            "bulk_requests": self.bulk_requests,
            "in_flight": self.in_flight,
            "batches": self.batches,
            "unique_confirmationrefs": len(self._refs),
            "duplicate_confirmationrefs": self.duplicate_confirmationrefs,
            "resent": self.resent,
            "rejected": self.rejected,
            "rejections_by_code": dict(sorted(self.rejections_by_code.items())),
            "request_errors_by_code": dict(sorted(self.request_errors_by_code.items())),
            "responses_by_status": dict(sorted(statuses.items())),
            "max_batches_per_request": self.max_batches_per_request,
            "max_receipts": self.max_receipts,
            "faults_by_kind": dict(sorted(self.faults_by_kind.items())),
            "connections_closed": {
                key: self.connections_closed[key] for key in (HEADER_TIMEOUT, OVER_LIMIT)
            },
        }

    def recorded(self, offset: int = 0, limit: int = 1000) -> dict[str, Any]:
        """Accepted batches in order; `receipts`: how often each arrived (all attempts)."""
        page = self._bodies[offset : offset + limit]
        receipts = self._receipts
        shown = [{**r, "receipts": receipts.get(r["source_request_id"], 0)} for r in page]
        return {"total": self.batches, "batches": shown}

    def authorize(self, header: str | None) -> Reply | None:
        """None when the header carries this sandbox's key and secret; else 401 / 403."""
        if header is None:
            return _error(
                401,
                "unauthorized",
                "no Authorization header; send HTTP Basic auth with the API key and secret",
                {"WWW-Authenticate": 'Basic realm="rokt-sandbox"'},
            )
        scheme, _, token = header.strip().partition(" ")
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            given = b""
        if scheme.lower() != "basic" or not hmac.compare_digest(given, self._credentials):
            return _error(
                403,
                "forbidden",
                "the Authorization header is not Basic base64(api_key:api_secret) for this "
                "sandbox; check the key and secret",
            )
        return None

    async def receive(self, bulk: bool, body: bytes | None) -> Reply:
        """Answer one authorized POST; `body` None means it exceeded MAX_REQUEST_BYTES.

        A request refused as a whole (too large, not JSON, a bulk body that is no array
        of 1 to 100 batches) is refused before anything is recorded; each valid batch
        counts a receipt, even when a fault then refuses the request.
        """
        problem: Invalid | None = None
        verdicts: list[Checked | Invalid] = []
        count = 0
        text = ""
        try:
            if body is None:
                raise Invalid(
                    "request_too_large",
                    f"the request body is over {MAX_REQUEST_BYTES} bytes; send fewer batches",
                )
            text, parsed = parse_body(body)
            batches = parsed if bulk and isinstance(parsed, list) else [parsed]
            count = len(batches)
            self.max_batches_per_request = max(self.max_batches_per_request, count)
            if bulk and (not isinstance(parsed, list) or not 1 <= count <= MAX_BATCHES_PER_REQUEST):
                got = f"{count} batches" if isinstance(parsed, list) else "no array"
                raise Invalid(
                    "invalid_bulk",
                    f"/v2/bulkevents takes a JSON array of 1 to {MAX_BATCHES_PER_REQUEST} "
                    f"batch objects; got {got}",
                )
            verdicts = [judge(batch) for batch in batches]
        except Invalid as exc:
            problem = exc
        received = [
            v.source_request_id
            for v in verdicts
            if isinstance(v, Checked) and v.source_request_id is not None
        ]
        for request_id in received:
            self._receipt(request_id)
        self._log("receipt", received)
        refused = self._fault() or self._take_tokens(min(max(count, 1), MAX_BATCHES_PER_REQUEST))
        if refused is not None:
            return refused
        if self.settings.latency_s > 0:
            await self.settings.sleep(self.settings.latency_s)
        # From here to the reply nothing awaits: the bookkeeping is one atomic step
        # (a slow answer waits after it).
        if problem is not None:
            self.request_errors_by_code[problem.code] += 1
            return Reply(400, {"errors": [request_error(problem.code, problem.message)]})
        mishap = self._mishap()
        if mishap == "hang":
            return Reply(0, {}, fate="hang")
        if mishap == "reset" and self._rng.random() < 0.5:
            return Reply(202, {}, fate="drop")  # lost on the way in: nothing recorded
        reply = self._settle(bulk, verdicts, text)
        if mishap == "reset":
            return Reply(reply.status, reply.body, fate="drop")  # recorded; the answer is lost
        if mishap == "slow":
            await self.settings.sleep(self.settings.slow_s)
        return reply

    def _fault(self) -> Reply | None:
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
            self.faults_by_kind[self._burst_kind] += 1
            if self._burst_kind == "burst_503":
                return _error(503, "service_unavailable", "sandbox --burst-503 injected a 503")
            return _error(
                429, "too_many_requests", "sandbox --storm-429 injected a 429", self._wait()
            )
        rate = settings.fail_rate
        if rate <= 0 or self._rng.random() >= rate:
            return None
        status, code = self._rng.choice(FAULTS)
        self.faults_by_kind["fail"] += 1
        headers = self._wait() if status == 429 else {}
        return _error(status, code, f"sandbox --fail-rate injected a {status}", headers)

    def _wait(self) -> dict[str, str]:
        return {"Retry-After": str(self._rng.randint(0, self.settings.retry_after_max_s))}

    def _mishap(self) -> Literal["hang", "reset", "slow"] | None:
        """Whether this valid request is never answered, dropped, or answered late."""
        settings = self.settings
        kinds: tuple[tuple[Literal["hang", "reset", "slow"], float], ...] = (
            ("hang", settings.hang_rate),
            ("reset", settings.reset_rate),
            ("slow", settings.slow_rate),
        )
        for kind, rate in kinds:
            if rate > 0 and self._rng.random() < rate:
                self.faults_by_kind[kind] += 1
                return kind
        return None

    def _take_tokens(self, cost: int) -> Reply | None:
        rate = self.settings.rate_limit
        if rate is None:
            return None
        now = self.settings.clock()
        elapsed = max(0.0, now - self._refilled_at)
        self._tokens = min(self._capacity, self._tokens + elapsed * rate)
        self._refilled_at = now
        if self._tokens >= cost:
            self._tokens -= cost
            return None
        wait = max(1, math.ceil((cost - self._tokens) / rate))
        return _error(
            429,
            "rate_limited",
            f"over {rate:g} batches per second; retry after {wait} s",
            {"Retry-After": str(wait)},
        )

    def _settle(self, bulk: bool, verdicts: list[Checked | Invalid], text: str) -> Reply:
        """Record each valid batch, by its verdict; `text` is the body they were parsed from.

        A bulk request is answered 202, with one error per batch refused; a single
        batch refused (invalid, or by --reject-rate) is answered 400.
        """
        errors: list[dict[str, str]] = []
        spans: list[tuple[int, int]] = []
        for index, verdict in enumerate(verdicts):
            if isinstance(verdict, Checked):
                request_id = verdict.source_request_id
                if request_id is not None and request_id in self._accepted:
                    self.resent += 1
                    self._log("resent", [request_id])
                    continue
                if self._rejects(verdict):
                    verdict = Invalid(
                        REJECTED_BY_SANDBOX, "sandbox --reject-rate rejected this batch"
                    )
            if isinstance(verdict, Invalid):
                spans = spans or batch_spans(text, bulk)
                errors.append(self._rejection(verdict, bulk, index, text, spans[index]))
                continue
            record = {
                "received_at": self.settings.wall_clock(),
                "source_request_id": request_id,
                "environment": verdict.environment,
                "confirmationref": verdict.confirmationref,
                "batch": verdict.batch,
            }
            self._record(record)
            self._log("accepted", [record])
        if not bulk and errors:
            return Reply(400, {"errors": errors})
        return Reply(202, {"errors": errors} if errors else {})

    def _rejects(self, checked: Checked) -> bool:
        """--reject-rate's verdict on a valid batch: the same for the same batch, whenever
        and however it is sent (by its source_request_id, else its confirmationref)."""
        rate = self.settings.reject_rate
        if rate <= 0:
            return False
        request_id = checked.source_request_id
        key = f"id:{request_id}" if request_id is not None else f"ref:{checked.confirmationref}"
        digest = hashlib.sha256(f"{self._verdict_salt}\0{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big") < rate * 2**64

    def _rejection(
        self, problem: Invalid, bulk: bool, index: int, text: str, span: tuple[int, int]
    ) -> dict[str, str]:
        """The answer's error for a refused batch (at `span` of `text`)."""
        self.rejected += 1
        self.rejections_by_code[problem.code] += 1
        if bulk and self.settings.opaque_errors:
            return opaque_error()
        path = f"[{index}].{problem.path}" if bulk and problem.indexed else problem.path
        at = position(text, span, problem.path)
        return batch_error(problem.code, problem.message, path, at)

    def _record(self, record: dict[str, Any]) -> None:
        request_id: str | None = record["source_request_id"]
        if request_id is not None:
            self._accepted.add(request_id)
        key = (record["environment"], record["confirmationref"])
        if key not in self._refs:
            self._refs[key] = request_id
        elif request_id is None or self._refs[key] != request_id:
            self.duplicate_confirmationrefs += 1  # without an id, every arrival is new
        self.batches += 1
        if len(self._bodies) < self.settings.keep_bodies:
            self._bodies.append(record)


async def _read_capped(request: Request) -> bytes | None:
    """The body, or None as soon as it is known to exceed MAX_REQUEST_BYTES."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _json(reply: Reply) -> Response:
    return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


class _Dropped(Response):
    """Starts the answer, then breaks the connection before its body arrives."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"64")]
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        # Returning now, the body unsent, makes the server close the connection.


async def _until_disconnected(request: Request) -> None:
    """Wait until the client gives up on this request (its body is already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def create_app(settings: SandboxSettings) -> Starlette:
    """The sandbox ASGI app; its state is `app.state.sandbox` (a `Sandbox`)."""
    sandbox = Sandbox(settings)

    def post(bulk: bool) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            sandbox.requests += 1
            sandbox.bulk_requests += int(bulk)
            sandbox.in_flight += 1
            try:
                reply = sandbox.authorize(request.headers.get("authorization"))
                if reply is None:
                    reply = await sandbox.receive(bulk, await _read_capped(request))
                if reply.fate == "hang":
                    await _until_disconnected(request)
            finally:
                sandbox.in_flight -= 1
            if reply.fate == "hang":
                return Response(status_code=204)  # nobody is listening any more
            if reply.fate == "drop":
                return _Dropped(status_code=reply.status)
            sandbox.responses_by_status[reply.status] += 1
            return _json(reply)

        return endpoint

    async def stats(request: Request) -> Response:
        return JSONResponse(sandbox.stats())

    async def batches(request: Request) -> Response:
        try:
            offset = int(request.query_params.get("offset", "0"))
            limit = int(request.query_params.get("limit", "1000"))
            if offset < 0 or not 0 <= limit <= _MAX_PAGE:
                raise ValueError
        except ValueError:
            message = f"offset must be an integer >= 0 and limit an integer 0..{_MAX_PAGE}"
            return _json(_error(400, "invalid_query", message))
        return JSONResponse(sandbox.recorded(offset, limit))

    async def reset(request: Request) -> Response:
        sandbox.reset()
        return JSONResponse({"reset": True})

    app = Starlette(
        routes=[
            Route("/v2/events", post(bulk=False), methods=["POST"]),
            Route("/v2/bulkevents", post(bulk=True), methods=["POST"]),
            Route("/_sandbox/stats", stats, methods=["GET"]),
            Route("/_sandbox/batches", batches, methods=["GET"]),
            Route("/_sandbox/reset", reset, methods=["POST"]),
        ]
    )
    app.state.sandbox = sandbox
    return app


def serve(
    settings: SandboxSettings,
    host: str = "127.0.0.1",
    port: int = 8787,
    ready: Callable[[str], None] | None = None,
    *,
    allow_remote: bool = False,
) -> None:
    """Run the sandbox on `host:port` until interrupted (`sandbox_server.run`: port 0
    picks a free one; `ready(url)` once it serves). A host other than loopback is refused
    (ValueError) unless `allow_remote`; a journal that cannot be used safely (ConfigError)
    before anything is bound.
    """
    refuse_remote(host, allow_remote)
    app = create_app(settings)
    sandbox: Sandbox = app.state.sandbox
    guard = Guard(settings.header_timeout_s, settings.max_connections, sandbox.connections_closed)
    try:
        run(app, host, port, guard, ready)
    finally:
        sandbox.close()
