"""The checks of an audience batch (`audiencemembershipupdate` events, as Segment's Rokt
destination sends them): each event's type, name, custom event type, id, time and
`{audience_name, status: add|drop}`, one event per audience, and a boolean user
attribute per change that agrees with its status."""

from __future__ import annotations

from typing import Any

from connector.sandbox.checks_fields import UUID_PATTERN, Invalid, as_object, is_integer
from connector.spec import MAX_BATCHES_PER_REQUEST
from connector.transports.events_api_fields import (
    AUDIENCE_EVENT_NAME,
    AUDIENCE_EVENT_TYPE,
    AUDIENCE_STATUSES,
    EVENT_TYPE,
)

AUDIENCE_PREFIX = "audience:"  # what `Checked.confirmationref` of an audience batch starts with
_DATA_KEYS = frozenset(
    {"event_name", "custom_event_type", "source_message_id", "timestamp_unixtime_ms"}
    | {"custom_attributes"}
)


def is_audience_batch(batch: dict[str, Any]) -> bool:
    """Whether the batch's first event is an audience membership update."""
    events = batch.get("events")
    if not isinstance(events, list) or not events or not isinstance(events[0], dict):
        return False
    data = events[0].get("data")
    return isinstance(data, dict) and data.get("event_name") == AUDIENCE_EVENT_NAME


def _check_event(event: object, where: str) -> tuple[str, str, str]:
    """(audience_name, status, source_message_id) of one valid audience event."""
    event = as_object(event, where, "invalid_events")
    if set(event) != {"event_type", "data"} or event["event_type"] != EVENT_TYPE:
        raise Invalid("invalid_event_type", f"{where} must be a {EVENT_TYPE!r} event", where)
    data = as_object(event["data"], f"{where}.data", "invalid_events")
    if not set(data) <= _DATA_KEYS or data.get("event_name") != AUDIENCE_EVENT_NAME:
        raise Invalid(
            "invalid_event_name",
            f"{where}.data: each event of an audience batch is {AUDIENCE_EVENT_NAME!r}, "
            "with known fields only",
            f"{where}.data",
        )
    if data.get("custom_event_type") != AUDIENCE_EVENT_TYPE:
        raise Invalid(
            "invalid_custom_event_type",
            f"{where}.data.custom_event_type must be {AUDIENCE_EVENT_TYPE!r}",
            f"{where}.data.custom_event_type",
        )
    message_id = data.get("source_message_id")
    if not (isinstance(message_id, str) and UUID_PATTERN.fullmatch(message_id)):
        raise Invalid(
            "invalid_source_message_id",
            f"{where}.data.source_message_id must be a UUID string",
            f"{where}.data.source_message_id",
        )
    if not is_integer(data.get("timestamp_unixtime_ms")):
        raise Invalid(
            "invalid_timestamp",
            f"{where}.data.timestamp_unixtime_ms must be an integer",
            f"{where}.data.timestamp_unixtime_ms",
        )
    attributes = as_object(
        data.get("custom_attributes"),
        f"{where}.data.custom_attributes",
        "invalid_custom_attributes",
    )
    name, status = attributes.get("audience_name"), attributes.get("status")
    if set(attributes) != {"audience_name", "status"} or not (
        isinstance(name, str) and name.strip()
    ):
        raise Invalid(
            "invalid_custom_attributes",
            f"{where}.data.custom_attributes must be exactly audience_name (a non-empty "
            "string) and status",
            f"{where}.data.custom_attributes",
        )
    if status not in AUDIENCE_STATUSES:
        raise Invalid(
            "invalid_audience_status",
            f"{where}.data.custom_attributes.status must be one of {', '.join(AUDIENCE_STATUSES)}",
            f"{where}.data.custom_attributes.status",
        )
    return name, str(status), message_id


def check_audience_events(batch: dict[str, Any]) -> str:
    """An audience batch's events and boolean user attributes; returns its key for the
    records (`AUDIENCE_PREFIX` and its events' ids)."""
    events = batch["events"]
    if len(events) > MAX_BATCHES_PER_REQUEST:
        raise Invalid("invalid_events", "an audience batch holds at most 100 events", "events")
    checked = [_check_event(event, f"events[{i}]") for i, event in enumerate(events)]
    audiences = [name for name, _, _ in checked]
    if len(set(audiences)) != len(audiences):
        raise Invalid(
            "invalid_events", "an audience batch changes each audience at most once", "events"
        )
    flags = [v for v in batch.get("user_attributes", {}).values() if isinstance(v, bool)]
    adds = sum(status == "add" for _, status, _ in checked)
    if (flags.count(True), flags.count(False)) != (adds, len(checked) - adds):
        raise Invalid(
            "invalid_user_attributes",
            "user_attributes must hold one boolean per audience changed: true for each add, "
            "false for each drop",
            "user_attributes",
        )
    return AUDIENCE_PREFIX + ",".join(sorted(message_id for *_, message_id in checked))
