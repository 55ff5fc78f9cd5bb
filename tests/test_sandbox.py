"""The Event API sandbox: auth, validation, limits, idempotency, faults, records, serving.

Valid batches come from the connector's own pipeline (transform -> encode -> pack), so
the sandbox and the connector are checked against each other; every validation rule is
exercised by mutating one of those batches. Batches built by the official SDK and the
seed's example are accepted too. Errors are located as the platform's .NET reader does
(`Path '[n]...'` or `position N` in the body), never by source_request_id. No test
sleeps: the clock and the sleep are injected.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import hashlib
import json
import os
import re
import select
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import mparticle
import polars as pl
import pytest
from starlette.applications import Starlette

from connector.config import MappingConfig
from connector.sandbox import FAULTS, Reply, Sandbox, SandboxSettings, create_app, serve
from connector.sandbox.checks import MAX_DEPTH
from connector.sandbox.events_api import receive
from connector.spec import (
    MAX_BATCH_BYTES,
    MAX_BATCHES_PER_REQUEST,
    MAX_NAME_CHARS,
    MAX_REQUEST_BYTES,
    MAX_USER_ATTRIBUTES,
    MAX_VALUE_CHARS,
)
from connector.transform import split, transform
from connector.transports.events_api_json import encode, pack

REPO = Path(__file__).resolve().parents[1]
KEY = "key-Sandbox-Visible-3"
SECRET = "s3cr3t-Sandbox-Never-Echo-42"
TOKEN = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
IDFV = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
EVENTS, BULK = "/v2/events", "/v2/bulkevents"
DATA: tuple[str | int, ...] = ("events", 0, "data")
ATTRS = (*DATA, "custom_attributes")


@functools.cache
def pipeline_bodies(n: int = 250) -> tuple[str, ...]:
    """Batch JSON for `n` conversions, as the connector encodes them."""
    frame = transform(
        pl.DataFrame(
            {
                "confirmationref": [f"ORD-{i:05d}" for i in range(n)],
                "email": [f"User{i}@Example.com " for i in range(n)],
                "conversiontype": ["purchase"] * n,
                "event_time": ["2026-10-01T12:00:00Z"] * n,
                "amount": [10.0 + i for i in range(n)],
            }
        ),
        MappingConfig(),
        "development",
    )
    valid, rejected = split(frame)
    assert rejected.is_empty()
    return tuple(encode(valid, "development")["_body"].to_list())


def batch(i: int = 0) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(pipeline_bodies()[i])
    return parsed


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def bulk(batches: list[Any]) -> str:
    return compact(batches)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Client:
    """A synchronous face on an in-process sandbox app (httpx + ASGITransport)."""

    def __init__(self, **settings: Any) -> None:
        self.settings = SandboxSettings(api_key=KEY, api_secret=SECRET, **settings)
        self.app: Starlette = create_app(self.settings)
        self.sandbox: Sandbox = self.app.state.sandbox

    def client(self, auth: tuple[str, str] | None = (KEY, SECRET)) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://sandbox", auth=auth
        )

    def request(
        self,
        method: str,
        path: str,
        content: str | bytes | None = None,
        auth: tuple[str, str] | None = (KEY, SECRET),
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        async def go() -> httpx.Response:
            async with self.client(auth) as client:
                return await client.request(method, path, content=content, headers=headers)

        return asyncio.run(go())

    def post(self, path: str, content: str | bytes, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, content, **kwargs)

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = self.request("GET", "/_sandbox/stats").json()
        return data

    def recorded(self, query: str = "") -> dict[str, Any]:
        data: dict[str, Any] = self.request("GET", f"/_sandbox/batches{query}").json()
        return data


BAD_REQUEST = "BAD_REQUEST"
OPAQUE = "One or more batches in the request could not be processed"
_REASON = re.compile(r" \(([a-z_]+)\)\.(?: Path '[^']*', line 1, position \d+\.)?$")
_LOCATOR = re.compile(r"Path '(?:\[(\d+)\])?[^']*', line 1, position (\d+)\.$")


def reason(error: dict[str, Any]) -> str:
    """The sandbox's own code in a BAD_REQUEST error: `<explanation> (<code>).[ Path ...]`."""
    assert error["code"] == BAD_REQUEST, error
    match = _REASON.search(error["message"])
    assert match, error["message"]
    return match.group(1)


def codes(response: httpx.Response) -> list[str]:
    """Each error's code; for BAD_REQUEST errors the sandbox's own, from the message."""
    errors = response.json()["errors"]
    return [reason(e) if e["code"] == BAD_REQUEST else e["code"] for e in errors]


def utf16(text: str) -> int:
    """Length in UTF-16 code units, as .NET counts a reader's position."""
    return len(text.encode("utf-16-le")) // 2


def spans(batches: list[Any], measure: Callable[[str], int] = utf16) -> list[range]:
    """The 0-based offsets each batch covers in `bulk(batches)` (UTF-16 units unless
    another `measure` is given)."""
    found: list[range] = []
    at = measure("[")
    for target in batches:
        size = measure(compact(target))
        found.append(range(at, at + size))
        at += size + measure(",")
    return found


def position(error: dict[str, Any]) -> int:
    match = _LOCATOR.search(error["message"])
    assert match, error["message"]
    return int(match.group(2))


def located(
    batches: list[Any], error: dict[str, Any], measure: Callable[[str], int] = utf16
) -> int | None:
    """The index of the batch of `bulk(batches)` an error is about, from its position
    (None when the position lies in no batch); a `Path '[n]` must agree with it."""
    assert set(error) == {"code", "message"}  # no source_request_id, no index
    match = _LOCATOR.search(error["message"])
    assert match, error["message"]
    index, at = match.groups()
    inside = [i for i, span in enumerate(spans(batches, measure)) if int(at) - 1 in span]
    if index is not None and measure is utf16:
        assert inside == [int(index)], error["message"]
    return inside[0] if inside else None


# --- auth -------------------------------------------------------------------------


def test_missing_auth_is_401_and_wrong_auth_is_403_and_nothing_is_recorded() -> None:
    sandbox = Client()
    body = compact(batch())
    missing = sandbox.post(EVENTS, body, auth=None)
    assert missing.status_code == 401
    assert codes(missing) == ["unauthorized"]
    for auth in [(KEY, "wrong"), ("wrong", SECRET)]:
        response = sandbox.post(EVENTS, body, auth=auth)
        assert (response.status_code, codes(response)) == (403, ["forbidden"])
    for header in ["", f"Bearer {TOKEN}", f"Basic {SECRET}", "Basic !!!", f"Digest {TOKEN}"]:
        response = sandbox.post(EVENTS, body, auth=None, headers={"Authorization": header})
        assert response.status_code == 403, header
    lower = sandbox.post(EVENTS, body, auth=None, headers={"authorization": f"basic {TOKEN}"})
    assert lower.status_code == 202  # the scheme is case-insensitive (RFC 7617)
    stats = sandbox.stats()
    assert stats["responses_by_status"]["401"] == 1
    assert stats["responses_by_status"]["403"] == 7
    assert stats["batches"] == 1
    assert (stats["requests"], stats["bulk_requests"]) == (9, 0)


