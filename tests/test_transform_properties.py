"""Properties of transform -> split -> encode over arbitrary unicode input.

Any input yields, per row, either a valid batch or a reason code from
`connector.spec.REASONS`: never an exception, never a hashed field's plain value in
the payload, and valid payloads carry what docs/attributes.md says (checked against
independent Python oracles: `str.strip`, `str.lower`, `hashlib.sha256`, `int`,
`float`, `ipaddress`, `datetime.fromisoformat`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import re
import unicodedata
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import phonenumbers
import polars as pl
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from connector.config import MappingConfig
from connector.digest import uuid5
from connector.spec import HINTS
from connector.transform import NS_MESSAGE, split, transform
from connector.transports.events_api_json import encode

ENVIRONMENT = "development"
UNKNOWN = "coupon_code"  # not in the spec: custom_attributes (unknown_columns: attribute)
HASHED = ("email", "firstname", "lastname", "mobile", "zip")
HASHED_KEY = {
    "email": ("user_identities", "other"),
    "firstname": ("user_attributes", "firstnamesha256"),
    "lastname": ("user_attributes", "lastnamesha256"),
    "mobile": ("user_attributes", "mobilesha256"),
    "zip": ("user_attributes", "billingzipsha256"),
}
PLAIN_KEY = {
    "email": ("user_identities", "email"),
    "firstname": ("user_attributes", "firstname"),
    "lastname": ("user_attributes", "lastname"),
    "mobile": ("user_attributes", "mobile"),
    "zip": ("user_attributes", "zip"),
}
COLUMNS = (
    *HASHED,
    "confirmationref",
    "conversiontype",
    "currency",
    "amount",
    "quantity",
    "event_time",
    "ipaddress",
    "dob",
    UNKNOWN,
)
HEX64 = re.compile(r"[0-9a-fA-F]{64}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PROPERTY = settings(
    deadline=None,  # the first call warms up DuckDB and polars
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # No shrink phase: shrinking a 20-row frame one transform at a time takes tens of
    # seconds, and every assertion below names the exact offending input value.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target],
)


# ------------------------------------------------------------------------- oracles


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


CALLING_CODES = sorted(map(str, phonenumbers.COUNTRY_CODE_TO_REGION_CODE))
EXTENSION = r"[ \t]*(?:[eE][xX][tT]\.?|[xX]|#)[ \t]*[0-9]+$"


def _national(text: str) -> str | None:
    """docs/hashing.md: what a mobile hashes (region US): every decimal digit as its
    ASCII digit (a fullwidth or Arabic-Indic digit is still that digit); an extension
    and a "(0)" dropped; with "+" or "00", the digits after the calling code (10 for
    +1, else 4-14); without, 10 digits or 1 and 10 digits. None: not a phone number."""
    text = "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text)
    text = re.sub(EXTENSION, "", text, count=1).replace("(0)", "")
    digits = re.sub(r"[^0-9]", "", text)
    if text.startswith(("+", "00")):
        digits = digits[2:] if text.startswith("00") else digits
        code = next((c for c in CALLING_CODES if digits.startswith(c)), None)
        rest = digits[len(code) :] if code else ""
        if code == "1":
            return rest if len(rest) == 10 else None
        return rest if code and 4 <= len(rest) <= 14 else None
    if len(digits) == 11 and digits.startswith("1"):
        return digits[1:]
    return digits if len(digits) == 10 else None


def _unspaced(text: str) -> str:
    """Names and zips: every whitespace character (str.isspace) out, then NFC."""
    return unicodedata.normalize("NFC", "".join(c for c in text if not c.isspace()))


def _zip5(text: str) -> str:
    """A US ZIP+4 hashes its 5 digits under billingzipsha256 (and whole apart)."""
    return text[:5] if re.fullmatch(r"[0-9]{5}-[0-9]{4}", text) else text


def _knows_every_char(text: str) -> bool:
    """Python 3.11 ships Unicode 14; polars (Rust) a newer one. For a character this
    Python does not know (category Cn) the oracle cannot say how it lowercases or
    whether it is a digit, so exact-value checks that depend on that are skipped."""
    return all(unicodedata.category(ch) != "Cn" for ch in text)


def _expected_plain(column: str, stripped: str) -> str | None:
    """What is sent of an input not hashed; None: nothing (a mobile that is no phone)."""
    if column == "email":
        return unicodedata.normalize("NFC", stripped).lower()
    if column in ("firstname", "lastname"):
        return _unspaced(stripped).lower() or None
    if column == "zip":
        return _unspaced(stripped) or None
    if column == "mobile" and _national(stripped) is None:
        return None
    return stripped


def _expected_hash(column: str, stripped: str) -> str | None:
    if column == "mobile":
        national = _national(stripped)
        return None if national is None else _sha(national)
    plain = _expected_plain(column, stripped)
    if plain is None:
        return None
    return _sha(_zip5(plain) if column == "zip" else plain)


def _strict_json(body: str) -> Any:
    def reject(constant: str) -> Any:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(body, parse_constant=reject)


def _get(batch: dict[str, Any], place: str, key: str) -> Any:
    return (batch.get(place) or {}).get(key)


_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"(\s*:)?', re.DOTALL)
_FIXED = {
    ("environment", ENVIRONMENT),
    ("event_type", "custom_event"),
    ("event_name", "conversion"),
    ("custom_event_type", "transaction"),
}


def _value_tokens(body: str) -> Iterator[tuple[str, str, str]]:
    """(key, JSON-escaped text, decoded text) of every string value in `body`, except
    values that cannot carry input text verbatim: 64-hex hashes, UUIDs, the fixed event
    fields, and `dob` (rewritten as YYYYMMDD). Keys are the connector's own names."""
    key = ""
    for match in _TOKEN.finditer(body):
        decoded = json.loads(f'"{match.group(1)}"')
        if match.group(2):
            key = decoded
            continue
        if HEX64.fullmatch(decoded) or UUID.fullmatch(decoded) or (key, decoded) in _FIXED:
            continue
        if key == "dob":
            continue
        yield key, match.group(1), decoded


