"""Classify, normalize, check and hash one chunk of canonical rows, all vectorized.

Owns: turning a source chunk (canonical column names, any scalar types) into a frame
of payload-ready values named `<place>.<key>` (see `spec.Place`), plus the columns
the ledger needs (`_ref`, `_event_ms`, `_identity_sha256`, ...), `_reason`: the
first reason code (`spec.REASONS`) that rejects the row, or null for a valid row, and
`_warnings`: the field warnings (`spec.WARNINGS`) of the fields it dropped.
Every timestamp becomes UTC epoch milliseconds here and nowhere else; a naive
timestamp is UTC. Must not: loop over rows in Python, send or store anything, or
leave a hashed field's plain value in any output column.
"""

from __future__ import annotations

import re
import sys
import unicodedata
import uuid
from dataclasses import dataclass
from functools import cache

import polars as pl

from connector import pii
from connector.config import MappingConfig, UnknownColumns
from connector.digest import sha256, uuid5
from connector.errors import SourceError
from connector.phones import national_numbers
from connector.spec import (
    ATTRIBUTES,
    BY_COLUMN,
    MAX_EVENT_ATTRIBUTES,
    MAX_NAME_CHARS,
    MAX_VALUE_CHARS,
    REASONS,
    RELAXED_IDENTITIES,
    RTID_INTEGRATION,
    RTID_INTEGRATION_KEY,
    WARNINGS,
    Attribute,
    Kind,
    Place,
)

# UUIDv5 namespace of `data.source_message_id` = uuid5(NS_MESSAGE, "<environment>:<ref>").
NS_MESSAGE = uuid.uuid5(uuid.NAMESPACE_URL, "https://rokt-connector.invalid/source_message_id")

HEX64 = r"^[0-9a-fA-F]{64}$"
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
ZIP_PLUS4 = r"^[0-9]{5}-[0-9]{4}$"


@cache
def _decimals() -> dict[str, str]:
    """Every non-ASCII decimal digit (Unicode category Nd) and the ASCII digit it means
    (built on first need: scanning all of Unicode takes a noticeable part of a second)."""
    return {
        chr(c): str(unicodedata.decimal(chr(c)))
        for c in range(0x80, sys.maxunicode + 1)
        if unicodedata.category(chr(c)) == "Nd"
    }


UUID = r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"
NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"^({_OCTET}\.){{3}}{_OCTET}$"
_H = r"[0-9A-Fa-f]{1,4}"
_V4TAIL = rf"({_OCTET}\.){{3}}{_OCTET}"
IPV6 = (
    r"^("
    rf"({_H}:){{7}}{_H}"
    rf"|({_H}:){{1,7}}:"
    rf"|({_H}:){{1,6}}:{_H}"
    rf"|({_H}:){{1,5}}(:{_H}){{1,2}}"
    rf"|({_H}:){{1,4}}(:{_H}){{1,3}}"
    rf"|({_H}:){{1,3}}(:{_H}){{1,4}}"
    rf"|({_H}:){{1,2}}(:{_H}){{1,5}}"
    rf"|{_H}:(:{_H}){{1,6}}"
    rf"|:((:{_H}){{1,7}}|:)"
    rf"|({_H}:){{6}}{_V4TAIL}"
    rf"|::(ffff(:0{{1,4}})?:)?{_V4TAIL}"
    rf"|({_H}:){{1,5}}:{_V4TAIL}"
    rf"|({_H}:){{1,4}}:({_H}:){{0,1}}{_V4TAIL}"
    rf"|({_H}:){{1,3}}:({_H}:){{0,2}}{_V4TAIL}"
    rf"|({_H}:){{1,2}}:({_H}:){{0,3}}{_V4TAIL}"
    rf"|{_H}::({_H}:){{0,4}}{_V4TAIL}"
    rf"|::({_H}:){{0,5}}{_V4TAIL}"
    r")$"
)
_TIMESTAMP_AWARE = ("%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%:z", "%Y-%m-%dT%H:%M%:z")
_TIMESTAMP_NAIVE = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M")
# A rejected row's reason: the first of these that applies (field warnings reject
# rows only with `mapping.invalid_fields: reject`).
_CODES = tuple(dict.fromkeys((*REASONS, *WARNINGS)))
_EVENT_COLUMNS = [a.column for a in ATTRIBUTES if a.place == Place.EVENT]
# Years 1-9999 in UTC epoch ms: a timestamp or dob outside them (DuckDB's 'infinity'
# included) has no ISO 8601 / YYYYMMDD form and is no time anything happened.
_FIRST_MS, _LAST_MS = -62_135_596_800_000, 253_402_300_799_999

