"""Classify, normalize, check and hash one chunk of canonical rows, all vectorized.

Owns: turning a source chunk (canonical column names, any scalar types) into a frame
of values ready to send, named by canonical column (an extra column `extra.<name>`,
a hash under the `*sha256` column that carries it), plus the columns
the ledger needs (`_ref`, `_event_ms`, `_identity_sha256`, ...), `_reason`: the
first reason code (`spec.REASONS`) that rejects the row, or null for a valid row, and
`_warnings`: the field warnings (`spec.WARNINGS`) of the fields it dropped.
Every timestamp becomes UTC epoch milliseconds here and nowhere else; a naive
timestamp is UTC. Must not: loop over rows in Python, send or store anything, or
leave a hashed field's plain value in any output column.
"""

from __future__ import annotations

import uuid

import polars as pl

from connector import pii
from connector.config import MappingConfig, UnknownColumns
from connector.digest import uuid5
from connector.errors import SourceError
from connector.outputs import Outputs, place_value
from connector.phones import national_numbers
from connector.spec import (
    ATTRIBUTES,
    BY_COLUMN,
    EXTRA,
    MAX_EVENT_ATTRIBUTES,
    MAX_NAME_CHARS,
    MAX_VALUE_CHARS,
    REASONS,
    RELAXED_IDENTITIES,
    WARNINGS,
    Group,
    Kind,
)
from connector.values import (
    EMAIL,
    Texts,
    bad_col,
    decimal_digits,
    hash_columns,
    hex_hashes,
    is_ascii,
    is_scalar,
    normalize,
    trimmed_text,
    value_col,
)

# UUIDv5 namespace of `data.source_message_id` = uuid5(NS_MESSAGE, "<environment>:<ref>").
NS_MESSAGE = uuid.uuid5(uuid.NAMESPACE_URL, "https://rokt-connector.invalid/source_message_id")

# A rejected row's reason: the first of these that applies (field warnings reject
# rows only with `mapping.invalid_fields: reject`).
_CODES = tuple(dict.fromkeys((*REASONS, *WARNINGS)))
_EVENT_COLUMNS = [a.column for a in ATTRIBUTES if a.group == Group.EVENT]

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
    return chunk.select(trimmed_text("confirmationref")).to_series()


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
        if not is_scalar(dtype):
            raise SourceError(
                f"column {name} has type {dtype}; return scalar values only "
                f"(e.g. CAST({name} AS VARCHAR) in the query)"
            )
    extra = unknown_columns(chunk.columns, mapping.unknown_columns)
    plain = pii.guard(chunk, extra, mapping.allow_plain, rows)  # email or phone: refused
    hashed = set(mapping.hash)
    absent = [a.column for a in ATTRIBUTES if a.column not in schema]

    # Pass 1: normalize, then hash (a column the query lacks is null throughout).
    shapes = Texts.of(chunk, skip="confirmationref" if refs is not None else None)
    normalized = chunk.select(
        *(
            e
            for a in ATTRIBUTES
            if a.column in schema and not (a.kind == Kind.REF and refs is not None)
            for e in normalize(a, schema[a.column], shapes)
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
        *(pl.lit(None, pl.String).alias(f"_h4.{c}") for c in absent if BY_COLUMN[c].hashed_plus4),
        *(pl.lit(False).alias(f"_bad.{c}") for c in absent),
        *(trimmed_text(c, shapes).alias(f"_n.{c}") for c in extra),
        *(pl.col(c).is_not_null().alias(f"_bad.{c}") for c in extra),
    )
    hexed = [a for a in ATTRIBUTES if a.hashed or a.kind == Kind.PREHASHED]
    # a digit of any script (Unicode Nd, e.g. fullwidth) counts as the digit it is
    mobile = normalized["_n.mobile"]
    if not is_ascii(mobile):
        mobile = mobile.str.replace_many(decimal_digits())
    normalized = normalized.with_columns(
        *(hex_hashes(normalized[f"_n.{a.column}"]).alias(f"_hex.{a.column}") for a in hexed),
        national_numbers(mobile, mapping.phone_region).alias("_nat.mobile"),
        value_col("email").str.contains(EMAIL).fill_null(False).alias("_ok.email"),
    )
    normalized = normalized.with_columns(
        e for a in ATTRIBUTES if a.column in schema for e in hash_columns(a, a.column in hashed)
    )
    ref = value_col("confirmationref")
    message_id = uuid5(normalized["_n.confirmationref"], NS_MESSAGE, f"{environment}:")
    normalized = normalized.with_columns(message_id.alias("_message_id"))

    # Pass 2: place every value, then pick each row's reason.
    out = Outputs(drop=mapping.invalid_fields == "drop")
    conversiontype = pl.coalesce(
        value_col("conversiontype"), pl.lit(mapping.conversiontype, pl.String)
    )
    for attribute in ATTRIBUTES:
        if attribute.column == "conversiontype":
            out.put("conversiontype", conversiontype)
        elif attribute.group is not None:
            place_value(attribute, hashed, out)
    for column in extra:
        out.put(EXTRA + column, value_col(column))
        if len(column) > MAX_NAME_CHARS:
            out.reject("attribute_name_too_long", bad_col(column))

    identity_other = out.values["email_sha256"]
    identities = [identity_other]
    if "email" not in hashed:
        identities.append(out.values["email"])
    if not mapping.require_email:
        identities += [out.value(c) for c in RELAXED_IDENTITIES]
    out.reject("missing_confirmationref", ref.is_null())
    out.reject("missing_event_time", value_col("event_time").is_null() & ~bad_col("event_time"))
    out.reject("invalid_event_time", bad_col("event_time"))
    if oldest_ms is not None:
        out.reject("too_old", value_col("event_time") < oldest_ms)
    if newest_ms is not None:
        out.reject("future_event_time", value_col("event_time") > newest_ms)
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
        value_col("event_time").alias("_event_ms"),
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
