"""What the two pixel endpoints (Rokt's Pixel Service, RudderStack's Pixel API) share: the
query read strictly into its parameters, the URL length limit, a request's receipt key (a
hash of its query: pixels carry no source_request_id), the 1x1 GIF, and `receive`, one
conversion's way through the faults to its record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import quote, unquote_to_bytes

from starlette.requests import Request

from connector.sandbox.checks_fields import Invalid, shown
from connector.sandbox.events_api import REJECTED_BY_SANDBOX
from connector.sandbox.reply import Reply, error
from connector.sandbox.state import Sandbox

MAX_URL_BYTES = 8192  # path and query, as a load balancer measures a request line
URI_TOO_LONG = "uri_too_long"
INVALID_QUERY = "invalid_query"
# The standard transparent 1x1 GIF (GIF89a, 43 bytes).
GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


class Conversion(NamedTuple):
    """A pixel request that passed every check: what `receive` records."""

    key: str  # the receipt key, in place of a source_request_id
    environment: str
    confirmationref: str
    batch: dict[str, Any]


def gif() -> Reply:
    return Reply(200, {}, content=GIF, media_type="image/gif")


def url_size(request: Request) -> int:
    """Bytes of the request's path and query as sent (`?` included when there is a query)."""
    scope = request.scope
    raw: bytes = scope.get("raw_path") or quote(scope["path"]).encode()
    query: bytes = scope.get("query_string", b"")
    return len(raw.partition(b"?")[0]) + (1 + len(query) if query else 0)


def check_size(request: Request) -> None:
    """Invalid(uri_too_long) when the URL is over MAX_URL_BYTES."""
    size = url_size(request)
    if size > MAX_URL_BYTES:
        raise Invalid(
            URI_TOO_LONG, f"the request URL is {size} bytes; the limit is {MAX_URL_BYTES}"
        )


def _decode(part: bytes) -> str:
    """One key or value: `+` a space, `%XX` a byte, the bytes strict UTF-8 (ValueError else)."""
    if _BAD_ESCAPE.search(part):
        raise ValueError("a % that starts no escape")
    return unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")


def parse_query(raw: bytes) -> list[tuple[str, str]]:
    """The query's parameters in order, repeats included, each key and value decoded as a
    form's (`_decode`); Invalid(invalid_query) naming the first that is not."""
    pairs: list[tuple[str, str]] = []
    for index, part in enumerate(raw.split(b"&"), start=1):
        if not part:
            continue
        key, _, value = part.partition(b"=")
        try:
            name = _decode(key)
        except ValueError:
            message = f"the name of query parameter {index} is not percent-encoded UTF-8"
            raise Invalid(INVALID_QUERY, message) from None
        try:
            pairs.append((name, _decode(value)))
        except ValueError:
            message = f"the value of {shown(name)} is not percent-encoded UTF-8"
            raise Invalid(INVALID_QUERY, message) from None
    return pairs


def _name(part: bytes) -> str | None:
    try:
        return _decode(part.partition(b"=")[0])
    except ValueError:
        return None


def receipt_key(raw: bytes, secret: str | None = None) -> str:
    """The SHA-256 hex of the query as sent, less its `secret` parameters (the write key):
    the same request sent again has the same key."""
    if secret is not None:
        raw = b"&".join(part for part in raw.split(b"&") if _name(part) != secret)
    return hashlib.sha256(raw).hexdigest()


async def receive(
    sandbox: Sandbox,
    transport: str,
    verdict: Conversion | Invalid,
    refuse: Callable[[Invalid], Reply],
) -> Reply:
    """Answer one pixel request, judged `verdict`, as the Event API answers one batch.

    A conversion counts a receipt even if a fault then refuses the request. Then the
    faults and the rate limit (one token per request), `--latency`, a 414 for a URL
    too long (counted as a request error), the mishaps, and the verdict: a conversion
    accepted before is a resend, else `--reject-rate` may refuse it, else it is
    recorded; a refused one is answered `refuse(problem)` and counted rejected. The
    state is read through `sandbox` after each await (a reset may replace it).
    """
    if isinstance(verdict, Conversion):
        sandbox.records.receive([verdict.key])
    tally = sandbox.tally
    tally.max_batches_per_request = max(tally.max_batches_per_request, 1)
    refused = sandbox.faults.refusal() or sandbox.bucket.take(1)
    if refused is not None:
        return refused
    settings = sandbox.settings
    if settings.latency_s > 0:
        await settings.sleep(settings.latency_s)
    if isinstance(verdict, Invalid) and verdict.code == URI_TOO_LONG:
        sandbox.tally.request_errors_by_code[URI_TOO_LONG] += 1
        return error(414, URI_TOO_LONG, verdict.message)
    mishap = sandbox.faults.mishap()
    if mishap == "hang":
        return Reply(0, {}, fate="hang")
    if mishap == "lost":
        return Reply(200, {}, fate="drop")  # lost on the way in: nothing recorded
    reply = _settle(sandbox, transport, verdict, refuse)
    if mishap == "drop":
        return dataclasses.replace(reply, fate="drop")  # recorded; the answer is lost
    if mishap == "slow":
        await settings.sleep(settings.slow_s)
    return reply


def _settle(
    sandbox: Sandbox,
    transport: str,
    verdict: Conversion | Invalid,
    refuse: Callable[[Invalid], Reply],
) -> Reply:
    if isinstance(verdict, Conversion):
        records = sandbox.records
        if records.was_accepted(verdict.key):
            records.resend(verdict.key)
            return gif()
        if not sandbox.reject_rate.rejects(verdict.key, verdict.confirmationref):
            records.accept(
                {
                    "received_at": sandbox.settings.wall_clock(),
                    "source_request_id": verdict.key,
                    "environment": verdict.environment,
                    "confirmationref": verdict.confirmationref,
                    "transport": transport,
                    "batch": verdict.batch,
                }
            )
            return gif()
        verdict = Invalid(REJECTED_BY_SANDBOX, "sandbox --reject-rate rejected this conversion")
    sandbox.tally.rejected += 1
    sandbox.tally.rejections_by_code[verdict.code] += 1
    return refuse(verdict)