def test_the_secret_never_appears_in_any_response_or_repr() -> None:
    sandbox = Client(fail_rate=0.5, seed=1)
    responses = [
        sandbox.post(EVENTS, "{}", auth=None),
        sandbox.post(EVENTS, "{}", auth=(KEY, SECRET + "x")),
        sandbox.post(EVENTS, "{}", auth=None, headers={"Authorization": f"Bearer {SECRET}"}),
        sandbox.post(EVENTS, "{}", auth=None, headers={"Authorization": f"Basic {SECRET}"}),
        *(sandbox.post(BULK, bulk([batch(i), {"bad": SECRET}])) for i in range(6)),
        sandbox.request("GET", "/_sandbox/stats"),
        sandbox.request("GET", "/_sandbox/batches"),
    ]
    assert {r.status_code for r in responses} >= {202, 401, 403}
    for response in responses:
        shown = response.text + json.dumps(dict(response.headers))
        assert SECRET not in shown
        assert TOKEN not in shown
    assert SECRET not in repr(sandbox.settings)


# --- per-batch validation: one focused case per rule --------------------------------

_DELETE = object()


def put(path: tuple[str | int, ...], value: object) -> Callable[[dict[str, Any]], None]:
    """A mutation setting (or, with _DELETE, removing) `path` in a batch."""

    def mutate(target: dict[str, Any]) -> None:
        node: Any = target
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    mutate.value = value  # type: ignore[attr-defined]
    return mutate


def pad_to(target: dict[str, Any], size: int) -> dict[str, Any]:
    """`target` with filler custom attributes so its compact JSON is exactly `size` bytes."""
    attributes = target["events"][0]["data"]["custom_attributes"]
    i = 0
    while len(compact(target).encode()) + 4200 < size:
        attributes[f"pad{i}"] = "x" * 4000
        i += 1
    attributes["padz"] = ""
    attributes["padz"] = "x" * (size - len(compact(target).encode()))
    assert len(compact(target).encode()) == size
    return target


def two_events(target: dict[str, Any]) -> None:
    target["events"].append(copy.deepcopy(target["events"][0]))


def too_large(target: dict[str, Any]) -> None:
    pad_to(target, MAX_BATCH_BYTES + 1)


def exactly_max(target: dict[str, Any]) -> None:
    pad_to(target, MAX_BATCH_BYTES)


def device_only(target: dict[str, Any]) -> None:
    del target["user_identities"]
    target["device_info"] = {"ios_idfv": IDFV}


INVALID: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("schema_version", put(("schema_version",), 2), "unknown_field", "schema_version"),
    ("top_level_timestamp", put(("timestamp_unixtime_ms",), 1), "unknown_field", "timestamp"),
    ("environment", put(("environment",), "staging"), "invalid_environment", "environment"),
    ("request_id_number", put(("source_request_id",), 42), "invalid_source_request_id", "source"),
    ("request_id_blank", put(("source_request_id",), ""), "invalid_source_request_id", "source"),
    ("identities_list", put(("user_identities",), ["a"]), "invalid_identity", "user_identities"),
    (
        "unknown_identity",
        put(("user_identities", "facebook"), "fb"),
        "unknown_identity",
        "facebook",
    ),
    (
        "identity_number",
        put(("user_identities", "customerid"), 7),
        "invalid_identity",
        "customerid",
    ),
    (
        "identity_blank",
        put(("user_identities", "other_id_3"), ""),
        "invalid_identity",
        "other_id_3",
    ),
    ("no_identity", put(("user_identities",), {}), "missing_identity", "user_identities"),
    ("only_other_id_3", put(("user_identities",), {"other_id_3": "s"}), "missing_identity", "user"),
    ("other_not_hex", put(("user_identities", "other"), "g" * 64), "invalid_hash", "other"),
    ("other_uppercase", put(("user_identities", "other"), "AB" * 32), "invalid_hash", "other"),
    ("other_short", put(("user_identities", "other"), "ab" * 31), "invalid_hash", "other"),
    ("other_newline", put(("user_identities", "other"), "a" * 64 + "\n"), "invalid_hash", "other"),
    (
        "email_no_at",
        put(("user_identities", "email"), "user.example.com"),
        "invalid_email",
        "email",
    ),
    (
        "sha256_attr",
        put(("user_attributes", "mobilesha256"), "5551234567"),
        "invalid_hash",
        "mobile",
    ),
    (
        "too_many_user_attributes",
        put(("user_attributes",), {f"a{i}": "x" for i in range(MAX_USER_ATTRIBUTES + 1)}),
        "too_many_user_attributes",
        "user_attributes",
    ),
    (
        "user_attribute_name",
        put(("user_attributes", "n" * (MAX_NAME_CHARS + 1)), "x"),
        "attribute_name_too_long",
        "user_attributes",
    ),
    (
        "user_attribute_value",
        put(("user_attributes", "city"), "x" * (MAX_VALUE_CHARS + 1)),
        "attribute_value_too_long",
        "user_attributes.city",
    ),
    ("user_attr_object", put(("user_attributes", "city"), {}), "invalid_user_attributes", "city"),
    ("ip", put(("ip",), "999.1.1.1"), "invalid_ipaddress", "ip"),
    ("ip_scoped", put(("ip",), "fe80::1%eth0"), "invalid_ipaddress", "ip"),
    ("ip_number", put(("ip",), 16909060), "invalid_ipaddress", "ip"),
    ("idfa", put(("device_info", "ios_advertising_id"), "not-a-uuid"), "invalid_device_id", "ios"),
    ("gaid", put(("device_info", "android_advertising_id"), 5), "invalid_device_id", "android"),
    ("device_info_list", put(("device_info",), []), "invalid_device_info", "device_info"),
    (
        "user_agent",
        put(("device_info", "http_header_user_agent"), 1),
        "invalid_device_info",
        "agent",
    ),
    (
        "integration_not_object",
        put(("integration_attributes", "1277"), "rtid"),
        "invalid_integration_attributes",
        "1277",
    ),
    ("events_missing", put(("events",), _DELETE), "invalid_events", "events"),
    ("events_empty", put(("events",), []), "invalid_events", "events"),
    ("two_events", two_events, "invalid_events", "events"),
    ("event_not_object", put(("events",), ["x"]), "invalid_events", "events[0]"),
    ("event_extra_key", put(("events", 0, "extra"), 1), "unknown_field", "extra"),
    ("data_extra_key", put((*DATA, "eventname"), "x"), "unknown_field", "eventname"),
    ("event_type", put(("events", 0, "event_type"), "screen_view"), "invalid_event_type", "type"),
    ("event_name", put((*DATA, "event_name"), "purchase"), "invalid_event_name", "event_name"),
    (
        "custom_event_type",
        put((*DATA, "custom_event_type"), "purchase"),
        "invalid_custom_event_type",
        "custom_event_type",
    ),
    (
        "custom_event_type_list",  # unhashable: once a 500
        put((*DATA, "custom_event_type"), ["other"]),
        "invalid_custom_event_type",
        "custom_event_type",
    ),
    (
        "message_id",
        put((*DATA, "source_message_id"), "not-a-uuid"),
        "invalid_source_message_id",
        "source_message_id",
    ),
    (
        "timestamp_text",
        put((*DATA, "timestamp_unixtime_ms"), "1790000000000"),
        "invalid_timestamp",
        "timestamp_unixtime_ms",
    ),
    ("timestamp_float", put((*DATA, "timestamp_unixtime_ms"), 1.5), "invalid_timestamp", "time"),
    ("timestamp_bool", put((*DATA, "timestamp_unixtime_ms"), True), "invalid_timestamp", "time"),
    ("no_attributes", put(ATTRS, _DELETE), "invalid_custom_attributes", "custom_attributes"),
    ("no_ref", put((*ATTRS, "confirmationref"), _DELETE), "missing_confirmationref", "ref"),
    ("blank_ref", put((*ATTRS, "confirmationref"), "  "), "missing_confirmationref", "ref"),
    ("numeric_ref", put((*ATTRS, "confirmationref"), 12345), "missing_confirmationref", "ref"),
    ("no_type", put((*ATTRS, "conversiontype"), _DELETE), "missing_conversiontype", "conversion"),
    (
        "event_attribute_name",
        put((*ATTRS, "n" * (MAX_NAME_CHARS + 1)), "x"),
        "attribute_name_too_long",
        "custom_attributes",
    ),
    (
        "event_attribute_value",
        put((*ATTRS, "sku"), "x" * (MAX_VALUE_CHARS + 1)),
        "attribute_value_too_long",
        "custom_attributes.sku",
    ),
    ("event_attribute_list", put((*ATTRS, "sku"), ["a"]), "invalid_custom_attributes", "sku"),
    ("event_attribute_null", put((*ATTRS, "sku"), None), "invalid_custom_attributes", "sku"),
    ("amount_not_decimal", put((*ATTRS, "amount"), "12,50"), "invalid_amount", "amount"),
    ("margin_bool", put((*ATTRS, "margin"), True), "invalid_amount", "margin"),
    ("quantity_float", put((*ATTRS, "quantity"), 1.5), "invalid_quantity", "quantity"),
    ("quantity_not_digits", put((*ATTRS, "quantity"), "2.5"), "invalid_quantity", "quantity"),
    ("batch_too_large", too_large, "batch_too_large", "batch"),
]


