"""Event API batch JSON, built column-wise, and packing batches into requests.

Owns: rendering each transformed row as one Event API batch (docs/attributes.md)
with deterministic `source_request_id` (UUIDv5 of the batch's content) and
`source_message_id` (from `transform`), rejecting batches over 128 KB
(`batch_too_large`), and packing batches into request bodies (bulk: at most 100
batches and 256 KB). Must not: loop over rows in Python (JSON is assembled with
polars string expressions), or decide what is sent (that is `transform`'s).
"""

from __future__ import annotations

import json
import uuid
from bisect import bisect_right
from dataclasses import dataclass

import polars as pl

from connector.digest import sha256, uuid5
from connector.pii import plain_outputs
from connector.spec import (
    ATTRIBUTES,
    MAX_BATCH_BYTES,
    MAX_BATCHES_PER_REQUEST,
    MAX_REQUEST_BYTES,
    PLAIN_PII,
    Kind,
)
from connector.transports.base import Request
from connector.transports.events_api_fields import (
    CUSTOM_EVENT_TYPE,
    EVENT_NAME,
    EVENT_TYPE,
    RTID_INTEGRATION,
    RTID_INTEGRATION_KEY,
    Place,
    field,
)

# `source_request_id` = uuid5(NS_REQUEST, payload_sha256), where payload_sha256 is the
# SHA-256 hex of the batch JSON without `source_request_id` (the ledger keeps it too).
NS_REQUEST = uuid.uuid5(uuid.NAMESPACE_URL, "https://rokt-connector.invalid/source_request_id")
REDACTED = "<redacted>"


_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'
# Values that are 64-hex hashes by construction (transform checks or computes them).
_HEX_OUTPUTS = {a.column for a in ATTRIBUTES if a.kind == Kind.PREHASHED}
_JSON_ESCAPES = {"\\": "\\\\", '"': '\\"'} | {chr(c): f"\\u{c:04x}" for c in range(32)}


@dataclass(frozen=True)
class _Value:
    """How one output column is written in JSON, decided once per chunk."""

    expr: pl.Expr  # the text of each value (without quotes); null leaves the key out
    quoted: bool
    solid: bool  # no nulls in this chunk, so it can be fused with its neighbours


def _value(column: pl.Series, redact: bool) -> _Value:
    col = pl.col(column.name)
    solid = column.null_count() == 0
    if redact:
        return _Value(pl.when(col.is_not_null()).then(pl.lit(REDACTED)), True, solid)
    if column.dtype == pl.String:
        if column.name not in _HEX_OUTPUTS and column.str.contains(_NEEDS_ESCAPE).any():
            col = col.str.replace_many(list(_JSON_ESCAPES), list(_JSON_ESCAPES.values()))
        return _Value(col, True, solid)
    if column.dtype == pl.Boolean:
        return _Value(
            pl.when(col).then(pl.lit("true")).when(~col).then(pl.lit("false")), False, solid
        )
    return _Value(col.cast(pl.String), False, solid)


def _key(key: str) -> str:
    return json.dumps(key, ensure_ascii=False) + ":"


def _inner(members: list[tuple[str, _Value]]) -> pl.Expr:
    """The members of a JSON object without braces ("" or null when none is present).

    Keys keep their order. Consecutive members without nulls are fused into one run
    of literals and values; any other member is a piece of its own, left out where
    null. How a row is assembled never changes its bytes.
    """
    pieces: list[pl.Expr] = []
    run: list[pl.Expr] = []
    text = ""
    for key, value in members:
        quote = '"' if value.quoted else ""
        if value.solid:
            run += [pl.lit(text + ("," if run else "") + _key(key) + quote), value.expr]
            text = quote
            continue
        if run:
            pieces.append(pl.concat_str([*run, pl.lit(text)]))
            run, text = [], ""
        pieces.append(pl.concat_str(pl.lit(_key(key) + quote), value.expr, pl.lit(quote)))
    if run:
        pieces.append(pl.concat_str([*run, pl.lit(text)]))
    if len(pieces) == 1:
        return pieces[0]
    return pl.concat_str(pieces, separator=",", ignore_nulls=True) if pieces else pl.lit("")


def _braced(inner: pl.Expr) -> pl.Expr:
    """`{inner}`, or null when `inner` is empty or null (the key is left out)."""
    return pl.when(inner.str.len_bytes() > 0).then(pl.concat_str(pl.lit("{"), inner, pl.lit("}")))


