"""Build a realistic, seeded example warehouse for the Rokt conversions connector.

Usage::

    python examples/build_warehouse.py [--out-dir examples] [--rows 12000] [--seed 7]
                                       [--anchor YYYY-MM-DD]

Writes three files into ``--out-dir`` (each written under a temporary name and then
renamed into place, so a half-written file is never left behind):

* ``warehouse.duckdb`` - a DuckDB database with one table, ``orders``, in the
  warehouse's own column names (see ``ORDERS_DDL``).
* ``export/orders.parquet`` - the same rows, columns and row order as a Parquet export.
* ``warehouse.manifest.json`` - what was generated: total rows, duplicate copies, the
  expected rejections by reason, the field warnings, the expected valid count and counts
  of every messy case.
  All counts are computed from the written data, not from the intended percentages.

The data is dirty on purpose, the way real exports are:

* messy but valid values the connector must normalise (padded / capitalised emails,
  already-SHA-256-hashed emails in lower- and uppercase hex, phone numbers in several
  formats, unicode and padded names, NULL order totals, lowercase / padded currency
  codes, timestamps as text in naive-UTC, ``Z`` and non-UTC-offset renderings);
* rows with one defect each: missing email (``missing_identity``), not-an-email text
  (``invalid_email``) and negative order total (``negative_amount``) are rejected; an
  unparseable currency (``invalid_currency``) is a field warning: sent without it;
* exact duplicate copies of earlier clean rows, appended at the end of the table.

Generation uses a single ``random.Random(seed)``, so the same arguments always produce the
same table contents. ``created_at`` instants are uniform over ``[anchor - 25 days, anchor)``
where ``anchor`` is midnight UTC of the anchor date (default: today's UTC date).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

import duckdb
import polars as pl

# --------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------

ORDERS_DDL: Final = """
CREATE TABLE orders (
    order_id         VARCHAR,
    customer_id      VARCHAR,
    customer_email   VARCHAR,
    first_name       VARCHAR,
    last_name        VARCHAR,
    phone            VARCHAR,
    postal_code      VARCHAR,
    birth_date       DATE,
    order_total      DECIMAL(12, 2),
    currency_code    VARCHAR,
    item_count       INTEGER,
    product_name     VARCHAR,
    sku              VARCHAR,
    payment_method   VARCHAR,
    order_type       VARCHAR,
    created_at       VARCHAR,
    ip_address       VARCHAR,
    user_agent       VARCHAR,
    rokt_tracking_id VARCHAR,
    loyalty_tier     VARCHAR
)
"""

COLUMNS: Final[tuple[str, ...]] = (
    "order_id",
    "customer_id",
    "customer_email",
    "first_name",
    "last_name",
    "phone",
    "postal_code",
    "birth_date",
    "order_total",
    "currency_code",
    "item_count",
    "product_name",
    "sku",
    "payment_method",
    "order_type",
    "created_at",
    "ip_address",
    "user_agent",
    "rokt_tracking_id",
    "loyalty_tier",
)

# Staging frame -> table. order_total is staged as integer cents and converted exactly.
INSERT_SQL: Final = (
    "INSERT INTO orders SELECT "
    + ", ".join(
        "CAST(CAST(order_total_cents AS DOUBLE) / 100 AS DECIMAL(12, 2))"
        if c == "order_total"
        else c
        for c in COLUMNS
    )
    + " FROM staging"
)

# --------------------------------------------------------------------------------------
# Rates (fractions of the total row count; exact counts are rounded, then measured)
# --------------------------------------------------------------------------------------

WINDOW_DAYS: Final = 25
RATE_DUPLICATE: Final = 0.02
RATE_MISSING_IDENTITY: Final = 0.03
RATE_INVALID_EMAIL: Final = 0.01
RATE_NEGATIVE_AMOUNT: Final = 0.015
RATE_INVALID_CURRENCY: Final = 0.005
# Fractions of clean (non-rejected) rows.
RATE_EMAIL_SPACES_CAPS: Final = 0.05
RATE_PREHASHED_EMAIL: Final = 0.04
RATE_NULL_AMOUNT: Final = 0.02
RATE_LOWERCASE_CURRENCY: Final = 0.03
# Fractions of all rows / customers.
RATE_GUEST: Final = 0.10
RATE_PADDED_NAME: Final = 0.02
RATE_UNICODE_CUSTOMER: Final = 0.07
RATE_NULL_BIRTH_DATE: Final = 0.20
RATE_RTID: Final = 0.06
RATE_FRACTIONAL_SECONDS: Final = 0.20

VALID_CURRENCIES: Final = ("USD", "EUR", "GBP")

# --------------------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------------------

ASCII_FIRST: Final = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda",
    "William", "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica",
    "Thomas", "Sarah", "Charles", "Karen", "Daniel", "Nancy", "Matthew", "Lisa",
    "Anthony", "Betty", "Mark", "Margaret", "Steven", "Sandra", "Paul", "Ashley",
    "Andrew", "Emily", "Joshua", "Olivia", "Kevin", "Amelia", "Brian", "Chloe",
    "Oliver", "Harry", "Sophie", "Lena", "Jonas", "Lukas", "Hannah", "Noah",
)  # fmt: skip
ASCII_LAST: Final = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas",
    "Taylor", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "Harris",
    "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Evans", "Hughes", "Patel", "Khan", "Schmidt", "Schneider", "Fischer",
    "Weber", "Doe", "Murphy", "Kelly", "Price", "Bennett", "Wood", "Ward", "Cooper",
)  # fmt: skip
# (display form, ASCII form used to build the e-mail address)
UNICODE_FIRST: Final = (
    ("José", "jose"), ("Zoë", "zoe"), ("Ægir", "aegir"), ("Σωκράτης", "sokratis"),
    ("François", "francois"), ("Søren", "soren"), ("Björk", "bjork"), ("Łukasz", "lukasz"),
    ("Chloé", "chloe"), ("Renée", "renee"), ("Jürgen", "jurgen"), ("Añaterve", "anaterve"),
)  # fmt: skip
UNICODE_LAST: Final = (
    ("Nguyễn", "nguyen"), ("李", "li"), ("Müller", "muller"), ("García", "garcia"),
    ("Παπαδόπουλος", "papadopoulos"), ("Dvořák", "dvorak"), ("Øvergaard", "overgaard"),
    ("Şahin", "sahin"), ("Kowalczyk-Żak", "kowalczyk-zak"), ("田中", "tanaka"),
)  # fmt: skip

COUNTRIES: Final = ("US", "GB", "DE")
COUNTRY_CUM_WEIGHTS: Final = (0.80, 0.92, 1.00)
CURRENCY_BY_COUNTRY: Final = {"US": "USD", "GB": "GBP", "DE": "EUR"}
DOMAINS_BY_COUNTRY: Final = {
    "US": ("gmail.com", "example.com", "yahoo.com", "outlook.com", "icloud.com"),
    "GB": ("gmail.com", "example.co.uk", "hotmail.co.uk", "btinternet.com"),
    "DE": ("gmail.com", "example.de", "web.de", "gmx.de"),
}
UK_POSTCODES: Final = (
    "SW1A 1AA", "EC1A 1BB", "W1A 0AX", "M1 1AE", "B33 8TH", "CR2 6XH", "DN55 1PT",
    "LS1 4AP", "EH1 1YZ", "BS1 4ST", "CB2 1TN", "NW1 6XE",
)  # fmt: skip

# Phone formats: name -> regex recognising it (used to count what was written).
PHONE_FORMATS: Final = {
    "us_plus1_formatted": r"^\+1 \(\d{3}\) \d{3}-\d{4}$",  # +1 (555) 123-4567
    "us_dashed": r"^\d{3}-\d{3}-\d{4}$",  # 555-123-4567
    "us_digits": r"^\d{10}$",  # 5551234567
    "us_parens_spaced": r"^\(\d{3}\) \d{3} \d{4}$",  # (555) 123 4567
    "uk_international": r"^\+44 \d{2} \d{4} \d{4}$",  # +44 20 7946 0958
    "de_international": r"^\+49 \d{2} \d{8}$",  # +49 30 12345678
}
US_PHONE_KINDS: Final = ("us_plus1_formatted", "us_dashed", "us_digits", "us_parens_spaced")
US_PHONE_CUM_WEIGHTS: Final = (0.30, 0.55, 0.75, 0.90)  # remaining 10%: NULL

PURCHASE_PRODUCTS: Final = (
    ("Wireless Earbuds Pro", "ELEC-EB-0042", 12999),
    ("Organic Cotton T-Shirt", "APP-TS-1187", 2450),
    ("Stainless Steel Water Bottle", "HOME-WB-0310", 1999),
    ("Trail Running Shoes 5", "FTW-RS-0505", 11900),
    ("Ceramic Pour-Over Coffee Set", "HOME-CF-0221", 4500),
    ("Yoga Mat Deluxe", "SPT-YM-0099", 3800),
    ("LED Desk Lamp", "HOME-DL-0734", 5499),
    ("Leather Wallet", "ACC-WL-0016", 6500),
    ("Bluetooth Speaker Mini", "ELEC-SP-0871", 3999),
    ("Skincare Starter Kit", "BEA-SK-0450", 5900),
    ("Children's Picture Book Set", "BK-CH-0302", 2899),
    ("Espresso Beans 1kg", "GRC-CB-1000", 2400),
)
SUBSCRIPTION_PRODUCTS: Final = (
    ("Coffee Club Monthly", "SUB-COF-M", 1999),
    ("Streaming Plus Annual", "SUB-STR-Y", 9999),
    ("Meal Kit Weekly", "SUB-MEAL-W", 5994),
    ("Vitamin Box Monthly", "SUB-VIT-M", 2900),
)
SIGNUP_PRODUCTS: Final = (
    ("Streaming Plus Free Trial", "SUB-STR-TRIAL", 0),
    ("Newsletter Sign-up 10% Off", "PROMO-NL-10", 0),
)
ORDER_TYPES: Final = ("purchase", "subscription", "signup")
ORDER_TYPE_CUM_WEIGHTS: Final = (0.82, 0.94, 1.00)
PRODUCTS_BY_TYPE: Final = {
    "purchase": PURCHASE_PRODUCTS,
    "subscription": SUBSCRIPTION_PRODUCTS,
    "signup": SIGNUP_PRODUCTS,
}
ITEM_COUNTS: Final = (1, 1, 1, 1, 2, 2, 3, 4, 5)

PAYMENT_METHODS: Final = ("visa", "mastercard", "amex", "paypal")
PAYMENT_CUM_WEIGHTS: Final = (0.38, 0.65, 0.77, 1.00)
LOYALTY_TIERS: Final = ("gold", "silver", "bronze", None)
LOYALTY_CUM_WEIGHTS: Final = (0.10, 0.30, 0.60, 1.00)

USER_AGENTS: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.6 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:130.0) Gecko/20100101 Firefox/130.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 Safari/537.36 Edg/128.0.2739.42",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.6613.88 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
)
UA_CUM_WEIGHTS: Final = (0.30, 0.55, 0.65, 0.72, 0.80, 0.94, 1.00)

IPV4_FIRST_OCTETS: Final = (
    23, 24, 31, 37, 45, 50, 62, 66, 68, 71, 73, 76, 81, 86, 92, 98, 104, 108, 142, 151,
    173, 185, 203, 212, 217,
)  # fmt: skip
IPV6_PREFIXES: Final = ("2600:1700", "2a02:c7f", "2406:da00", "2001:4860", "2a01:4f8")

# Timestamp renderings. Offsets in minutes east of UTC (never 0: that is the "Z" kind).
TS_NAIVE: Final = 0
TS_UTC_Z: Final = 1
TS_OFFSET: Final = 2
TS_KIND_CUM_WEIGHTS: Final = (0.40, 0.70, 1.00)
TS_OFFSETS_MIN: Final = (120, -300, 330, -480, 540, 60, -180, 600, -240, 180)

# Rejecting values.
INVALID_EMAIL_TEMPLATES: Final = ("N/A", "none", "{first}.{last}(at){domain}")
MISSING_EMAIL_VALUES: Final = (None, "", "   ")
INVALID_CURRENCIES: Final = ("US$", "dollars", "12")
# Messy-but-valid currency renderings of a valid code (all differ from the code itself).
CURRENCY_VARIANTS: Final[tuple[Callable[[str], str], ...]] = (
    lambda c: c.lower(),  # usd
    lambda c: " " + c.lower(),  # ' eur'
    lambda c: c.title(),  # Gbp
    lambda c: c + " ",  # 'USD '
    lambda c: " " + c.title() + " ",  # ' Eur '
)

# Regexes used to measure the written data for the manifest.
RE_HEX64: Final = r"^[0-9a-fA-F]{64}$"
RE_HEX64_UPPER: Final = r"^[0-9A-F]{64}$"
RE_EMAIL: Final = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
RE_NON_ASCII: Final = r"[^\x00-\x7F]"
RE_TS_OFFSET: Final = r"[+-]\d{2}:\d{2}$"


# --------------------------------------------------------------------------------------
# Generation helpers
# --------------------------------------------------------------------------------------


T = TypeVar("T")


class _Rng:
    """``random.Random(seed)`` with cheap bounded draws.

    ``random.Random.randrange``/``choice`` cost ~1 us per call in pure Python; scaling
    ``random()`` is several times faster and just as reproducible. The bias of
    ``int(random() * n)`` is negligible for the small ``n`` used here.
    """

    def __init__(self, seed: int) -> None:
        self._r = random.Random(seed)
        self.random = self._r.random
        self.getrandbits = self._r.getrandbits
        self.shuffle = self._r.shuffle

    def below(self, n: int) -> int:
        """Uniform int in [0, n)."""
        return int(self.random() * n)

    def between(self, lo: int, hi: int) -> int:
        """Uniform int in [lo, hi)."""
        return lo + int(self.random() * (hi - lo))

    def choice(self, seq: Sequence[T]) -> T:
        return seq[int(self.random() * len(seq))]

    def choices(self, population: Sequence[T], cum: Sequence[float], k: int) -> list[T]:
        return self._r.choices(population, cum_weights=cum, k=k)

    def sample(self, population: Sequence[T], k: int) -> list[T]:
        return self._r.sample(population, k)


def _pick(rng: _Rng, population: Sequence[T], cum: Sequence[float], k: int) -> list[T]:
    """Draw ``k`` weighted items (cumulative weights)."""
    return rng.choices(population, cum, k)


def _mixed_case_email(email: str) -> str:
    """'john.doe12@example.com' -> 'John.Doe12@Example.COM'."""
    local, _, domain = email.partition("@")
    head, _, tld = domain.rpartition(".")
    return f"{local.title()}@{head.title()}.{tld.upper()}"


def _spaces_caps_variant(rng: _Rng, email: str) -> str:
    """A messy rendering of a clean email: surrounding spaces and/or capitals."""
    kind = rng.below(4)
    if kind == 0:
        return f"  {_mixed_case_email(email)} "
    if kind == 1:
        return email.upper()
    if kind == 2:
        return f" {email}  "
    return _mixed_case_email(email)


def _us_phone(rng: _Rng, kind: str) -> str:
    area = rng.between(201, 990)
    exchange = rng.between(200, 1000)
    line = rng.below(10000)
    if kind == "us_plus1_formatted":
        return f"+1 ({area}) {exchange}-{line:04d}"
    if kind == "us_dashed":
        return f"{area}-{exchange}-{line:04d}"
    if kind == "us_digits":
        return f"{area}{exchange}{line:04d}"
    return f"({area}) {exchange} {line:04d}"


def _phone(rng: _Rng, country: str) -> str | None:
    if country == "US":
        r = rng.random()
        for kind, cum in zip(US_PHONE_KINDS, US_PHONE_CUM_WEIGHTS, strict=True):
            if r < cum:
                return _us_phone(rng, kind)
        return None
    if rng.random() < 0.15:
        return None
    if country == "GB":
        return f"+44 {rng.choice((20, 11, 16, 13, 29))} {rng.between(1000, 10000)} " + (
            f"{rng.below(10000):04d}"
        )
    return f"+49 {rng.choice((30, 40, 69, 89, 21))} {rng.between(10_000_000, 100_000_000)}"


def _postal_code(rng: _Rng, country: str) -> str:
    if country == "US":
        zip5 = f"{rng.between(501, 99951):05d}"
        return f"{zip5}-{rng.below(10000):04d}" if rng.random() < 0.1 else zip5
    if country == "GB":
        return rng.choice(UK_POSTCODES)
    return f"{rng.between(1067, 99999):05d}"


def _ip_address(rng: _Rng) -> str | None:
    r = rng.random()
    if r < 0.85:
        bits = rng.getrandbits(24)
        return (
            f"{rng.choice(IPV4_FIRST_OCTETS)}.{bits >> 16}.{(bits >> 8) & 255}."
            f"{1 + (bits & 255) % 254}"
        )
    if r < 0.93:
        groups = ":".join(f"{rng.getrandbits(16):x}" for _ in range(6))
        return f"{rng.choice(IPV6_PREFIXES)}:{groups}"
    return None


class _Customers:
    """A pool of customers; orders pick from it so customers repeat realistically."""

    def __init__(self, rng: _Rng, n: int) -> None:
        rnd = rng.random
        self.country = _pick(rng, COUNTRIES, COUNTRY_CUM_WEIGHTS, n)
        self.loyalty = _pick(rng, LOYALTY_TIERS, LOYALTY_CUM_WEIGHTS, n)
        n_first, n_last = len(ASCII_FIRST), len(ASCII_LAST)
        self.first: list[str] = [ASCII_FIRST[int(rnd() * n_first)] for _ in range(n)]
        self.last: list[str] = [ASCII_LAST[int(rnd() * n_last)] for _ in range(n)]
        first_ascii = [f.lower() for f in self.first]
        last_ascii = [name.lower() for name in self.last]
        for i in range(n):
            if rnd() < RATE_UNICODE_CUSTOMER:
                which = rng.below(3)  # 0: first, 1: last, 2: both
                if which != 1:
                    self.first[i], first_ascii[i] = rng.choice(UNICODE_FIRST)
                if which != 0:
                    self.last[i], last_ascii[i] = rng.choice(UNICODE_LAST)
        domains = [(ds := DOMAINS_BY_COUNTRY[c])[int(rnd() * len(ds))] for c in self.country]
        self.email: list[str] = [
            f"{f}.{la}{i + 1}@{d}"
            for i, (f, la, d) in enumerate(zip(first_ascii, last_ascii, domains, strict=True))
        ]
        self.phone: list[str | None] = [_phone(rng, c) for c in self.country]
        self.postal: list[str] = [_postal_code(rng, c) for c in self.country]
        dob_lo = date(1950, 1, 1).toordinal() - date(1970, 1, 1).toordinal()
        dob_span = date(2007, 12, 31).toordinal() - date(1950, 1, 1).toordinal() + 1
        self.birth_days: list[int | None] = [
            None if rnd() < RATE_NULL_BIRTH_DATE else dob_lo + int(rnd() * dob_span)
            for _ in range(n)
        ]


def _render_created_at(rng: _Rng, n: int, anchor: date) -> pl.Series:
    """Uniform instants in [anchor-25d, anchor) rendered as text in mixed formats.

    ~40% naive (UTC meant), ~30% with 'Z', ~30% as the local time at a non-UTC offset;
    ~20% carry milliseconds. Every rendering denotes the same drawn UTC instant.
    """
    anchor_dt = datetime(anchor.year, anchor.month, anchor.day, tzinfo=UTC)
    start_s = int((anchor_dt - timedelta(days=WINDOW_DAYS)).timestamp())
    window_s = WINDOW_DAYS * 86_400
    rnd = rng.random
    secs = [start_s + int(rnd() * window_s) for _ in range(n)]
    millis = [int(rnd() * 1000) if rnd() < RATE_FRACTIONAL_SECONDS else -1 for _ in secs]
    kinds = _pick(rng, (TS_NAIVE, TS_UTC_Z, TS_OFFSET), TS_KIND_CUM_WEIGHTS, n)
    offsets = [rng.choice(TS_OFFSETS_MIN) if k == TS_OFFSET else 0 for k in kinds]

    frame = pl.DataFrame(
        {
            "secs": pl.Series(secs, dtype=pl.Int64),
            "ms": pl.Series(millis, dtype=pl.Int32),
            "kind": pl.Series(kinds, dtype=pl.Int8),
            "off": pl.Series(offsets, dtype=pl.Int32),
        }
    )
    local_us = (pl.col("secs") + pl.col("off").cast(pl.Int64) * 60) * 1_000_000
    local = local_us.cast(pl.Datetime("us"))
    off_abs = pl.col("off").abs()
    off_text = pl.concat_str(
        pl.when(pl.col("off") < 0).then(pl.lit("-")).otherwise(pl.lit("+")),
        (off_abs // 60).cast(pl.String).str.zfill(2),
        pl.lit(":"),
        (off_abs % 60).cast(pl.String).str.zfill(2),
    )
    text = frame.select(
        pl.concat_str(
            pl.when(pl.col("kind") == TS_NAIVE)
            .then(local.dt.strftime("%Y-%m-%d %H:%M:%S"))
            .otherwise(local.dt.strftime("%Y-%m-%dT%H:%M:%S")),
            pl.when(pl.col("ms") >= 0)
            .then(pl.lit(".") + pl.col("ms").cast(pl.String).str.zfill(3))
            .otherwise(pl.lit("")),
            pl.when(pl.col("kind") == TS_NAIVE)
            .then(pl.lit(""))
            .when(pl.col("kind") == TS_UTC_Z)
            .then(pl.lit("Z"))
            .otherwise(off_text),
        ).alias("created_at")
    ).to_series()
    return text


# --------------------------------------------------------------------------------------
# Table generation
# --------------------------------------------------------------------------------------


def generate(rows: int, seed: int, anchor: date) -> tuple[pl.DataFrame, dict[str, int]]:
    """Generate the ``orders`` rows as a staging frame (order_total as integer cents).

    Returns the frame and the *intended* allocation counts (used only to cross-check
    the measured manifest).
    """
    if rows < 1:
        raise ValueError("rows must be >= 1")
    rng = _Rng(seed)

    n_dup = round(rows * RATE_DUPLICATE)
    n_base = rows - n_dup
    n_customers = max(1, rows // 3)
    customers = _Customers(rng, n_customers)

    rnd = rng.random
    cust = [int(rnd() * n_customers) for _ in range(n_base)]
    country = [customers.country[c] for c in cust]
    guest = [rnd() < RATE_GUEST for _ in range(n_base)]
    order_type = _pick(rng, ORDER_TYPES, ORDER_TYPE_CUM_WEIGHTS, n_base)
    products = [(ps := PRODUCTS_BY_TYPE[t])[int(rnd() * len(ps))] for t in order_type]
    n_counts = len(ITEM_COUNTS)
    item_count = [ITEM_COUNTS[int(rnd() * n_counts)] if t == "purchase" else 1 for t in order_type]
    cents: list[int | None] = [p[2] * q for p, q in zip(products, item_count, strict=True)]
    currency = [CURRENCY_BY_COUNTRY[c] for c in country]
    email: list[str | None] = [customers.email[c] for c in cust]
    first = [customers.first[c] for c in cust]
    last = [customers.last[c] for c in cust]
    phone = [customers.phone[c] for c in cust]
    customer_id: list[str | None] = [
        None if g else f"C-{c + 1:06d}" for c, g in zip(cust, guest, strict=True)
    ]
    loyalty = [None if g else customers.loyalty[c] for c, g in zip(cust, guest, strict=True)]
    rtid: list[str | None] = [
        f"rtid-{rng.getrandbits(128):032x}" if rng.random() < RATE_RTID else None
        for _ in range(n_base)
    ]

    # Padded names (any row; names never decide validity).
    for i in range(n_base):
        if rng.random() < RATE_PADDED_NAME:
            if rng.random() < 0.5:
                first[i] = f" {first[i]}  "
            else:
                last[i] = f"  {last[i]} "

    # ---- rejecting defects: disjoint sets, at most one per row -----------------------
    k_missing = round(rows * RATE_MISSING_IDENTITY)
    k_bad_email = round(rows * RATE_INVALID_EMAIL)
    k_negative = round(rows * RATE_NEGATIVE_AMOUNT)
    k_bad_currency = round(rows * RATE_INVALID_CURRENCY)
    order = list(range(n_base))
    rng.shuffle(order)
    missing: list[int] = []
    bad_email: list[int] = []
    negative: list[int] = []
    bad_currency: list[int] = []
    for i in order:
        if len(missing) < k_missing:
            missing.append(i)
        elif len(bad_email) < k_bad_email:
            bad_email.append(i)
        elif len(bad_currency) < k_bad_currency:
            bad_currency.append(i)
        elif len(negative) < k_negative:
            amount = cents[i]
            if amount is not None and amount > 0:  # a refund of a paid order
                negative.append(i)
        else:
            break
    rejected = set(missing) | set(bad_email) | set(negative) | set(bad_currency)

    for i in missing:
        # No identity at all: no email, and no other identifier either.
        email[i] = rng.choice(MISSING_EMAIL_VALUES)
        phone[i] = None
        rtid[i] = None
        customer_id[i] = None
        loyalty[i] = None
    for i in bad_email:
        clean = email[i]
        assert clean is not None
        local, _, domain = clean.partition("@")
        first_part, _, last_part = local.partition(".")
        template = rng.choice(INVALID_EMAIL_TEMPLATES)
        email[i] = template.format(first=first_part, last=last_part, domain=domain)
    for i in negative:
        amount = cents[i]
        assert amount is not None
        cents[i] = -amount
    currency_out: list[str] = list(currency)
    for i in bad_currency:
        currency_out[i] = rng.choice(INVALID_CURRENCIES)

    # ---- messy-but-valid cases on clean rows ----------------------------------------
    clean_rows = [i for i in range(n_base) if i not in rejected]
    for i in clean_rows:
        r = rng.random()
        clean = email[i]
        assert clean is not None
        if r < RATE_EMAIL_SPACES_CAPS:
            email[i] = _spaces_caps_variant(rng, clean)
        elif r < RATE_EMAIL_SPACES_CAPS + RATE_PREHASHED_EMAIL:
            digest = hashlib.sha256(clean.encode("utf-8")).hexdigest()
            email[i] = digest.upper() if rng.random() < 1 / 3 else digest
        if rng.random() < RATE_NULL_AMOUNT:
            cents[i] = None
        if rng.random() < RATE_LOWERCASE_CURRENCY:
            currency_out[i] = rng.choice(CURRENCY_VARIANTS)(currency[i])

    # ---- the rest of the columns -----------------------------------------------------
    created_at = _render_created_at(rng, n_base, anchor)
    payment = _pick(rng, PAYMENT_METHODS, PAYMENT_CUM_WEIGHTS, n_base)
    user_agent = _pick(rng, USER_AGENTS, UA_CUM_WEIGHTS, n_base)
    ip = [_ip_address(rng) for _ in range(n_base)]
    postal = [customers.postal[c] for c in cust]
    birth = [customers.birth_days[c] for c in cust]

    base = pl.DataFrame(
        {
            "order_id": pl.Series([f"ORD-{i + 1:07d}" for i in range(n_base)], dtype=pl.String),
            "customer_id": pl.Series(customer_id, dtype=pl.String),
            "customer_email": pl.Series(email, dtype=pl.String),
            "first_name": pl.Series(first, dtype=pl.String),
            "last_name": pl.Series(last, dtype=pl.String),
            "phone": pl.Series(phone, dtype=pl.String),
            "postal_code": pl.Series(postal, dtype=pl.String),
            "birth_date": pl.Series(birth, dtype=pl.Int32).cast(pl.Date),
            "order_total_cents": pl.Series(cents, dtype=pl.Int64),
            "currency_code": pl.Series(currency_out, dtype=pl.String),
            "item_count": pl.Series(item_count, dtype=pl.Int32),
            "product_name": pl.Series([p[0] for p in products], dtype=pl.String),
            "sku": pl.Series([p[1] for p in products], dtype=pl.String),
            "payment_method": pl.Series(payment, dtype=pl.String),
            "order_type": pl.Series(order_type, dtype=pl.String),
            "created_at": created_at,
            "ip_address": pl.Series(ip, dtype=pl.String),
            "user_agent": pl.Series(user_agent, dtype=pl.String),
            "rokt_tracking_id": pl.Series(rtid, dtype=pl.String),
            "loyalty_tier": pl.Series(loyalty, dtype=pl.String),
        }
    )

    # ---- duplicates: exact copies of earlier clean rows, appended at the end --------
    n_dup = min(n_dup, len(clean_rows))
    sources = rng.sample(clean_rows, n_dup)
    frame = pl.concat([base, base[sources]]) if sources else base

    intended = {
        "duplicates": n_dup,
        "missing_identity": len(missing),
        "invalid_email": len(bad_email),
        "negative_amount": len(negative),
        "invalid_currency": len(bad_currency),
    }
    return frame, intended


# --------------------------------------------------------------------------------------
# Manifest (measured from the written data)
# --------------------------------------------------------------------------------------


def measure(frame: pl.DataFrame, *, seed: int, anchor: date) -> dict[str, Any]:
    """Compute the manifest from the generated columns."""
    email = pl.col("customer_email")
    email_norm = email.str.strip_chars(" ").str.to_lowercase()
    is_hashed = email.str.contains(RE_HEX64)
    cur_norm = pl.col("currency_code").str.strip_chars(" ").str.to_uppercase()
    cur_valid = cur_norm.is_in(list(VALID_CURRENCIES))

    missing = email.is_null() | (email.str.strip_chars(" ") == "")
    invalid_email = ~missing & ~is_hashed & ~email_norm.str.contains(RE_EMAIL)
    negative = pl.col("order_total_cents") < 0
    invalid_currency = pl.col("currency_code").is_null() | ~cur_valid

    def names_messy(col: str) -> pl.Expr:
        c = pl.col(col)
        return c.str.contains(RE_NON_ASCII) | (c != c.str.strip_chars(" "))

    phone_exprs = {
        name: pl.col("phone").str.contains(rx).sum().alias(f"phone_{name}")
        for name, rx in PHONE_FORMATS.items()
    }
    ts = pl.col("created_at")
    ts_offset = ts.str.contains(RE_TS_OFFSET)
    ts_z = ts.str.ends_with("Z")
    ts_naive = ~ts_offset & ~ts_z

    row_flags = frame.select(
        missing.fill_null(False).alias("missing_identity"),
        invalid_email.fill_null(False).alias("invalid_email"),
        negative.fill_null(False).alias("negative_amount"),
        invalid_currency.fill_null(False).alias("invalid_currency"),
        pl.col("order_id").is_first_distinct().alias("first"),
    )
    reasons = ("missing_identity", "invalid_email", "negative_amount", "invalid_currency")
    # At most one rejecting defect per row; duplicates are never copies of rejected rows.
    n_defects = row_flags.select(pl.sum_horizontal(*reasons).alias("n"))["n"]
    if (n_defects > 1).any():
        raise AssertionError("a row carries more than one rejecting defect")
    dup_flags = row_flags.filter(~pl.col("first"))
    if int(dup_flags.select(pl.sum_horizontal(*reasons).sum()).item()) != 0:
        raise AssertionError("a duplicate copies a rejected row")
    repeated = frame.filter(pl.col("order_id").is_duplicated())
    if repeated.unique().height != repeated["order_id"].n_unique():
        raise AssertionError("duplicate order ids are not exact copies")

    firsts = row_flags.filter(pl.col("first"))
    # a bad currency is a field warning: the row is sent without it
    rejected = {r: int(firsts[r].sum()) for r in reasons if r != "invalid_currency"}
    warnings = {"invalid_currency": int(firsts["invalid_currency"].sum())}

    stats = frame.select(
        (~is_hashed & ~missing & ~invalid_email & (email != email_norm))
        .sum()
        .alias("email_spaces_caps"),
        is_hashed.sum().alias("prehashed_email"),
        email.str.contains(RE_HEX64_UPPER).sum().alias("prehashed_email_upper"),
        (names_messy("first_name") | names_messy("last_name")).sum().alias("unicode_names"),
        pl.col("order_total_cents").is_null().sum().alias("null_amount"),
        (cur_valid & (pl.col("currency_code") != cur_norm)).sum().alias("lowercase_currency"),
        ts_naive.sum().alias("timestamp_naive"),
        ts_z.sum().alias("timestamp_utc_z"),
        ts_offset.sum().alias("timestamp_offset"),
        pl.col("phone").is_null().sum().alias("phone_null"),
        *phone_exprs.values(),
    ).row(0, named=True)

    phone_formats = {name: int(stats[f"phone_{name}"]) for name in PHONE_FORMATS}
    phone_formats["null"] = int(stats["phone_null"])
    if sum(phone_formats.values()) != frame.height:
        raise AssertionError("a phone number matches no known format")

    rows = frame.height
    duplicates = rows - frame["order_id"].n_unique()
    cases: dict[str, Any] = {
        key: int(stats[key])
        for key in (
            "email_spaces_caps",
            "prehashed_email",
            "prehashed_email_upper",
            "unicode_names",
            "null_amount",
            "lowercase_currency",
            "timestamp_naive",
            "timestamp_utc_z",
            "timestamp_offset",
        )
    }
    cases["phone_formats"] = phone_formats
    return {
        "rows": rows,
        "anchor": anchor.isoformat(),
        "seed": seed,
        "duplicates": duplicates,
        "rejected": rejected,
        "warnings": warnings,
        "valid": rows - duplicates - sum(rejected.values()),
        "cases": cases,
    }


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _write_outputs(frame: pl.DataFrame, manifest: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "export").mkdir(parents=True, exist_ok=True)
    db_path = out_dir / "warehouse.duckdb"
    parquet_path = out_dir / "export" / "orders.parquet"
    manifest_path = out_dir / "warehouse.manifest.json"
    tag = f".tmp-{os.getpid()}"
    db_tmp = db_path.with_name(db_path.name + tag)
    parquet_tmp = parquet_path.with_name(parquet_path.name + tag)
    manifest_tmp = manifest_path.with_name(manifest_path.name + tag)
    for p in (db_tmp, Path(f"{db_tmp}.wal"), parquet_tmp, manifest_tmp):
        _remove(p)

    try:
        con = duckdb.connect(str(db_tmp))
        try:
            con.execute("SET preserve_insertion_order = true")
            con.register("staging", frame)
            con.execute(ORDERS_DDL)
            con.execute(INSERT_SQL)
            con.unregister("staging")
            # A single-threaded export keeps the Parquet bytes reproducible on any machine.
            # (The .duckdb file itself is never byte-reproducible: its header carries a
            # random database identifier and block padding is not zeroed.)
            con.execute("SET threads = 1")
            escaped = str(parquet_tmp).replace("'", "''")
            con.execute(
                f"COPY (SELECT * FROM orders ORDER BY rowid) TO '{escaped}' "
                "(FORMAT parquet, COMPRESSION zstd)"
            )
            con.execute("CHECKPOINT")
        finally:
            con.close()
        manifest_tmp.write_text(
            json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
        _remove(Path(f"{db_path}.wal"))  # a stale WAL would be replayed onto the new file
        os.replace(db_tmp, db_path)
        os.replace(parquet_tmp, parquet_path)
        os.replace(manifest_tmp, manifest_path)
    finally:
        for p in (db_tmp, Path(f"{db_tmp}.wal"), parquet_tmp, manifest_tmp):
            _remove(p)


def build(out_dir: Path, rows: int, seed: int, anchor: date) -> dict[str, Any]:
    """Generate the warehouse into ``out_dir`` and return the manifest."""
    frame, intended = generate(rows, seed, anchor)
    manifest = measure(frame, seed=seed, anchor=anchor)
    measured = {
        "duplicates": manifest["duplicates"],
        **manifest["rejected"],
        **manifest["warnings"],
    }
    if measured != intended:
        raise AssertionError(f"measured {measured} != intended {intended}")
    _write_outputs(frame, manifest, Path(out_dir))
    return manifest


def _parse_anchor(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from exc


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out-dir", type=Path, default=Path("examples"), help="output folder")
    parser.add_argument("--rows", type=_positive_int, default=12_000, help="total rows")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    parser.add_argument(
        "--anchor",
        type=_parse_anchor,
        default=None,
        help="end (exclusive) of the 25-day window, YYYY-MM-DD; default: today (UTC)",
    )
    args = parser.parse_args(argv)
    anchor: date = args.anchor if args.anchor is not None else datetime.now(UTC).date()
    started = time.perf_counter()
    manifest = build(args.out_dir, args.rows, args.seed, anchor)
    elapsed = time.perf_counter() - started
    print(
        f"wrote {manifest['rows']} rows ({manifest['valid']} valid, "
        f"{manifest['duplicates']} duplicates, {sum(manifest['rejected'].values())} rejected) "
        f"to {args.out_dir} in {elapsed:.2f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