@pytest.mark.parametrize(
    ("mutate", "code", "named"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_each_rule_rejects_a_batch_with_400_naming_the_field(
    mutate: Callable[[dict[str, Any]], None], code: str, named: str
) -> None:
    sandbox = Client()
    target = batch()
    mutate(target)
    body = compact(target)
    response = sandbox.post(EVENTS, body)
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert reason(error) == code
    assert named in error["message"]
    assert set(error) == {"code", "message"}  # never a source_request_id
    assert "Path '[" not in error["message"]  # a single batch has no index in the body
    assert 1 <= position(error) <= utf16(body)
    value = getattr(mutate, "value", None)
    if isinstance(value, str) and len(value) >= 5:
        assert value not in response.text  # values (maybe PII) are never echoed
    stats = sandbox.stats()
    assert (stats["batches"], stats["rejected"], stats["rejections_by_code"]) == (0, 1, {code: 1})


VALID: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("as_encoded", put(("environment",), "development")),
    ("production", put(("environment",), "production")),
    ("raw_email", put(("user_identities",), {"email": "a@example.com"})),
    ("customerid_only", put(("user_identities",), {"customerid": "C-1"})),
    ("rtid_only", put(("user_identities",), {"other_id_2": "rtid"})),
    ("other_id_10", put(("user_identities", "other_id_10"), "x")),
    ("device_id_only", lambda b: b.update(user_identities={}, device_info={"ios_idfv": IDFV})),
    (
        "android_uuid_only",
        lambda b: b.update(user_identities={}, device_info={"android_uuid": "a"}),
    ),
    ("no_user_identities", device_only),
    ("ipv6", put(("ip",), "2001:db8::8a2e:370:7334")),
    ("ipv4", put(("ip",), "172.3.51.182")),
    ("attribute_list", put(("user_attributes", "interests"), ["a", "b"])),
    ("seed_custom_attrs", put((*ATTRS, "margin"), 10)),
    ("other_event_type", put((*DATA, "custom_event_type"), "other")),
    ("exactly_max_batch", exactly_max),
    # optional in the platform's schema
    ("no_request_id", put(("source_request_id",), _DELETE)),
    ("no_custom_event_type", put((*DATA, "custom_event_type"), _DELETE)),
    ("no_source_message_id", put((*DATA, "source_message_id"), _DELETE)),
    ("no_timestamp", put((*DATA, "timestamp_unixtime_ms"), _DELETE)),
    # the SDK types custom attributes as strings
    ("amount_text", put((*ATTRS, "amount"), "12.50")),
    ("margin_text", put((*ATTRS, "margin"), "-0.5")),
    ("quantity_text", put((*ATTRS, "quantity"), "2")),
]


@pytest.mark.parametrize("mutate", [c[1] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_variants_are_accepted(mutate: Callable[[dict[str, Any]], None]) -> None:
    sandbox = Client()
    target = batch()
    mutate(target)
    response = sandbox.post(EVENTS, compact(target))
    assert (response.status_code, response.json()) == (202, {}), response.text
    assert sandbox.stats()["batches"] == 1


def sdk_batch() -> dict[str, Any]:
    """A conversion built and serialized by the official `mparticle` SDK: no
    source_request_id, source_message_id nor timestamp, custom attributes as strings."""
    event = mparticle.AppEvent(
        event_name="conversion",
        custom_attributes={
            "confirmationref": "SDK-0001",
            "conversiontype": "purchase",
            "amount": "100.00",
        },
    )
    built = mparticle.Batch()
    built.environment = "development"
    built.user_identities = mparticle.UserIdentities(email="john.doe@example.com", customerid="C-1")
    built.events = [event]
    client = mparticle.ApiClient(configuration=mparticle.Configuration())
    serialized: dict[str, Any] = client.sanitize_for_serialization(built)
    return serialized


def test_a_batch_built_with_the_official_sdk_is_accepted(tmp_path: Path) -> None:
    sdk = sdk_batch()
    assert "source_request_id" not in sdk
    journal = tmp_path / "sandbox.journal"
    sandbox = Client(journal=journal)
    single = sandbox.post(EVENTS, compact(sdk))
    assert (single.status_code, single.json()) == (202, {}), single.text
    in_bulk = sandbox.post(BULK, bulk([batch(0), sdk]))
    assert (in_bulk.status_code, in_bulk.json()) == (202, {}), in_bulk.text
    records = sandbox.recorded()["batches"]
    assert [(r["confirmationref"], r["source_request_id"]) for r in records] == [
        ("SDK-0001", None),
        ("ORD-00000", batch(0)["source_request_id"]),
        ("SDK-0001", None),
    ]
    assert records[0]["receipts"] == 0 and records[0]["batch"] == sdk
    stats = sandbox.stats()
    # without an id nothing is recognised as resent; the confirmationref still is a duplicate
    assert (stats["batches"], stats["resent"], stats["duplicate_confirmationrefs"]) == (3, 0, 1)
    sandbox.sandbox.close()
    restarted = Sandbox(SandboxSettings(journal=journal))
    assert restarted.stats()["duplicate_confirmationrefs"] == 1
    assert restarted.recorded()["batches"] == records
    restarted.close()


SEED_EMAIL = "john.doe@example.com"


def test_the_seed_example_is_accepted() -> None:
    """Seed 001's example batch, as given except for one value: its placeholder
    `"other": "SHA256-hash-of-email"` is a real lowercase SHA-256 hex here, because the
    sandbox deliberately checks hash formats (a real hash is what the connector sends)."""
    example: dict[str, Any] = {
        "environment": "development",
        "user_identities": {
            "email": SEED_EMAIL,
            "other": hashlib.sha256(SEED_EMAIL.encode()).hexdigest(),
        },
        "user_attributes": {
            "firstname": "John",
            "lastname": "Doe",
            "mobile": "123-456-7890",
            "ipaddress": "172.3.51.182",
        },
        "events": [
            {
                "event_type": "custom_event",
                "data": {
                    "event_name": "conversion",
                    "custom_attributes": {
                        "amount": 100.00,
                        "currency": "USD",
                        "quantity": 1,
                        "conversiontype": "purchase",
                        "productname": "Maroon 5 t-shirt, Warriors vs. Raptors",
                        "sku": "230847",
                        "paymenttype": "VISA",
                        "margin": 10.0,
                        "transactionid": "ABC789",
                        "confirmationref": "XYZ123",
                    },
                },
            }
        ],
    }
    sandbox = Client()
    single = sandbox.post(EVENTS, compact(example))
    assert (single.status_code, single.json()) == (202, {}), single.text
    in_bulk = sandbox.post(BULK, bulk([example, batch(0)]))
    assert (in_bulk.status_code, in_bulk.json()) == (202, {}), in_bulk.text
    assert sandbox.stats()["batches"] == 3


# --- request-level checks and limits ------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        (EVENTS, b"{not json", "invalid_json"),
        (EVENTS, b'{"environment": NaN}', "invalid_json"),
        (BULK, b"[1e999]", "invalid_json"),
        (EVENTS, b"\xff\xfe{}", "invalid_json"),
        (EVENTS, b'{"environment": "development\\ud800"}', "invalid_json"),
        (BULK, b'[{"\\udfff": 1}]', "invalid_json"),
        (EVENTS, b"", "invalid_json"),
        (EVENTS, b"[]", "invalid_batch"),
        (EVENTS, b'"text"', "invalid_batch"),
        (BULK, b"{}", "invalid_bulk"),
        (BULK, b"[]", "invalid_bulk"),
    ],
    ids=[
        *("garbage", "nan", "overflow", "not_utf8", "lone_surrogate", "lone_surrogate_key"),
        *("empty", "array", "string", "object", "none"),
    ],
)
def test_malformed_requests_are_400(path: str, body: bytes, code: str) -> None:
    sandbox = Client()
    response = sandbox.post(path, body)
    assert (response.status_code, codes(response)) == (400, [code])
    [error] = response.json()["errors"]
    assert error["code"] == BAD_REQUEST
    if code != "invalid_batch":  # a single body that is not an object is its one batch
        assert "Path" not in error["message"]  # about the request, not one batch
    assert sandbox.stats()["batches"] == 0


def test_nesting_deeper_than_the_platform_reads_is_400_never_500() -> None:
    def nested(depth: int) -> str:
        flags = "[" * depth + "]" * depth  # custom_flags: the one place no check bounds
        return compact(batch(0)).replace('"data":{', f'"data":{{"custom_flags":{flags},', 1)

    sandbox = Client()
    assert sandbox.post(EVENTS, nested(MAX_DEPTH - 4)).status_code == 202  # 64 levels
    response = sandbox.post(EVENTS, nested(MAX_DEPTH - 3))
    assert (response.status_code, codes(response)) == (400, ["too_deep"])
    for depth in range(880, 1010, 3):  # around the interpreter's recursion limit
        for path, body in [(EVENTS, nested(depth)), (BULK, f"[{nested(depth)}]")]:
            response = sandbox.post(path, body)
            assert codes(response) in (["too_deep"], ["invalid_json"]), (depth, path)
    assert sandbox.stats()["responses_by_status"]["500"] == 0
    assert sandbox.recorded()["total"] == 1


def test_over_one_hundred_batches_is_400_and_nothing_is_recorded() -> None:
    sandbox = Client()
    batches = [batch(i) for i in range(MAX_BATCHES_PER_REQUEST + 1)]
    response = sandbox.post(BULK, bulk(batches))
    assert (response.status_code, codes(response)) == (400, ["invalid_bulk"])
    assert str(MAX_BATCHES_PER_REQUEST + 1) in response.json()["errors"][0]["message"]
    stats = sandbox.stats()
    assert stats["batches"] == 0
    assert stats["request_errors_by_code"] == {"invalid_bulk": 1}
    assert stats["max_batches_per_request"] == MAX_BATCHES_PER_REQUEST + 1
    assert sandbox.post(BULK, bulk(batches[:-1])).status_code == 202
    assert sandbox.stats()["batches"] == MAX_BATCHES_PER_REQUEST


def test_request_size_limit_is_exact() -> None:
    sandbox = Client()
    # "[" + a + "," + b + "]" is exactly MAX_REQUEST_BYTES; each batch fits its own limit
    first = MAX_BATCH_BYTES - 2
    a, b = pad_to(batch(0), first), pad_to(batch(1), MAX_REQUEST_BYTES - 3 - first)
    exact = bulk([a, b]).encode()
    assert len(exact) == MAX_REQUEST_BYTES
    assert sandbox.post(BULK, exact).status_code == 202
    over = bulk([a, pad_to(batch(2), MAX_REQUEST_BYTES - 2 - first)]).encode()
    assert len(over) == MAX_REQUEST_BYTES + 1
    response = sandbox.post(BULK, over)
    assert (response.status_code, codes(response)) == (400, ["request_too_large"])
    assert sandbox.stats()["batches"] == 2


def test_the_connectors_packed_requests_are_all_accepted() -> None:
    sandbox = Client()
    batches = pl.Series(pipeline_bodies())
    requests = pack(batches)
    for request in requests:
        response = sandbox.post(BULK, request.body(batches))
        assert (response.status_code, response.json()) == (202, {})
    stats = sandbox.stats()
    assert stats["batches"] == stats["unique_confirmationrefs"] == len(pipeline_bodies())
    assert stats["max_batches_per_request"] == MAX_BATCHES_PER_REQUEST
    assert stats["requests"] == stats["responses_by_status"]["202"] == len(requests)
    assert stats["bulk_requests"] == len(requests)
    assert stats["rejected"] == stats["resent"] == stats["duplicate_confirmationrefs"] == 0


# --- bulk partial rejection -------------------------------------------------------


def test_bulk_names_exactly_the_bad_batches_and_records_the_good_ones() -> None:
    sandbox = Client()
    batches: list[Any] = [batch(i) for i in range(6)]
    batches[1]["environment"] = "staging"
    del batches[3]["events"][0]["data"]["custom_attributes"]["confirmationref"]
    batches[4]["source_request_id"] = 42
    batches[5] = "not a batch"
    response = sandbox.post(BULK, bulk(batches))
    assert response.status_code == 202
    errors = response.json()["errors"]
    assert [(located(batches, e), reason(e)) for e in errors] == [
        (1, "invalid_environment"),
        (3, "missing_confirmationref"),
        (4, "invalid_source_request_id"),
        (5, "invalid_batch"),
    ]
    assert "Path 'environment'" in errors[0]["message"]  # relative to the batch: no index
    recorded = sandbox.recorded()
    assert recorded["total"] == 2
    assert [r["confirmationref"] for r in recorded["batches"]] == ["ORD-00000", "ORD-00002"]
    assert recorded["batches"][0]["batch"] == batches[0]
    stats = sandbox.stats()
    assert (stats["batches"], stats["rejected"]) == (2, 4)
    assert sum(stats["rejections_by_code"].values()) == 4


def test_bulk_where_every_batch_is_invalid_is_still_202() -> None:
    sandbox = Client()
    batches = [batch(i) for i in range(3)]
    for b in batches:
        b["schema_version"] = 2
    response = sandbox.post(BULK, bulk(batches))
    assert response.status_code == 202
    named = [(located(batches, e), reason(e)) for e in response.json()["errors"]]
    assert named == [(i, "unknown_field") for i in range(3)]
    assert sandbox.stats()["batches"] == 0


# --- where an error points ----------------------------------------------------------


def test_the_platforms_two_error_shapes() -> None:
    """As the platform's .NET reader: a device id that is not a UUID is named by the
    batch's index in the array; any other error by a path inside the batch, so only
    its position (the last character of the key) locates the batch."""
    sandbox = Client()
    batches = [batch(i) for i in range(3)]
    batches[1]["device_info"] = {"ios_advertising_id": "not-a-guid"}
    batches[2]["events"][0]["data"]["custom_attributes"]["currency"] = {"code": "USD"}
    body = bulk(batches)
    response = sandbox.post(BULK, body)
    assert response.status_code == 202
    device, currency = response.json()["errors"]
    assert re.fullmatch(
        r"device_info\.ios_advertising_id must be a UUID \(invalid_device_id\)\. "
        r"Path '\[1\]\.device_info\.ios_advertising_id', line 1, position \d+\.",
        device["message"],
    )
    assert body[: position(device)].endswith('"ios_advertising_id"')
    assert located(batches, device) == 1
    path = "Path 'events[0].data.custom_attributes.currency', line 1, position "
    assert path in currency["message"]
    assert body[: position(currency)].endswith('"currency"')
    assert located(batches, currency) == 2
    assert "not-a-guid" not in response.text
    single = sandbox.post(EVENTS, compact(batches[1]))
    assert single.status_code == 400
    assert "Path 'device_info.ios_advertising_id', line 1" in single.json()["errors"][0]["message"]


def test_every_error_lies_inside_its_batch_also_with_non_ascii_text() -> None:
    """Positions count UTF-16 code units: accented letters (2 bytes, 1 unit) and emoji
    (4 bytes, 1 Python character, 2 units) before an error must not shift it."""
    batches: list[Any] = [batch(i) for i in range(7)]
    attributes = [b["events"][0]["data"]["custom_attributes"] for b in batches]
    attributes[0]["productname"] = "Crème brûlée 🎉" * 100
    attributes[0]["sku"] = "🎉" * 1000
    batches[1]["environment"] = "staging"
    attributes[2]["productname"] = "Ünïcödé 🎉🎉" * 300
    attributes[3]["productname"] = "Zürich 🎉" * 300
    attributes[3]["currency"] = {"code": "€"}
    batches[4]["user_attributes"] = {"city": "São Paulo"}
    batches[4]["device_info"] = {"ios_advertising_id": "pas-un-guid-é"}
    attributes[5]["sku"] = "🎉" * 2000
    del attributes[5]["conversiontype"]  # no such key: the position is the batch's start
    batches[6] = "ceci n'est pas un lot 🎉"
    body = bulk(batches)
    assert len(body.encode()) != utf16(body) != len(body)
    sandbox = Client()
    response = sandbox.post(BULK, body)
    assert response.status_code == 202
    errors = response.json()["errors"]
    expected = [
        (1, "invalid_environment"),
        (3, "invalid_custom_attributes"),
        (4, "invalid_device_id"),
        (5, "missing_conversiontype"),
        (6, "invalid_batch"),
    ]
    assert [(located(batches, e), reason(e)) for e in errors] == expected
    assert position(errors[3]) == spans(batches)[5].start + 1
    units = body.encode("utf-16-le")
    assert units[: 2 * position(errors[1])].decode("utf-16-le").endswith('"currency"')
    for measure in (len, lambda text: len(text.encode())):  # Python characters, bytes
        assert [located(batches, e, measure) for e in errors] != [i for i, _ in expected]
    assert [r["confirmationref"] for r in sandbox.recorded()["batches"]] == [
        "ORD-00000",
        "ORD-00002",
    ]


def test_opaque_errors_do_not_say_which_batch() -> None:
    sandbox = Client(opaque_errors=True)
    batches = [batch(i) for i in range(4)]
    batches[1]["environment"] = "staging"
    batches[3]["device_info"] = {"ios_advertising_id": "not-a-guid"}
    response = sandbox.post(BULK, bulk(batches))
    assert response.status_code == 202
    assert response.json() == {"errors": [{"code": BAD_REQUEST, "message": OPAQUE}] * 2}
    assert [r["confirmationref"] for r in sandbox.recorded()["batches"]] == [
        "ORD-00000",
        "ORD-00002",
    ]
    # a single batch's 400 concerns that batch: still explained and located
    alone = sandbox.post(EVENTS, compact(batches[1]))
    assert (alone.status_code, codes(alone)) == (400, ["invalid_environment"])
    assert "Path 'environment', line 1, position " in alone.text
    rejecting = Client(opaque_errors=True, reject_rate=1.0, seed=1)
    rejected = rejecting.post(BULK, bulk(batches[:1]))
    assert rejected.json() == {"errors": [{"code": BAD_REQUEST, "message": OPAQUE}]}
    assert rejecting.stats()["rejections_by_code"] == {"rejected_by_sandbox": 1}
    empty = sandbox.post(BULK, "[]")  # about the request: as without the option
    assert (empty.status_code, codes(empty)) == (400, ["invalid_bulk"])
    assert sandbox.stats()["rejections_by_code"] == {
        "invalid_device_id": 1,
        "invalid_environment": 2,
    }


def test_the_opaque_errors_option_of_the_command(sandbox_factory: Callable[..., Any]) -> None:
    opaque = sandbox_factory("--opaque-errors")
    bad = batch(1) | {"environment": "staging"}
    with httpx.Client(base_url=opaque.url, auth=("sandbox-key", "sandbox-secret")) as client:
        response = client.post(BULK, content=bulk([batch(0), bad]))
    assert (response.status_code, response.json()) == (
        202,
        {"errors": [{"code": BAD_REQUEST, "message": OPAQUE}]},
    )
    assert opaque.stats()["batches"] == 1


# --- idempotency --------------------------------------------------------------------


def test_a_resent_batch_is_accepted_and_counted_as_resent() -> None:
    sandbox = Client()
    body = compact(batch())
    assert sandbox.post(EVENTS, body).status_code == 202
    assert sandbox.post(EVENTS, body).status_code == 202
    assert sandbox.post(BULK, bulk([batch(), batch(1), batch(1)])).json() == {}
    stats = sandbox.stats()
    assert (stats["batches"], stats["resent"], stats["duplicate_confirmationrefs"]) == (2, 3, 0)
    assert stats["unique_confirmationrefs"] == 2
    assert sandbox.recorded()["total"] == 2


def test_the_same_confirmationref_under_a_new_request_id_is_a_duplicate() -> None:
    sandbox = Client()
    first = batch()
    again = copy.deepcopy(first)
    again["source_request_id"] = "another-request-id"
    assert sandbox.post(EVENTS, compact(first)).status_code == 202
    assert sandbox.post(EVENTS, compact(again)).status_code == 202
    stats = sandbox.stats()
    assert (stats["batches"], stats["unique_confirmationrefs"]) == (2, 1)
    assert (stats["duplicate_confirmationrefs"], stats["resent"]) == (1, 0)
    # other environments are other data sets
    production = copy.deepcopy(first)
    production.update(environment="production", source_request_id="production-id")
    assert sandbox.post(EVENTS, compact(production)).status_code == 202
    assert sandbox.stats()["unique_confirmationrefs"] == 2


# --- fault injection ----------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after_until_the_clock_advances() -> None:
    clock = FakeClock()
    sandbox = Client(rate_limit=10, clock=clock)
    hundred = bulk([batch(i) for i in range(100)])  # the bucket holds max(10, 100)
    assert sandbox.post(BULK, hundred).status_code == 202
    thirty = bulk([batch(i) for i in range(100, 130)])
    limited = sandbox.post(BULK, thirty)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"  # 30 tokens at 10/s
    one = sandbox.post(EVENTS, compact(batch(200)))
    assert (one.status_code, one.headers["Retry-After"]) == (429, "1")  # at least 1
    clock.now += 2.9
    assert sandbox.post(BULK, thirty).headers["Retry-After"] == "1"
    clock.now += 0.1
    assert sandbox.post(BULK, thirty).status_code == 202
    stats = sandbox.stats()
    assert stats["batches"] == 130
    assert stats["responses_by_status"]["429"] == 3
    assert stats["rejected"] == 0


def test_rate_limit_retry_after_is_an_integer_for_slow_rates() -> None:
    clock = FakeClock()
    sandbox = Client(rate_limit=0.5, clock=clock)
    assert sandbox.post(BULK, bulk([batch(i) for i in range(100)])).status_code == 202
    limited = sandbox.post(EVENTS, compact(batch(100)))
    assert limited.headers["Retry-After"] == "2"
    clock.now += 2
    assert sandbox.post(EVENTS, compact(batch(100))).status_code == 202


def test_fail_rate_one_gives_only_faults_and_records_nothing() -> None:
    sandbox = Client(fail_rate=1.0, seed=11)
    seen: set[int] = set()
    for i in range(40):
        response = sandbox.post(BULK, bulk([batch(i)]))
        seen.add(response.status_code)
        if response.status_code == 429:
            assert response.headers["Retry-After"] in {"0", "1"}
        else:
            assert "Retry-After" not in response.headers
    assert seen == {status for status, _ in FAULTS}
    stats = sandbox.stats()
    assert (stats["batches"], stats["rejected"], stats["requests"]) == (0, 0, 40)
    assert sum(stats["responses_by_status"].values()) == 40
    assert sandbox.recorded()["total"] == 0


def test_faults_are_reproducible_with_a_seed() -> None:
    def statuses() -> list[int]:
        sandbox = Client(fail_rate=0.5, seed=5)
        return [sandbox.post(EVENTS, compact(batch())).status_code for _ in range(20)]

    first = statuses()
    assert first == statuses()
    assert 202 in first and len(set(first)) > 1


def test_reject_rate_one_rejects_every_valid_batch() -> None:
    sandbox = Client(reject_rate=1.0, seed=3)
    batches = [batch(i) for i in range(5)]
    response = sandbox.post(BULK, bulk(batches))
    assert response.status_code == 202
    errors = response.json()["errors"]
    assert [located(batches, e) for e in errors] == list(range(5))
    assert set(codes(response)) == {"rejected_by_sandbox"}
    assert {e["message"].partition(". Path ''")[0] for e in errors} == {
        "sandbox --reject-rate rejected this batch (rejected_by_sandbox)"
    }
    single = sandbox.post(EVENTS, compact(batch(9)))  # about its one batch: 400
    assert (single.status_code, codes(single)) == (400, ["rejected_by_sandbox"])
    stats = sandbox.stats()
    assert (stats["batches"], stats["rejected"]) == (0, 6)
    assert stats["rejections_by_code"] == {"rejected_by_sandbox": 6}


def rejected_by_rate(sandbox: Client, batches: list[Any]) -> set[int]:
    """The indexes of `batches` one bulk request to `sandbox` has rejected."""
    response = sandbox.post(BULK, bulk(batches))
    assert response.status_code == 202
    errors = response.json().get("errors", [])
    assert set(codes(response)) <= {"rejected_by_sandbox"}
    return {i for e in errors if (i := located(batches, e)) is not None}


def test_a_batch_rejected_by_rate_is_rejected_again_however_it_is_resent() -> None:
    """The verdict is the batch's, as a rejection of its content would be: resent alone,
    in another request or in another order it is the same; the seed reproduces it."""
    batches = [batch(i) for i in range(30)]
    sandbox = Client(reject_rate=0.5, seed=7)
    rejected = rejected_by_rate(sandbox, batches)
    assert 0 < len(rejected) < 30
    for i, target in enumerate(batches):
        alone = sandbox.post(EVENTS, compact(target))
        if i in rejected:
            assert (alone.status_code, codes(alone)) == (400, ["rejected_by_sandbox"])
        else:
            assert (alone.status_code, alone.json()) == (202, {})
    backwards = batches[::-1]
    assert {29 - i for i in rejected_by_rate(sandbox, backwards)} == rejected
    stats = sandbox.stats()
    assert (stats["batches"], stats["resent"]) == (30 - len(rejected), 2 * (30 - len(rejected)))
    assert stats["rejected"] == 3 * len(rejected)
    assert rejected_by_rate(Client(reject_rate=0.5, seed=7), batches) == rejected
    assert rejected_by_rate(Client(reject_rate=0.5, seed=8), batches) != rejected
    # without a source_request_id the confirmationref decides
    anonymous = [{k: v for k, v in b.items() if k != "source_request_id"} for b in batches]
    unnamed = Client(reject_rate=0.5, seed=7)
    verdicts = rejected_by_rate(unnamed, anonymous)
    assert 0 < len(verdicts) < 30
    assert {29 - i for i in rejected_by_rate(unnamed, anonymous[::-1])} == verdicts
    for i in sorted(verdicts)[:3]:
        alone = unnamed.post(EVENTS, compact(anonymous[i]))
        assert (alone.status_code, codes(alone)) == (400, ["rejected_by_sandbox"])


def test_latency_awaits_the_injected_sleep() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    sandbox = Client(latency_s=0.25, sleep=sleep)
    assert sandbox.post(EVENTS, compact(batch())).status_code == 202
    assert sandbox.post(EVENTS, "{bad").status_code == 400
    assert slept == [0.25, 0.25]
    assert sandbox.post(EVENTS, "{}", auth=None).status_code == 401  # auth answers at once
    assert slept == [0.25, 0.25]
    no_latency = Client(sleep=sleep)
    no_latency.post(EVENTS, compact(batch()))
    assert slept == [0.25, 0.25]


def test_bookkeeping_is_exact_with_many_requests_in_flight() -> None:
    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)  # yields to the other requests; no real time passes

    sandbox = Client(latency_s=1.0, sleep=sleep)
    bodies = [compact(batch(i)) for i in range(60)]

    async def go() -> list[int]:
        async with sandbox.client() as client:
            sends = [client.post(EVENTS, content=b) for b in bodies + bodies]
            return [r.status_code for r in await asyncio.gather(*sends)]

    assert asyncio.run(go()) == [202] * 120
    stats = sandbox.stats()
    assert (stats["requests"], stats["batches"], stats["resent"]) == (120, 60, 60)
    assert stats["duplicate_confirmationrefs"] == 0