def _iso_ms(text: str) -> int | None:
    """Epoch ms of an ISO 8601 timestamp by Python's reading (naive = UTC), or None."""
    stripped = text.strip()
    try:
        parsed = datetime.fromisoformat(stripped)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - EPOCH) // timedelta(milliseconds=1)


def _dob(text: str) -> str | None:
    stripped = text.strip()
    for pattern, fmt in ((r"[0-9]{4}-[0-9]{2}-[0-9]{2}", "%Y-%m-%d"), (r"[0-9]{8}", "%Y%m%d")):
        if re.fullmatch(pattern, stripped):
            try:
                day = datetime.strptime(stripped, fmt).date()
            except ValueError:
                return None
            return f"{day.year:04d}{day.month:02d}{day.day:02d}"
    return None


# ---------------------------------------------------------------------- strategies

# Whitespace (and look-alikes) to pad values with: Python's str.strip() removes the
# first 18 (\x1c-\x1f are "whitespace" to Python); the last three are not whitespace.
EXOTIC = (
    " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u2029\u202f\u3000\u200b\ufeff\u180e"
)
ARABIC_INDIC = "".join(chr(0x0660 + i) for i in range(10))
FULLWIDTH = "".join(chr(0xFF10 + i) for i in range(10))
DEVANAGARI = "".join(chr(0x0966 + i) for i in range(10))
DIGIT_SCRIPTS = ("0123456789", ARABIC_INDIC, FULLWIDTH, DEVANAGARI)
NAMES = (
    "Jane",
    "O'Brien",
    "JOSÉ",
    "Zoë",
    "Åsa",
    "李小龍",
    "ΟΔΥΣΣΕΥΣ",
    "İlkay",
    "Straße",
    'Back\\slash "Q"',
    "Tab\tName",
)

text = st.text()  # full unicode (surrogates excluded), control characters included


def _hex_case(raw: bytes, mask: int) -> str:
    """64 hex digits with letters upper-cased where `mask` has a bit set."""
    return "".join(c.upper() if mask >> i & 1 else c for i, c in enumerate(raw.hex()))


