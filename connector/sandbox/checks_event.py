"""The checks of a batch's one conversion event: its type, name and known fields, its data
(nesting bounded by the platform's depth) and custom attributes (confirmationref,
conversiontype, amounts and quantity as the SDK sends them).
"""

from __future__ import annotations

from typing import Any

from connector.sandbox.checks_fields import (
    DECIMAL,
    DIGITS,
    MAX_DEPTH,
    UUID_PATTERN,
    Invalid,
    as_object,
    check_sized,
    field_path,
    is_integer,
    is_number,
    is_scalar,
    shown,
)
from connector.transports.events_api_fields import CUSTOM_EVENT_TYPE, EVENT_NAME, EVENT_TYPE

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
_DATA_DEPTH = 4  # a batch's event data lies this many levels down
# Event data whose values are checked to be scalars (custom attributes: next, by key).
_BOUNDED_DATA_KEYS = frozenset(
    {"event_name", "custom_event_type", "source_message_id", "timestamp_unixtime_ms"}
    | {"custom_attributes"}
)


def _check_known(fields: dict[str, Any], known: frozenset[str], where: str) -> None:
    for key in fields:
        if key not in known:
            raise Invalid(
                "unknown_field",
                f"{where}.{shown(key)} is not an event field",
                field_path(where, key),
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
        isinstance(message_id, str) and UUID_PATTERN.fullmatch(message_id)
    ):
        raise Invalid(
            "invalid_source_message_id",
            "events[0].data.source_message_id must be a UUID string",
            "events[0].data.source_message_id",
        )
    if "timestamp_unixtime_ms" in data and not is_integer(data["timestamp_unixtime_ms"]):
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


def check_event(batch: dict[str, Any]) -> str:
    """The one conversion event; returns its confirmationref."""
    events = batch.get("events")
    if not isinstance(events, list) or len(events) != 1:
        raise Invalid(
            "invalid_events", "events must be a list of exactly one conversion event", "events"
        )
    event = as_object(events[0], "events[0]", "invalid_events")
    _check_known(event, EVENT_KEYS, "events[0]")
    if event.get("event_type") != EVENT_TYPE:
        raise Invalid(
            "invalid_event_type",
            f"events[0].event_type must be {EVENT_TYPE!r}",
            "events[0].event_type",
        )
    _check_event_data(data := as_object(event.get("data"), "events[0].data", "invalid_events"))
    where = "events[0].data.custom_attributes"
    attributes = as_object(data.get("custom_attributes"), where, "invalid_custom_attributes")
    for name, value in attributes.items():
        if not is_scalar(value):
            raise Invalid(
                "invalid_custom_attributes",
                f"{where}.{shown(name)} must be a string, number or boolean",
                field_path(where, name),
            )
        check_sized(where, name, value, where)
    for key in ("confirmationref", "conversiontype"):
        value = attributes.get(key)
        if not (isinstance(value, str) and value.strip()):
            raise Invalid(
                f"missing_{key}", f"{where}.{key} must be a non-empty string", f"{where}.{key}"
            )
    for key in ("amount", "margin"):
        value = attributes.get(key)
        if key in attributes and not (
            is_number(value) or (isinstance(value, str) and DECIMAL.fullmatch(value))
        ):
            raise Invalid(
                "invalid_amount",
                f"{where}.{key} must be a JSON number or a string holding a decimal number",
                f"{where}.{key}",
            )
    quantity = attributes.get("quantity")
    if "quantity" in attributes and not (
        is_integer(quantity) or (isinstance(quantity, str) and DIGITS.fullmatch(quantity))
    ):
        raise Invalid(
            "invalid_quantity",
            f"{where}.quantity must be a JSON integer or a string of digits",
            f"{where}.quantity",
        )
    ref: str = attributes["confirmationref"]
    return ref