def test_503_bursts_come_in_runs_of_burst_length() -> None:
    sandbox = Client(burst_503_rate=0.1, burst_length=4, seed=2)
    statuses = [sandbox.post(EVENTS, compact(batch(i))).status_code for i in range(120)]
    runs = "".join("x" if s == 503 else "." for s in statuses).split(".")
    lengths = {len(run) for run in runs if run}
    assert lengths and lengths <= {4, 8, 12}  # back-to-back bursts join up
    assert set(statuses) == {202, 503}
    assert sandbox.stats()["faults_by_kind"] == {"burst_503": statuses.count(503)}


def test_429_storms_say_retry_after_up_to_the_maximum() -> None:
    sandbox = Client(storm_429_rate=1.0, burst_length=3, retry_after_max_s=5, seed=4)
    responses = [sandbox.post(EVENTS, compact(batch())) for _ in range(60)]
    assert {r.status_code for r in responses} == {429}
    waits = {int(r.headers["Retry-After"]) for r in responses}
    assert waits <= set(range(6)) and {0, 5} <= waits
    assert sandbox.stats()["faults_by_kind"] == {"storm_429": 60}
    assert sandbox.stats()["batches"] == 0
    failing = Client(fail_rate=1.0, retry_after_max_s=5, seed=4)
    fault_waits = {
        int(r.headers["Retry-After"])
        for r in (failing.post(EVENTS, compact(batch())) for _ in range(80))
        if r.status_code == 429
    }
    assert max(fault_waits) > 1  # --fail-rate's 429s use the same maximum


