"""Phone numbers as Rokt hashes them: the national number, as a polars expression.

Owns: the rule that turns a mobile into what `mobilesha256` hashes (North America: its
10 digits; elsewhere the national significant number, from the country calling code
the number carries or from `mapping.phone_region`), with the numbering plan's data
(calling codes, national prefixes) read from `phonenumbers`; docs/hashing.md.
"""

from __future__ import annotations

from functools import cache

import polars as pl

DEFAULT_REGION = "US"
# A national significant number has at most 15 digits with its calling code (ITU E.164);
# the shortest in use have 4.
_SHORTEST, _LONGEST = 4, 14
_EXTENSION = r"(?i)\s*(?:e?xt?\.?|extension|#)\s*[0-9]+$"


@cache
def _plan() -> tuple[str, frozenset[str], frozenset[str]]:
    """(a regex of every country calling code, North America's regions, all regions)."""
    import phonenumbers

    codes = "|".join(str(code) for code in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE))
    north_america = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1])
    return f"^(?:{codes})", north_america, frozenset(phonenumbers.SUPPORTED_REGIONS)


@cache
def _national_prefix(region: str) -> str | None:
    """A regex of the trunk prefix a national number of `region` is dialled with (`0`
    in most of Europe), as the numbering plan gives it; where the plan rewrites the
    number as it strips (Argentina, ...), just its plain national prefix."""
    from phonenumbers import PhoneMetadata

    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return None
    pattern = metadata.national_prefix_for_parsing
    if not pattern or metadata.national_prefix_transform_rule:
        pattern = metadata.national_prefix
    return f"^(?:{pattern})" if pattern else None


def check_region(region: str) -> str:
    """`region` (an ISO 3166 alpha-2 code the numbering plan knows), upper-cased."""
    code = region.strip().upper()
    if code not in _plan()[2]:
        raise ValueError("is not a region of the phone numbering plan (e.g. US, GB)")
    return code


def national_numbers(texts: pl.Series, region: str = DEFAULT_REGION) -> pl.Series:
    """The national number of each phone in `texts` (trimmed; every digit ASCII), or
    null where the text is not a phone number.

    Each number is its digits from an offset (past "+"/"00" and the calling code, or
    past a trunk prefix), kept where the rest has a national number's length.
    """
    codes, north_america, _ = _plan()
    text = texts
    if text.str.contains(r"\(0\)|[xX#]").any():  # an extension, or a trunk prefix "(0)"
        text = text.str.replace(_EXTENSION, "").str.replace_all("(0)", "", literal=True)
    frame = pl.DataFrame({"digits": text.str.replace_all("[^0-9]+", "")}).with_columns(
        idd=text.str.starts_with("00"), plus=text.str.starts_with("+")
    )
    digits, size, idd = pl.col("digits"), pl.col("digits").str.len_bytes(), pl.col("idd")
    frame = frame.with_columns(
        # "+44 20 ..." or "0044 20 ...": the calling code comes first
        international=(pl.col("plus") | idd).fill_null(False),
        plus1=pl.when(idd)
        .then(digits.str.starts_with("001"))
        .otherwise(digits.str.starts_with("1")),
    )
    international, plus1 = pl.col("international"), pl.col("plus1")
    skip = pl.when(idd).then(2).otherwise(0)
    offset, valid = skip + 1, plus1 & (size - skip == 11)
    if frame.select((international & ~plus1).any()).item():  # only then find the code
        code = digits.str.slice(skip).str.extract(codes, 0).str.len_bytes()
        offset = pl.when(plus1).then(offset).otherwise(skip + code)
        valid = valid | (~plus1 & (size - skip - code).is_between(_SHORTEST, _LONGEST))
    if region in north_america:  # 10 digits, or 11 with the leading 1
        eleven = (size == 11) & digits.str.starts_with("1")
        at, fits = pl.when(eleven).then(1).otherwise(0), (size == 10) | eleven
    else:
        prefix = _national_prefix(region)
        at = digits.str.extract(prefix, 0).str.len_bytes().fill_null(0) if prefix else pl.lit(0)
        fits = (size - at).is_between(_SHORTEST, _LONGEST)
    start = pl.when(international).then(offset).otherwise(at)
    keep = pl.when(international).then(valid).otherwise(fits)
    return frame.select(pl.when(keep).then(digits.str.slice(start))).to_series().rename(texts.name)
