"""One column's values, normalized and checked as polars expressions: the patterns
(email, UUID, IP, numbers, timestamps), trimming as `str.strip()` does, parsing, and
the hashes Rokt expects (passes 1 and 1b of `transform`)."""

from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass
from functools import cache

import polars as pl

from connector.digest import sha256
from connector.errors import SourceError
from connector.spec import (
    ATTRIBUTES,
    Attribute,
    Kind,
)

# Years 1-9999 in UTC epoch ms: a timestamp or dob outside them (DuckDB's 'infinity'
# included) has no ISO 8601 / YYYYMMDD form and is no time anything happened.
FIRST_MS, LAST_MS = -62_135_596_800_000, 253_402_300_799_999


HEX64 = r"^[0-9a-fA-F]{64}$"
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
ZIP_PLUS4 = r"^[0-9]{5}-[0-9]{4}$"


@cache
def decimal_digits() -> dict[str, str]:
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

# What Python's str.strip() removes (Unicode White_Space plus \x1c-\x1f): "trim" in
# docs/attributes.md means exactly this, so anyone can reproduce a hash with .strip().
# Spelled out (a test checks it against str.isspace over all of Unicode).
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


_SPACE = f"[{re.escape(WHITESPACE)}]"


@dataclass(frozen=True)
class Texts:
    """What one chunk's text columns hold, so each pays only for the work it needs."""

    ascii: frozenset[str]  # every value ASCII, which Unicode NFC leaves as it is
    bare: frozenset[str]  # no whitespace in any value: nothing to trim or remove

    @classmethod
    def of(cls, chunk: pl.DataFrame, skip: str | None = None) -> Texts:
        """What the text columns of `chunk` hold (`skip`: one the caller has already)."""
        schema = chunk.schema
        strings = [chunk[n] for n, dtype in schema.items() if dtype == pl.String and n != skip]
        hashable = {a.column for a in ATTRIBUTES if a.kind in (Kind.EMAIL, Kind.NAME, Kind.ZIP)}
        ascii = {c.name for c in strings if c.name in hashable and is_ascii(c)}
        bare = {c.name for c in strings if not c.str.contains_any(list(WHITESPACE)).any()}
        return cls(frozenset(ascii), frozenset(bare))


_NO_TEXTS = Texts(frozenset(), frozenset())


def trimmed_text(column: str, texts: Texts = _NO_TEXTS) -> pl.Expr:
    """A column as trimmed text (what `str.strip()` removes), null where blank."""
    text = pl.col(column).cast(pl.String)
    if column not in texts.bare:
        text = text.str.strip_chars(WHITESPACE)
    return text.replace("", None)


def _unspaced(column: str, texts: Texts) -> pl.Expr:
    """Every whitespace character removed, then Unicode NFC."""
    text = trimmed_text(column, texts)
    if column not in texts.bare:
        text = text.str.replace_all(_SPACE, "")
    return text if column in texts.ascii else text.str.normalize("NFC")


def is_ascii(column: pl.Series) -> bool:
    """Whether every value of a text column is ASCII (one byte per character)."""
    if column.dtype != pl.String:
        return True
    return bool(column.str.len_bytes().sum() == column.str.len_chars().sum())


def value_col(column: str) -> pl.Expr:
    return pl.col(f"_n.{column}")


def bad_col(column: str) -> pl.Expr:
    return pl.col(f"_bad.{column}")


def hex_hashes(column: pl.Series) -> pl.Expr:
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
    text = trimmed_text(column)
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
        text = trimmed_text(column)
        good = text.str.contains(r"^\+?[0-9]{1,18}$").fill_null(False)
        value = text.str.strip_prefix("+").cast(pl.Int64, strict=False)
    return pl.when(good).then(value), col.is_not_null() & ~good


def is_scalar(dtype: pl.DataType) -> bool:
    scalars = (pl.String, pl.Boolean, pl.Null, pl.Categorical, pl.Enum)
    return dtype.is_numeric() or dtype.is_temporal() or isinstance(dtype, scalars)


def _parse_dob(column: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    col = pl.col(column)
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        ms = (col if isinstance(dtype, pl.Datetime) else col.cast(pl.Datetime("ms"))).dt.epoch("ms")
        in_range = ms.is_between(FIRST_MS, LAST_MS)
        day: pl.Expr = pl.when(in_range).then(col)  # masked: polars panics formatting the rest
        day = day.dt.date() if isinstance(dtype, pl.Datetime) else day
        return day.dt.strftime("%Y%m%d"), col.is_not_null() & ~in_range
    text = trimmed_text(column)
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
        trimmed_text(column)
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


def normalize(attribute: Attribute, dtype: pl.DataType, texts: Texts) -> list[pl.Expr]:
    """Pass 1: `_n.<col>`, the normalized value, and `_bad.<col>`: present but unparseable."""
    column, kind = attribute.column, attribute.kind
    bad: pl.Expr = pl.lit(False)
    value: pl.Expr
    if kind == Kind.EMAIL:
        text = trimmed_text(column, texts)
        value = (text if column in texts.ascii else text.str.normalize("NFC")).str.to_lowercase()
    elif kind == Kind.NAME:
        value = _unspaced(column, texts).str.to_lowercase()
    elif kind == Kind.ZIP:
        value = _unspaced(column, texts)
    elif kind == Kind.PREHASHED:
        value = trimmed_text(column, texts).str.to_lowercase()
    elif kind == Kind.CURRENCY:
        text = trimmed_text(column, texts)
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
        in_range = ms.is_between(FIRST_MS, LAST_MS)
        value, bad = pl.when(in_range).then(ms), bad | (ms.is_not_null() & ~in_range)
    else:
        value = trimmed_text(column, texts)
    return [value.alias(f"_n.{column}"), bad.fill_null(False).alias(f"_bad.{column}")]


def hash_columns(attribute: Attribute, hashed: bool) -> list[pl.Expr]:
    """Pass 1b, over pass 1's columns (with `_hex.<col>`: the value is already a
    SHA-256, `_nat.mobile`: the mobile's national number, and `_ok.email`: the email
    is an address): `_h.<col>`, SHA-256 of
    the text Rokt hashes for a value to be hashed (`_h4.zip`: a US ZIP+4's whole)."""
    column, kind = attribute.column, attribute.kind
    if not (attribute.hashed or kind == Kind.PREHASHED):
        return []
    value, is_hex = value_col(column), pl.col(f"_hex.{column}")
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
    elif attribute.hashed and hashed:
        prehash = pl.when(~is_hex).then(value)
    return [] if prehash is None else [sha256(prehash).alias(f"_h.{column}")]
