"""What the pixel endpoints' tests share: queries built as the connector sends them (each key
and value percent-encoded, a list's items joined by a literal `,`), the conversions of the
briefs' examples, and how a GIF answer and a refusal look.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

import httpx
from sandbox_helpers import KEY

Params = dict[str, str | list[str] | None]  # None: the parameter is not sent

GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
WRITE_KEY = "wk-Rudder-Secret-Never-Echo-5"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


EMAIL_HASH, FIRST_HASH, MOBILE_HASH = sha256("jane@example.com"), sha256("jane"), sha256("5551")


def query(params: Params) -> str:
    """`params` as a query: keys and values percent-encoded, a list's items joined by `,`."""
    parts = []
    for name, value in params.items():
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        parts.append(quote(name, safe="") + "=" + ",".join(quote(v, safe="") for v in items))
    return "&".join(parts)


def pixel_conversion(**changes: str | list[str] | None) -> Params:
    """The Rokt Pixel Service conversion of the brief, with `changes`."""
    params: Params = {
        "dt": "AppEvent",
        "et": "Transaction",
        "n": "conversion",
        "ct": "1764547200000",
        "dbg": "true",
        "ui_t": ["other", "customerid", "other3"],
        "ui_v": [EMAIL_HASH, "C-1", "sess-9"],
        "ua_k": ["firstnamesha256", "mobilesha256"],
        "ua_v": [FIRST_HASH, MOBILE_HASH],
        "attrs_k": ["conversiontype", "confirmationref", "amount", "currency"],
        "attrs_v": ["purchase", "ORD-1", "300.5", "USD"],
    }
    return {**params, **changes}


def pixel_path(params: Params | str, key: str = KEY) -> str:
    return f"/v1/{key}/Pixel?{params if isinstance(params, str) else query(params)}"


def rudder_conversion(**changes: str | None) -> Params:
    """The RudderStack Pixel API track call of the brief, with `changes`."""
    params: Params = {
        "writeKey": WRITE_KEY,
        "anonymousId": "sess-9",
        "userId": "C-1",
        "event": "Order Completed",
        "messageId": "5b0c1a6e-0d7f-4f5e-9a57-8d8f5cc1e001",
        "originalTimestamp": "2026-11-30T00:00:00.000Z",
        "properties.order_id": "ORD-1",
        "properties.conversiontype": "purchase",
        "properties.amount": "300.5",
        "properties.currency": "USD",
        "properties.rtid": "abc",
        "context.traits.firstNameSha256": FIRST_HASH,
        "context.traits.phoneSha256": MOBILE_HASH,
        "context.ip": "203.0.113.9",
        "context.userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
    }
    return {**params, **changes}


def rudder_path(params: Params | str) -> str:
    return f"/pixel/v1/track?{params if isinstance(params, str) else query(params)}"


def is_gif(response: httpx.Response) -> bool:
    """A 200 with the 43-byte transparent GIF, as image/gif."""
    return (
        response.status_code == 200
        and response.headers["content-type"] == "image/gif"
        and response.content == GIF
    )


def refusal(response: httpx.Response) -> tuple[int, str]:
    """The status and the one error's code of a refused pixel request."""
    body: dict[str, Any] = response.json()
    [error] = body["errors"]
    assert set(error) == {"code", "message"}
    return response.status_code, error["code"]
