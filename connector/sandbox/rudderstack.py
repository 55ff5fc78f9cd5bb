"""RudderStack's Pixel API, `GET /pixel/v1/track?...`, as rudder-server answers it: 200 with a
1x1 GIF whatever happened, the query's dotted keys nested into a track payload. The sandbox
still judges each request and counts what a real gateway would have dropped, and why.
"""

from __future__ import annotations

import hmac
import re
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from connector.sandbox.checks_fields import Invalid, check_hash, shown
from connector.sandbox.endpoint import endpoint
from connector.sandbox.pixel_common import (
    Conversion,
    check_size,
    gif,
    parse_query,
    receipt_key,
    receive,
)
from connector.sandbox.reply import Reply
from connector.sandbox.settings import SandboxSettings
from connector.sandbox.state import Sandbox

TRANSPORT = "rudderstack_pixel"
WRITE_KEY = "writeKey"  # the secret parameter: checked, then left out of payload and key
# RudderStack's Rokt destination sends every batch to production.
ENVIRONMENT = "production"
_QUOTED = re.compile(r'"(.*)"')  # rudder-server unquotes an anonymousId sent in quotes


def routes(sandbox: Sandbox) -> list[BaseRoute]:
    """The track endpoint, answering from `sandbox`'s state (its page twin is not served)."""

    async def handle(request: Request) -> Reply:
        verdict = judge(sandbox.settings, request)
        return await receive(sandbox, TRANSPORT, verdict, _dropped)

    return [Route("/pixel/v1/track", endpoint(sandbox, TRANSPORT, handle), methods=["GET"])]


def _dropped(problem: Invalid) -> Reply:
    """rudder-server's answer to a request it drops: the same GIF."""
    return gif()


def judge(settings: SandboxSettings, request: Request) -> Conversion | Invalid:
    """The request's verdict: the conversion it carries, or why a gateway drops it."""
    try:
        check_size(request)
        raw = request.scope.get("query_string", b"")
        return check_query(raw, settings.write_key, settings.wall_clock())
    except Invalid as exc:
        return exc


def check_query(raw: bytes, write_key: str, now: float) -> Conversion:
    """The conversion of a Pixel API track query received at `now` (epoch seconds);
    Invalid for the first check it fails."""
    params: dict[str, str] = {}
    repeated: str | None = None
    for name, value in parse_query(raw):
        if name in params:
            repeated = repeated or name
        else:
            params[name] = value  # rudder-server keeps a repeated key's first value
    given = params.pop(WRITE_KEY, None)
    if given is None or not hmac.compare_digest(given.encode(), write_key.encode()):
        raise Invalid("invalid_write_key", "writeKey is missing or not this sandbox's")
    if repeated is not None:
        raise Invalid(
            "repeated_parameter",
            f"{shown(repeated)} is given more than once (rudder-server keeps the first)",
        )
    if "anonymousId" in params and (quoted := _QUOTED.fullmatch(params["anonymousId"])):
        params["anonymousId"] = quoted.group(1)
    if not params.get("anonymousId"):
        raise Invalid("missing_anonymous_id", "anonymousId must be non-empty")
    if not params.get("event"):
        raise Invalid("missing_event", "event must be non-empty")
    for name, code in (
        ("properties.order_id", "missing_confirmationref"),
        ("properties.conversiontype", "missing_conversiontype"),
    ):
        if not params.get(name, "").strip():
            raise Invalid(code, f"{name} must be non-empty")
    for name, value in params.items():
        if name.startswith("context.traits.") and name.lower().endswith("sha256"):
            check_hash(name, value, "")
    if "originalTimestamp" in params and not _is_iso(params["originalTimestamp"]):
        raise Invalid("invalid_timestamp", "originalTimestamp must be an ISO 8601 time")
    ref = params["properties.order_id"]
    return Conversion(receipt_key(raw, WRITE_KEY), ENVIRONMENT, ref, payload(params, now))


def _is_iso(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def payload(params: dict[str, str], now: float) -> dict[str, Any]:
    """The track payload rudder-server builds of `params` (the write key removed) at `now`:
    its defaults, each parameter set at its dotted path (every value text), `type`.

    A parameter that is both a value and the parent of another (`properties=x` and
    `properties.a=y`) is Invalid: rudder-server's result depends on Go's map order.
    """
    sent = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
    sent = sent.replace("+00:00", "Z")
    built: dict[str, Any] = {
        "channel": "web",
        "integrations": {"All": True},
        "originalTimestamp": sent,
        "sentAt": sent,
    }
    nested: dict[str, Any] = {}
    for name, value in params.items():
        *parents, leaf = name.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        if not isinstance(node, dict) or leaf in node:
            raise Invalid(
                "conflicting_parameter",
                f"{shown(name)} and another parameter set the same field, one inside the other",
            )
        node[leaf] = value
    _merge(built, nested)
    built["type"] = "track"
    return built


def _merge(into: dict[str, Any], values: dict[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
