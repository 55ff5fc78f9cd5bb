"""docs/attributes.md as data: every canonical column, where it goes, how it is normalized.

Owns: the column table, the reason codes (with the hint each one gives the user),
the platform limits and the fixed event fields. `transform` and the
transports read this table; nothing else may hard-code a column's destination.
Must not: hold logic that touches rows (that is `transform`).

The Event API identity keys of the RTID and the session id are `other_id_2` and
`other_id_3` (the names the published batch schema and the official mParticle SDK
use; `other2`/`other3` are the pixel service's `ui_t` names and are used there).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Place(StrEnum):
    """Where a value lands in the Event API batch."""

    IDENTITY = "user_identities"
    DEVICE = "device_info"
    BATCH = "batch"  # top-level batch field (ip)
    USER = "user_attributes"
    EVENT = "custom_attributes"  # events[0].data.custom_attributes
    INTEGRATION = "integration_attributes"  # {"1277": {...}}


class Kind(StrEnum):
    """How a column is normalized and checked."""

    TEXT = "text"  # trim (exactly what Python's str.strip() removes)
    REF = "ref"  # trim; required dedup key
    EMAIL = "email"  # trim, lowercase; a 64-hex value is a hash
    NAME = "name"  # no whitespace, NFC, lowercase (hashable)
    MOBILE = "mobile"  # trim; its national number for hashing (`phones`)
    ZIP = "zip"  # no whitespace, NFC (hashable; a US ZIP+4 also under `plus4_key`)
    PREHASHED = "prehashed"  # lowercase; must be 64 hex
    IP = "ip"  # trim; IPv4 or IPv6
    UUID = "uuid"  # trim; a UUID (the batch schema's device ids)
    DOB = "dob"  # YYYYMMDD
    DECIMAL = "decimal"  # JSON number
    AMOUNT = "amount"  # JSON number, not negative
    INTEGER = "integer"  # JSON integer, not negative
    CURRENCY = "currency"  # 3 letters, uppercase
    TIMESTAMP = "timestamp"  # UTC epoch ms


@dataclass(frozen=True)
class Attribute:
    column: str
    kind: Kind
    place: Place | None  # None: not sent as itself (event_time, conversion fields below)
    key: str = ""
    hashed_key: str = ""  # key (same place) of the SHA-256 of the normalized value
    plus4_key: str = ""  # zip: where a US ZIP+4's hash goes (hashed_key: its 5 digits')
    pixel: str = ""  # pixel ui_t identity type, for identities


RTID_INTEGRATION = "1277"
RTID_INTEGRATION_KEY = "passbackconversiontrackingid"

ATTRIBUTES: tuple[Attribute, ...] = (
    # identities
    Attribute("email", Kind.EMAIL, Place.IDENTITY, "email", "other", pixel="email"),
    Attribute("email_sha256", Kind.PREHASHED, Place.IDENTITY, "other", pixel="other"),
    Attribute("customerid", Kind.TEXT, Place.IDENTITY, "customerid", pixel="customerid"),
    Attribute("rtid", Kind.TEXT, Place.IDENTITY, "other_id_2", pixel="other2"),
    Attribute("session_id", Kind.TEXT, Place.IDENTITY, "other_id_3", pixel="other3"),
    # top level and device
    Attribute("ipaddress", Kind.IP, Place.BATCH, "ip"),
    Attribute("user_agent", Kind.TEXT, Place.DEVICE, "http_header_user_agent"),
    Attribute("ios_advertising_id", Kind.UUID, Place.DEVICE, "ios_advertising_id"),
    Attribute("android_advertising_id", Kind.UUID, Place.DEVICE, "android_advertising_id"),
    Attribute("ios_idfv", Kind.UUID, Place.DEVICE, "ios_idfv"),
    Attribute("android_uuid", Kind.TEXT, Place.DEVICE, "android_uuid"),
    # user attributes
    Attribute("firstname", Kind.NAME, Place.USER, "firstname", "firstnamesha256"),
    Attribute("lastname", Kind.NAME, Place.USER, "lastname", "lastnamesha256"),
    Attribute("mobile", Kind.MOBILE, Place.USER, "mobile", "mobilesha256"),
    Attribute("zip", Kind.ZIP, Place.USER, "zip", "billingzipsha256", "billingzip4sha256"),
    Attribute("dob", Kind.DOB, Place.USER, "dob"),
    *(
        Attribute(name, Kind.TEXT, Place.USER, name)
        for name in ("gender", "age", "city", "state", "title", "language", "value")
    ),
    Attribute("predictedltv", Kind.TEXT, Place.USER, "predictedltv"),
    *(
        Attribute(name, Kind.PREHASHED, Place.USER, name)
        for name in (
            *("firstnamesha256", "lastnamesha256", "mobilesha256"),
            *("billingzipsha256", "billingzip4sha256"),
        )
    ),
    # the event
    Attribute("confirmationref", Kind.REF, Place.EVENT, "confirmationref"),
    Attribute("conversiontype", Kind.TEXT, Place.EVENT, "conversiontype"),
    Attribute("event_time", Kind.TIMESTAMP, None),
    Attribute("amount", Kind.AMOUNT, Place.EVENT, "amount"),
    Attribute("currency", Kind.CURRENCY, Place.EVENT, "currency"),
    Attribute("quantity", Kind.INTEGER, Place.EVENT, "quantity"),
    Attribute("margin", Kind.DECIMAL, Place.EVENT, "margin"),
    *(
        Attribute(name, Kind.TEXT, Place.EVENT, name)
        for name in ("transactionid", "productname", "sku", "paymenttype")
    ),
)

BY_COLUMN = {a.column: a for a in ATTRIBUTES}
HASHABLE = tuple(a.column for a in ATTRIBUTES if a.hashed_key)
DEVICE_IDENTITIES = ("ios_advertising_id", "android_advertising_id", "ios_idfv", "android_uuid")
# Identities that satisfy `mapping.require_email: false` (Segment's rule).
RELAXED_IDENTITIES = ("customerid", "rtid", *DEVICE_IDENTITIES)
PLAIN_PII = ("email", "firstname", "lastname", "mobile", "zip")

# Fixed event fields (docs/attributes.md, "Fixed fields and ids").
EVENT_TYPE = "custom_event"
EVENT_NAME = "conversion"
CUSTOM_EVENT_TYPE = "transaction"

# Limits (the Event API's published limits; docs/attributes.md, "Limits").
MAX_REQUEST_BYTES = 256 * 1024
MAX_BATCH_BYTES = 128 * 1024
MAX_BATCHES_PER_REQUEST = 100
MAX_NAME_CHARS = 256
MAX_VALUE_CHARS = 4096
MAX_USER_ATTRIBUTES = 100
# mParticle's default service limits: "max unique attributes per event: 100".
MAX_EVENT_ATTRIBUTES = 100

# Reason codes, in the order they are checked: a row gets the first that applies.
REASONS: dict[str, str] = {
    "missing_confirmationref": "confirmationref is empty; every conversion needs its order id",
    "missing_event_time": "event_time is empty",
    "invalid_event_time": "event_time is not an ISO 8601 timestamp in the years 1-9999",
    "too_old": (
        "event_time is older than sync.max_event_age (default 30d), which the Event API "
        "does not accept; raise sync.max_event_age only if Rokt confirms your account "
        "takes older events"
    ),
    "future_event_time": (
        "event_time is later than now + sync.max_clock_skew (default 10m): most often a "
        "local time read as UTC; give the offset or a TIMESTAMPTZ"
    ),
    "missing_conversiontype": "conversiontype is empty; select it or set mapping.conversiontype",
    "invalid_email": "email is neither an email address nor a 64-hex SHA-256",
    "invalid_hash": "a *sha256 column is not 64 hex characters",
    "missing_identity": "no email or email_sha256 (or, with require_email: false, no other id)",
    "negative_amount": "amount is negative (a refund is not a conversion)",
    "attribute_name_too_long": f"a column name is longer than {MAX_NAME_CHARS} characters",
    "attribute_value_too_long": f"a value is longer than {MAX_VALUE_CHARS} characters",
    "batch_too_large": f"the batch JSON is larger than {MAX_BATCH_BYTES} bytes",
}
# Field warnings: a bad value in an optional field drops that field and the row is
# sent without it (with `mapping.invalid_fields: reject`, they reject the row).
WARNINGS: dict[str, str] = {
    "invalid_mobile": (
        "mobile is no phone number (North America: 10 digits; else +calling code, or a "
        "number of mapping.phone_region)"
    ),
    "invalid_hash": "a *sha256 user attribute is not 64 hex characters",
    "invalid_ipaddress": "ipaddress is not an IPv4 or IPv6 address",
    "invalid_device_id": "ios_advertising_id, android_advertising_id or ios_idfv is not a UUID",
    "invalid_dob": "dob is not a date (years 1-9999), YYYY-MM-DD or YYYYMMDD",
    "invalid_amount": "amount or margin is not a finite number",
    "invalid_quantity": "quantity is not a non-negative whole number",
    "invalid_currency": "currency is not a 3-letter ISO 4217 code",
}
# What each code means, for messages.
HINTS: dict[str, str] = WARNINGS | REASONS  # REASONS last: its invalid_hash wins
