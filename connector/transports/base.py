"""What a transport gives the engine: request bodies from transformed rows, how
they are grouped and sent, and what an answer means (`Transport`). The generic
sender (rate, concurrency, retries, deadlines) and the engine know nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import httpx
import polars as pl

Action = Literal["accept", "reject", "retry", "fatal"]


@dataclass(frozen=True)
class Outcome:
    """What one HTTP attempt came to, and what to do next."""

    action: Action
    http_status: int | None
    message: str
    retry_after: float | None = None
    error: str | None = None  # the transport error's type when no response came


@dataclass(frozen=True)
class Verdict:
    """One answer, batch by batch: `named` maps a batch's index in the request to the
    platform's message; `unattributed` is True when some error (or the whole body)
    could not be tied to a batch, so no unnamed batch may be taken as accepted."""

    named: dict[int, str] = field(default_factory=dict)
    unattributed: bool = False


@dataclass(frozen=True)
class Request:
    """One HTTP request: the rows `[start, stop)` of the encoded frame it carries, and
    the size of its body, which the transport makes only when it is sent."""

    start: int
    stop: int
    size: int  # bytes
    bulk: bool = True

    @property
    def batches(self) -> int:
        return self.stop - self.start


class Transport(Protocol):
    """One destination's wire format. `encode` adds `_body`, `_payload_sha256` and
    `_request_id` to valid rows (and a `_reason` to those too large to send)."""

    def encode(self, frame: pl.DataFrame, redact: bool = False) -> pl.DataFrame: ...

    def pack(self, bodies: pl.Series) -> Sequence[Request]: ...

    def client(self, http: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
        """The HTTP client: authentication, headers, timeouts, connection limits."""
        ...

    def request(self, bodies: pl.Series, bulk: bool) -> tuple[str, str, bytes]:
        """(method, url, body) of a request carrying `bodies`; bulk or each alone."""
        ...

    def classify(self, response: httpx.Response | None, error: Exception | None) -> Outcome:
        """What one attempt's response (or network error) means: accept, reject,
        retry or fatal."""
        ...

    def read(self, content: bytes, texts: list[str], ids: list[str], bulk: bool) -> Verdict:
        """Which batches of an accepted or rejected request the answer names."""
        ...

    def notes(self, columns: Sequence[str], hashed: Sequence[str]) -> list[str]:
        """What `validate` tells a user of how this transport carries a query returning
        `columns` (with `hashed`: mapping.hash): what it leaves out, and what its
        answers can and cannot say."""
        ...