def answer(sandbox: Sandbox, body: str) -> Reply:
    """One authorized request straight into the sandbox (no HTTP: drops and hangs show
    as the reply's `fate`; tests over loopback show what a client sees)."""
    return asyncio.run(receive(sandbox, bulk=True, body=body.encode()))


def test_a_dropped_answer_is_sometimes_lost_before_and_sometimes_after_recording() -> None:
    sandbox = Sandbox(SandboxSettings(reset_rate=1.0, seed=8))
    replies = [answer(sandbox, bulk([batch(i)])) for i in range(40)]
    assert {r.fate for r in replies} == {"drop"}
    recorded = {r["confirmationref"] for r in sandbox.recorded()["batches"]}
    assert 5 < len(recorded) < 35  # about half got in before the connection dropped
    assert sandbox.stats()["faults_by_kind"] == {"reset": 40}


def test_a_hung_request_records_nothing_and_a_slow_one_records_before_waiting() -> None:
    hung = Sandbox(SandboxSettings(hang_rate=1.0))
    assert answer(hung, bulk([batch()])).fate == "hang"
    assert hung.stats()["batches"] == 0

    waited: list[tuple[float, int]] = []

    async def sleep(seconds: float) -> None:
        waited.append((seconds, slow.stats()["batches"]))

    slow = Sandbox(SandboxSettings(slow_rate=1.0, slow_s=7.5, sleep=sleep))
    reply = answer(slow, bulk([batch(0), batch(1)]))
    assert (reply.status, reply.fate) == (202, "answer")
    assert waited == [(7.5, 2)]  # recorded first: the late answer may never be read


