"""What the sandbox refuses: a body that is not strict UTF-8 JSON nested within the platform's
depth (`parse_body`), and a batch that breaks the batch schema, the attribute rules or the limits in
`spec` (`check_batch`, `judge`, by the checks of `checks_*`); the one seam to them all.
"""

from __future__ import annotations

import json
import math
import re

from connector.sandbox.checks_audience import check_audience_events, is_audience_batch
from connector.sandbox.checks_event import check_event
from connector.sandbox.checks_fields import (
    MAX_DEPTH,
    Checked,
    Invalid,
    as_object,
    field_path,
    shown,
)
from connector.sandbox.checks_user import (
    check_device_and_ip,
    check_identities,
    check_user_attributes,
)
from connector.spec import MAX_BATCH_BYTES

__all__ = ["MAX_DEPTH", "Checked", "Invalid", "check_batch", "judge", "parse_body"]

TOP_LEVEL_KEYS = frozenset(
    {
        "source_request_id",
        "environment",
        "user_identities",
        "user_attributes",
        "device_info",
        "ip",
        "integration_attributes",
        "events",
    }
)
ENVIRONMENTS = ("development", "production")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def check_batch(batch: object) -> Checked:
    """Validate one batch as the Event API would; raise `Invalid` for the first problem.

    As in the platform's schema only `environment` is required of the batch's own
    fields; this connector's conversions also need their confirmationref and
    conversiontype, and an identity; an audience batch, valid audience events.
    """
    if not isinstance(batch, dict):
        raise Invalid("invalid_batch", "a batch must be a JSON object")
    try:
        size = len(json.dumps(batch, separators=(",", ":"), ensure_ascii=False).encode())
    except RecursionError:
        raise Invalid("too_deep", f"the batch nests deeper than {MAX_DEPTH} levels") from None
    if size > MAX_BATCH_BYTES:
        raise Invalid(
            "batch_too_large", f"the batch is {size} bytes; the limit is {MAX_BATCH_BYTES}"
        )
    for key in batch:
        if key not in TOP_LEVEL_KEYS:
            hint = (
                "; the platform sets it"
                if key in ("schema_version", "timestamp_unixtime_ms")
                else ""
            )
            raise Invalid(
                "unknown_field",
                f"{shown(key)} is not an accepted batch field{hint}",
                field_path("", key),
            )
    request_id = batch.get("source_request_id")
    if "source_request_id" in batch and not (isinstance(request_id, str) and request_id):
        raise Invalid(
            "invalid_source_request_id",
            "source_request_id must be a non-empty string when given",
            "source_request_id",
        )
    environment = batch.get("environment")
    if environment not in ENVIRONMENTS:
        raise Invalid(
            "invalid_environment", "environment must be development or production", "environment"
        )
    device = as_object(batch.get("device_info", {}), "device_info", "invalid_device_info")
    check_identities(batch, device)
    check_user_attributes(batch)
    check_device_and_ip(batch, device)
    if is_audience_batch(batch):  # audience membership changes, not a conversion
        return Checked(batch, request_id, str(environment), check_audience_events(batch))
    return Checked(batch, request_id, str(environment), check_event(batch))


def judge(batch: object) -> Checked | Invalid:
    """`check_batch`'s verdict as a value: the checked batch, or why it is refused."""
    try:
        return check_batch(batch)
    except Invalid as exc:
        return exc


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def parse_body(body: bytes) -> tuple[str, object]:
    """The body's text and value. Strict JSON: UTF-8, no NaN / Infinity, no number that
    overflows a double, no `\\u` escape of a lone surrogate (text no UTF-8 can hold)."""
    try:
        text = body.decode("utf-8")
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
        # UTF-8 holds no surrogate, so only an escape brings one; a pair is one character.
        if _SURROGATE_ESCAPE.search(text):
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid(
            "invalid_json",
            "the request body escapes a lone surrogate (\\ud800-\\udfff), "
            "which is no Unicode character",
        ) from None
    except RecursionError:
        message = f"the request body nests deeper than {MAX_DEPTH} levels"
        raise Invalid("invalid_json", message) from None
    except (UnicodeDecodeError, ValueError):
        raise Invalid("invalid_json", "the request body is not valid UTF-8 JSON") from None
    return text, value
