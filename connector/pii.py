"""The plain-PII guard: no email address or phone number leaves in an extra column unasked.

Owns: what looks like an email address or a phone number (vectorized polars rules), and
refusing a chunk whose extra columns (sent as custom event attributes) hold one, unless
`mapping.allow_plain` lists the column; those listed are marked for redaction when shown.
"""

from __future__ import annotations

from collections.abc import Collection

import polars as pl

from connector.errors import SourceError
from connector.spec import EXTRA

# something@domain.tld, anywhere in the value
EMAIL = r"[^@\s]@[^@\s.]+\.[^@\s.]"
# an optional "+", 7 to 15 digits among phone punctuation (spaces ( ) . - /), and an
# optional extension ("x12", "ext. 12", "#12")
PHONE = (
    r"(?i)^\s*\+?[\s(]*(?:[0-9][\s().\-/]*){7,15}"
    r"(?:(?:e?xt?\.?|extension|#)\s*[0-9]{1,6}\s*)?$"
)
# made of digits and punctuation, yet no phone: a date (2026-11-01, 01.11.2026), a
# decimal number (1234567.89), an IPv4 address, or 7 to 9 bare digits (an order number
# more often than a phone: a phone written without + or formatting has 10 to 15)
NOT_PHONE = (
    r"^\s*(?:[0-9]{4}[-./][0-9]{1,2}[-./][0-9]{1,2}|[0-9]{1,2}[-./][0-9]{1,2}[-./][0-9]{4}"
    r"|\+?[0-9]+\.[0-9]+|[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9]{7,9})\s*$"
)
# a number read as its digits: 10 to 15 of them, as a phone number without + or formatting
_LOWEST, _BEYOND = 1e9, 1e15
_TEXTS = (pl.String, pl.Categorical, pl.Enum)
PLAIN = "_plain."  # a marker column `_plain.<output>`: sent as is, redacted when shown
_KINDS = {"email": ("email addresses", "email"), "phone": ("phone numbers", "mobile")}


def looks_like(column: pl.Expr, dtype: pl.DataType) -> dict[str, pl.Expr]:
    """Which values of `column` look like an email address (`email`) or a phone
    number (`phone`); none for a type that holds neither (boolean, temporal)."""
    if isinstance(dtype, _TEXTS):
        text = column.cast(pl.String)
        phone = text.str.contains(PHONE) & ~text.str.contains(NOT_PHONE)
        return {"email": text.str.contains(EMAIL), "phone": phone}
    if dtype.is_numeric():
        number = column.cast(pl.Float64)
        return {"phone": (number >= _LOWEST) & (number < _BEYOND) & (number == number.floor())}
    return {}


def guard(
    chunk: pl.DataFrame,
    extra: list[str],
    allow_plain: Collection[str],
    rows: pl.Series | None = None,
) -> list[pl.Expr]:
    """Refuse (`SourceError`, naming the column and row, never the value) a chunk whose
    extra columns hold a value that looks like an email address or a phone number,
    unless `allow_plain` lists the column. Returns the marker columns (`PLAIN`) of the
    extra columns sent as plain text on purpose, for `transform`'s output."""
    schema = chunk.schema
    found = chunk.select(
        rule.fill_null(False).arg_true().first().alias(f"{kind}:{name}")
        for name in extra
        if name not in allow_plain
        for kind, rule in looks_like(pl.col(name), schema[name]).items()
    )
    for key, index in (found.row(0, named=True) if found.width else {}).items():
        if index is None:
            continue
        kind, name = key.split(":", 1)
        what, canonical = _KINDS[kind]
        row = index + 1 if rows is None else rows[index]
        raise SourceError(
            f"column {name} (a custom event attribute) holds {what} (row {row}), which "
            f"would be sent as plain text: hash it in the query, select it AS {canonical} "
            f"(hashed by mapping.hash), drop it, or, to send it as it is, list it under "
            f"mapping.allow_plain: [{name}]. Nothing of its chunk was sent."
        )
    return [pl.lit(None).alias(f"{PLAIN}{EXTRA}{c}") for c in extra if c in allow_plain]


def plain_outputs(frame: pl.DataFrame) -> set[str]:
    """The output columns of a transformed frame sent as plain text on purpose."""
    return {name.removeprefix(PLAIN) for name in frame.columns if name.startswith(PLAIN)}
