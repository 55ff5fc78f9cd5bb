"""Transform and payload, golden: exact batch JSON and every reason code."""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import polars as pl
import pytest

from connector.config import MappingConfig, UnknownColumns
from connector.errors import SourceError
from connector.spec import PLAIN_PII, REASONS, WARNINGS
from connector.transform import NS_MESSAGE, split, transform
from connector.transports.events_api_json import NS_REQUEST, encode
from connector.values import WHITESPACE


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def run(rows: list[dict[str, Any]], mapping: MappingConfig | None = None) -> pl.DataFrame:
    frame = transform(pl.DataFrame(rows), mapping or MappingConfig(), "development")
    valid, rejected = split(frame)
    return pl.concat([encode(valid, "development"), rejected], how="diagonal")


def expected_body(batch: dict[str, Any]) -> str:
    """The exact bytes the connector must produce for `batch` (key order as given)."""
    content = json.dumps(batch, separators=(",", ":"), ensure_ascii=False)
    request_id = uuid.uuid5(NS_REQUEST, sha(content))
    return f'{{"source_request_id":"{request_id}",' + content[1:]


ROW = {
    "confirmationref": " ORD-1 ",
    "email": "  John.Doe@Example.COM ",
    "firstname": "  John ",
    "lastname": "Doe",
    "mobile": "+1 (555) 123-4567",
    "zip": " 98103 ",
    "amount": "100.00",
    "currency": "usd",
    "quantity": "2",
    "conversiontype": "purchase",
    "event_time": "2026-11-10T16:03:22+02:00",
    "ipaddress": "172.3.51.182",
    "rtid": "rtid-77",
    "loyalty_tier": "gold",
}


def test_golden_batch_is_exact() -> None:
    body = run([ROW])["_body"][0]
    message_id = str(uuid.uuid5(NS_MESSAGE, "development:ORD-1"))
    batch = {
        "environment": "development",
        "user_identities": {"other": sha("john.doe@example.com"), "other_id_2": "rtid-77"},
        "user_attributes": {
            "firstnamesha256": sha("john"),
            "lastnamesha256": sha("doe"),
            "mobilesha256": sha("5551234567"),  # the national number (Rokt: 10 digits)
            "billingzipsha256": sha("98103"),
        },
        "ip": "172.3.51.182",
        "integration_attributes": {"1277": {"passbackconversiontrackingid": "rtid-77"}},
        "events": [
            {
                "event_type": "custom_event",
                "data": {
                    "event_name": "conversion",
                    "custom_event_type": "transaction",
                    "source_message_id": message_id,
                    "timestamp_unixtime_ms": 1794319402000,  # 2026-11-10T14:03:22Z
                    "custom_attributes": {
                        "confirmationref": "ORD-1",
                        "conversiontype": "purchase",
                        "amount": 100.0,
                        "currency": "USD",
                        "quantity": 2,
                        "loyalty_tier": "gold",
                    },
                },
            }
        ],
    }
    assert body == expected_body(batch)


def test_a_rows_bytes_do_not_depend_on_its_chunk() -> None:
    """The same row encodes to the same bytes (and request id) alone or among rows
    whose columns have nulls, so a resend after any re-chunking is recognisable."""
    sparse = {**ROW, "confirmationref": "other", "amount": None, "rtid": None, "zip": None}
    alone = run([ROW])["_body"][0]
    among = run([sparse, ROW, sparse | {"confirmationref": "x"}])
    assert among.filter(pl.col("_ref") == "ORD-1")["_body"][0] == alone


def test_prehashed_email_passes_through_lowercased_never_rehashed() -> None:
    hashed = sha("jane@example.com")
    rows = [{**ROW, "email": f" {hashed.upper()} ", "confirmationref": "A"}]
    body = json.loads(run(rows)["_body"][0])
    assert body["user_identities"] == {"other": hashed, "other_id_2": "rtid-77"}
    rows = [{**ROW, "email": None, "email_sha256": hashed.upper(), "confirmationref": "B"}]
    assert json.loads(run(rows)["_body"][0])["user_identities"]["other"] == hashed


def test_unhashed_fields_are_sent_normalized() -> None:
    mapping = MappingConfig(hash=("email",), allow_plain=("firstname", "lastname", "mobile", "zip"))
    body = json.loads(run([ROW], mapping)["_body"][0])
    assert body["user_attributes"] == {
        "firstname": "john",
        "lastname": "doe",
        "mobile": "+1 (555) 123-4567",
        "zip": "98103",
    }
    plain = json.loads(run([ROW], MappingConfig(hash=(), allow_plain=PLAIN_PII))["_body"][0])
    assert plain["user_identities"]["email"] == "john.doe@example.com"
    assert "other" not in plain["user_identities"]  # sent as itself, not also as a hash


