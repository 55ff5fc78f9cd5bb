"""The sandbox's per-batch validation, one focused case per rule: every rule is exercised by
mutating a batch of the connector's own pipeline. Batches built by the official SDK and the
seed's example are accepted too.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mparticle
import pytest
from sandbox_helpers import (
    ATTRS,
    BULK,
    DATA,
    DELETE,
    EVENTS,
    IDFV,
    Client,
    batch,
    bulk,
    compact,
    pad_to,
    position,
    put,
    reason,
    utf16,
)

from connector.sandbox import Sandbox, SandboxSettings
from connector.spec import MAX_BATCH_BYTES, MAX_NAME_CHARS, MAX_USER_ATTRIBUTES, MAX_VALUE_CHARS


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
    ("events_missing", put(("events",), DELETE), "invalid_events", "events"),
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
    ("no_attributes", put(ATTRS, DELETE), "invalid_custom_attributes", "custom_attributes"),
    ("no_ref", put((*ATTRS, "confirmationref"), DELETE), "missing_confirmationref", "ref"),
    ("blank_ref", put((*ATTRS, "confirmationref"), "  "), "missing_confirmationref", "ref"),
    ("numeric_ref", put((*ATTRS, "confirmationref"), 12345), "missing_confirmationref", "ref"),
    ("no_type", put((*ATTRS, "conversiontype"), DELETE), "missing_conversiontype", "conversion"),
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
    ("no_request_id", put(("source_request_id",), DELETE)),
    ("no_custom_event_type", put((*DATA, "custom_event_type"), DELETE)),
    ("no_source_message_id", put((*DATA, "source_message_id"), DELETE)),
    ("no_timestamp", put((*DATA, "timestamp_unixtime_ms"), DELETE)),
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