def test_receipts_count_every_arrival_of_a_request_id() -> None:
    sandbox = Client(fail_rate=0.5, seed=3)
    body = bulk([batch(0), batch(1)])
    statuses = [sandbox.post(BULK, body).status_code for _ in range(6)]
    assert 202 in statuses and len(set(statuses)) > 1  # faults and answers both count
    sandbox.post(BULK, bulk([batch(0)]))
    records = sandbox.recorded()["batches"]
    assert [(r["confirmationref"], r["receipts"]) for r in records] == [
        ("ORD-00000", 7),
        ("ORD-00001", 6),
    ]
    assert sandbox.stats()["max_receipts"] == 7


def test_the_journal_brings_back_what_a_killed_sandbox_received(tmp_path: Path) -> None:
    journal = tmp_path / "sandbox.journal"
    first = Sandbox(SandboxSettings(journal=journal))
    answer(first, bulk([batch(0), batch(1)]))
    answer(first, bulk([batch(1)]))  # resent
    with journal.open("a", encoding="utf-8") as file:
        file.write('{"receipt": "cut sho')  # the line a SIGKILL interrupted

    again = Sandbox(SandboxSettings(journal=journal))
    assert again.recorded() == first.recorded()
    for key in ("batches", "unique_confirmationrefs", "resent", "max_receipts"):
        assert again.stats()[key] == first.stats()[key]
    answer(again, bulk([batch(0)]))  # still known after the restart
    other_id = batch(1) | {"source_request_id": "another-request-id"}
    answer(again, bulk([other_id]))  # the same conversion under a new id
    stats = again.stats()
    assert (stats["resent"], stats["duplicate_confirmationrefs"]) == (2, 1)
    again.reset()
    assert journal.read_text() == ""
    first.close()
    again.close()
    empty = Sandbox(SandboxSettings(journal=journal))
    assert empty.stats()["batches"] == 0
    empty.close()