def test_blank_values_are_omitted_and_numbers_keep_their_type() -> None:
    row = {
        **ROW,
        "lastname": "   ",
        "zip": "",
        "amount": Decimal("19.90"),
        "margin": 2.5,
        "quantity": 3,
        "dob": date(1990, 7, 17),
        "productname": 'Maroon 5 t-shirt, "Warriors"',
    }
    body = json.loads(run([row])["_body"][0])
    assert "lastnamesha256" not in body["user_attributes"]
    assert "billingzipsha256" not in body["user_attributes"]
    assert body["user_attributes"]["dob"] == "19900717"
    attrs = body["events"][0]["data"]["custom_attributes"]
    assert attrs["amount"] == 19.9 and attrs["margin"] == 2.5 and attrs["quantity"] == 3
    assert attrs["productname"] == 'Maroon 5 t-shirt, "Warriors"'
    assert '"amount":19.90' in run([row])["_body"][0]  # a DECIMAL column keeps its digits


@pytest.mark.parametrize(
    ("value", "expected_ms"),
    [
        ("2026-11-10 14:03:22", 1794319402000),
        ("2026-11-10T14:03:22Z", 1794319402000),
        ("2026-11-10T14:03:22.250Z", 1794319402250),
        ("2026-11-10T09:03:22-05:00", 1794319402000),
        ("2026-11-10T09:03:22-0500", 1794319402000),
        ("2026-11-10T09:03:22.250-0500", 1794319402250),
        ("2026-11-10T09:03-0500", 1794319380000),
        ("2026-11-10T09:03:22-05", 1794319402000),  # ISO 8601 allows an offset in hours
        ("2026-11-10 09:03-05", 1794319380000),
        ("2026-11-10 14:03:22+00", 1794319402000),  # a TIMESTAMPTZ as DuckDB's text
        ("2026-11-10 14:03:22.25+00", 1794319402250),
        ("2026-11-10 19:33:22+05:30", 1794319402000),
        ("2026-11-10", 1794268800000),
        (datetime(2026, 11, 10, 14, 3, 22), 1794319402000),  # naive = UTC
        (datetime(2026, 11, 10, 15, 3, 22, tzinfo=ZoneInfo("Europe/Paris")), 1794319402000),
        (date(2026, 11, 10), 1794268800000),
    ],
)
def test_event_time_becomes_utc_epoch_ms(value: object, expected_ms: int) -> None:
    body = json.loads(run([{**ROW, "event_time": value}])["_body"][0])
    assert body["events"][0]["data"]["timestamp_unixtime_ms"] == expected_ms


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/St_Johns"])
def test_event_time_reads_duckdbs_text_of_a_timestamptz(zone: str) -> None:
    """`CAST(ts AS VARCHAR)` in a DuckDB session: `+00`, `+05:30`, `-03:30`, and the
    fractional second as DuckDB trims it."""
    start = datetime(2026, 11, 1, 2, 30, tzinfo=UTC)  # St. John's leaves daylight time
    instants = [start + timedelta(minutes=37 * i, microseconds=250_000 * i) for i in range(8)]
    with duckdb.connect() as con:
        con.execute(f"SET TimeZone = '{zone}'")
        texts = [
            text
            for (text,) in con.sql(
                "SELECT CAST(t AS VARCHAR) FROM (SELECT unnest($t::TIMESTAMPTZ[]) AS t)",
                params={"t": instants},
            ).fetchall()
        ]
    out = run([{**ROW, "confirmationref": f"R{i}", "event_time": t} for i, t in enumerate(texts)])
    assert out["_reason"].to_list() == [None] * len(instants), texts
    assert out["_event_ms"].to_list() == [int(t.timestamp() * 1000) for t in instants]


@pytest.mark.parametrize(
    "value", ["2026-11-10T14:03:22+5", "2026-11-10T14:03:22+053", "2026-11-10-05", "14:03:22+05"]
)
def test_event_time_offsets_not_iso_8601_are_invalid(value: str) -> None:
    assert run([{**ROW, "event_time": value}])["_reason"].to_list() == ["invalid_event_time"]


