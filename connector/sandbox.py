"""A strict local emulator of the Rokt Event API (mParticle's server-to-server `/v2`).

Owns: the ASGI app (`create_app`) answering `POST /v2/events` and `POST /v2/bulkevents`
as the real service does (HTTP Basic auth, request limits, per-batch validation by seed
001, ATTRIBUTES.md and the limits in `spec`; 202 / 400 / 401 / 403 / 429 / 5xx; 400s
worded by `sandbox_errors`, locating a batch only by its position in the body), fault
injection (fail rate, bursts of 503s, storms of 429s, a reject rate whose verdict is
fixed per batch, token-bucket rate limit, latency, dropped connections, late answers,
requests never answered, bulk errors that do not say which batch), the record
of what it received and accepted (`/_sandbox/stats`, `/_sandbox/batches`,
`/_sandbox/reset`; optionally journaled to a file so a restarted sandbox remembers), and
`serve` (uvicorn on a socket it binds itself, loopback only unless asked).
Must not: import the connector's sending code or decide anything for it; echo the
Authorization header, the secret or any batch value (messages name fields, never their
contents); read time or sleep except through the injected `clock`, `wall_clock` and
`sleep`; await between reading and writing its shared state.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import random
import re
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from connector.config import is_loopback_host
from connector.sandbox_errors import batch_error, batch_spans, opaque_error, position, request_error
from connector.spec import (
    ATTRIBUTES,
    CUSTOM_EVENT_TYPE,
    DEVICE_IDENTITIES,
    EVENT_NAME,
    EVENT_TYPE,
    MAX_BATCH_BYTES,
    MAX_BATCHES_PER_REQUEST,
    MAX_NAME_CHARS,
    MAX_REQUEST_BYTES,
    MAX_USER_ATTRIBUTES,
    MAX_VALUE_CHARS,
    Kind,
    Place,
)
from connector.transform import UUID

TOP_LEVEL_KEYS = frozenset(
    {
        "source_request_id",
        "environment",
        "user_identities",
        "user_attributes",
        "device_info",
        "ip",
        "integration_attributes",
        "events",
    }
)
ENVIRONMENTS = ("development", "production")
IDENTITY_KEYS = ("email", "other", "customerid", *(f"other_id_{n}" for n in range(2, 11)))
# Any one of these (or a device id in device_info) identifies the user.
MAIN_IDENTITIES = ("email", "other", "customerid", "other_id_2")
UUID_DEVICE_IDS = tuple(
    a.key for a in ATTRIBUTES if a.place == Place.DEVICE and a.kind == Kind.UUID
)
# The published batch schema's CustomEvent: `event_type` and `data`; data's known keys.
EVENT_KEYS = frozenset({"event_type", "data"})
EVENT_DATA_KEYS = frozenset(
    {
        *("event_name", "custom_event_type", "custom_flags", "custom_attributes"),
        *("timestamp_unixtime_ms", "source_message_id", "event_id", "event_num"),
        *("session_id", "session_uuid", "session_start_unixtime_ms", "event_start_unixtime_ms"),
        *("location", "device_current_state", "is_goal_defined", "lifetime_value_change"),
        *("lifetime_value_attribute_name", "data_connection_type", "view_controller"),
        *("is_main_thread", "canonical_name", "event_system_notification_info"),
    }
)
CUSTOM_EVENT_TYPES = frozenset(
    {
        *("navigation", "location", "search", CUSTOM_EVENT_TYPE, "user_content"),
        *("user_preference", "social", "other", "media"),
    }
)
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
_HEX = re.compile(r"[0-9a-f]{64}")  # hashes are sent lower-case (ATTRIBUTES.md)
_UUID = re.compile(UUID)
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")  # the SDK sends numbers as text
_DIGITS = re.compile(r"[0-9]+")
_PATH_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")  # a key shown in a Path; others are not


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


_RATES = (
    "fail_rate",
    "reject_rate",
    "burst_503_rate",
    "storm_429_rate",
    "reset_rate",
    "slow_rate",
    "hang_rate",
)


class Invalid(Exception):
    """A request or batch the sandbox refuses: a code and a message naming the field.

    `path` is the field's reader path inside the batch ("" for none); `indexed`: the
    platform's answer prefixes it with the batch's index in a bulk array (`[3].`), as
    its .NET reader does for values it fails to convert (the device ids' UUIDs).
    """

    def __init__(self, code: str, message: str, path: str = "", indexed: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.path = path
        self.indexed = indexed


class Checked(NamedTuple):
    batch: dict[str, Any]
    source_request_id: str | None  # optional in the platform's schema
    environment: str
    confirmationref: str


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    fate: Literal["answer", "drop", "hang"] = "answer"  # drop: the connection breaks mid-answer


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"errors": [{"code": code, "message": message}]}, headers or {})


def _path(where: str, key: object) -> str:
    """`where.key`, or just `where` when the key is not a plain short name."""
    if not (isinstance(key, str) and _PATH_KEY.fullmatch(key)):
        return where
    return f"{where}.{key}" if where else key


def _name(key: object) -> str:
    text = str(key)
    return repr(text if len(text) <= 64 else text[:64] + "...")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def _object(value: object, where: str, code: str, path: str | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(code, f"{where} must be a JSON object", where if path is None else path)
    return value


def _check_sized(where: str, name: str, value: object, path: str) -> None:
    """Name and value length limits (seed 001) of one attribute; `path`: its object's."""
    if len(name) > MAX_NAME_CHARS:
        raise Invalid(
            "attribute_name_too_long",
            f"{where} has an attribute name longer than {MAX_NAME_CHARS} characters",
            path,
        )
    texts = value if isinstance(value, list) else [value]
    if any(len(v if isinstance(v, str) else json.dumps(v)) > MAX_VALUE_CHARS for v in texts):
        raise Invalid(
            "attribute_value_too_long",
            f"{where}.{name} is longer than {MAX_VALUE_CHARS} characters",
            _path(path, name),
        )


def _check_hash(where: str, value: object, path: str) -> None:
    if not (isinstance(value, str) and _HEX.fullmatch(value)):
        raise Invalid(
            "invalid_hash", f"{where} must be 64 lowercase hex characters (SHA-256)", path
        )


def _check_identities(batch: dict[str, Any], device: dict[str, Any]) -> None:
    identities = _object(batch.get("user_identities", {}), "user_identities", "invalid_identity")
    for key, value in identities.items():
        if key not in IDENTITY_KEYS:
            raise Invalid(
                "unknown_identity",
                f"user_identities.{_name(key)} is not an identity type; "
                f"use one of {', '.join(IDENTITY_KEYS)}",
                _path("user_identities", key),
            )
        if not isinstance(value, str) or not value:
            raise Invalid(
                "invalid_identity",
                f"user_identities.{key} must be a non-empty string",
                f"user_identities.{key}",
            )
    if "other" in identities:
        where = "user_identities.other"
        _check_hash(f"{where} (the hashed email)", identities["other"], where)
    if "email" in identities and "@" not in identities["email"]:
        raise Invalid(
            "invalid_email",
            "user_identities.email is not an email address",
            "user_identities.email",
        )
    if not any(k in identities for k in MAIN_IDENTITIES) and not any(
        isinstance(device.get(k), str) and device[k] for k in DEVICE_IDENTITIES
    ):
        raise Invalid(
            "missing_identity",
            f"user_identities needs one of {', '.join(MAIN_IDENTITIES)} "
            f"(or device_info needs one of {', '.join(DEVICE_IDENTITIES)})",
            "user_identities",
        )


def _check_user_attributes(batch: dict[str, Any]) -> None:
    where = "user_attributes"
    attributes = _object(batch.get(where, {}), where, "invalid_user_attributes")
    if len(attributes) > MAX_USER_ATTRIBUTES:
        raise Invalid(
            "too_many_user_attributes",
            f"user_attributes has {len(attributes)} keys; the limit is {MAX_USER_ATTRIBUTES}",
            where,
        )
    for name, value in attributes.items():
        if not (
            _is_scalar(value) or (isinstance(value, list) and all(_is_scalar(v) for v in value))
        ):
            raise Invalid(
                "invalid_user_attributes",
                f"user_attributes.{_name(name)} must be a string, number, boolean or a list",
                _path(where, name),
            )
        _check_sized(where, name, value, where)
        if name.endswith("sha256"):
            _check_hash(f"user_attributes.{name}", value, _path(where, name))


def _check_device_and_ip(batch: dict[str, Any], device: dict[str, Any]) -> None:
    for key, value in device.items():
        if not _is_scalar(value):
            raise Invalid(
                "invalid_device_info",
                f"device_info.{_name(key)} must be a scalar",
                _path("device_info", key),
            )
    for key in ("android_uuid", "http_header_user_agent"):
        if key in device and not isinstance(device[key], str):
            raise Invalid(
                "invalid_device_info", f"device_info.{key} must be a string", f"device_info.{key}"
            )
    for key in UUID_DEVICE_IDS:
        if key in device and not (isinstance(device[key], str) and _UUID.fullmatch(device[key])):
            where = f"device_info.{key}"
            raise Invalid("invalid_device_id", f"{where} must be a UUID", where, indexed=True)
    if "ip" in batch:
        ip = batch["ip"]
        try:
            ok = isinstance(ip, str) and "%" not in ip and bool(ipaddress.ip_address(ip))
        except ValueError:
            ok = False
        if not ok:
            raise Invalid("invalid_ipaddress", "ip must be an IPv4 or IPv6 address", "ip")
    integrations = _object(
        batch.get("integration_attributes", {}),
        "integration_attributes",
        "invalid_integration_attributes",
    )
    for integration, attributes in integrations.items():
        where = f"integration_attributes.{_name(integration)}"
        path = _path("integration_attributes", integration)
        code = "invalid_integration_attributes"
        for name, value in _object(attributes, where, code, path).items():
            if not isinstance(value, str):
                raise Invalid(code, f"{where}.{_name(name)} must be a string", _path(path, name))
            _check_sized(where, name, value, path)


def _check_known(fields: dict[str, Any], known: frozenset[str], where: str) -> None:
    for key in fields:
        if key not in known:
            raise Invalid(
                "unknown_field", f"{where}.{_name(key)} is not an event field", _path(where, key)
            )


def _check_event_data(data: dict[str, Any]) -> None:
    """The event's fields other than its custom attributes."""
    _check_known(data, EVENT_DATA_KEYS, "events[0].data")
    if data.get("event_name") != EVENT_NAME:
        raise Invalid(
            "invalid_event_name",
            f"events[0].data.event_name must be {EVENT_NAME!r}",
            "events[0].data.event_name",
        )
    if "custom_event_type" in data and data["custom_event_type"] not in CUSTOM_EVENT_TYPES:
        raise Invalid(
            "invalid_custom_event_type",
            "events[0].data.custom_event_type must be one of "
            + ", ".join(sorted(CUSTOM_EVENT_TYPES)),
            "events[0].data.custom_event_type",
        )
    message_id = data.get("source_message_id")
    if "source_message_id" in data and not (
        isinstance(message_id, str) and _UUID.fullmatch(message_id)
    ):
        raise Invalid(
            "invalid_source_message_id",
            "events[0].data.source_message_id must be a UUID string",
            "events[0].data.source_message_id",
        )
    if "timestamp_unixtime_ms" in data and not _is_integer(data["timestamp_unixtime_ms"]):
        raise Invalid(
            "invalid_timestamp",
            "events[0].data.timestamp_unixtime_ms must be an integer",
            "events[0].data.timestamp_unixtime_ms",
        )


def _check_event(batch: dict[str, Any]) -> str:
    """The one conversion event; returns its confirmationref."""
    events = batch.get("events")
    if not isinstance(events, list) or len(events) != 1:
        raise Invalid(
            "invalid_events", "events must be a list of exactly one conversion event", "events"
        )
    event = _object(events[0], "events[0]", "invalid_events")
    _check_known(event, EVENT_KEYS, "events[0]")
    if event.get("event_type") != EVENT_TYPE:
        raise Invalid(
            "invalid_event_type",
            f"events[0].event_type must be {EVENT_TYPE!r}",
            "events[0].event_type",
        )
    _check_event_data(data := _object(event.get("data"), "events[0].data", "invalid_events"))
    where = "events[0].data.custom_attributes"
    attributes = _object(data.get("custom_attributes"), where, "invalid_custom_attributes")
    for name, value in attributes.items():
        if not _is_scalar(value):
            raise Invalid(
                "invalid_custom_attributes",
                f"{where}.{_name(name)} must be a string, number or boolean",
                _path(where, name),
            )
        _check_sized(where, name, value, where)
    for key in ("confirmationref", "conversiontype"):
        value = attributes.get(key)
        if not (isinstance(value, str) and value.strip()):
            raise Invalid(
                f"missing_{key}", f"{where}.{key} must be a non-empty string", f"{where}.{key}"
            )
    for key in ("amount", "margin"):
        value = attributes.get(key)
        if key in attributes and not (
            _is_number(value) or (isinstance(value, str) and _DECIMAL.fullmatch(value))
        ):
            raise Invalid(
                "invalid_amount",
                f"{where}.{key} must be a JSON number or a string holding a decimal number",
                f"{where}.{key}",
            )
    quantity = attributes.get("quantity")
    if "quantity" in attributes and not (
        _is_integer(quantity) or (isinstance(quantity, str) and _DIGITS.fullmatch(quantity))
    ):
        raise Invalid(
            "invalid_quantity",
            f"{where}.quantity must be a JSON integer or a string of digits",
            f"{where}.quantity",
        )
    ref: str = attributes["confirmationref"]
    return ref


def check_batch(batch: object) -> Checked:
    """Validate one batch as the Event API would; raise `Invalid` for the first problem.

    As in the platform's schema only `environment` is required of the batch's own
    fields; this connector's conversions also need their confirmationref and
    conversiontype, and an identity.
    """
    if not isinstance(batch, dict):
        raise Invalid("invalid_batch", "a batch must be a JSON object")
    size = len(json.dumps(batch, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_BATCH_BYTES:
        raise Invalid(
            "batch_too_large", f"the batch is {size} bytes; the limit is {MAX_BATCH_BYTES}"
        )
    for key in batch:
        if key not in TOP_LEVEL_KEYS:
            hint = (
                "; the platform sets it"
                if key in ("schema_version", "timestamp_unixtime_ms")
                else ""
            )
            raise Invalid(
                "unknown_field",
                f"{_name(key)} is not an accepted batch field{hint}",
                _path("", key),
            )
    request_id = batch.get("source_request_id")
    if "source_request_id" in batch and not (isinstance(request_id, str) and request_id):
        raise Invalid(
            "invalid_source_request_id",
            "source_request_id must be a non-empty string when given",
            "source_request_id",
        )
    environment = batch.get("environment")
    if environment not in ENVIRONMENTS:
        raise Invalid(
            "invalid_environment", "environment must be development or production", "environment"
        )
    device = _object(batch.get("device_info", {}), "device_info", "invalid_device_info")
    _check_identities(batch, device)
    _check_user_attributes(batch)
    _check_device_and_ip(batch, device)
    return Checked(batch, request_id, str(environment), _check_event(batch))


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _parse(body: bytes) -> tuple[str, object]:
    """The body's text and value. Strict JSON: UTF-8, no NaN / Infinity, no number that
    overflows a double."""
    try:
        text = body.decode("utf-8")
        return text, json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Invalid("invalid_json", "the request body is not valid UTF-8 JSON") from None


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
        self.reset()
        if settings.journal is not None:
            self._replay(settings.journal)
            self._journal = settings.journal.open("a", encoding="utf-8")

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

    def close(self) -> None:
        """Close the journal (the record stays in the file for the next sandbox)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def _replay(self, path: Path) -> None:
        """Take back what an earlier sandbox on this journal received and accepted."""
        if not path.exists():
            return
        with path.open(encoding="utf-8") as lines:
            for line in lines:
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

    def _log(self, event: dict[str, Any]) -> None:
        if self._journal is not None:
            self._journal.write(json.dumps(event, separators=(",", ":")) + "\n")
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
        """Answer one authorized POST; `body` None means it exceeded MAX_REQUEST_BYTES."""
        problem: Invalid | None = None
        batches: list[object] = []
        text = ""
        try:
            if body is None:
                raise Invalid(
                    "request_too_large",
                    f"the request body is over {MAX_REQUEST_BYTES} bytes; send fewer batches",
                )
            text, parsed = _parse(body)
            batches = parsed if bulk and isinstance(parsed, list) else [parsed]
            self.max_batches_per_request = max(self.max_batches_per_request, len(batches))
            if bulk and (
                not isinstance(parsed, list) or not 1 <= len(parsed) <= MAX_BATCHES_PER_REQUEST
            ):
                count = f"{len(parsed)} batches" if isinstance(parsed, list) else "no array"
                raise Invalid(
                    "invalid_bulk",
                    f"/v2/bulkevents takes a JSON array of 1 to {MAX_BATCHES_PER_REQUEST} "
                    f"batch objects; got {count}",
                )
        except Invalid as exc:
            problem = exc
        for batch in batches:
            request_id = batch.get("source_request_id") if isinstance(batch, dict) else None
            if isinstance(request_id, str):
                self._receipt(request_id)
                self._log({"receipt": request_id})
        cost = min(max(len(batches), 1), MAX_BATCHES_PER_REQUEST)
        refused = self._fault() or self._take_tokens(cost)
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
        reply = self._settle(bulk, batches, text)
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

    def _settle(self, bulk: bool, batches: list[object], text: str) -> Reply:
        """Judge and record each batch; `text` is the body they were parsed from.

        A bulk request is answered 202, with one error per batch refused; a single
        batch refused (invalid, or by --reject-rate) is answered 400.
        """
        errors: list[dict[str, str]] = []
        spans: list[tuple[int, int]] = []
        for index, batch in enumerate(batches):
            try:
                checked = check_batch(batch)
                request_id = checked.source_request_id
                if request_id is not None and request_id in self._accepted:
                    self.resent += 1
                    self._log({"resent": request_id})
                    continue
                if self._rejects(checked):
                    raise Invalid(REJECTED_BY_SANDBOX, "sandbox --reject-rate rejected this batch")
            except Invalid as exc:
                spans = spans or batch_spans(text, bulk)
                errors.append(self._rejection(exc, bulk, index, text, spans[index]))
                continue
            record = {
                "received_at": self.settings.wall_clock(),
                "source_request_id": request_id,
                "environment": checked.environment,
                "confirmationref": checked.confirmationref,
                "batch": checked.batch,
            }
            self._record(record)
            self._log({"accepted": record})
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


class _QuietDrops(logging.Filter):
    """Keeps uvicorn from logging each connection the sandbox drops on purpose as an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


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


class _Server(uvicorn.Server):
    """uvicorn, calling back once its listener is serving."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_started is not None:
            self._on_started()


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


def serve(
    settings: SandboxSettings,
    host: str = "127.0.0.1",
    port: int = 8787,
    ready: Callable[[str], None] | None = None,
    *,
    allow_remote: bool = False,
) -> None:
    """Run the sandbox on `host:port` (port 0 picks a free one) until interrupted.

    `ready(url)` is called with the real `http://host:port` once it is serving.
    Ctrl-C (SIGINT) returns normally after a graceful shutdown; SIGTERM ends the
    process as uvicorn does. A host other than loopback is refused unless `allow_remote`.
    """
    if not allow_remote and not is_loopback_host(host):
        raise ValueError(
            f"refusing to serve the sandbox on non-loopback host {host!r}; "
            "use 127.0.0.1 or pass allow_remote=True"
        )
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"http://{shown}:{bound_port}"
    app = create_app(settings)
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
    server = _Server(config, (lambda: ready(url)) if ready is not None else None)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # Ctrl-C: uvicorn has shut down gracefully and re-raised the signal
    finally:
        sock.close()
        app.state.sandbox.close()