def _batch_json(frame: pl.DataFrame, environment: str, redact: bool) -> pl.DataFrame:
    """One column, `_content`: each row's batch JSON without `source_request_id`.

    Built in two passes so every nested object is rendered once: first the inside of
    each object, then the batch around them.
    """
    places: dict[str, list[tuple[str, _Value]]] = {}
    integration: dict[str, list[tuple[str, _Value]]] = {}
    hidden = set(PLAIN_PII) | plain_outputs(frame) if redact else set()
    for name in frame.columns:
        if name.startswith("_") or frame[name].null_count() == frame.height:
            continue  # an all-null column adds nothing to any batch
        place, key = field(name)
        value = _value(frame[name], name in hidden)
        places.setdefault(place, []).append((key, value))
        if name == "rtid":
            integration.setdefault(RTID_INTEGRATION, []).append((RTID_INTEGRATION_KEY, value))

    objects = [Place.IDENTITY, Place.USER, Place.DEVICE]
    parts = frame.select(
        *(_inner(places.get(place, [])).alias(place) for place in [*objects, Place.EVENT]),
        _inner(places.get(Place.BATCH, [])).alias(Place.BATCH),
        *(_inner(members).alias(f"{Place.INTEGRATION}.{i}") for i, members in integration.items()),
        "_message_id",
        pl.col("_event_ms").cast(pl.String),
    )
    integrations = (
        pl.concat_str(
            [
                pl.concat_str(pl.lit(_key(i)), _braced(pl.col(f"{Place.INTEGRATION}.{i}")))
                for i in integration
            ],
            separator=",",
            ignore_nulls=True,
        )
        if integration
        else pl.lit("")
    )
    event = pl.concat_str(
        pl.lit(
            f'"events":[{{"event_type":{json.dumps(EVENT_TYPE)},"data":{{"event_name":'
            f'{json.dumps(EVENT_NAME)},"custom_event_type":{json.dumps(CUSTOM_EVENT_TYPE)},'
            '"source_message_id":"'
        ),
        pl.col("_message_id"),
        pl.lit('","timestamp_unixtime_ms":'),
        pl.col("_event_ms"),
        pl.lit(f',"{Place.EVENT}":{{'),
        pl.col(Place.EVENT),
        pl.lit("}}}]"),
    )
    batch = pl.concat_str(
        [
            pl.lit("{" + _key("environment") + json.dumps(environment)),
            *(pl.concat_str(pl.lit(_key(place)), _braced(pl.col(place))) for place in objects),
            pl.when(pl.col(Place.BATCH).str.len_bytes() > 0).then(pl.col(Place.BATCH)),
            pl.concat_str(pl.lit(_key(Place.INTEGRATION)), _braced(integrations)),
            pl.concat_str(event, pl.lit("}")),
        ],
        separator=",",
        ignore_nulls=True,
    )
    return parts.select(batch.alias("_content"))


def with_request_ids(work: pl.DataFrame) -> pl.DataFrame:
    """`work`, whose `_content` is each batch's JSON without `source_request_id`, with
    `_payload_sha256` (its SHA-256), `_request_id` (UUIDv5 of that) and `_body` (the
    batch with `source_request_id` first)."""
    work = work.with_columns(sha256(pl.col("_content")).alias("_payload_sha256"))
    work = work.with_columns(uuid5(work["_payload_sha256"], NS_REQUEST).alias("_request_id"))
    body = pl.concat_str(
        pl.lit('{"source_request_id":"'),
        pl.col("_request_id"),
        pl.lit('",'),
        pl.col("_content").str.slice(1),
    )
    return work.with_columns(body.alias("_body"))


def encode(frame: pl.DataFrame, environment: str, redact: bool = False) -> pl.DataFrame:
    """`frame` (valid rows of `transform`) with `_body` (the batch JSON of each row),
    `_payload_sha256` and `_request_id` (its `source_request_id`).

    A batch over 128 KB gets `_reason = batch_too_large`. With `redact`, plain-text
    PII (fields not in `mapping.hash`, extra columns in `mapping.allow_plain`) shows as
    "<redacted>", for printing.
    """
    if frame.is_empty():
        return frame.with_columns(
            pl.lit(None, pl.String).alias(c) for c in ("_body", "_payload_sha256", "_request_id")
        )
    work = with_request_ids(_batch_json(frame, environment, redact))
    with_body = frame.with_columns(
        work.select("_body", "_payload_sha256", "_request_id").get_columns()
    )
    too_large = pl.col("_body").str.len_bytes() > MAX_BATCH_BYTES
    return with_body.with_columns(
        pl.when(too_large)
        .then(pl.lit("batch_too_large"))
        .otherwise(pl.col("_reason"))
        .alias("_reason")
    )


class JsonRequest(Request):
    """An Event API request, which can make its body (`request_body`)."""

    def body(self, bodies: pl.Series) -> bytes:
        """This request's body, out of `bodies` (the batch JSON of the frame's rows)."""
        return request_body(bodies.slice(self.start, self.batches), self.bulk)


def request_body(bodies: pl.Series, bulk: bool = True) -> bytes:
    """The body of a request carrying `bodies` (batch JSON, in order): a JSON array of
    them (bulk), or the one batch as it is."""
    texts: list[bytes] = bodies.cast(pl.Binary).to_list()
    if not bulk:
        [text] = texts
        return text
    return b"[" + b",".join(texts) + b"]"


def pack(
    bodies: pl.Series,
    bulk: bool = True,
    max_batches: int = MAX_BATCHES_PER_REQUEST,
    max_bytes: int = MAX_REQUEST_BYTES,
) -> list[JsonRequest]:
    """The requests that carry `bodies` (batch JSON, in order).

    Bulk: a JSON array of as many consecutive batches as fit in `max_batches` and
    `max_bytes` (greedy, order kept). Otherwise one batch per request. Every batch
    must already fit alone (`encode` rejects larger ones). Python only walks the
    request boundaries; the bytes of a body are joined when it is sent, so a chunk's
    bodies never all exist twice (as polars text and as Python bytes) at once.
    """
    if bodies.is_empty():
        return []
    sizes = bodies.str.len_bytes().cast(pl.Int64)
    if not bulk:
        return [JsonRequest(i, i + 1, size, bulk=False) for i, size in enumerate(sizes.to_list())]
    # ends[i]: bytes of batches 0..i, each with the "," or "]" that follows it
    ends = (sizes + 1).cum_sum().to_list()
    requests: list[JsonRequest] = []
    start = 0
    while start < len(ends):
        base = ends[start - 1] if start else 0
        last = min(start + max_batches, len(ends))
        stop = max(start + 1, bisect_right(ends, base + max_bytes - 1, start, last))  # and "["
        requests.append(JsonRequest(start, stop, 1 + ends[stop - 1] - base))
        start = stop
    return requests
