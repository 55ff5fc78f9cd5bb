"""Pass 2 of `transform`: each normalized value put under the canonical column it is
sent as (a hash under the `*sha256` column that carries it), with the checks that
reject a row and the field warnings that drop one field (`Outputs`, `place_value`)."""

from __future__ import annotations

import polars as pl

from connector.spec import Attribute, Group, Kind
from connector.values import (
    IPV4,
    IPV6,
    UUID,
    bad_col,
    value_col,
)


class Outputs:
    """Pass 2: values to send by canonical column, the checks that reject rows and the
    field warnings that drop a value (`drop`; else they reject the row too)."""

    def __init__(self, drop: bool) -> None:
        self.drop = drop
        self.values: dict[str, pl.Expr] = {}
        self.checks: dict[str, list[pl.Expr]] = {}
        self.warnings: dict[str, list[pl.Expr]] = {}

    def put(self, name: str, value: pl.Expr) -> None:
        previous = self.values.get(name)
        self.values[name] = value if previous is None else pl.coalesce(previous, value)

    def value(self, column: str) -> pl.Expr:
        """What is sent for a canonical column (null where dropped)."""
        return self.values[column]

    def reject(self, reason: str, condition: pl.Expr) -> None:
        self.checks.setdefault(reason, []).append(condition.fill_null(False))

    def bad_field(self, code: str, condition: pl.Expr, value: pl.Expr) -> pl.Expr:
        """`value`, left out where `condition` holds (a field warning), or kept for a
        row that `mapping.invalid_fields: reject` rejects."""
        condition = condition.fill_null(False)
        (self.warnings if self.drop else self.checks).setdefault(code, []).append(condition)
        return pl.when(~condition).then(value) if self.drop else value


def field_check(attribute: Attribute, value: pl.Expr) -> tuple[str, pl.Expr] | None:
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
        return codes[kind], bad_col(column)
    return None


def place_value(attribute: Attribute, hashed: set[str], out: Outputs) -> None:
    column, kind = attribute.column, attribute.kind
    value = value_col(column)
    is_hex = pl.col(f"_hex.{column}")  # exists for the hashable and pre-hashed columns
    if kind == Kind.EMAIL:
        hashed_email = pl.when(is_hex).then(value).otherwise(pl.col(f"_h.{column}"))
        if column in hashed:
            out.put(attribute.hashed, hashed_email)
        else:
            out.put(attribute.hashed, pl.when(is_hex).then(value))
            out.put(column, pl.when(~is_hex).then(value))
        out.reject("invalid_email", value.is_not_null() & ~is_hex & ~pl.col("_ok.email"))
    elif attribute.hashed:
        as_hash = value if kind == Kind.NAME else value.str.to_lowercase()  # names: already
        plain: pl.Expr = pl.when(~is_hex).then(value)
        if kind == Kind.MOBILE:  # a mobile that is no number has no hash either
            not_phone = value.is_not_null() & ~is_hex & pl.col("_nat.mobile").is_null()
            plain = out.bad_field("invalid_mobile", not_phone, plain)
        if column in hashed:
            hashed_value = pl.when(is_hex).then(as_hash).otherwise(pl.col(f"_h.{column}"))
            if attribute.hashed_plus4:
                out.put(attribute.hashed_plus4, pl.col(f"_h4.{column}"))
        else:
            hashed_value = pl.when(is_hex).then(as_hash)
            out.put(column, plain)
        out.put(attribute.hashed, hashed_value)
    elif kind == Kind.PREHASHED:
        not_hex = value.is_not_null() & ~is_hex
        if attribute.group == Group.IDENTITY:
            out.reject("invalid_hash", not_hex)
        else:
            out.bad_field("invalid_hash", not_hex, value)
        out.put(column, pl.when(is_hex).then(value))
    else:
        check = field_check(attribute, value)
        out.put(column, value if check is None else out.bad_field(*check, value))
        if kind == Kind.AMOUNT:  # -inf is no amount (invalid_amount), not a refund
            out.reject("negative_amount", (value < 0) & ~bad_col(column))
