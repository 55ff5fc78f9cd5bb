"""What the sandbox refuses, and why: a request body that is not strict UTF-8 JSON (nor
nested within the platform's depth), and a batch that breaks seed 001, ATTRIBUTES.md or
the limits in `spec` (`check_batch`).

Owns: `Invalid` (a code, a message naming the field, the field's reader path) and the
checks. Must not: keep state, answer HTTP (that is `sandbox`), or echo a batch value.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from typing import Any, NamedTuple

from connector.spec import (
    ATTRIBUTES,
    CUSTOM_EVENT_TYPE,
    DEVICE_IDENTITIES,
    EVENT_NAME,
    EVENT_TYPE,
    MAX_BATCH_BYTES,
    MAX_NAME_CHARS,
    MAX_USER_ATTRIBUTES,
    MAX_VALUE_CHARS,
    Kind,
    Place,
)
from connector.values import UUID

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
_HEX = re.compile(r"[0-9a-f]{64}")  # hashes are sent lower-case (ATTRIBUTES.md)
_UUID = re.compile(UUID)
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")  # the SDK sends numbers as text
_DIGITS = re.compile(r"[0-9]+")
_PATH_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")  # a key shown in a Path; others are not
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# The platform's JSON reader refuses deeper nesting (Newtonsoft's MaxDepth); a batch's
# event data lies 4 levels down.
MAX_DEPTH = 64
_DATA_DEPTH = 4
# Event data whose values are checked to be scalars (custom attributes: next, by key).
_BOUNDED_DATA_KEYS = frozenset(
    {"event_name", "custom_event_type", "source_message_id", "timestamp_unixtime_ms"}
    | {"custom_attributes"}
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
    kind = data.get("custom_event_type")
    if "custom_event_type" in data and not (isinstance(kind, str) and kind in CUSTOM_EVENT_TYPES):
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
    if data.keys() <= _BOUNDED_DATA_KEYS:
        return
    for key, value in data.items():  # custom_flags and the like: no other check bounds them
        if isinstance(value, dict | list) and _deeper(value, MAX_DEPTH - _DATA_DEPTH):
            where = f"events[0].data.{key}"
            message = f"{where} makes the batch nest deeper than {MAX_DEPTH} levels"
            raise Invalid("too_deep", message, where)


def _deeper(value: dict[str, Any] | list[Any], levels: int) -> bool:
    """Whether `value` nests more than `levels` containers deep (itself the first)."""
    layer: list[Any] = [value]
    for _ in range(levels):
        layer = [
            child
            for node in layer
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
        if not layer:
            return False
    return True


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
    try:
        size = len(json.dumps(batch, separators=(",", ":"), ensure_ascii=False).encode())
    except RecursionError:
        raise Invalid("too_deep", f"the batch nests deeper than {MAX_DEPTH} levels") from None
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


def judge(batch: object) -> Checked | Invalid:
    """`check_batch`'s verdict as a value: the checked batch, or why it is refused."""
    try:
        return check_batch(batch)
    except Invalid as exc:
        return exc


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def parse_body(body: bytes) -> tuple[str, object]:
    """The body's text and value. Strict JSON: UTF-8, no NaN / Infinity, no number that
    overflows a double, no `\\u` escape of a lone surrogate (text no UTF-8 can hold)."""
    try:
        text = body.decode("utf-8")
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
        # UTF-8 holds no surrogate, so only an escape brings one; a pair is one character.
        if _SURROGATE_ESCAPE.search(text):
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid(
            "invalid_json",
            "the request body escapes a lone surrogate (\\ud800-\\udfff), "
            "which is no Unicode character",
        ) from None
    except RecursionError:
        message = f"the request body nests deeper than {MAX_DEPTH} levels"
        raise Invalid("invalid_json", message) from None
    except (UnicodeDecodeError, ValueError):
        raise Invalid("invalid_json", "the request body is not valid UTF-8 JSON") from None
    return text, value