def test_event_time_across_dst_changes() -> None:
    """A zoned column around the US fall-back hour: each instant keeps its own UTC ms."""
    zone = ZoneInfo("America/New_York")
    start = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)  # 01:00 EDT, then 01:00 EST an hour later
    instants = [start + timedelta(minutes=30 * i) for i in range(5)]
    frame = pl.DataFrame(
        {
            "confirmationref": [f"D{i}" for i in range(5)],
            "email": ["a@b.co"] * 5,
            "conversiontype": ["purchase"] * 5,
            "event_time": pl.Series([t.astimezone(zone) for t in instants]).dt.convert_time_zone(
                "America/New_York"
            ),
        }
    )
    out = transform(frame, MappingConfig(), "development")
    assert out["_event_ms"].to_list() == [int(t.timestamp() * 1000) for t in instants]


def test_integer_event_time_is_a_clear_error() -> None:
    with pytest.raises(SourceError, match="event_time has type"):
        run([{**ROW, "event_time": 1794319402}])


REJECTIONS = [
    ({"confirmationref": "  "}, "missing_confirmationref"),
    ({"event_time": None}, "missing_event_time"),
    ({"event_time": "yesterday"}, "invalid_event_time"),
    ({"conversiontype": None}, "missing_conversiontype"),
    ({"email": "N/A"}, "invalid_email"),
    ({"email": None, "email_sha256": "abc123"}, "invalid_hash"),
    ({"email": "   "}, "missing_identity"),
    ({"amount": "-5.00"}, "negative_amount"),
    ({"x" * 257: "v"}, "attribute_name_too_long"),
    ({"productname": "p" * 4097}, "attribute_value_too_long"),
    ({"confirmationref": "r" * 4097}, "attribute_value_too_long"),
]


@pytest.mark.parametrize(("change", "reason"), REJECTIONS)
def test_each_defect_rejects_the_row_with_its_reason(change: dict[str, Any], reason: str) -> None:
    out = run([{**ROW, **change}, {**ROW, "confirmationref": "fine"}])
    assert out["_reason"].to_list() == [None, reason]  # valid rows first, then rejected
    assert reason in REASONS


# A bad optional field, and its warning.
FIELD_DEFECTS = [
    ({"firstnamesha256": "zz" * 32}, "invalid_hash"),
    ({"ipaddress": "999.1.1.1"}, "invalid_ipaddress"),
    ({"ipaddress": "\u0661.\u0662.\u0663.\u0664"}, "invalid_ipaddress"),  # Arabic-Indic
    ({"ios_idfv": "not-a-uuid"}, "invalid_device_id"),
    ({"dob": "17/07/1990"}, "invalid_dob"),
    ({"amount": "twelve"}, "invalid_amount"),
    ({"margin": "NaN"}, "invalid_amount"),
    ({"quantity": "1.5"}, "invalid_quantity"),
    ({"quantity": "-1"}, "invalid_quantity"),
    ({"quantity": "\u0663"}, "invalid_quantity"),
    ({"currency": "US$"}, "invalid_currency"),
    ({"currency": "u\u00df"}, "invalid_currency"),  # would upper-case to "USS"
    ({"mobile": "n/a"}, "invalid_mobile"),
]


@pytest.mark.parametrize(("change", "code"), FIELD_DEFECTS)
def test_a_bad_optional_field_is_dropped_or_with_reject_rejects_the_row(
    change: dict[str, Any], code: str
) -> None:
    """The row is sent with its warning, byte for byte as if the field were empty."""
    bad = {**ROW, **change}
    without = {k: v for k, v in bad.items() if k not in change}
    out = run([bad, without])
    assert out["_reason"].to_list() == [None, None]
    assert out["_warnings"].to_list() == [code, None]
    assert out["_body"][0] == out["_body"][1]
    rejected = run([bad], MappingConfig(invalid_fields="reject"))
    assert rejected["_reason"].to_list() == [code]
    assert code in WARNINGS


def test_a_dropped_device_id_that_was_the_only_identity_leaves_none() -> None:
    row = {**ROW, "email": None, "rtid": None, "ios_idfv": "not-a-uuid"}
    out = run([row], MappingConfig(require_email=False))
    assert out["_reason"].to_list() == ["missing_identity"]


def test_batch_too_large() -> None:
    row = {**ROW, **{f"note{i}": "n" * 4000 for i in range(40)}}
    assert run([row])["_reason"].to_list() == ["batch_too_large"]


def test_relaxed_identity_rule() -> None:
    row = {**ROW, "email": None, "customerid": "C-1"}
    assert run([row])["_reason"].to_list() == ["missing_identity"]
    body = json.loads(run([row], MappingConfig(require_email=False))["_body"][0])
    assert body["user_identities"] == {"customerid": "C-1", "other_id_2": "rtid-77"}
    idfa = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
    device = {**ROW, "email": None, "rtid": None, "ios_advertising_id": f" {idfa} "}
    out = run([device], MappingConfig(require_email=False))
    assert json.loads(out["_body"][0])["device_info"] == {"ios_advertising_id": idfa}


