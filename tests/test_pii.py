"""The plain-PII guard (`connector.pii`): the rules' edges, the refusal, allow_plain,
redaction when shown, and the config half (`mapping.hash`, `mapping.allow_plain`)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import base_config, write_config
from pydantic import ValidationError

from connector.config import MappingConfig, UnknownColumns, load_config
from connector.errors import ConfigError, SourceError
from connector.pii import looks_like
from connector.spec import PLAIN_PII
from connector.transform import split, transform
from connector.transports.events_api_json import encode

ROW = {
    "confirmationref": "ORD-1",
    "email": "jane@example.com",
    "conversiontype": "purchase",
    "event_time": "2026-10-30T12:00:00Z",
}


def flags(values: list[Any], dtype: pl.DataType) -> dict[str, list[bool]]:
    frame = pl.DataFrame({"v": pl.Series(values, dtype=dtype)})
    rules = looks_like(pl.col("v"), dtype)
    return {
        kind: frame.select(rule.fill_null(False)).to_series().to_list()
        for kind, rule in rules.items()
    }


@pytest.mark.parametrize(
    "value",
    [
        "jane@example.com",
        " Jane.Doe+tag@Example.CO.UK ",
        "Jane Doe <jane@example.com>",  # containing one is enough
        "mailto:jane@example.com",
    ],
)
def test_email_addresses(value: str) -> None:
    assert flags([value], pl.String()) == {"email": [True], "phone": [False]}


@pytest.mark.parametrize(
    "value",
    ["jane@localhost", "@jane", "jane@", "2 @ 5.00", "jane(at)example.com", "gold", ""],
)
def test_no_email_addresses(value: str) -> None:
    assert flags([value], pl.String())["email"] == [False]


@pytest.mark.parametrize(
    "value",
    [
        "+1 (555) 123-4567",
        "(555) 123 4567",
        "555-123-4567",
        "555.123.4567",
        "555 123 4567",
        "5551234567",  # 10 bare digits: a North American number without formatting
        "15551234567",
        "447700900123",  # a calling code without "+"
        "999999999999999",  # 15 digits, E.164's longest
        " 5551234567 ",
        "+44 20 7946 0958",
        "+49 30 12345678",
        "0044 20 7946 0958",
        "07700 900123",
        "01 23 45 67 89",
        "030/1234567",
        "555-1234",  # 7 digits with formatting: a local number
        "+1234567",  # 7 digits after "+"
        "555-123-4567 x89",
        "555-123-4567 ext. 89",
        "12345-6789",  # a ZIP+4: plain PII too
        "123-45-6789",  # shaped like a US Social Security number
    ],
)
def test_phone_numbers(value: str) -> None:
    assert flags([value], pl.String()) == {"email": [False], "phone": [True]}


@pytest.mark.parametrize(
    "value",
    [
        "123456789",  # 7 to 9 bare digits: an order number more often than a phone
        "1234567",
        "0000123",
        "123456",  # fewer than 7 digits
        "555-12",
        "1234567890123456",  # more than 15 digits
        "1234 5678 9012 3456",
        "2026-11-01",  # dates
        "01.11.2026",
        "1.11.2026",
        "11/01/2026",
        "1234567.89",  # a decimal number
        "+1234567.89",
        "192.168.100.100",  # an IPv4 address
        "ORD-0001234567",  # letters
        "ELEC-EB-0042",
        "2026-11-01 12:00:00",
        "-5551234567",
        "555-123-4567 call me",
    ],
)
def test_no_phone_numbers(value: str) -> None:
    assert flags([value], pl.String())["phone"] == [False]


@pytest.mark.parametrize(
    ("values", "dtype", "expected"),
    [
        # an integer is read as its digits: 10 to 15 of them are a phone's length
        (
            [999_999_999, 1_000_000_000, 5_551_234_567, 10**15 - 1, 10**15, -5_551_234_567, None],
            pl.Int64(),
            [False, True, True, True, False, False, False],
        ),
        ([5_551_234_567, 42], pl.UInt64(), [True, False]),
        ([123, 1234567], pl.Int32(), [False, False]),
        # a float or decimal: only a whole number (a phone stored as DOUBLE)
        (
            [5551234567.0, 5551234567.5, 12.5, float("nan"), float("inf")],
            pl.Float64(),
            [True, False, False, False, False],
        ),
        ([Decimal("5551234567.00"), Decimal("1234.50")], pl.Decimal(14, 2), [True, False]),
    ],
)
def test_numbers(values: list[Any], dtype: pl.DataType, expected: list[bool]) -> None:
    assert flags(values, dtype) == {"phone": expected}


@pytest.mark.parametrize(
    ("values", "dtype"),
    [([True, False], pl.Boolean()), ([date(2026, 11, 1)], pl.Date())],
)
def test_types_that_hold_no_email_or_phone(values: list[Any], dtype: pl.DataType) -> None:
    assert flags(values, dtype) == {}


def test_categorical_text_is_checked() -> None:
    assert flags(["gold", "+1 555 123 4567"], pl.Categorical())["phone"] == [False, True]


def run(
    chunk: pl.DataFrame, mapping: MappingConfig | None = None, redact: bool = False
) -> pl.DataFrame:
    """The encoded valid rows of `chunk` (with `redact`: as `validate --show` prints them)."""
    frame = transform(chunk, mapping or MappingConfig(), "development")
    return encode(split(frame)[0], "development", redact)


def chunk_with(**extra: list[Any]) -> pl.DataFrame:
    height = len(next(iter(extra.values())))
    rows = [{**ROW, "confirmationref": f"ORD-{i}"} for i in range(height)]
    return pl.DataFrame(rows).with_columns(pl.Series(k, v) for k, v in extra.items())


def test_one_value_in_a_chunk_refuses_it_naming_column_and_row_never_the_value() -> None:
    values: list[str | None] = ["gold"] * 1000
    values[737] = " +44 20 7946 0958 "
    rows = pl.int_range(5001, 6001, eager=True)  # the rows' numbers in the whole source
    with pytest.raises(SourceError) as refused:
        transform(chunk_with(note=values), MappingConfig(), "development", rows=rows)
    message = str(refused.value)
    assert "column note" in message and "phone numbers (row 5738)" in message
    assert "AS mobile" in message and "mapping.allow_plain: [note]" in message
    assert "7946" not in message

    with pytest.raises(SourceError, match=r"column buyer .*email addresses \(row 2\)") as refused:
        transform(chunk_with(buyer=[None, "jane@example.com"]), MappingConfig(), "x")
    assert "jane" not in str(refused.value) and "AS email" in str(refused.value)


def test_canonical_fields_are_never_flagged() -> None:
    phone = "+1 (555) 123-4567"
    canonical = {c: [phone] for c in ("transactionid", "sku", "customerid", "productname")}
    chunk = chunk_with(**canonical, confirmationref=["5551234567"], quantity=[5551234567])
    body = json.loads(run(chunk)["_body"][0])
    attributes = body["events"][0]["data"]["custom_attributes"]
    assert attributes["sku"] == attributes["transactionid"] == phone
    assert attributes["confirmationref"] == "5551234567"
    assert body["user_identities"]["customerid"] == phone


def test_extra_columns_not_sent_are_not_checked() -> None:
    chunk = chunk_with(buyer=["jane@example.com"])
    ignored = run(chunk, MappingConfig(unknown_columns=UnknownColumns.IGNORE))
    assert "buyer" not in ignored["_body"][0]
    with pytest.raises(SourceError, match="does not know: buyer"):
        run(chunk, MappingConfig(unknown_columns=UnknownColumns.ERROR))


def test_allow_plain_sends_as_is_and_redacts_when_shown() -> None:
    chunk = chunk_with(buyer=[" jane@example.com ", None], note=["gold", "+1 555 123 4567"])
    mapping = MappingConfig(allow_plain=("buyer", "note"))
    sent = [
        json.loads(b)["events"][0]["data"]["custom_attributes"]
        for b in run(chunk, mapping)["_body"]
    ]
    assert [(a.get("buyer"), a["note"]) for a in sent] == [
        ("jane@example.com", "gold"),
        (None, "+1 555 123 4567"),
    ]
    shown = run(chunk, mapping, redact=True)["_body"].to_list()
    assert [json.loads(b)["events"][0]["data"]["custom_attributes"]["note"] for b in shown] == [
        "<redacted>",
        "<redacted>",
    ]
    assert "jane" not in "".join(shown) and '"buyer":"<redacted>"' in shown[0]
    assert "buyer" not in json.loads(shown[1])["events"][0]["data"]["custom_attributes"]
    # a column allowed is allowed alone: another one is still refused
    with pytest.raises(SourceError, match="column other"):
        run(chunk.with_columns(other=pl.col("buyer")), mapping)


# ------------------------------------------------------------------ the config half


def test_every_plain_pii_column_left_out_of_hash_must_be_allowed() -> None:
    assert MappingConfig().allow_plain == ()
    for column in PLAIN_PII:
        rest = tuple(c for c in PLAIN_PII if c != column)
        with pytest.raises(ValidationError, match=f"{column} would be sent as plain text"):
            MappingConfig(hash=rest)
        assert MappingConfig(hash=rest, allow_plain=(column,)).allow_plain == (column,)
    assert MappingConfig(hash=(), allow_plain=PLAIN_PII).hash == ()


@pytest.mark.parametrize(
    ("mapping", "error"),
    [
        (
            {"hash": ["firstname", "lastname", "mobile", "zip"]},
            "mapping: email would be sent as plain text (not in mapping.hash): add it to "
            "mapping.hash",
        ),
        (
            {"hash": ["email"], "allow_plain": ["mobile"]},
            "mapping: firstname, lastname, zip would be sent as plain text",
        ),
        ({"allow_plain": ["email"]}, "email is listed under both mapping.hash and"),
        ({"allow_plain": ["sku", "note"]}, "mapping.allow_plain: sku: canonical columns"),
        ({"allow_plain": [" "]}, "mapping.allow_plain: holds an empty column name"),
        ({"allow_plain": "note"}, "mapping.allow_plain: Input should be a valid tuple"),
    ],
)
def test_config_errors(tmp_path: Path, mapping: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(write_config(tmp_path, base_config(tmp_path, mapping=mapping)))
    assert error in str(refused.value)


def test_allow_plain_names_are_matched_as_the_query_returns_them(tmp_path: Path) -> None:
    mapping = {"allow_plain": [" Buyer_Email ", "buyer_email", "NOTE"]}
    config = load_config(write_config(tmp_path, base_config(tmp_path, mapping=mapping)))
    assert config.mapping.allow_plain == ("buyer_email", "note")