hex64 = st.builds(
    _hex_case,
    st.binary(min_size=32, max_size=32),
    st.sampled_from([0, 2**64 - 1]) | st.integers(0, 2**64 - 1),
)
local_part = st.text(st.sampled_from("abcXYZ019._%+-'!#"), min_size=1, max_size=12)
emails = st.one_of(
    st.emails(),
    st.builds(
        "{}@{}".format, local_part, st.sampled_from(["example.com", "Mail.Example.ORG", "x.io"])
    ),
)


def _script(value: str, digits: str) -> str:
    return value.translate(str.maketrans("0123456789", digits))


def padded(strategy: st.SearchStrategy[str], pads: str = EXOTIC) -> st.SearchStrategy[str]:
    pad = st.text(st.sampled_from(pads), max_size=2)
    return st.tuples(pad, strategy, pad).map("".join)


def spaced(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Padded with whitespace Python and polars agree on."""
    return padded(strategy, " \t\n\r\u3000")


def in_script(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """ASCII digits of `strategy` rewritten in another script's digits (sometimes)."""

    return st.builds(_script, strategy, st.sampled_from(DIGIT_SCRIPTS))


def timestamps() -> st.SearchStrategy[str]:
    offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
    aware = st.datetimes(timezones=offsets)
    naive = st.datetimes()
    hours = st.integers(-23, 23).map(lambda h: timezone(timedelta(hours=h)))
    return st.one_of(
        aware.map(datetime.isoformat),
        st.datetimes(timezones=hours).map(lambda d: d.isoformat(sep=" ")[:-3]),  # +hh
        naive.map(datetime.isoformat),
        naive.map(lambda d: d.isoformat(sep=" ")),
        naive.map(lambda d: d.isoformat(timespec="milliseconds") + "Z"),
        aware.map(lambda d: d.isoformat(timespec="minutes")),
        st.dates().map(date.isoformat),
    )


mobiles = in_script(
    st.builds(
        str.format,
        st.sampled_from(["{}", "+1 ({}) {}-{}", "{}.{}.{}", "+44 {} {}{}", "0{}-{}-{}"]),
        *(st.integers(0, 999).map("{:03d}".format),) * 2,
        st.integers(0, 9999).map("{:04d}".format),
    )
)

# Per column: "tame" values (none or realistic: a row of them is usually valid; the
# hashed columns also take any text, padded with exotic whitespace) and "wild" ones
# (any text). Half the rows are all tame, the others mix tame and wild per column.
TAME: dict[str, st.SearchStrategy[str | None]] = {
    "email": st.one_of(padded(emails), padded(emails), padded(hex64)),
    "firstname": st.one_of(st.none(), padded(st.sampled_from(NAMES)), padded(text), hex64),
    "lastname": st.one_of(st.none(), padded(st.sampled_from(NAMES)), padded(text), hex64),
    "mobile": st.one_of(
        st.none(),
        padded(mobiles),
        st.tuples(text, st.integers(0, 10**10).map(str), text).map("".join),
        padded(hex64),
    ),
    "zip": st.one_of(
        st.none(),
        padded(st.integers(0, 99999).map("{:05d}".format)),
        st.just("SW1A 1AA"),
        padded(text),
        padded(hex64),
    ),
    "confirmationref": spaced(st.integers(0, 999999).map("ORD-{}".format)),
    "conversiontype": spaced(st.sampled_from(["purchase", "signup", "Sign Up!"])),
    "currency": st.one_of(st.none(), spaced(st.sampled_from(["usd", "EUR", "gbp", "Jpy"]))),
    "amount": st.one_of(
        st.none(),
        spaced(st.decimals(-(10**9), 10**9, places=2).map(str)),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.sampled_from(["1e3", ".5", "5.", "+7", "-0", "1E-7"]),
    ),
    "quantity": st.one_of(
        st.none(), spaced(st.integers(0, 10**6).map(str)), st.sampled_from(["+3", "007"])
    ),
    "event_time": spaced(timestamps()),
    "ipaddress": st.one_of(st.none(), spaced(st.ip_addresses().map(str))),
    "dob": st.one_of(
        st.none(),
        spaced(st.dates().map(date.isoformat)),
        st.dates().map(lambda d: f"{d.year:04d}{d.month:02d}{d.day:02d}"),
    ),
    UNKNOWN: st.one_of(st.none(), text),
}
WILD: dict[str, st.SearchStrategy[str | None]] = {
    column: st.one_of(st.none(), text, padded(text)) for column in COLUMNS
}
WILD["amount"] = st.one_of(WILD["amount"], in_script(st.integers(0, 999).map(str)))
WILD["quantity"] = st.one_of(WILD["quantity"], in_script(st.integers(0, 999).map(str)))
WILD["mobile"] = st.one_of(WILD["mobile"], padded(mobiles))
WILD["ipaddress"] = st.one_of(
    WILD["ipaddress"], in_script(st.ip_addresses(v=4).map(str)), st.just("fe80::1%eth0")
)
WILD["currency"] = st.one_of(
    WILD["currency"], st.sampled_from(["US", "EURO", "uß", "\uff35\uff33\uff24"])
)
WILD["event_time"] = st.one_of(WILD["event_time"], padded(timestamps()))

Row = dict[str, str | None]
tame_row = st.fixed_dictionaries(TAME)
mixed_row = st.fixed_dictionaries({c: st.one_of(TAME[c], WILD[c]) for c in COLUMNS})
rows_strategy = st.integers(1, 20).flatmap(
    lambda n: st.lists(st.one_of(tame_row, mixed_row), min_size=n, max_size=n)
)


# The oracles below judge each field of a row that is sent; with `invalid_fields:
# reject` a bad field rejects its row, so none is left out unseen (the drop mode is
# checked against this one in `test_dropping_a_field_is_rejecting_its_row_less_it`).
REJECT = {"invalid_fields": "reject"}


def _chunk(rows: list[Row]) -> pl.DataFrame:
    return pl.DataFrame(
        {c: [r[c] for r in rows] for c in COLUMNS}, schema=dict.fromkeys(COLUMNS, pl.String)
    )


def _run(rows: list[Row], mapping: MappingConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(encoded valid rows, rejected rows) of `rows`, all String columns."""
    valid, rejected = split(transform(_chunk(rows), mapping, ENVIRONMENT))
    return encode(valid, ENVIRONMENT), rejected


def _check_outcomes(rows: list[Row], encoded: pl.DataFrame, rejected: pl.DataFrame) -> None:
    """(1)-(2): every row is a parseable batch or carries a known reason code."""
    assert len(encoded) + len(rejected) == len(rows)
    assert sorted(encoded["_row"].to_list() + rejected["_row"].to_list()) == list(
        range(1, len(rows) + 1)
    )
    for reason in rejected["_reason"].to_list() + encoded["_reason"].drop_nulls().to_list():
        assert reason in HINTS, reason
    for body, reason in encoded.select("_body", "_reason").iter_rows():
        assert isinstance(body, str)
        batch = _strict_json(body)
        assert isinstance(batch, dict)
        assert reason in (None, "batch_too_large")


def _valid(encoded: pl.DataFrame, rows: list[Row]) -> Iterator[tuple[Row, str, dict[str, Any]]]:
    for row_number, body in (
        encoded.filter(pl.col("_reason").is_null()).select("_row", "_body").iter_rows()
    ):
        yield rows[row_number - 1], body, _strict_json(body)


def _stripped(value: str | None) -> str:
    return (value or "").strip()


# -------------------------------------------------------------- payload checks


def _leaks(row: Row, tokens: list[tuple[str, str, str]], column: str) -> list[str]:
    """(3) The raw, stripped and normalized forms of a hashed input never appear in any
    string of the body, neither decoded nor JSON-escaped, unless another (not hashed)
    input column of the same row contains that text too."""
    raw = row[column]
    if raw is None:
        return []
    stripped = raw.strip()
    candidates = {raw, stripped, _expected_plain(column, stripped) or raw}
    others = [(row[c] or "").casefold() for c in COLUMNS if c not in HASHED and row[c] is not None]
    found = []
    for candidate in candidates:
        if len(candidate) < 3 or not stripped or HEX64.fullmatch(stripped):
            continue
        if any(candidate.casefold() in other for other in others):
            continue  # the same text was given in a column that is sent as is
        # The JSON-escaped forms, where escaping changes anything (quotes, backslashes,
        # control characters; non-ASCII when escaped as \uXXXX).
        forms = {json.dumps(candidate)[1:-1], json.dumps(candidate, ensure_ascii=False)[1:-1]}
        forms.discard(candidate)
        for key, escaped, decoded in tokens:
            if candidate in decoded or any(form in escaped for form in forms):
                found.append(f"{column}={raw!r}: {candidate!r} appears in {key}={decoded!r}")
    return found


def _hashed_field_errors(row: Row, batch: dict[str, Any], column: str, hashed: bool) -> list[str]:
    """(4) The value under the hashed key (or, unhashed, the plain key) is exactly what
    docs/attributes.md prescribes for the input; a blank input sends neither key."""
    raw = row[column]
    stripped = _stripped(raw)
    got_hash = _get(batch, *HASHED_KEY[column])
    got_plain = _get(batch, *PLAIN_KEY[column])
    where = f"{column}={raw!r}"
    errors = []
    if hashed and got_plain is not None:
        errors.append(f"{where}: hashed field also sent in plain text: {got_plain!r}")
    if not stripped:
        if got_hash is not None or got_plain is not None:
            errors.append(f"{where}: blank input sent as {got_hash or got_plain!r}")
        return errors
    if HEX64.fullmatch(stripped):
        if got_hash != stripped.lower():
            errors.append(
                f"{where}: 64-hex input: expected {stripped.lower()} under the hashed "
                f"key, got hashed={got_hash!r} plain={got_plain!r}"
            )
        return errors
    if not (column == "zip" or _knows_every_char(stripped)):
        return errors
    if hashed:
        expected = _expected_hash(column, stripped)
        if got_hash != expected:
            errors.append(f"{where}: expected sha256 {expected}, got {got_hash!r}")
        plus4 = _get(batch, "user_attributes", "billingzip4sha256") if column == "zip" else None
        whole = _expected_plain(column, stripped) or ""
        if column == "zip" and plus4 != (_sha(whole) if _zip5(whole) != whole else None):
            errors.append(f"{where}: billingzip4sha256 is {plus4!r}")
    else:
        expected = _expected_plain(column, stripped)
        if got_plain != expected or got_hash is not None:
            errors.append(
                f"{where}: expected plain {expected!r}, got plain={got_plain!r} hashed={got_hash!r}"
            )
    return errors


def _event_field_errors(row: Row, batch: dict[str, Any]) -> list[str]:
    """The other columns of a valid row, against Python's reading of the input."""
    data = batch["events"][0]["data"]
    attributes = data["custom_attributes"]
    errors = []

    def check(column: str, got: Any, expected: Any) -> None:
        if got != expected or type(got) is not type(expected):
            errors.append(f"{column}={row[column]!r}: expected {expected!r}, got {got!r}")

    for column in ("confirmationref", "conversiontype"):
        check(column, attributes.get(column), _stripped(row[column]))
    currency = _stripped(row["currency"])
    if currency:
        check("currency", attributes.get("currency"), currency.upper())
        if not re.fullmatch(r"[A-Za-z]{3}", currency):
            errors.append(f"currency={row['currency']!r}: not a 3-letter code, yet sent")
    amount = _stripped(row["amount"])
    if amount:
        try:
            check("amount", float(attributes.get("amount", "nan")), float(amount))
        except ValueError:
            errors.append(f"amount={row['amount']!r}: accepted, but not a number")
    quantity = _stripped(row["quantity"])
    if quantity:
        try:
            check("quantity", attributes.get("quantity"), int(quantity))
        except ValueError:
            errors.append(f"quantity={row['quantity']!r}: accepted, but not an integer")
    ip = _stripped(row["ipaddress"])
    if ip:
        check("ipaddress", batch.get("ip"), ip)
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            errors.append(f"ipaddress={row['ipaddress']!r}: accepted, but not an IP address")
    dob = _stripped(row["dob"])
    if dob:
        check("dob", (batch.get("user_attributes") or {}).get("dob"), _dob(dob))
    expected_ms = _iso_ms(row["event_time"] or "")
    if expected_ms is not None:
        check("event_time", data["timestamp_unixtime_ms"], expected_ms)
    unknown = _stripped(row[UNKNOWN])
    check(UNKNOWN, attributes.get(UNKNOWN), unknown or None)
    return errors


def _report(errors: list[str]) -> str:
    return f"{len(errors)} problem(s):\n  " + "\n  ".join(errors[:12])


@settings(PROPERTY, max_examples=75)
@given(rows=rows_strategy)
def test_any_unicode_is_a_valid_batch_or_a_reason(rows: list[Row]) -> None:
    mapping = MappingConfig(allow_plain=(UNKNOWN,), **REJECT)  # any text, even an email
    assert set(mapping.hash) == set(HASHED)
    encoded, rejected = _run(rows, mapping)
    _check_outcomes(rows, encoded, rejected)
    errors: list[str] = []
    for row, body, batch in _valid(encoded, rows):
        tokens = list(_value_tokens(body))
        for column in HASHED:
            for place in ("user_identities", "user_attributes"):
                if column in (batch.get(place) or {}):
                    errors.append(f"plain key {column!r} in {place}")
            errors += _leaks(row, tokens, column)
            errors += _hashed_field_errors(row, batch, column, hashed=True)
        errors += _event_field_errors(row, batch)
    assert not errors, _report(errors)


# The column of each field warning among COLUMNS.
FIELD_OF = {
    "invalid_mobile": "mobile",
    "invalid_currency": "currency",
    "invalid_amount": "amount",
    "invalid_quantity": "quantity",
    "invalid_ipaddress": "ipaddress",
    "invalid_dob": "dob",
}


@settings(PROPERTY, max_examples=40)
@given(rows=rows_strategy)
def test_dropping_a_field_is_rejecting_its_row_less_it(rows: list[Row]) -> None:
    """By default a bad optional field is left out and the row sent, carrying the
    field's warning: byte for byte the batch of the same row with that field empty.
    `invalid_fields: reject` rejects that row instead, with one of its codes."""
    dropped, dropped_out = _run(rows, MappingConfig(allow_plain=(UNKNOWN,)))
    _, rejected = _run(rows, MappingConfig(allow_plain=(UNKNOWN,), **REJECT))
    by_row = dict(rejected.select("_row", "_reason").iter_rows())
    assert dict(dropped_out.select("_row", "_reason").iter_rows()).items() <= by_row.items()
    sent = dropped.filter(pl.col("_reason").is_null())
    for number, body, warned in sent.select("_row", "_body", "_warnings").iter_rows():
        codes = set((warned or "").split(",")) - {""}
        assert codes <= set(FIELD_OF), codes
        assert by_row.get(number) in (codes or {None}), (number, by_row.get(number), codes)
        if codes:
            cleared = {**rows[number - 1], **{FIELD_OF[code]: None for code in codes}}
            again, _ = _run([cleared], MappingConfig(allow_plain=(UNKNOWN,)))
            assert again["_body"].to_list() == [body]


@settings(PROPERTY, max_examples=40)
@given(rows=rows_strategy)
def test_nothing_hashed_sends_plain_normalized_values(rows: list[Row]) -> None:
    encoded, rejected = _run(rows, MappingConfig(hash=(), allow_plain=(*HASHED, UNKNOWN), **REJECT))
    _check_outcomes(rows, encoded, rejected)
    errors: list[str] = []
    for row, _body, batch in _valid(encoded, rows):
        for column in HASHED:
            errors += _hashed_field_errors(row, batch, column, hashed=False)
    assert not errors, _report(errors)


# ------------------------------------------------------------------------- numbers


def _number_frame(amounts: pl.Series, margins: pl.Series | None = None) -> pl.DataFrame:
    n = len(amounts)
    columns = {
        "email": pl.Series(["buyer@example.com"] * n),
        "confirmationref": pl.Series([f"ORD-{i}" for i in range(n)]),
        "conversiontype": pl.Series(["purchase"] * n),
        "event_time": pl.Series(["2024-05-01T12:00:00Z"] * n),
        "amount": amounts,
    }
    if margins is not None:
        columns["margin"] = margins
    return pl.DataFrame(columns)


def _number_outcomes(frame: pl.DataFrame) -> dict[int, tuple[str | None, dict[str, Any]]]:
    valid, rejected = split(transform(frame, MappingConfig(**REJECT), ENVIRONMENT))
    encoded = encode(valid, ENVIRONMENT)
    assert len(encoded) + len(rejected) == len(frame)
    outcomes: dict[int, tuple[str | None, dict[str, Any]]] = {
        i - 1: (reason, {}) for i, reason in rejected.select("_row", "_reason").iter_rows()
    }
    for i, reason, body in encoded.select("_row", "_reason", "_body").iter_rows():
        outcomes[i - 1] = (reason, _strict_json(body)["events"][0]["data"]["custom_attributes"])
    return outcomes


def _same_float(a: float, b: float) -> bool:
    return a == b and math.copysign(1, a) == math.copysign(1, b)


floats = st.one_of(st.none(), st.floats())  # nan, +-inf, -0.0 and subnormals included


@settings(PROPERTY, max_examples=30)
@given(
    pairs=st.lists(st.tuples(floats, floats), min_size=1, max_size=20),
)
def test_float_amounts(pairs: list[tuple[float | None, float | None]]) -> None:
    amounts = [a for a, _ in pairs]
    margins = [m for _, m in pairs]
    frame = _number_frame(
        pl.Series(amounts, dtype=pl.Float64), pl.Series(margins, dtype=pl.Float64)
    )
    outcomes = _number_outcomes(frame)
    for i, (amount, margin) in enumerate(pairs):
        reason, attributes = outcomes[i]
        where = f"row {i}: amount={amount!r} margin={margin!r}"
        finite = all(v is None or math.isfinite(v) for v in (amount, margin))
        # a refund rejects the row before a bad field does (with REJECT: rejects it)
        if amount is not None and math.isfinite(amount) and amount < 0:
            assert reason == "negative_amount", where
        elif not finite:
            assert reason == "invalid_amount", where
        else:
            assert reason is None, f"{where}: {reason}"
            for key, value in (("amount", amount), ("margin", margin)):
                if value is None:
                    assert key not in attributes, where
                else:
                    sent = attributes[key]
                    assert isinstance(sent, float | int) and not isinstance(sent, bool), where
                    assert _same_float(float(sent), value), f"{where}: sent {sent!r}"


decimals = st.decimals(
    min_value=Decimal(-(10**12)),
    max_value=Decimal(10**12),
    places=4,
    allow_nan=False,
    allow_infinity=False,
)


@settings(PROPERTY, max_examples=20)
@given(values=st.lists(st.one_of(st.none(), decimals), min_size=1, max_size=20))
def test_decimal_amounts(values: list[Decimal | None]) -> None:
    frame = _number_frame(pl.Series(values, dtype=pl.Decimal(20, 4)))
    valid, rejected = split(transform(frame, MappingConfig(**REJECT), ENVIRONMENT))
    encoded = encode(valid, ENVIRONMENT)
    assert len(encoded) + len(rejected) == len(values)
    reasons = dict(rejected.select("_row", "_reason").iter_rows())
    bodies = dict(encoded.filter(pl.col("_reason").is_null()).select("_row", "_body").iter_rows())
    for i, value in enumerate(values, start=1):
        where = f"row {i}: amount={value!r}"
        if value is not None and value < 0:
            assert reasons.get(i) == "negative_amount", where
            continue
        assert i in bodies, f"{where}: rejected {reasons.get(i)}"
        exact = json.loads(bodies[i], parse_float=Decimal, parse_int=Decimal)
        sent = exact["events"][0]["data"]["custom_attributes"].get("amount")
        if value is None:
            assert sent is None, where
            continue
        assert sent == value, f"{where}: sent {sent!r}"
        as_float = _strict_json(bodies[i])["events"][0]["data"]["custom_attributes"]["amount"]
        assert as_float == float(value), f"{where}: sent {as_float!r}"


# -------------------------------------------------- findings, one minimal case each


def _one(mapping: MappingConfig | None = None, **values: Any) -> tuple[str | None, dict[str, Any]]:
    """(reason, batch) of one row with valid required columns plus `values` (a bad
    optional field rejects the row by default: `REJECT`)."""
    row = {
        "email": "buyer@example.com",
        "confirmationref": "ORD-1",
        "conversiontype": "purchase",
        "event_time": "2024-05-01T12:00:00Z",
        **values,
    }
    chunk = pl.DataFrame({k: [v] for k, v in row.items()}, schema=dict.fromkeys(row, pl.String))
    valid, rejected = split(transform(chunk, mapping or MappingConfig(**REJECT), ENVIRONMENT))
    if len(rejected):
        return rejected["_reason"][0], {}
    return None, _strict_json(encode(valid, ENVIRONMENT)["_body"][0])


UPPER_HEX = "ABCDEF0123456789" * 4


def test_upper_case_hex_mobile_is_a_hash() -> None:
    """docs/hashing.md: a value matching ^[0-9a-fA-F]{64}$ is a hash: lowercased, placed
    under the hashed key, never hashed twice."""
    _, batch = _one(mobile=UPPER_HEX)
    assert batch["user_attributes"] == {"mobilesha256": UPPER_HEX.lower()}


def test_upper_case_hex_zip_is_a_hash() -> None:
    _, batch = _one(zip=UPPER_HEX)
    assert batch["user_attributes"] == {"billingzipsha256": UPPER_HEX.lower()}


def test_upper_case_hex_mobile_and_zip_unhashed_go_under_the_hashed_key() -> None:
    _, batch = _one(MappingConfig(hash=(), allow_plain=HASHED), mobile=UPPER_HEX, zip=UPPER_HEX)
    assert batch["user_attributes"] == {
        "mobilesha256": UPPER_HEX.lower(),
        "billingzipsha256": UPPER_HEX.lower(),
    }


def test_trim_removes_what_python_strip_removes() -> None:
    """\\x1c-\\x1f (file/group/record/unit separators) are whitespace to Python's
    str.strip() but not to polars' str.strip_chars() (Unicode White_Space)."""
    _, batch = _one(firstname="\x1fJane\x1f", confirmationref="\x1cORD-1\x1c")
    assert batch["user_attributes"]["firstnamesha256"] == _sha("jane")
    assert batch["events"][0]["data"]["custom_attributes"]["confirmationref"] == "ORD-1"


def test_mobile_digits_are_hashed_as_ascii_digits() -> None:
    """Seed 000: "format as 5551234567". A fullwidth-digit number is the same number."""
    _, batch = _one(mobile=_script("555-123-4567", FULLWIDTH))
    assert batch["user_attributes"]["mobilesha256"] == _sha("5551234567")


def test_quantity_in_non_ascii_digits_is_not_silently_dropped() -> None:
    """`^\\+?\\d{1,18}$` accepts any Unicode digit, the Int64 cast then yields null and
    the row passes with no quantity; expected: the quantity (3) or invalid_quantity."""
    reason, batch = _one(quantity=ARABIC_INDIC[3])
    if reason is None:
        assert batch["events"][0]["data"]["custom_attributes"].get("quantity") == 3
    else:
        assert reason == "invalid_quantity"


def test_ipaddress_in_non_ascii_digits_is_rejected() -> None:
    """The IPv4 pattern's \\d accepts any Unicode digit: 1.2.3.4 in Arabic-Indic digits
    is sent as `ip`, which the Event API schema (format: ipv4) and Python's ipaddress
    reject."""
    reason, _ = _one(ipaddress=_script("1.2.3.4", ARABIC_INDIC))
    assert reason == "invalid_ipaddress"


def test_currency_is_checked_before_upper_casing() -> None:
    """'uß' is not a 3-letter code, but upper-cases to 'USS', which passes ^[A-Z]{3}$
    and is sent (likewise a dotless i + 'NR' -> 'INR', the 'ff' ligature + 'r' -> 'FFR')."""
    reason, _ = _one(currency="uß")
    assert reason == "invalid_currency"


@settings(PROPERTY, max_examples=50)
@given(names=st.lists(st.one_of(st.none(), st.text()), max_size=20))
def test_ids_are_the_uuid5_of_python_for_any_text(names: list[str | None]) -> None:
    got = uuid5(pl.Series(names, dtype=pl.String), NS_MESSAGE).to_list()
    assert got == [None if n is None else str(uuid.uuid5(NS_MESSAGE, n)) for n in names]
