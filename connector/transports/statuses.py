"""What an HTTP status means for a conversion, shared by the transports: 2xx accepted,
401/403 fatal (the credentials), 408, 429 and 5xx retried (Retry-After honoured, at most
five minutes), any other 4xx rejected with the platform's first error message."""

from __future__ import annotations

import math

import httpx

from connector.transports.base import Outcome

MAX_RETRY_AFTER_S = 300.0


def first_error(response: httpx.Response) -> str:
    """The first message of a `{"errors": [...]}` answer, else the reason phrase."""
    try:
        errors = response.json().get("errors") or [{}]
        first = errors[0]
        return str(first.get("message") or first.get("code") or response.reason_phrase)
    except (ValueError, AttributeError, IndexError, TypeError):
        return response.reason_phrase or f"HTTP {response.status_code}"


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(seconds, MAX_RETRY_AFTER_S) if math.isfinite(seconds) and seconds >= 0 else None


def classify(response: httpx.Response | None, error: Exception | None, keys: str) -> Outcome:
    """One attempt's response (or network error) as accept/reject/retry/fatal; `keys`
    names the settings a 401 or 403 asks the user to check."""
    if response is None:
        kind = "timed out" if isinstance(error, httpx.TimeoutException) else "network error"
        name = type(error).__name__
        return Outcome("retry", None, f"{kind}: {name}", error=name)
    status = response.status_code
    if 200 <= status < 300:
        return Outcome("accept", status, "accepted")
    if status in (401, 403):
        what = "missing" if status == 401 else "refused"
        return Outcome("fatal", status, f"credentials {what} (HTTP {status}); check {keys}")
    if status == 429:
        return Outcome("retry", status, "rate limited (HTTP 429)", retry_after(response))
    if status >= 500 or status == 408:
        return Outcome("retry", status, f"server error (HTTP {status})", retry_after(response))
    return Outcome("reject", status, first_error(response))
