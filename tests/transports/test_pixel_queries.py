"""The pixel transports' query strings: exact bytes for a handful of rows, the
encoding every value gets, and the rows a pixel cannot carry."""

from __future__ import annotations

import hashlib
import logging
import uuid
from urllib.parse import parse_qsl, quote

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.config import DestinationConfig, MappingConfig
from connector.errors import SourceError
from connector.transform import split, transform
from connector.transports import transport_for
from connector.transports.query import encoded

PIXEL = DestinationConfig(transport="pixel", api_key="k", environment="development")
RUDDER = DestinationConfig(
    transport="rudderstack_pixel",
    base_url="https://dp.example.com",
    write_key="wk",
    environment="production",
)
ROWS = {
    "confirmationref": ["ORD-1", "ORD 2/é", "ORD-3"],
    "conversiontype": ["purchase", "signup", "purchase"],
    "event_time": ["2026-11-30T12:00:00Z", "2026-11-30T12:00:01.5+01:00", "2026-11-29T00:00:00Z"],
    "email": [" J.Smith@Example.com ", None, None],
    "email_sha256": [None, "A" * 64, None],
    "customerid": ["C-1", None, "C&3=x"],
    "session_id": [None, "sess-9", None],
    "rtid": ["rt1", None, None],
    "firstname": ["José", None, None],
    "mobile": ["(312) 555-1515", None, None],
    "zip": ["98103-1234", None, None],
    "city": [None, "Zürich", None],
    "amount": [300.5, 12.0, None],
    "currency": ["usd", None, None],
    "quantity": [2, None, None],
    "ipaddress": ["203.0.113.9", None, None],
    "coupon": ["SAVE10", None, "100%"],
}
MAPPING = MappingConfig(allow_plain=("coupon",), require_email=False)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def bodies(destination: DestinationConfig, rows: dict[str, list[object]] = ROWS) -> list[str]:
    valid, rejected = split(transform(pl.DataFrame(rows), MAPPING, destination.environment))
    assert rejected.is_empty()
    encoded = transport_for(destination).encode(valid)
    assert encoded["_reason"].null_count() == encoded.height
    return encoded["_body"].to_list()


def test_rokt_pixel_queries_byte_for_byte() -> None:
    email, first = sha("j.smith@example.com"), sha("josé")
    mobile, zip4, zip5 = sha("3125551515"), sha("98103-1234"), sha("98103")
    fixed = "dt=AppEvent&et=Transaction&n=conversion"
    assert bodies(PIXEL) == [
        f"{fixed}&ct=1796040000000&dbg=true"
        f"&ui_t=other,customerid,other2&ui_v={email},C-1,rt1"
        "&ua_k=firstnamesha256,mobilesha256,billingzip4sha256,billingzipsha256"
        f"&ua_v={first},{mobile},{zip4},{zip5}"
        "&attrs_k=conversiontype,confirmationref,amount,currency,quantity,coupon"
        "&attrs_v=purchase,ORD-1,300.5,USD,2,SAVE10",
        f"{fixed}&ct=1796036401500&dbg=true&ui_t=other,other3&ui_v={'a' * 64},sess-9"
        "&ua_k=city&ua_v=Z%C3%BCrich"
        "&attrs_k=conversiontype,confirmationref,amount&attrs_v=signup,ORD%202%2F%C3%A9,12.0",
        f"{fixed}&ct=1795910400000&dbg=true&ui_t=customerid&ui_v=C%263%3Dx"
        "&attrs_k=conversiontype,confirmationref,coupon&attrs_v=purchase,ORD-3,100%25",
    ]
    production = PIXEL.model_copy(update={"environment": "production"})
    assert all("&dbg=false&" in body for body in bodies(production))


def uuid5(namespace: str, name: str) -> str:
    url = f"https://rokt-connector.invalid/{namespace}"
    return str(uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_URL, url), name))


def test_rudderstack_queries_byte_for_byte() -> None:
    first, mobile = sha("josé"), sha("3125551515")
    zip4, zip5 = sha("98103-1234"), sha("98103")
    anonymous = uuid5("anonymous_id", sha("j.smith@example.com"))
    message = uuid5("source_message_id", "production:ORD-1")
    [one, two, three] = bodies(RUDDER)
    assert one == (
        f"anonymousId={anonymous}&event=Order%20Completed&messageId={message}"
        "&originalTimestamp=2026-11-30T12:00:00.000Z&userId=C-1&properties.rtid=rt1"
        f"&context.ip=203.0.113.9&context.traits.firstNameSha256={first}"
        f"&context.traits.phoneSha256={mobile}&properties.billingzip4sha256={zip4}"
        f"&properties.billingzipsha256={zip5}&properties.order_id=ORD-1"
        "&properties.conversiontype=purchase&properties.amount=300.5"
        "&properties.currency=USD&properties.quantity=2&properties.coupon=SAVE10"
    )
    assert two.startswith("anonymousId=sess-9&event=Order%20Completed&messageId=")
    assert two.endswith(
        "&originalTimestamp=2026-11-30T11:00:01.500Z"
        "&context.traits.address.city=Z%C3%BCrich&properties.order_id=ORD%202%2F%C3%A9"
        "&properties.conversiontype=signup&properties.amount=12.0"
    )
    assert three.startswith(f"anonymousId={uuid5('anonymous_id', 'customerid:C&3=x')}&")
    assert "&userId=C%263%3Dx&properties.order_id=ORD-3&" in three
    # no session id: the anonymous id comes from the hashed identity, never raw PII
    params = [dict(parse_qsl(body)) for body in (one, three)]
    assert params[0]["anonymousId"] != params[1]["anonymousId"]
    assert "j.smith" not in one and "email" not in one  # hashed: no email travels


