"""The RudderStack Pixel API transport (`destination.transport: rudderstack_pixel`): one
conversion per `GET {base_url}/pixel/v1/track?writeKey=...`, each column under the key
RudderStack's own Rokt destination reads it from (docs/transports.md)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import replace

import httpx
import polars as pl

from connector.config import DestinationConfig
from connector.digest import uuid5
from connector.errors import SourceError
from connector.spec import BY_COLUMN, EXTRA
from connector.transports import query
from connector.transports.base import Outcome

PATH = "/pixel/v1/track"
GATEWAY_ACCEPTED = "accepted by RudderStack's gateway (it answers 200 whatever becomes of an event)"
# Where RudderStack's Rokt destination reads each column (its ROKTConfig.json mapping).
READ_BY_ROKT = {
    "customerid": "userId",
    "email": "context.traits.email",
    "rtid": "properties.rtid",
    "ipaddress": "context.ip",
    "user_agent": "context.userAgent",
    "ios_advertising_id": "context.traits.iosAdvertisingId",
    "android_advertising_id": "context.traits.androidAdvertisingId",
    "firstname": "context.traits.firstName",
    "firstnamesha256": "context.traits.firstNameSha256",
    "lastname": "context.traits.lastName",
    "lastnamesha256": "context.traits.lastNameSha256",
    "mobile": "context.traits.phone",
    "mobilesha256": "context.traits.phoneSha256",
    "age": "context.traits.age",
    "dob": "context.traits.birthday",
    "gender": "context.traits.gender",
    "city": "context.traits.address.city",
    "state": "context.traits.address.state",
    "zip": "context.traits.address.postalCode",
    "title": "context.traits.title",
    "language": "context.traits.language",
    "value": "properties.value",
    "predictedltv": "properties.predictedLtv",
    "confirmationref": "properties.order_id",
    "conversiontype": "properties.conversiontype",
    "amount": "properties.amount",
    "currency": "properties.currency",
}
# Not sent: the session id is the anonymousId; that destination reads no hashed email.
NOT_SENT = ("session_id", "email_sha256")
# anonymousId without a session id: uuid5(NS_ANONYMOUS, the hashed identity).
NS_ANONYMOUS = uuid.uuid5(uuid.NAMESPACE_URL, "https://rokt-connector.invalid/anonymous_id")
# A name rudder-server's JSON paths (sjson) would read as more than one plain key.
_PATH_LIKE = re.compile(r"[.*?|#@\\:]|^[0-9]+$|^-")


def key(name: str) -> str:
    """The query key a transformed frame's column is sent under (`properties.<name>`
    when the Rokt destination reads it nowhere)."""
    return READ_BY_ROKT.get(name) or f"properties.{name.removeprefix(EXTRA)}"


def _anonymous_id(frame: pl.DataFrame) -> pl.Series:
    """The session id, else a UUIDv5 of the first identity (the email's SHA-256 before a
    customer id, an RTID or a device id): stable per person, never raw PII."""
    ids = [
        c
        for c in (
            "customerid",
            "rtid",
            "ios_advertising_id",
            "android_advertising_id",
            "ios_idfv",
            "android_uuid",
        )
        if c in frame.columns
    ]
    identity = frame.select(
        pl.coalesce(
            pl.col("_identity_sha256"),
            *(pl.concat_str(pl.lit(f"{c}:"), pl.col(c).cast(pl.String)) for c in ids),
            pl.concat_str(pl.lit("message:"), pl.col("_message_id")),
        )
    ).to_series()
    anonymous = uuid5(identity, NS_ANONYMOUS)
    if "session_id" not in frame.columns:
        return anonymous
    return frame["session_id"].fill_null(anonymous)


def encode(frame: pl.DataFrame, event: str, url_bytes: int, redact: bool) -> pl.DataFrame:
    """`frame` (valid rows of `transform`) with `_body` (each row's query string without
    the write key), `_payload_sha256` and `_request_id`; a row whose URL is over 8 KB is
    rejected `url_too_long`."""
    columns = [c for c in query.sent_columns(frame) if c not in NOT_SENT]
    for name in columns:
        if name.startswith(EXTRA) and _PATH_LIKE.search(name.removeprefix(EXTRA)):
            raise SourceError(
                f"column {name.removeprefix(EXTRA)}: RudderStack reads a dot, *, ?, |, #, @, "
                "\\ or : in a key (or a key of digits) as a JSON path; rename it in the query "
                "(AS a plain name)"
            )
    hidden = query.hidden_columns(frame, redact)
    pairs = [
        pl.concat_str(pl.lit("anonymousId="), query.encoded(_anonymous_id(frame))),
        pl.lit("event=" + query.percent(event)),
        pl.concat_str(pl.lit("messageId="), pl.col("_message_id")),
        pl.concat_str(
            pl.lit("originalTimestamp="),
            pl.from_epoch("_event_ms", "ms").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
        ),
        *(
            pl.concat_str(
                pl.lit(query.percent(key(c)) + "="),
                query.encoded(query.texts(frame, c), c in hidden),
            )
            for c in columns
        ),
    ]
    body = pl.concat_str(pairs, separator="&", ignore_nulls=True)
    return query.with_bodies(frame, body, url_bytes)


class RudderStack(query.OneGet):
    """The RudderStack Pixel API of one destination; what its gateway accepted is all
    that can be known: it answers 200 whatever became of the event."""

    keys = "destination.write_key"

    def __init__(self, destination: DestinationConfig) -> None:
        super().__init__(destination)
        assert destination.write_key is not None
        write_key = query.percent(destination.write_key.get_secret_value())
        self.url = f"{destination.root_url}{PATH}?writeKey={write_key}&"
        query.hide_in_httpx_logs(f"{destination.root_url}{PATH}")

    def encode(self, frame: pl.DataFrame, redact: bool = False) -> pl.DataFrame:
        return encode(frame, self.destination.event, self.url_bytes, redact)

    def classify(self, response: httpx.Response | None, error: Exception | None) -> Outcome:
        outcome = super().classify(response, error)
        if outcome.action != "accept":
            return outcome
        return replace(outcome, message=GATEWAY_ACCEPTED)  # the ledger's attempt says so

    def notes(self, columns: Sequence[str], hashed: Sequence[str]) -> list[str]:
        notes = [
            "RudderStack's gateway answers 200 whatever becomes of a request, a wrong "
            "write key included: `accepted` means accepted by the gateway, not by Rokt; "
            "look for the events in RudderStack's Live Events and the Rokt destination"
        ]
        if "email" in hashed and ({"email", "email_sha256"} & set(columns)):
            notes.append(
                "no email is sent: RudderStack's Rokt destination reads only a plain email "
                "(context.traits.email), and mapping.hash hashes it; to send it plain, "
                "remove email from mapping.hash and list it under mapping.allow_plain"
            )
        unread = [c for c in columns if c in BY_COLUMN and c not in READ_BY_ROKT]
        unread = [c for c in unread if c not in NOT_SENT and c != "event_time"]
        if unread:
            notes.append(
                f"sent as properties that RudderStack's Rokt destination does not read: "
                f"{', '.join(unread)}"
            )
        return notes
