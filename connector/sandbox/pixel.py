"""Rokt's Pixel Service, `GET /v1/{api_key}/Pixel?...`, as the connector sends it: one
conversion per request, its lists joined by `,`; checked strictly in a fixed order (the first
failing check gives the 400's code), answered with a 1x1 GIF once accepted.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from connector.sandbox.checks_fields import (
    DECIMAL,
    DIGITS,
    Invalid,
    check_hash,
    check_sized,
    shown,
)
from connector.sandbox.endpoint import endpoint
from connector.sandbox.pixel_common import (
    INVALID_QUERY,
    Conversion,
    check_size,
    parse_query,
    receipt_key,
    receive,
)
from connector.sandbox.reply import Reply, error
from connector.sandbox.state import Sandbox

TRANSPORT = "pixel"
PARAMETERS = (
    *("dt", "et", "n", "ct", "dbg", "ui_t", "ui_v", "ua_k", "ua_v", "attrs_k", "attrs_v"),
    *("flags_k", "flags_v", "lc", "av", "hn", "ttl"),
)
# Each key list and its value list, item for item; the flags are checked alike.
LISTS = (("ui_t", "ui_v"), ("ua_k", "ua_v"), ("attrs_k", "attrs_v"), ("flags_k", "flags_v"))
EVENT = (
    ("dt", "AppEvent", "invalid_event_type"),
    ("et", "Transaction", "invalid_event_type"),
    ("n", "conversion", "invalid_event_name"),
)
IDENTITY_TYPES = (
    *("email", "other", "customerid"),
    *(f"other{n}" for n in range(2, 11)),
    "mobile_number",
)
MAIN_IDENTITIES = ("email", "other", "customerid", "other2")  # one of these identifies the user
PASSED_ON = ("lc", "av", "hn", "ttl")  # recorded as sent, unchecked
_EPOCH_MS = re.compile(r"[0-9]{1,13}")
FIRST_MS, END_MS = 946_684_800_000, 4_102_444_800_000  # 2000-01-01 and 2100-01-01, UTC


def routes(sandbox: Sandbox) -> list[BaseRoute]:
    """The endpoint, answering from `sandbox`'s state."""
    api_key = sandbox.settings.api_key.encode()

    async def handle(request: Request) -> Reply:
        if not hmac.compare_digest(request.path_params["api_key"].encode(), api_key):
            return error(
                403,
                "forbidden",
                "the API key in the path is not this sandbox's; check destination.api_key",
            )
        return await receive(sandbox, TRANSPORT, judge(request), _refusal)

    return [Route("/v1/{api_key}/Pixel", endpoint(sandbox, TRANSPORT, handle), methods=["GET"])]


def _refusal(problem: Invalid) -> Reply:
    return error(400, problem.code, problem.message)


def judge(request: Request) -> Conversion | Invalid:
    """The request's verdict: the conversion it carries, or why it is refused."""
    try:
        check_size(request)
        return check_query(request.scope.get("query_string", b""))
    except Invalid as exc:
        return exc


def check_query(raw: bytes) -> Conversion:
    """The conversion of a Pixel Service query; Invalid for the first check it fails."""
    params = _parameters(parse_query(raw))
    for name, expected, code in EVENT:
        if params.get(name) != expected:
            raise Invalid(code, f"{name} must be {expected} (a conversion)")
    ct = params.get("ct", "")
    if not (_EPOCH_MS.fullmatch(ct) and FIRST_MS <= int(ct) < END_MS):
        raise Invalid(
            "invalid_timestamp",
            "ct must be epoch milliseconds (digits only), from 2000 to 2099",
        )
    debug = params.get("dbg")
    if debug not in (None, "true", "false"):
        raise Invalid("invalid_debug", "dbg must be true or false when given")
    identities, users, attributes, flags = (_pairs(params, k, v) for k, v in LISTS)
    _check_identities(identities, users)
    _check_attributes(users, attributes)
    batch: dict[str, Any] = {
        "dt": params["dt"],
        "et": params["et"],
        "n": params["n"],
        "ct": int(ct),
        "identities": identities,
        "user_attributes": users,
        "event_attributes": attributes,
    }
    if flags:
        batch["custom_flags"] = flags
    batch.update((name, params[name]) for name in PASSED_ON if name in params)
    environment = "development" if debug == "true" else "production"
    return Conversion(receipt_key(raw), environment, attributes["confirmationref"], batch)


def _parameters(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in pairs:
        if name not in PARAMETERS:
            raise Invalid(
                INVALID_QUERY,
                f"{shown(name)} is not a Pixel Service parameter; use {', '.join(PARAMETERS)}",
            )
        if name in params:
            raise Invalid(INVALID_QUERY, f"{name} is given more than once")
        params[name] = value
    return params


def _pairs(params: dict[str, str], keys: str, values: str) -> dict[str, str]:
    """The `keys` list's items, each with the `values` item at its place."""
    names = params[keys].split(",") if keys in params else []
    texts = params[values].split(",") if values in params else []
    if len(names) != len(texts):
        raise Invalid(
            "list_length_mismatch",
            f"{keys} has {len(names)} items and {values} {len(texts)}: they must pair up "
            "(a ',' in a value splits it, even sent as %2C)",
        )
    if "" in names:
        raise Invalid("empty_key", f"{keys} has an empty item")
    paired = dict(zip(names, texts, strict=True))
    if len(paired) < len(names):
        twice = next(name for i, name in enumerate(names) if name in names[:i])
        raise Invalid("duplicate_key", f"{keys} names {shown(twice)} more than once")
    return paired


def _check_identities(identities: dict[str, str], users: dict[str, str]) -> None:
    for kind, value in identities.items():
        if kind not in IDENTITY_TYPES:
            raise Invalid(
                "unknown_identity",
                f"ui_t: {shown(kind)} is not an identity type; use one of "
                + ", ".join(IDENTITY_TYPES),
            )
        if not value:
            raise Invalid("invalid_identity", f"ui_v is empty for {kind}")
    if "other" in identities:
        check_hash("ui_v for other (the hashed email)", identities["other"], "")
    for name, value in users.items():
        if name.endswith("sha256"):
            check_hash(f"ua_v for {name}", value, "")
    if "email" in identities and "@" not in identities["email"]:
        raise Invalid("invalid_email", "ui_v for email is not an email address")
    if not any(kind in identities for kind in MAIN_IDENTITIES):
        raise Invalid("missing_identity", f"ui_t needs one of {', '.join(MAIN_IDENTITIES)}")


def _check_attributes(users: dict[str, str], attributes: dict[str, str]) -> None:
    for key in ("confirmationref", "conversiontype"):
        if not attributes.get(key, "").strip():
            raise Invalid(f"missing_{key}", f"attrs_k and attrs_v need a non-empty {key}")
    for key in ("amount", "margin"):
        if key in attributes and not DECIMAL.fullmatch(attributes[key]):
            raise Invalid("invalid_amount", f"attrs_v for {key} must be a decimal number")
    if "quantity" in attributes and not DIGITS.fullmatch(attributes["quantity"]):
        raise Invalid("invalid_quantity", "attrs_v for quantity must be digits")
    for where, named in (("ua", users), ("attrs", attributes)):
        for name, value in named.items():
            check_sized(where, name, value, "")