# The type of a column the query lacks, so checks on it still type-check.
_ABSENT_DTYPE: dict[Kind, pl.DataType] = {
    Kind.DECIMAL: pl.Float64(),
    Kind.AMOUNT: pl.Float64(),
    Kind.INTEGER: pl.Int64(),
    Kind.TIMESTAMP: pl.Int64(),
}

META = (
    "_row",
    "_ref",
    "_reason",
    "_warnings",
    "_event_ms",
    "_message_id",
    "_identity_sha256",
    "_conversiontype",
    "_amount",
    "_currency",
)


def out_name(place: Place | str, key: str) -> str:
    return f"{place}.{key}"


# What Python's str.strip() removes (Unicode White_Space plus \x1c-\x1f): "trim" in
# docs/attributes.md means exactly this, so anyone can reproduce a hash with .strip().
# Spelled out (a test checks it against str.isspace over all of Unicode).
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


_SPACE = f"[{re.escape(WHITESPACE)}]"


@dataclass(frozen=True)
class _Texts:
    """What one chunk's text columns hold, so each pays only for the work it needs."""

    ascii: frozenset[str]  # every value ASCII, which Unicode NFC leaves as it is
    bare: frozenset[str]  # no whitespace in any value: nothing to trim or remove

    @classmethod
    def of(cls, chunk: pl.DataFrame, skip: str | None = None) -> _Texts:
        """What the text columns of `chunk` hold (`skip`: one the caller has already)."""
        schema = chunk.schema
        strings = [chunk[n] for n, dtype in schema.items() if dtype == pl.String and n != skip]
        hashable = {a.column for a in ATTRIBUTES if a.kind in (Kind.EMAIL, Kind.NAME, Kind.ZIP)}
        ascii = {c.name for c in strings if c.name in hashable and _is_ascii(c)}
        bare = {c.name for c in strings if not c.str.contains_any(list(WHITESPACE)).any()}
        return cls(frozenset(ascii), frozenset(bare))


_NO_TEXTS = _Texts(frozenset(), frozenset())


def _text(column: str, texts: _Texts = _NO_TEXTS) -> pl.Expr:
    """A column as trimmed text (what `str.strip()` removes), null where blank."""
    text = pl.col(column).cast(pl.String)
    if column not in texts.bare:
        text = text.str.strip_chars(WHITESPACE)
    return text.replace("", None)


def _unspaced(column: str, texts: _Texts) -> pl.Expr:
    """Every whitespace character removed, then Unicode NFC."""
    text = _text(column, texts)
    if column not in texts.bare:
        text = text.str.replace_all(_SPACE, "")
    return text if column in texts.ascii else text.str.normalize("NFC")


def _is_ascii(column: pl.Series) -> bool:
    """Whether every value of a text column is ASCII (one byte per character)."""
    if column.dtype != pl.String:
        return True
    return bool(column.str.len_bytes().sum() == column.str.len_chars().sum())


def _n(column: str) -> pl.Expr:
    return pl.col(f"_n.{column}")


def _bad(column: str) -> pl.Expr:
    return pl.col(f"_bad.{column}")


def _is_hex(column: pl.Series) -> pl.Expr:
    """Which values of a normalized column are 64-hex hashes (no regex for a column
    with no value of 64 characters)."""
    if not (column.dtype == pl.String and (column.str.len_bytes() == 64).any()):
        return pl.lit(False)
    return pl.col(column.name).str.contains(HEX64).fill_null(False)


def _is_float(dtype: pl.DataType) -> bool:
    return dtype in (pl.Float32, pl.Float64)


