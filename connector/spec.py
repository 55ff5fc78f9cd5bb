"""docs/attributes.md as data: every canonical column, what kind of value it holds, and
which canonical column carries its hash.

Owns: the column table, the reason codes (with the hint each one gives the user),
the platform's limits. No transport's names live here: where a column lands in a
request is each transport's own table (`connector/transports/*_fields.py`).
Must not: hold logic that touches rows (that is `transform`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Group(StrEnum):
    """What a column describes; each transport places the groups its own way."""

    IDENTITY = "identity"
    DEVICE = "device"  # the device or browser (ip address, user agent, device ids)
    USER = "user"
    EVENT = "event"


class Kind(StrEnum):
    """How a column is normalized and checked."""

    TEXT = "text"  # trim (exactly what Python's str.strip() removes)
    REF = "ref"  # trim; required dedup key
    EMAIL = "email"  # trim, lowercase; a 64-hex value is a hash
    NAME = "name"  # no whitespace, NFC, lowercase (hashable)
    MOBILE = "mobile"  # trim; its national number for hashing (`phones`)
    ZIP = "zip"  # no whitespace, NFC (hashable; a US ZIP+4 also under `hashed_plus4`)
    PREHASHED = "prehashed"  # lowercase; must be 64 hex
    IP = "ip"  # trim; IPv4 or IPv6
    UUID = "uuid"  # trim; a UUID (the batch schema's device ids)
    DOB = "dob"  # YYYYMMDD
    DECIMAL = "decimal"  # a number
    AMOUNT = "amount"  # a number, not negative
    INTEGER = "integer"  # an integer, not negative
    CURRENCY = "currency"  # 3 letters, uppercase
    TIMESTAMP = "timestamp"  # UTC epoch ms


@dataclass(frozen=True)
class Attribute:
    column: str
    kind: Kind
    group: Group | None  # None: not sent as a value of its own (event_time)
    hashed: str = ""  # the canonical column that carries the SHA-256 of the normalized value
    hashed_plus4: str = ""  # zip: the column of a US ZIP+4's hash (`hashed`: its 5 digits')


ATTRIBUTES: tuple[Attribute, ...] = (
    # identities
    Attribute("email", Kind.EMAIL, Group.IDENTITY, "email_sha256"),
    Attribute("email_sha256", Kind.PREHASHED, Group.IDENTITY),
    Attribute("customerid", Kind.TEXT, Group.IDENTITY),
    Attribute("rtid", Kind.TEXT, Group.IDENTITY),
    Attribute("session_id", Kind.TEXT, Group.IDENTITY),
    # the device
    Attribute("ipaddress", Kind.IP, Group.DEVICE),
    Attribute("user_agent", Kind.TEXT, Group.DEVICE),
    Attribute("ios_advertising_id", Kind.UUID, Group.DEVICE),
    Attribute("android_advertising_id", Kind.UUID, Group.DEVICE),
    Attribute("ios_idfv", Kind.UUID, Group.DEVICE),
    Attribute("android_uuid", Kind.TEXT, Group.DEVICE),
    # user attributes
    Attribute("firstname", Kind.NAME, Group.USER, "firstnamesha256"),
    Attribute("lastname", Kind.NAME, Group.USER, "lastnamesha256"),
    Attribute("mobile", Kind.MOBILE, Group.USER, "mobilesha256"),
    Attribute("zip", Kind.ZIP, Group.USER, "billingzipsha256", "billingzip4sha256"),
    Attribute("dob", Kind.DOB, Group.USER),
    *(
        Attribute(name, Kind.TEXT, Group.USER)
        for name in ("gender", "age", "city", "state", "title", "language", "value")
    ),
    Attribute("predictedltv", Kind.TEXT, Group.USER),
    *(
        Attribute(name, Kind.PREHASHED, Group.USER)
        for name in (
            *("firstnamesha256", "lastnamesha256", "mobilesha256"),
            *("billingzipsha256", "billingzip4sha256"),
        )
    ),
    # the event
    Attribute("confirmationref", Kind.REF, Group.EVENT),
    Attribute("conversiontype", Kind.TEXT, Group.EVENT),
    Attribute("event_time", Kind.TIMESTAMP, None),
    Attribute("amount", Kind.AMOUNT, Group.EVENT),
    Attribute("currency", Kind.CURRENCY, Group.EVENT),
    Attribute("quantity", Kind.INTEGER, Group.EVENT),
    Attribute("margin", Kind.DECIMAL, Group.EVENT),
    *(
        Attribute(name, Kind.TEXT, Group.EVENT)
        for name in ("transactionid", "productname", "sku", "paymenttype")
    ),
)

BY_COLUMN = {a.column: a for a in ATTRIBUTES}
HASHABLE = tuple(a.column for a in ATTRIBUTES if a.hashed)
# An extra column (one the table does not know) travels as an event attribute, under
# this prefix plus its name in a transformed frame.
EXTRA = "extra."
DEVICE_IDENTITIES = ("ios_advertising_id", "android_advertising_id", "ios_idfv", "android_uuid")
# Identities that satisfy `mapping.require_email: false` (Segment's rule).
RELAXED_IDENTITIES = ("customerid", "rtid", *DEVICE_IDENTITIES)
PLAIN_PII = ("email", "firstname", "lastname", "mobile", "zip")

# Limits (the Event API's published limits; docs/attributes.md, "Limits").
MAX_REQUEST_BYTES = 256 * 1024
MAX_BATCH_BYTES = 128 * 1024
MAX_BATCHES_PER_REQUEST = 100
MAX_NAME_CHARS = 256
MAX_VALUE_CHARS = 4096
MAX_USER_ATTRIBUTES = 100
# mParticle's default service limits: "max unique attributes per event: 100".
MAX_EVENT_ATTRIBUTES = 100
# The longest URL a pixel request may have (a common limit of servers and proxies).
MAX_URL_BYTES = 8192

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
    "pixel_unsafe_value": (
        "a value holds a comma, which the pixel's comma lists cannot carry (the log names "
        "the column); change it in the query, or send with transport events_api"
    ),
    "url_too_long": f"the pixel request's URL is longer than {MAX_URL_BYTES} bytes",
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
