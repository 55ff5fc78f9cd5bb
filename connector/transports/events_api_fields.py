"""Where each canonical column lands in an Event API batch (docs/attributes.md): its
place (`user_identities`, `device_info`, the batch's `ip`, `user_attributes`,
`custom_attributes`) and key, and the batch's fixed event fields."""

from __future__ import annotations

from enum import StrEnum

from connector.spec import BY_COLUMN, EXTRA, Group

EVENT_TYPE = "custom_event"
EVENT_NAME = "conversion"
CUSTOM_EVENT_TYPE = "transaction"
# An audience membership change (`audiences sync`), as Segment's Rokt destination sends it:
# custom_attributes {audience_name, status}, the status one of AUDIENCE_STATUSES.
AUDIENCE_EVENT_NAME = "audiencemembershipupdate"
AUDIENCE_EVENT_TYPE = "other"
AUDIENCE_STATUSES = ("add", "drop")

# The RTID travels twice: as an identity and as Rokt's integration attribute.
RTID_INTEGRATION = "1277"
RTID_INTEGRATION_KEY = "passbackconversiontrackingid"


class Place(StrEnum):
    """Where a value lands in the Event API batch."""

    IDENTITY = "user_identities"
    DEVICE = "device_info"
    BATCH = "batch"  # a top-level batch field (ip)
    USER = "user_attributes"
    EVENT = "custom_attributes"  # events[0].data.custom_attributes
    INTEGRATION = "integration_attributes"  # {"1277": {...}}


_PLACES = {
    Group.IDENTITY: Place.IDENTITY,
    Group.DEVICE: Place.DEVICE,
    Group.USER: Place.USER,
    Group.EVENT: Place.EVENT,
}
# Keys that differ from the column's name (the published batch schema's names).
_KEYS = {
    "email_sha256": "other",
    "rtid": "other_id_2",
    "session_id": "other_id_3",
    "user_agent": "http_header_user_agent",
}


def field(name: str) -> tuple[Place, str]:
    """(place, key) of a transformed frame's column `name` (a canonical column, or
    `extra.<name>`: a custom event attribute)."""
    if name.startswith(EXTRA):
        return Place.EVENT, name.removeprefix(EXTRA)
    if name == "ipaddress":
        return Place.BATCH, "ip"
    group = BY_COLUMN[name].group
    assert group is not None, name
    return _PLACES[group], _KEYS.get(name, name)
