"""Hashing as Rokt matches: golden values from Rokt's published rules ("Hashing
identifiers for partners and advertisers", docs.rokt.com): mobile 10 digits, no symbols
('1234567890'); zip '12345' or ZIP+4 '12345-6789'; names and email lower case, no
spaces, trimmed; and every text in Unicode NFC before it is hashed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import phonenumbers
import polars as pl
import pytest
from conftest import base_config, write_config
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from connector.config import MappingConfig, load_config
from connector.errors import ConfigError
from connector.phones import national_numbers
from connector.transform import split, transform, warning_counts
from connector.transports.events_api_json import encode

BASE = {
    "confirmationref": "ORD-1",
    "email": "jane@example.com",
    "conversiontype": "purchase",
    "event_time": "2026-10-30T12:00:00Z",
}


# names, mobile and zip sent as plain text: allowed on purpose (mapping.allow_plain)
PLAIN = MappingConfig(hash=("email",), allow_plain=("firstname", "lastname", "mobile", "zip"))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def batch(mapping: MappingConfig | None = None, **row: Any) -> dict[str, Any]:
    frame = transform(pl.DataFrame([{**BASE, **row}]), mapping or MappingConfig(), "production")
    valid, rejected = split(frame)
    assert rejected.is_empty(), rejected["_reason"].to_list()
    parsed: dict[str, Any] = json.loads(encode(valid, "production")["_body"][0])
    return parsed


def user(mapping: MappingConfig | None = None, **row: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = batch(mapping, **row).get("user_attributes", {})
    return attributes


@pytest.mark.parametrize(
    ("mobile", "national"),
    [
        ("1234567890", "1234567890"),  # Rokt's own example
        ("+1 (555) 123-4567", "5551234567"),  # not 15551234567: never matched before
        ("1-555-123-4567", "5551234567"),
        ("(555) 123 4567", "5551234567"),
        ("555.123.4567 ext. 89", "5551234567"),
        ("+1 555 123 4567 x89", "5551234567"),
        ("001 555 123 4567", "5551234567"),
        ("+44 20 7946 0001", "2079460001"),
        ("0044 20 7946 0001", "2079460001"),
        ("+44 (0)20 7946 0001", "2079460001"),
        ("+49 30 901820", "30901820"),
        ("+39 06 1234 5678", "0612345678"),  # Italy keeps its leading 0
        ("\uff15\uff15\uff15-123-4567", "5551234567"),  # fullwidth digits
    ],
)
def test_a_mobile_hashes_its_national_number(mobile: str, national: str) -> None:
    assert user(mobile=mobile) == {"mobilesha256": sha(national)}


@pytest.mark.parametrize(
    ("region", "mobile", "national"),
    [
        ("GB", "020 7946 0001", "2079460001"),  # the trunk prefix 0 is not dialled abroad
        ("GB", "07700 900123", "7700900123"),
        ("DE", "030 901820", "30901820"),
        ("GB", "+1 (555) 123-4567", "5551234567"),  # a calling code wins over the region
        ("CA", "1 (416) 555-0123", "4165550123"),
    ],
)
def test_a_mobile_without_calling_code_is_read_in_mapping_phone_region(
    region: str, mobile: str, national: str
) -> None:
    mapping = MappingConfig(phone_region=region)
    assert user(mapping, mobile=mobile) == {"mobilesha256": sha(national)}


@pytest.mark.parametrize("mobile", ["n/a", "12", "555-CALL-NOW", "+44", "0123-456-7890"])
def test_a_mobile_that_is_no_phone_number_is_dropped_not_the_conversion(mobile: str) -> None:
    frame = transform(
        pl.DataFrame([{**BASE, "mobile": mobile}, {**BASE, "confirmationref": "ORD-2"}]),
        MappingConfig(),
        "production",
    )
    valid, rejected = split(frame)
    assert rejected.is_empty() and valid.height == 2
    assert valid["_warnings"].to_list() == ["invalid_mobile", None]
    assert warning_counts(valid) == {"invalid_mobile": 1}
    body = json.loads(encode(valid, "production")["_body"][0])
    assert "user_attributes" not in body  # neither the hash nor the plain value
    assert "mobile" not in user(PLAIN, mobile=mobile)


def test_a_plain_mobile_is_sent_as_given() -> None:
    assert user(PLAIN, mobile=" +1 (555) 123-4567 ") == {"mobile": "+1 (555) 123-4567"}


@pytest.mark.parametrize(
    ("zip_code", "expected"),
    [
        ("12345", {"billingzipsha256": sha("12345")}),  # Rokt's own examples
        (
            "12345-6789",
            {"billingzipsha256": sha("12345"), "billingzip4sha256": sha("12345-6789")},
        ),
        (
            " 12345 - 6789 ",
            {"billingzipsha256": sha("12345"), "billingzip4sha256": sha("12345-6789")},
        ),
        ("SW1A 1AA", {"billingzipsha256": sha("SW1A1AA")}),  # spaces out, case as given
        ("sw1a 1aa", {"billingzipsha256": sha("sw1a1aa")}),
        ("10115", {"billingzipsha256": sha("10115")}),
    ],
)
def test_zip_and_zip_plus4(zip_code: str, expected: dict[str, str]) -> None:
    assert user(zip=zip_code) == expected


def test_a_plain_zip_is_sent_without_spaces() -> None:
    assert user(PLAIN, zip=" SW1A 1AA ") == {"zip": "SW1A1AA"}


@pytest.mark.parametrize(
    ("first", "last", "first_hashed", "last_hashed"),
    [
        ("  Mary Ann ", "Van\u00a0Der Berg", "maryann", "vanderberg"),
        ("Zoe\u0308", "Mu\u0308ller", "zo\u00eb", "m\u00fcller"),  # decomposed -> NFC
        ("ZO\u00cb", "M\u00dcLLER", "zo\u00eb", "m\u00fcller"),
        ("Jean-Luc", "O'Brien", "jean-luc", "o'brien"),  # only whitespace goes
    ],
)
def test_names_lower_case_no_whitespace_nfc(
    first: str, last: str, first_hashed: str, last_hashed: str
) -> None:
    assert user(firstname=first, lastname=last) == {
        "firstnamesha256": sha(first_hashed),
        "lastnamesha256": sha(last_hashed),
    }


def test_an_email_is_hashed_in_nfc_and_lower_case() -> None:
    composed = batch(email="Zo\u00eb@Example.com")["user_identities"]["other"]
    decomposed = batch(email=" ZOE\u0308@example.COM ")["user_identities"]["other"]
    assert composed == decomposed == sha("zo\u00eb@example.com")


def test_an_email_with_inner_whitespace_is_invalid() -> None:
    frame = transform(
        pl.DataFrame([{**BASE, "email": "jane doe@example.com"}]), MappingConfig(), "x"
    )
    assert frame["_reason"].to_list() == ["invalid_email"]


def test_prehashed_values_pass_through_lowercased() -> None:
    digest = sha("anything").upper()
    assert user(mobile=digest, zip=digest, firstname=digest, billingzip4sha256=digest.lower()) == {
        "firstnamesha256": digest.lower(),
        "mobilesha256": digest.lower(),
        "billingzipsha256": digest.lower(),
        "billingzip4sha256": digest.lower(),
    }


def _examples() -> list[tuple[str, str, str]]:
    """(region, text, national significant number): every region's example numbers
    of the common types, written internationally, as E.164 and nationally."""
    rows = []
    types = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE)
    formats = (PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.E164, PhoneNumberFormat.NATIONAL)
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in types:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                national = phonenumbers.national_significant_number(number)
                for form in formats:
                    rows.append((region, phonenumbers.format_number(number, form), national))
    return rows


def test_national_numbers_agree_with_the_phonenumbers_library() -> None:
    """The vectorized rule against the numbering plan library on its own examples for
    every region. The one known difference: Argentina's national mobile format, whose
    `15` the library rewrites (the rule hashes what is written)."""
    frame = pl.DataFrame(_examples(), schema=["region", "text", "national"], orient="row")
    differ = []
    for (region,), group in frame.group_by("region"):
        got = national_numbers(group["text"], str(region))
        for (_, text, national), ours in zip(group.iter_rows(), got, strict=True):
            if ours != national:
                differ.append((region, text))
    assert frame.height > 2000
    assert differ == [("AR", "011 15-2345-6789")]


def test_phone_region_must_be_a_region_of_the_numbering_plan() -> None:
    assert MappingConfig(phone_region=" gb ").phone_region == "GB"
    with pytest.raises(ValueError, match="not a region"):
        MappingConfig(phone_region="XX")


def test_a_long_phone_region_is_clipped_in_the_config_error(tmp_path: Path) -> None:
    """The message names the key and shows the value cut to a readable length."""
    config = write_config(tmp_path, base_config(tmp_path, mapping={"phone_region": "0" * 3000}))
    with pytest.raises(ConfigError, match=r"mapping\.phone_region: is not a region") as refused:
        load_config(config)
    assert len(str(refused.value)) < 300
