"""The Rokt Event API transport: mParticle batch JSON POSTed in bulk to
/v2/bulkevents (or alone to /v2/events) with Basic auth, and what its answers mean
(HTTP statuses here; which batch an error names in `events_api_answers`)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import polars as pl

from connector._version import __version__
from connector.config import DestinationConfig
from connector.transports import events_api_answers, events_api_json, statuses
from connector.transports.base import Outcome, Verdict

BULK_PATH, SINGLE_PATH = "/v2/bulkevents", "/v2/events"


def classify(response: httpx.Response | None, error: Exception | None = None) -> Outcome:
    """Map one attempt's response (or network error) to accept/reject/retry/fatal."""
    return statuses.classify(response, error, "destination.api_key and api_secret")


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
        assert destination.api_key is not None and destination.api_secret is not None
        key, secret = destination.api_key, destination.api_secret
        return httpx.AsyncClient(
            auth=httpx.BasicAuth(key.get_secret_value(), secret.get_secret_value()),
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

    def notes(self, columns: Sequence[str], hashed: Sequence[str]) -> list[str]:
        return []