def _parse_number(column: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    """(value, bad) for a JSON-number column; the value keeps an exact numeric dtype."""
    col = pl.col(column)
    if dtype.is_integer() or isinstance(dtype, pl.Decimal):
        return col, pl.lit(False)
    if _is_float(dtype):
        return col, (col.is_not_null() & ~col.is_finite()).fill_null(False)
    text = _text(column)
    number = text.cast(pl.Float64, strict=False)
    good = (text.str.contains(NUMBER) & number.is_finite()).fill_null(False)
    return pl.when(good).then(number), text.is_not_null() & ~good


def _parse_integer(column: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    col = pl.col(column)
    if dtype.is_integer():
        value = col.cast(pl.Int64, strict=False)
        good = (value >= 0).fill_null(False)
    elif _is_float(dtype) or isinstance(dtype, pl.Decimal):
        number = col.cast(pl.Float64)
        good = number.is_finite() & (number == number.floor()) & number.is_between(0, 2**53)
        good = good.fill_null(False)
        value = number.cast(pl.Int64, strict=False)
    else:
        text = _text(column)
        good = text.str.contains(r"^\+?[0-9]{1,18}$").fill_null(False)
        value = text.str.strip_prefix("+").cast(pl.Int64, strict=False)
    return pl.when(good).then(value), col.is_not_null() & ~good


def _is_scalar(dtype: pl.DataType) -> bool:
    scalars = (pl.String, pl.Boolean, pl.Null, pl.Categorical, pl.Enum)
    return dtype.is_numeric() or dtype.is_temporal() or isinstance(dtype, scalars)


def _parse_dob(column: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    col = pl.col(column)
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        ms = (col if isinstance(dtype, pl.Datetime) else col.cast(pl.Datetime("ms"))).dt.epoch("ms")
        in_range = ms.is_between(_FIRST_MS, _LAST_MS)
        day: pl.Expr = pl.when(in_range).then(col)  # masked: polars panics formatting the rest
        day = day.dt.date() if isinstance(dtype, pl.Datetime) else day
        return day.dt.strftime("%Y%m%d"), col.is_not_null() & ~in_range
    text = _text(column)
    date = pl.coalesce(
        pl.when(text.str.contains(r"^[0-9]{4}-[0-9][0-9]-[0-9][0-9]$")).then(
            text.str.to_date("%Y-%m-%d", strict=False)
        ),
        pl.when(text.str.contains(r"^[0-9]{8}$")).then(text.str.to_date("%Y%m%d", strict=False)),
    )
    return date.dt.strftime("%Y%m%d"), text.is_not_null() & date.is_null()


def _parse_timestamp(column: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    """(UTC epoch ms, bad). Aware values convert to UTC; naive ones are UTC. Offsets:
    `Z`, `+hh:mm`, `+hhmm` and `+hh` after a time (DuckDB and Postgres render a
    TIMESTAMPTZ as text `2026-11-10 14:03:22+00`)."""
    col = pl.col(column)
    if isinstance(dtype, pl.Datetime):
        utc = col.dt.convert_time_zone("UTC") if dtype.time_zone else col
        return utc.dt.epoch("ms"), pl.lit(False)
    if dtype == pl.Date:
        return col.cast(pl.Datetime("ms")).dt.epoch("ms"), pl.lit(False)
    if dtype not in (pl.String, pl.Null):
        raise SourceError(
            f"column event_time has type {dtype}; return a TIMESTAMP, TIMESTAMPTZ, DATE or "
            "ISO 8601 text (for epoch numbers use to_timestamp(x) or epoch_ms(x) in the SQL)"
        )
    # the forms the formats read: a `T` after the date, `+00:00` for `Z`, `+hh:00` for
    # `+hh` after a time (`%:z` reads `+hhmm` as it is)
    text = (
        _text(column)
        .str.replace(r"^([0-9]{4}-[0-9][0-9]-[0-9][0-9])[ T]", "${1}T")
        .str.replace(r"[Zz]$", "+00:00")
        .str.replace(r"(:[0-9][0-9](?:\.[0-9]+)?[+-][0-9][0-9])$", "${1}:00")
    )
    parsed = pl.coalesce(
        *(text.str.to_datetime(f, strict=False, time_unit="ms") for f in _TIMESTAMP_AWARE),
        *(
            text.str.to_datetime(f, strict=False, time_unit="ms").dt.replace_time_zone("UTC")
            for f in _TIMESTAMP_NAIVE
        ),
        text.str.to_date("%Y-%m-%d", strict=False)
        .cast(pl.Datetime("ms"))
        .dt.replace_time_zone("UTC"),
    )
    return parsed.dt.epoch("ms"), text.is_not_null() & parsed.is_null()


def _normalize(attribute: Attribute, dtype: pl.DataType, texts: _Texts) -> list[pl.Expr]:
    """Pass 1: `_n.<col>`, the normalized value, and `_bad.<col>`: present but unparseable."""
    column, kind = attribute.column, attribute.kind
    bad: pl.Expr = pl.lit(False)
    value: pl.Expr
    if kind == Kind.EMAIL:
        text = _text(column, texts)
        value = (text if column in texts.ascii else text.str.normalize("NFC")).str.to_lowercase()
    elif kind == Kind.NAME:
        value = _unspaced(column, texts).str.to_lowercase()
    elif kind == Kind.ZIP:
        value = _unspaced(column, texts)
    elif kind == Kind.PREHASHED:
        value = _text(column, texts).str.to_lowercase()
    elif kind == Kind.CURRENCY:
        text = _text(column, texts)
        value = text.str.to_uppercase()
        bad = text.is_not_null() & ~text.str.contains(r"^[A-Za-z]{3}$")
    elif kind in (Kind.DECIMAL, Kind.AMOUNT):
        value, bad = _parse_number(column, dtype)
    elif kind == Kind.INTEGER:
        value, bad = _parse_integer(column, dtype)
    elif kind == Kind.DOB:
        value, bad = _parse_dob(column, dtype)
    elif kind == Kind.TIMESTAMP:
        ms, bad = _parse_timestamp(column, dtype)
        in_range = ms.is_between(_FIRST_MS, _LAST_MS)
        value, bad = pl.when(in_range).then(ms), bad | (ms.is_not_null() & ~in_range)
    else:
        value = _text(column, texts)
    return [value.alias(f"_n.{column}"), bad.fill_null(False).alias(f"_bad.{column}")]


def _hash(attribute: Attribute, hashed: bool) -> list[pl.Expr]:
    """Pass 1b, over pass 1's columns (with `_hex.<col>`: the value is already a
    SHA-256, `_nat.mobile`: the mobile's national number, and `_ok.email`: the email
    is an address): `_h.<col>`, SHA-256 of
    the text Rokt hashes for a value to be hashed (`_h4.zip`: a US ZIP+4's whole)."""
    column, kind = attribute.column, attribute.kind
    if not (attribute.hashed_key or kind == Kind.PREHASHED):
        return []
    value, is_hex = _n(column), pl.col(f"_hex.{column}")
    prehash: pl.Expr | None = None
    if kind == Kind.EMAIL:  # always hashed: the ledger's identity_sha256
        prehash = pl.when(pl.col("_ok.email") & ~is_hex).then(value)
    elif kind == Kind.MOBILE and hashed:
        prehash = pl.when(~is_hex).then(pl.col("_nat.mobile"))
    elif kind == Kind.ZIP and hashed:
        plus4 = value.str.contains(ZIP_PLUS4).fill_null(False)
        zip5 = pl.when(plus4).then(value.str.slice(0, 5)).otherwise(value)
        return [
            sha256(pl.when(~is_hex).then(zip5)).alias(f"_h.{column}"),
            sha256(pl.when(plus4).then(value)).alias(f"_h4.{column}"),
        ]
    elif attribute.hashed_key and hashed:
        prehash = pl.when(~is_hex).then(value)
    return [] if prehash is None else [sha256(prehash).alias(f"_h.{column}")]


class _Outputs:
    """Pass 3: payload values by `<place>.<key>`, the checks that reject rows and the
    field warnings that drop a value (`drop`; else they reject the row too)."""

    def __init__(self, drop: bool) -> None:
        self.drop = drop
        self.values: dict[str, pl.Expr] = {}
        self.checks: dict[str, list[pl.Expr]] = {}
        self.warnings: dict[str, list[pl.Expr]] = {}

    def put(self, place: Place | str, key: str, value: pl.Expr) -> None:
        name = out_name(place, key)
        previous = self.values.get(name)
        self.values[name] = value if previous is None else pl.coalesce(previous, value)

    def value(self, column: str) -> pl.Expr:
        """What is sent for a canonical column (null where dropped)."""
        attribute = BY_COLUMN[column]
        assert attribute.place is not None
        return self.values[out_name(attribute.place, attribute.key)]

    def reject(self, reason: str, condition: pl.Expr) -> None:
        self.checks.setdefault(reason, []).append(condition.fill_null(False))

    def bad_field(self, code: str, condition: pl.Expr, value: pl.Expr) -> pl.Expr:
        """`value`, left out where `condition` holds (a field warning), or kept for a
        row that `mapping.invalid_fields: reject` rejects."""
        condition = condition.fill_null(False)
        (self.warnings if self.drop else self.checks).setdefault(code, []).append(condition)
        return pl.when(~condition).then(value) if self.drop else value


def _field_check(attribute: Attribute, value: pl.Expr) -> tuple[str, pl.Expr] | None:
    """(warning code, bad) of an optional field whose bad value drops the field."""
    column, kind = attribute.column, attribute.kind
    codes = {
        Kind.IP: "invalid_ipaddress",
        Kind.CURRENCY: "invalid_currency",
        Kind.DOB: "invalid_dob",
        Kind.DECIMAL: "invalid_amount",
        Kind.AMOUNT: "invalid_amount",
        Kind.INTEGER: "invalid_quantity",
    }
    if kind == Kind.IP:
        ip_ok = value.str.contains(IPV4) | value.str.contains(IPV6)
        return codes[kind], value.is_not_null() & ~ip_ok
    if kind == Kind.UUID:
        return "invalid_device_id", value.is_not_null() & ~value.str.contains(UUID)
    if kind in codes:
        return codes[kind], _bad(column)
    return None


def _place(attribute: Attribute, hashed: set[str], out: _Outputs) -> None:
    column, kind, place = attribute.column, attribute.kind, attribute.place
    assert place is not None
    value = _n(column)
    is_hex = pl.col(f"_hex.{column}")  # exists for the hashable and pre-hashed columns
    if kind == Kind.EMAIL:
        hashed_email = pl.when(is_hex).then(value).otherwise(pl.col(f"_h.{column}"))
        if column in hashed:
            out.put(place, attribute.hashed_key, hashed_email)
        else:
            out.put(place, attribute.hashed_key, pl.when(is_hex).then(value))
            out.put(place, attribute.key, pl.when(~is_hex).then(value))
        out.reject("invalid_email", value.is_not_null() & ~is_hex & ~pl.col("_ok.email"))
    elif attribute.hashed_key:
        as_hash = value if kind == Kind.NAME else value.str.to_lowercase()  # names: already
        plain: pl.Expr = pl.when(~is_hex).then(value)
        if kind == Kind.MOBILE:  # a mobile that is no number has no hash either
            not_phone = value.is_not_null() & ~is_hex & pl.col("_nat.mobile").is_null()
            plain = out.bad_field("invalid_mobile", not_phone, plain)
        if column in hashed:
            hashed_value = pl.when(is_hex).then(as_hash).otherwise(pl.col(f"_h.{column}"))
            if attribute.plus4_key:
                out.put(place, attribute.plus4_key, pl.col(f"_h4.{column}"))
        else:
            hashed_value = pl.when(is_hex).then(as_hash)
            out.put(place, attribute.key, plain)
        out.put(place, attribute.hashed_key, hashed_value)
    elif kind == Kind.PREHASHED:
        not_hex = value.is_not_null() & ~is_hex
        if place == Place.IDENTITY:
            out.reject("invalid_hash", not_hex)
        else:
            out.bad_field("invalid_hash", not_hex, value)
        out.put(place, attribute.key, pl.when(is_hex).then(value))
    else:
        check = _field_check(attribute, value)
        out.put(place, attribute.key, value if check is None else out.bad_field(*check, value))
        if column == "rtid":
            out.put(Place.INTEGRATION, f"{RTID_INTEGRATION}.{RTID_INTEGRATION_KEY}", value)
        if kind == Kind.AMOUNT:  # -inf is no amount (invalid_amount), not a refund
            out.reject("negative_amount", (value < 0) & ~_bad(column))


def unknown_columns(columns: list[str], policy: UnknownColumns) -> list[str]:
    """The columns the spec does not know, checked against `mapping.unknown_columns`."""
    unknown = [c for c in columns if c not in BY_COLUMN]
    if unknown and policy == UnknownColumns.ERROR:
        names = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if unknown[10:] else "")
        raise SourceError(
            f"the query returns columns the attribute spec does not know: {names} "
            "(rename them to canonical names, drop them, or set mapping.unknown_columns)"
        )
    if policy != UnknownColumns.ATTRIBUTE:
        return []
    room = MAX_EVENT_ATTRIBUTES - len(_EVENT_COLUMNS)
    if len(unknown) > room:
        raise SourceError(
            f"the query returns {len(unknown)} columns the attribute spec does not know; each "
            f"would be an event attribute, and an event holds at most {MAX_EVENT_ATTRIBUTES} "
            f"({room} beside the spec's own). Select only those Rokt needs, or set "
            "mapping.unknown_columns: ignore"
        )
    for name in unknown:  # polars reads these names as "every column" or a regex
        if name == "*" or (name.startswith("^") and name.endswith("$")):
            raise SourceError(f"column {name!r}: rename it in the query (AS a plain name)")
    return unknown


def confirmationrefs(chunk: pl.DataFrame) -> pl.Series:
    """The normalized confirmationref of each row (null when missing or blank)."""
    if "confirmationref" not in chunk.schema:
        return pl.Series("confirmationref", [None] * chunk.height, dtype=pl.String)
    return chunk.select(_text("confirmationref")).to_series()


def transform(
    chunk: pl.DataFrame,
    mapping: MappingConfig,
    environment: str,
    rows: pl.Series | None = None,
    oldest_ms: int | None = None,
    newest_ms: int | None = None,
    refs: pl.Series | None = None,
) -> pl.DataFrame:
    """Payload-ready values, ledger columns and `_reason` for every row of `chunk`.

    `rows` numbers the rows for messages (`_row`); by default 1, 2, 3, ... An event
    before `oldest_ms` (UTC epoch ms; see `sync.max_event_age`) is `too_old`, one after
    `newest_ms` (see `sync.max_clock_skew`) `future_event_time`. `refs`: the chunk's
    `confirmationrefs`, where the caller has them already.
    """
    schema = chunk.schema  # each call builds it anew
    for name, dtype in schema.items():
        if not _is_scalar(dtype):
            raise SourceError(
                f"column {name} has type {dtype}; return scalar values only "
                f"(e.g. CAST({name} AS VARCHAR) in the query)"
            )
    extra = unknown_columns(chunk.columns, mapping.unknown_columns)
    plain = pii.guard(chunk, extra, mapping.allow_plain, rows)  # email or phone: refused
    hashed = set(mapping.hash)
    absent = [a.column for a in ATTRIBUTES if a.column not in schema]

    # Pass 1: normalize, then hash (a column the query lacks is null throughout).
    shapes = _Texts.of(chunk, skip="confirmationref" if refs is not None else None)
    normalized = chunk.select(
        *(
            e
            for a in ATTRIBUTES
            if a.column in schema and not (a.kind == Kind.REF and refs is not None)
            for e in _normalize(a, schema[a.column], shapes)
        ),
        *(
            [pl.lit(refs).alias("_n.confirmationref"), pl.lit(False).alias("_bad.confirmationref")]
            if refs is not None and "confirmationref" in schema
            else []
        ),
        *(
            pl.lit(None, _ABSENT_DTYPE.get(BY_COLUMN[c].kind, pl.String)).alias(f"_n.{c}")
            for c in absent
        ),
        *(pl.lit(None, pl.String).alias(f"_h.{c}") for c in absent),
        *(pl.lit(None, pl.String).alias(f"_h4.{c}") for c in absent if BY_COLUMN[c].plus4_key),
        *(pl.lit(False).alias(f"_bad.{c}") for c in absent),
        *(_text(c, shapes).alias(f"_n.{c}") for c in extra),
        *(pl.col(c).is_not_null().alias(f"_bad.{c}") for c in extra),
    )
    hexed = [a for a in ATTRIBUTES if a.hashed_key or a.kind == Kind.PREHASHED]
    # a digit of any script (Unicode Nd, e.g. fullwidth) counts as the digit it is
    mobile = normalized["_n.mobile"]
    if not _is_ascii(mobile):
        mobile = mobile.str.replace_many(_decimals())
    normalized = normalized.with_columns(
        *(_is_hex(normalized[f"_n.{a.column}"]).alias(f"_hex.{a.column}") for a in hexed),
        national_numbers(mobile, mapping.phone_region).alias("_nat.mobile"),
        _n("email").str.contains(EMAIL).fill_null(False).alias("_ok.email"),
    )
    normalized = normalized.with_columns(
        e for a in ATTRIBUTES if a.column in schema for e in _hash(a, a.column in hashed)
    )
    ref = _n("confirmationref")
    message_id = uuid5(normalized["_n.confirmationref"], NS_MESSAGE, f"{environment}:")
    normalized = normalized.with_columns(message_id.alias("_message_id"))

    # Pass 2: place every value, then pick each row's reason.
    out = _Outputs(drop=mapping.invalid_fields == "drop")
    conversiontype = pl.coalesce(_n("conversiontype"), pl.lit(mapping.conversiontype, pl.String))
    for attribute in ATTRIBUTES:
        if attribute.column == "conversiontype":
            out.put(Place.EVENT, "conversiontype", conversiontype)
        elif attribute.place is not None:
            _place(attribute, hashed, out)
    for column in extra:
        out.put(Place.EVENT, column, _n(column))
        if len(column) > MAX_NAME_CHARS:
            out.reject("attribute_name_too_long", _bad(column))

    identity_other = out.values[out_name(Place.IDENTITY, "other")]
    identities = [identity_other]
    if "email" not in hashed:
        identities.append(out.values[out_name(Place.IDENTITY, "email")])
    if not mapping.require_email:
        identities += [out.value(c) for c in RELAXED_IDENTITIES]
    out.reject("missing_confirmationref", ref.is_null())
    out.reject("missing_event_time", _n("event_time").is_null() & ~_bad("event_time"))
    out.reject("invalid_event_time", _bad("event_time"))
    if oldest_ms is not None:
        out.reject("too_old", _n("event_time") < oldest_ms)
    if newest_ms is not None:
        out.reject("future_event_time", _n("event_time") > newest_ms)
    out.reject("missing_conversiontype", conversiontype.is_null())
    out.reject("missing_identity", pl.all_horizontal(e.is_null() for e in identities))

    warned = [pl.when(pl.any_horizontal(c)).then(pl.lit(code)) for code, c in out.warnings.items()]
    warnings = pl.concat_str(
        [pl.lit(None, pl.String), *warned], separator=",", ignore_nulls=True
    ).replace("", None)
    result = normalized.select(
        (pl.int_range(1, pl.len() + 1, dtype=pl.Int64) if rows is None else pl.lit(rows))
        .cast(pl.Int64)
        .alias("_row"),
        ref.alias("_ref"),
        warnings.alias("_warnings"),
        _n("event_time").alias("_event_ms"),
        pl.col("_message_id"),
        pl.coalesce(pl.col("_h.email"), identity_other).alias("_identity_sha256"),
        conversiontype.alias("_conversiontype"),
        out.value("amount").cast(pl.Float64).alias("_amount"),
        out.value("currency").alias("_currency"),
        *(e.alias(name) for name, e in out.values.items()),
        *(pl.any_horizontal(c).alias(f"_check.{code}") for code, c in out.checks.items()),
    )
    result_schema = result.schema
    texts = [name for name in out.values if result_schema[name] == pl.String]
    too_long = pl.any_horizontal(
        pl.lit(False),
        *((pl.col(t).str.len_chars() > MAX_VALUE_CHARS).fill_null(False) for t in texts),
    )
    checks = {code: pl.col(f"_check.{code}") for code in out.checks}
    checks["attribute_value_too_long"] = too_long
    reason = pl.coalesce(
        pl.lit(None, pl.String),
        *(pl.when(checks[code]).then(pl.lit(code)) for code in _CODES if code in checks),
    )
    return result.select(*META[:2], reason.alias("_reason"), *META[3:], *out.values, *plain)


def warning_counts(frame: pl.DataFrame) -> dict[str, int]:
    """How many rows of a transformed frame each field warning dropped a field of."""
    codes = frame["_warnings"].drop_nulls().str.split(",").explode()
    return dict(codes.value_counts().iter_rows())


def split(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(valid rows, rejected rows) of a transformed frame."""
    rejected = frame.filter(pl.col("_reason").is_not_null())
    return frame.filter(pl.col("_reason").is_null()), rejected