# --- records, pagination, reset -----------------------------------------------------


def test_batches_pages_in_acceptance_order_and_keep_bodies_caps_them() -> None:
    sandbox = Client(keep_bodies=3, wall_clock=lambda: 1_790_000_000.5)
    sandbox.post(BULK, bulk([batch(i) for i in range(5)]))
    everything = sandbox.recorded()
    assert everything["total"] == 5
    assert [r["confirmationref"] for r in everything["batches"]] == [
        "ORD-00000",
        "ORD-00001",
        "ORD-00002",
    ]
    first = everything["batches"][0]
    assert first["received_at"] == 1_790_000_000.5
    assert first["source_request_id"] == batch(0)["source_request_id"]
    assert first["batch"] == batch(0)
    page = sandbox.recorded("?offset=1&limit=1")
    assert [r["confirmationref"] for r in page["batches"]] == ["ORD-00001"]
    assert sandbox.recorded("?offset=10")["batches"] == []
    assert sandbox.stats()["batches"] == 5
    for query in ["?offset=-1", "?limit=x", "?limit=10001"]:
        response = sandbox.request("GET", f"/_sandbox/batches{query}")
        assert (response.status_code, codes(response)) == (400, ["invalid_query"])


def test_reset_forgets_everything() -> None:
    clock = FakeClock()
    sandbox = Client(rate_limit=1, clock=clock)
    hundred = bulk([batch(i) for i in range(100)])
    assert sandbox.post(BULK, hundred).status_code == 202
    assert sandbox.post(BULK, hundred).status_code == 429
    reset = sandbox.request("POST", "/_sandbox/reset")
    assert reset.json() == {"reset": True}
    stats = sandbox.stats()
    assert stats["requests"] == stats["batches"] == stats["max_batches_per_request"] == 0
    assert stats["bulk_requests"] == 0
    assert set(stats["responses_by_status"].values()) == {0}
    assert sandbox.recorded() == {"total": 0, "batches": []}
    assert sandbox.post(BULK, hundred).status_code == 202  # bucket full again
    assert sandbox.stats()["resent"] == 0  # idempotency memory is gone too


