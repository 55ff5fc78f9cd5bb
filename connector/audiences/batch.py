"""Audience batches, built column-wise: a member's identities as the Event API batch
carries them (`identities_json`, hashed by `transform` as for conversions), and one
batch per member with a boolean user attribute and an `audiencemembershipupdate` event
per change (`encode`). Must not loop over members in Python."""

from __future__ import annotations

import json

import polars as pl

from connector.spec import EXTRA
from connector.transports.events_api_fields import (
    AUDIENCE_EVENT_NAME,
    AUDIENCE_EVENT_TYPE,
    Place,
    field,
)
from connector.transports.events_api_json import (
    _JSON_ESCAPES,
    _braced,
    _inner,
    _key,
    _Value,
    _value,
    with_request_ids,
)

# How many audience changes of one member share a batch: their flags and the query's
# attributes (members.MAX_QUERY_ATTRIBUTES) stay within the 100 user attributes.
AUDIENCES_PER_BATCH = 50
_MEMBER_PLACES = (Place.IDENTITY, Place.DEVICE, Place.BATCH)


def _placed(frame: pl.DataFrame) -> dict[Place, list[tuple[str, _Value]]]:
    """The values of a transformed frame by place (an extra column: a user attribute
    under its own name; an all-null column left out)."""
    places: dict[Place, list[tuple[str, _Value]]] = {}
    for name in frame.columns:
        if name.startswith("_") or frame[name].null_count() == frame.height:
            continue
        place, key = field(name)
        if name.startswith(EXTRA):
            place = Place.USER
        places.setdefault(place, []).append((key, _value(frame[name], False)))
    return places


def identities_json(frame: pl.DataFrame) -> pl.Expr:
    """`"user_identities":{...},"device_info":{...},"ip":"..."` of each row of a
    transformed frame (a place without values left out; null when the row has none)."""
    places = _placed(frame)
    pieces = [
        _inner(places[place])
        if place == Place.BATCH
        else pl.concat_str(pl.lit(_key(place)), _braced(_inner(places[place])))
        for place in _MEMBER_PLACES
        if place in places
    ]
    if not pieces:
        return pl.lit(None, pl.String)
    return pl.concat_str(pieces, separator=",", ignore_nulls=True).replace("", None)


def attributes_json(frame: pl.DataFrame) -> pl.Expr:
    """The members of `user_attributes` (without braces) each row of a transformed frame
    carries, null when none: its user attributes and extra columns."""
    members = _placed(frame).get(Place.USER)
    return _inner(members).replace("", None) if members else pl.lit(None, pl.String)


def _escaped(expr: pl.Expr) -> pl.Expr:
    """A text column's JSON string content (without quotes)."""
    return expr.str.replace_many(list(_JSON_ESCAPES), list(_JSON_ESCAPES.values()))


def encode(changes: pl.DataFrame, environment: str, prefix: str) -> pl.DataFrame:
    """One batch per member of `changes` (`change_id`, `audience`, `member_key`,
    `action`, `identities`, `attributes`, `event_ms`, `sent_in`; more than
    AUDIENCES_PER_BATCH changes of a member: a batch for each so many, a resent change:
    the batch it was first sent in): `member_key`, `change_ids` (its changes, by
    audience), `_body`, `_payload_sha256` and `_request_id` (its `source_request_id`,
    UUIDv5 of the batch without it, as for conversions)."""
    event = pl.concat_str(
        pl.lit(
            f'{{"event_type":"custom_event","data":{{"event_name":{json.dumps(AUDIENCE_EVENT_NAME)},'
            f'"custom_event_type":{json.dumps(AUDIENCE_EVENT_TYPE)},"source_message_id":"'
        ),
        pl.col("change_id"),
        pl.lit('","timestamp_unixtime_ms":'),
        pl.col("event_ms").cast(pl.String),
        pl.lit(',"custom_attributes":{"audience_name":"'),
        _escaped(pl.col("audience")),
        pl.lit('","status":"'),
        pl.col("action"),
        pl.lit('"}}}'),
    )
    attribute = pl.concat_str(
        pl.lit('"'),
        _escaped(pl.lit(prefix) + pl.col("audience")),
        pl.lit('":'),
        pl.when(pl.col("action") == "add").then(pl.lit("true")).otherwise(pl.lit("false")),
    )
    # a resent change goes in its first batch again (`sent_in`): the same bytes, the same
    # source_request_id, while all of that batch's changes are resent
    group = ["member_key", "sent_in"]
    part = (pl.int_range(pl.len()).over(group) // AUDIENCES_PER_BATCH).cast(pl.String)
    members = (
        changes.sort("member_key", "audience")
        .with_columns(
            pl.coalesce("sent_in", pl.concat_str("member_key", pl.lit("\x1f"), part)).alias(
                "_batch"
            ),
            pl.col("attributes").drop_nulls().first().over(group),
        )
        .group_by("member_key", "_batch", maintain_order=True)
        .agg(
            pl.col("identities").first(),
            pl.col("attributes").first(),
            pl.col("change_id").alias("change_ids"),
            event.str.join(",").alias("_events"),
            attribute.str.join(",").alias("_attributes"),
        )
    )
    content = pl.concat_str(
        pl.lit("{" + _key("environment") + json.dumps(environment) + ","),
        pl.col("identities"),
        pl.lit(',"user_attributes":{'),
        pl.concat_str(pl.col("attributes"), pl.lit(",")).fill_null(""),
        pl.col("_attributes"),
        pl.lit('},"events":['),
        pl.col("_events"),
        pl.lit("]}"),
    )
    work = with_request_ids(members.select("member_key", "change_ids", content.alias("_content")))
    return work.select("member_key", "change_ids", "_body", "_payload_sha256", "_request_id")
