"""The Rokt Event API transport: mParticle batch JSON POSTed in bulk to
/v2/bulkevents (or alone to /v2/events) with Basic auth, and what its answers mean
(HTTP statuses here; which batch an error names in `events_api_answers`)."""

from __future__ import annotations

import math

import httpx
import polars as pl

from connector._version import __version__
from connector.config import DestinationConfig
from connector.transports import events_api_answers, events_api_json
from connector.transports.base import Outcome, Verdict

MAX_RETRY_AFTER_S = 300.0
BULK_PATH, SINGLE_PATH = "/v2/bulkevents", "/v2/events"


def _first_error(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or [{}]
        first = errors[0]
        return str(first.get("message") or first.get("code") or response.reason_phrase)
    except (ValueError, AttributeError, IndexError, TypeError):
        return response.reason_phrase or f"HTTP {response.status_code}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(seconds, MAX_RETRY_AFTER_S) if math.isfinite(seconds) and seconds >= 0 else None


def classify(response: httpx.Response | None, error: Exception | None = None) -> Outcome:
    """Map one attempt's response (or network error) to accept/reject/retry/fatal."""
    if response is None:
        kind = "timed out" if isinstance(error, httpx.TimeoutException) else "network error"
        name = type(error).__name__
        return Outcome("retry", None, f"{kind}: {name}", error=name)
    status = response.status_code
    if 200 <= status < 300:
        return Outcome("accept", status, "accepted")
    if status in (401, 403):
        what = "missing" if status == 401 else "refused"
        return Outcome(
            "fatal",
            status,
            f"credentials {what} (HTTP {status}); check destination.api_key and api_secret",
        )
    if status == 429:
        return Outcome("retry", status, "rate limited (HTTP 429)", _retry_after(response))
    if status >= 500 or status == 408:
        return Outcome("retry", status, f"server error (HTTP {status})", _retry_after(response))
    return Outcome("reject", status, _first_error(response))


class EventsApi:
    """The Event API of one destination (`destination.transport: events_api`)."""

    def __init__(self, destination: DestinationConfig) -> None:
        self.destination = destination

    def encode(self, frame: pl.DataFrame, redact: bool = False) -> pl.DataFrame:
        return events_api_json.encode(frame, self.destination.environment, redact)

    def pack(self, bodies: pl.Series) -> list[events_api_json.JsonRequest]:
        return events_api_json.pack(bodies, self.destination.bulk)

    def client(self, http: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
        destination = self.destination
        secret = destination.api_secret.get_secret_value() if destination.api_secret else ""
        return httpx.AsyncClient(
            auth=httpx.BasicAuth(destination.api_key.get_secret_value(), secret),
            headers={
                "User-Agent": f"rokt-connector/{__version__}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
            timeout=httpx.Timeout(destination.timeout_s),
            limits=httpx.Limits(max_connections=destination.concurrency),
            transport=http,
        )

    def request(self, bodies: pl.Series, bulk: bool) -> tuple[str, str, bytes]:
        url = self.destination.root_url + (BULK_PATH if bulk else SINGLE_PATH)
        return "POST", url, events_api_json.request_body(bodies, bulk)

    def classify(self, response: httpx.Response | None, error: Exception | None) -> Outcome:
        return classify(response, error)

    def read(self, content: bytes, texts: list[str], ids: list[str], bulk: bool) -> Verdict:
        return events_api_answers.read(content, texts, ids, bulk)