def test_settings_are_checked() -> None:
    bad_settings: list[dict[str, Any]] = [
        {"fail_rate": 1.5},
        {"reject_rate": -0.1},
        {"rate_limit": 0},
        {"latency_s": -1},
        {"keep_bodies": -1},
        {"burst_503_rate": 2},
        {"hang_rate": -0.5},
        {"burst_length": 0},
        {"retry_after_max_s": -1},
        {"slow_s": -1},
        {"header_timeout_s": 0},
        {"max_connections": 0},
    ]
    for bad in bad_settings:
        with pytest.raises(ValueError):
            SandboxSettings(**bad)
    with pytest.raises(ValueError, match="non-loopback"):
        serve(SandboxSettings(), host="0.0.0.0", port=0)


# --- real HTTP over loopback ----------------------------------------------------------


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


# --- hostile requests and files, over loopback ----------------------------------------

SANDBOX_AUTH = ("sandbox-key", "sandbox-secret")  # the command's defaults


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        kb = next(line.split()[1] for line in status if line.startswith("VmRSS:"))
    return int(kb) / 1024


def test_an_undecodable_body_is_400_and_the_sandbox_still_serves(
    sandbox_factory: Callable[..., Any],
) -> None:
    sandbox = sandbox_factory()
    lone = batch(0)
    put((*ATTRS, "productname"), "T-shirt \ud800")(lone)  # json.dumps escapes it: \ud800
    paired = batch(1)
    put((*ATTRS, "productname"), "T-shirt \U0001f455")(paired)  # escaped as a pair: valid
    undecodable = [
        (EVENTS, json.dumps(lone).encode()),
        (BULK, json.dumps([batch(2), lone]).encode()),  # the whole request, not one batch
        (EVENTS, b'{"\\udfff": 1, "environment": "development"}'),  # a key
        (EVENTS, compact(batch(3)).encode().replace(b"ORD-", b"ORD-\xff")),  # bad UTF-8
        (EVENTS, compact(batch(4)).encode()[:-1]),  # cut short: not JSON
    ]
    with httpx.Client(base_url=sandbox.url, auth=SANDBOX_AUTH) as client:
        for path, body in undecodable:
            response = client.post(path, content=body)
            assert (response.status_code, codes(response)) == (400, ["invalid_json"]), body[:60]
            [error] = response.json()["errors"]
            assert "Path" not in error["message"]  # about the request, not one batch
        assert "lone surrogate" in client.post(EVENTS, content=undecodable[0][1]).text
        assert b"\\ud83d\\udc55" in json.dumps(paired).encode()
        accepted = client.post(BULK, content=json.dumps([paired]).encode())
        assert (accepted.status_code, accepted.json()) == (202, {})
    stats = sandbox.stats()
    assert stats["responses_by_status"]["500"] == 0
    assert stats["request_errors_by_code"] == {"invalid_json": len(undecodable) + 1}
    [record] = sandbox.records()
    assert record["batch"]["events"][0]["data"]["custom_attributes"]["productname"] == (
        "T-shirt \U0001f455"
    )


def test_a_refused_bulk_request_leaves_no_receipt_journal_line_or_memory(
    sandbox_factory: Callable[..., Any], tmp_path: Path
) -> None:
    journal = tmp_path / "sandbox.journal"
    sandbox = sandbox_factory("--journal", str(journal))

    def flood(name: str) -> bytes:
        """5,500 batches with new ids: small enough for the request limit."""
        body = bulk([{"source_request_id": f"{name}-{i}"} for i in range(5500)]).encode()
        assert len(body) <= MAX_REQUEST_BYTES
        return body

    with httpx.Client(base_url=sandbox.url, auth=SANDBOX_AUTH) as client:
        assert client.post(BULK, content=bulk([batch(0)])).status_code == 202
        before = (sandbox.records(), journal.read_bytes())
        refused = [
            client.post(BULK, content=bulk([batch(i) for i in range(101)])),
            *(client.post(BULK, content=flood(f"warm-{n}")) for n in range(3)),
        ]
        for response in refused:
            assert (response.status_code, codes(response)) == (400, ["invalid_bulk"])
        assert (sandbox.records(), journal.read_bytes()) == before  # receipts still 1
        rss = _rss_mb(sandbox.process.pid)
        for n in range(50):
            assert client.post(BULK, content=flood(f"flood-{n}")).status_code == 400
        grown = _rss_mb(sandbox.process.pid) - rss
    assert grown < 10, f"the sandbox grew {grown:.1f} MB on 50 refused requests"
    assert (sandbox.records(), journal.read_bytes()) == before
    stats = sandbox.stats()
    assert (stats["batches"], stats["max_receipts"]) == (1, 1)
    assert stats["request_errors_by_code"] == {"invalid_bulk": 54}


def test_the_journal_is_private_and_never_written_through_a_link(
    sandbox_factory: Callable[..., Any], tmp_path: Path
) -> None:
    journal = tmp_path / "sandbox.journal"
    sandbox = sandbox_factory("--journal", str(journal))
    with httpx.Client(auth=SANDBOX_AUTH) as client:
        assert client.post(sandbox.url + BULK, content=bulk([batch(0)])).status_code == 202
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600  # it holds hashed PII
    sandbox.kill()
    journal.chmod(0o644)
    sandbox.restart()  # appends to its own journal, and makes it private again
    assert sandbox.accepted_refs() == ["ORD-00000"]
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600

    victim = tmp_path / "victim.txt"
    victim.write_text("the victim's data\n", encoding="utf-8")
    victim.chmod(0o644)
    (tmp_path / "link.journal").symlink_to(victim)
    (tmp_path / "dangling.journal").symlink_to(tmp_path / "planted.txt")
    os.link(victim, tmp_path / "hard.journal")
    command = [sys.executable, "-m", "connector", "sandbox", "--port", "0", "--journal"]
    for path, says in [
        (tmp_path / "link.journal", f"is a symbolic link to {victim}"),
        (tmp_path / "dangling.journal", f"is a symbolic link to {tmp_path / 'planted.txt'}"),
        (tmp_path / "hard.journal", "has other hard links"),
    ]:
        started = subprocess.run(
            [*command, str(path)],
            capture_output=True,
            text=True,
            timeout=20,  # a sandbox that started would serve until killed
            env={**os.environ, "COLUMNS": "200"},
            check=False,
        )
        assert (started.returncode, started.stdout) == (2, ""), started.stderr
        assert f"--journal: {path} {says}" in started.stderr
    assert victim.read_text(encoding="utf-8") == "the victim's data\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert not (tmp_path / "planted.txt").exists()