def test_conversiontype_constant_and_unknown_column_policies() -> None:
    row = {k: v for k, v in ROW.items() if k != "conversiontype"}
    mapping = MappingConfig(conversiontype="signup")
    attrs = json.loads(run([row], mapping)["_body"][0])["events"][0]["data"]["custom_attributes"]
    assert attrs["conversiontype"] == "signup"
    ignore = MappingConfig(unknown_columns=UnknownColumns.IGNORE)
    assert "loyalty_tier" not in run([ROW], ignore)["_body"][0]
    with pytest.raises(SourceError, match="loyalty_tier"):
        run([ROW], MappingConfig(unknown_columns=UnknownColumns.ERROR))


def test_nested_column_is_a_clear_error() -> None:
    with pytest.raises(SourceError, match="column tags has type"):
        run([{**ROW, "tags": ["a", "b"]}])


def test_an_event_older_than_the_cutoff_is_too_old_and_the_cutoff_itself_is_not() -> None:
    cutoff = datetime(2026, 10, 2, tzinfo=UTC)
    times = [cutoff - timedelta(milliseconds=1), cutoff, cutoff + timedelta(days=1)]
    frame = pl.DataFrame(
        {
            "confirmationref": ["old", "edge", "fresh"],
            "email": ["a@b.co"] * 3,
            "conversiontype": ["purchase"] * 3,
            "event_time": [t.isoformat() for t in times],
        }
    )
    cutoff_ms = int(cutoff.timestamp() * 1000)
    out = transform(frame, MappingConfig(), "development", oldest_ms=cutoff_ms)
    assert out["_reason"].to_list() == ["too_old", None, None]
    assert transform(frame, MappingConfig(), "development")["_reason"].null_count() == 3


def test_too_old_comes_after_the_event_time_checks_and_before_the_rest() -> None:
    old = {**ROW, "event_time": "2020-01-01T00:00:00Z"}
    cases = [old, {**old, "email": "N/A", "conversiontype": None}, {**ROW, "event_time": "x"}]
    frame = transform(
        pl.DataFrame(cases), MappingConfig(), "development", oldest_ms=2 * 10**12
    )  # 2033
    assert frame["_reason"].to_list() == ["too_old", "too_old", "invalid_event_time"]
    codes = list(REASONS)
    assert codes.index("invalid_event_time") < codes.index("too_old") < codes.index("invalid_email")
    assert "sync.max_event_age" in REASONS["too_old"]


def test_an_event_after_now_plus_the_skew_is_in_the_future_and_one_at_it_is_not() -> None:
    newest = datetime(2026, 11, 1, 0, 10, tzinfo=UTC)  # now + sync.max_clock_skew (10m)
    cases = {
        "at": newest.isoformat(),
        "just-after": (newest + timedelta(milliseconds=1)).isoformat(),
        "y9999": "9999-12-31T23:59:59Z",
        "sydney": "2026-11-01T09:00:00+11:00",  # 22:00 UTC the day before
        "sydney-as-utc": "2026-11-01T09:00:00",  # the same local time without its offset
        "old": "2026-01-01T00:00:00Z",  # too_old comes first
    }
    frame = pl.DataFrame(
        {
            "confirmationref": list(cases),
            "email": ["a@b.co"] * len(cases),
            "conversiontype": ["purchase"] * len(cases),
            "event_time": list(cases.values()),
        }
    )
    newest_ms = int(newest.timestamp() * 1000)
    oldest_ms = int(datetime(2026, 10, 2, tzinfo=UTC).timestamp() * 1000)
    out = transform(frame, MappingConfig(), "development", oldest_ms=oldest_ms, newest_ms=newest_ms)
    assert dict(zip(cases, out["_reason"], strict=True)) == {
        "at": None,
        "just-after": "future_event_time",
        "y9999": "future_event_time",
        "sydney": None,
        "sydney-as-utc": "future_event_time",
        "old": "too_old",
    }
    assert transform(frame, MappingConfig(), "development")["_reason"].null_count() == 6
    codes = list(REASONS)
    assert codes.index("too_old") + 1 == codes.index("future_event_time")
    assert "sync.max_clock_skew" in REASONS["future_event_time"]
    assert "local time read as UTC" in REASONS["future_event_time"]


def test_whitespace_is_exactly_what_str_strip_removes() -> None:
    everything = (chr(c) for c in range(sys.maxunicode + 1))
    assert sorted(WHITESPACE) == sorted(c for c in everything if c.isspace())
