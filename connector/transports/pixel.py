"""The Rokt Pixel Service transport (`destination.transport: pixel`): one conversion per
`GET {root}/v1/{api_key}/Pixel?dt=AppEvent&et=Transaction&n=conversion&ct=...`, its
identities, user and event attributes as parallel comma lists (docs/transports.md)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import polars as pl

from connector import logs
from connector.config import DestinationConfig
from connector.spec import BY_COLUMN, EXTRA, Group
from connector.transports import query

# ui_t identity types, by canonical column (`other`: the email's SHA-256)
IDENTITY_TYPES = {
    "email_sha256": "other",
    "email": "email",
    "customerid": "customerid",
    "rtid": "other2",
    "session_id": "other3",
}
FIRST_EVENT_ATTRIBUTES = ("conversiontype", "confirmationref")
# The pixel has no place for the device: these columns are not sent.
NOT_CARRIED = tuple(c for c, a in BY_COLUMN.items() if a.group == Group.DEVICE)


UI, UA, ATTRS = ("ui_t", "ui_v"), ("ua_k", "ua_v"), ("attrs_k", "attrs_v")


def lists(frame: pl.DataFrame) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(column, key) of each sent column, by list: identities, user and event attributes."""
    columns = query.sent_columns(frame)
    found: dict[tuple[str, str], list[tuple[str, str]]] = {UI: [], UA: [], ATTRS: []}
    found[ATTRS] = [(c, c) for c in FIRST_EVENT_ATTRIBUTES if c in columns]
    for name in columns:
        group = Group.EVENT if name.startswith(EXTRA) else BY_COLUMN[name].group
        if group == Group.IDENTITY:
            found[UI].append((name, IDENTITY_TYPES[name]))
        elif group == Group.USER:
            found[UA].append((name, name))
        elif group == Group.EVENT and name not in FIRST_EVENT_ATTRIBUTES:
            found[ATTRS].append((name, name.removeprefix(EXTRA)))
    return found


def _pair(
    frame: pl.DataFrame, members: list[tuple[str, str]], names: tuple[str, str], hidden: set[str]
) -> pl.Expr:
    """`<keys>=k1,k2&<values>=v1,v2` of one row's present members (null when none)."""
    keys = pl.concat_str(
        [pl.when(pl.col(c).is_not_null()).then(pl.lit(query.percent(k))) for c, k in members],
        separator=",",
        ignore_nulls=True,
    )
    values = pl.concat_str(
        [query.encoded(query.texts(frame, c), c in hidden) for c, _ in members],
        separator=",",
        ignore_nulls=True,
    )
    return pl.when(keys.str.len_bytes() > 0).then(
        pl.concat_str(pl.lit(f"{names[0]}="), keys, pl.lit(f"&{names[1]}="), values)
    )


def encode(frame: pl.DataFrame, environment: str, url_bytes: int, redact: bool) -> pl.DataFrame:
    """`frame` (valid rows of `transform`) with `_body` (each row's query string),
    `_payload_sha256` and `_request_id`. A row holding a comma in a value is rejected
    `pixel_unsafe_value` (its list could not be split back); one whose URL is over 8 KB
    `url_too_long`."""
    members = lists(frame)
    listed = [c for pairs in members.values() for c, _ in pairs]
    commas = {
        c: frame[c].str.contains(",", literal=True).fill_null(False)
        for c in listed
        if frame[c].dtype == pl.String
    }
    unsafe = {c: int(hit.sum()) for c, hit in commas.items() if hit.any()}
    for column, rows in unsafe.items() if not redact else ():  # shown rows: said before
        name = column.removeprefix(EXTRA)
        logs.event("pixel_unsafe_value", logging.WARNING, column=name, rows=rows)
    hidden = query.hidden_columns(frame, redact)
    dbg = "true" if environment == "development" else "false"
    fixed = pl.concat_str(
        pl.lit("dt=AppEvent&et=Transaction&n=conversion&ct="),
        pl.col("_event_ms").cast(pl.String),
        pl.lit(f"&dbg={dbg}"),
    )
    body = pl.concat_str(
        [fixed, *(_pair(frame, m, n, hidden) for n, m in members.items() if m)],
        separator="&",
        ignore_nulls=True,
    )
    encoded = query.with_bodies(frame, body, url_bytes)
    if not unsafe:
        return encoded
    bad = pl.any_horizontal(commas[c] for c in unsafe)
    return encoded.with_columns(
        pl.when(bad)
        .then(pl.lit("pixel_unsafe_value"))
        .otherwise(pl.col("_reason"))
        .alias("_reason")
    )


class Pixel(query.OneGet):
    """The Rokt Pixel Service of one destination."""

    keys = "destination.api_key"

    def __init__(self, destination: DestinationConfig) -> None:
        super().__init__(destination)
        assert destination.api_key is not None
        key = query.percent(destination.api_key.get_secret_value())
        self.url = f"{destination.root_url}/v1/{key}/Pixel?"
        query.hide_in_httpx_logs(self.url)

    def encode(self, frame: pl.DataFrame, redact: bool = False) -> pl.DataFrame:
        return encode(frame, self.destination.environment, self.url_bytes, redact)

    def notes(self, columns: Sequence[str], hashed: Sequence[str]) -> list[str]:
        left = [c for c in NOT_CARRIED if c in columns]
        if not left:
            return []
        return [f"the pixel has no place for {', '.join(left)}: not sent"]