def test_the_anonymous_id_is_stable_per_person_across_conversions() -> None:
    rows = {
        "confirmationref": ["A", "B"],
        "conversiontype": ["purchase"] * 2,
        "event_time": ["2026-11-30T12:00:00Z"] * 2,
        "email": ["x@example.com", " X@Example.com"],
    }
    ids = {dict(parse_qsl(body))["anonymousId"] for body in bodies(RUDDER, rows)}
    assert len(ids) == 1


@given(st.lists(st.text(), min_size=1, max_size=20))
def test_values_are_percent_encoded_as_urllib_does(values: list[str]) -> None:
    series = pl.Series("v", values, dtype=pl.String)
    assert pl.select(encoded(series)).to_series().to_list() == [quote(v, safe="") for v in values]


def test_a_comma_in_a_value_rejects_the_row_and_the_log_names_the_column(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = {
        "confirmationref": ["A", "B"],
        "conversiontype": ["purchase"] * 2,
        "event_time": ["2026-11-30T12:00:00Z"] * 2,
        "email": ["x@example.com"] * 2,
        "productname": ["Shoe, blue", "hat"],
    }
    valid, _ = split(transform(pl.DataFrame(rows), MAPPING, "development"))
    with caplog.at_level(logging.WARNING, logger="connector"):
        out = transport_for(PIXEL).encode(valid)
    assert out["_reason"].to_list() == ["pixel_unsafe_value", None]
    assert "pixel_unsafe_value column=productname rows=1" in caplog.text
    assert "Shoe" not in caplog.text
    # RudderStack has no comma lists: the same row travels
    assert transport_for(RUDDER).encode(valid)["_reason"].to_list() == [None, None]


def test_a_url_over_8_kb_is_rejected_url_too_long() -> None:
    rows = {
        "confirmationref": ["A", "B"],
        "conversiontype": ["purchase"] * 2,
        "event_time": ["2026-11-30T12:00:00Z"] * 2,
        "email": ["x@example.com"] * 2,
        "productname": ["é" * 1400, "x" * 1400],  # 8400 bytes encoded; 1400
    }
    valid, _ = split(transform(pl.DataFrame(rows), MAPPING, "development"))
    for destination in (PIXEL, RUDDER):
        out = transport_for(destination).encode(valid)
        assert out["_reason"].to_list() == ["url_too_long", None]


def test_shown_bodies_redact_plain_pii_and_allowed_plain_columns() -> None:
    rows = {
        "confirmationref": ["A"],
        "conversiontype": ["purchase"],
        "event_time": ["2026-11-30T12:00:00Z"],
        "email": ["x@example.com"],
        "coupon": ["SAVE10"],
    }
    mapping = MappingConfig(
        hash=(), allow_plain=("email", "firstname", "lastname", "mobile", "zip", "coupon")
    )
    valid, _ = split(transform(pl.DataFrame(rows), mapping, "development"))
    for destination in (PIXEL, RUDDER):
        [shown] = transport_for(destination).encode(valid, redact=True)["_body"].to_list()
        assert "x%40example.com" not in shown and "SAVE10" not in shown
        assert shown.count("%3Credacted%3E") == 2
        [sent] = transport_for(destination).encode(valid)["_body"].to_list()
        assert "x%40example.com" in sent and "SAVE10" in sent


def test_rudderstack_refuses_an_extra_column_it_would_read_as_a_path() -> None:
    rows = {
        "confirmationref": ["A"],
        "conversiontype": ["purchase"],
        "event_time": ["2026-11-30T12:00:00Z"],
        "email": ["x@example.com"],
        "order.total": ["1"],
    }
    valid, _ = split(transform(pl.DataFrame(rows), MAPPING, "development"))
    with pytest.raises(SourceError, match=r"column order\.total: RudderStack reads a dot"):
        transport_for(RUDDER).encode(valid)
    assert transport_for(PIXEL).encode(valid)["_reason"].to_list() == [None]


def test_the_comma_warning_names_an_extra_column_as_the_query_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = {
        "confirmationref": ["A"],
        "conversiontype": ["purchase"],
        "event_time": ["2026-11-30T12:00:00Z"],
        "email": ["x@example.com"],
        "color": ["red, blue"],
    }
    valid, _ = split(transform(pl.DataFrame(rows), MAPPING, "development"))
    with caplog.at_level(logging.WARNING, logger="connector"):
        assert transport_for(PIXEL).encode(valid)["_reason"].to_list() == ["pixel_unsafe_value"]
    assert "pixel_unsafe_value column=color rows=1" in caplog.text
