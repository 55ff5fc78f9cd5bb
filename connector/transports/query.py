"""What the transports that send each conversion as one GET (the pixels) share: values
percent-encoded a whole column at a time, the 8 KB URL limit, the ids a GET's ledger
row keeps, URLs kept out of httpx's logs, and the HTTP side (`OneGet`)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from urllib.parse import quote

import httpx
import polars as pl

from connector._version import __version__
from connector.config import DestinationConfig
from connector.digest import sha256, uuid5
from connector.pii import plain_outputs
from connector.spec import MAX_URL_BYTES, PLAIN_PII
from connector.transports import statuses
from connector.transports.base import Outcome, Request, Verdict

REDACTED = "<redacted>"
# The ledger's request_id of a GET: uuid5(NS_GET, the SHA-256 of its query without secrets).
NS_GET = uuid.uuid5(uuid.NAMESPACE_URL, "https://rokt-connector.invalid/pixel_request")
_KEPT = [c for c in map(chr, range(128)) if c.isalnum() or c in "-._~"]
_ESCAPED_KEPT = [f"%{ord(c):02X}" for c in _KEPT]
_NEEDS_ESCAPE = r"[^A-Za-z0-9._~-]"


def percent(text: str) -> str:
    """`text` percent-encoded as a query key or value (nothing but `A-Za-z0-9-._~` kept)."""
    return quote(text, safe="")


def texts(frame: pl.DataFrame, name: str) -> pl.Series:
    """The values of column `name` as text (booleans `true`/`false`; null stays null)."""
    column = frame[name]
    if column.dtype == pl.String:
        return column
    if column.dtype == pl.Boolean:
        return column.replace_strict({True: "true", False: "false"}, return_dtype=pl.String)
    return column.cast(pl.String)


def encoded(values: pl.Series, hidden: bool = False) -> pl.Expr:
    """`values` (text) percent-encoded as `percent` does, all at once: the UTF-8 bytes as
    `%XX`, then the unreserved ones back as they were. `hidden`: `<redacted>` instead."""
    if hidden:
        return pl.when(pl.lit(values).is_not_null()).then(pl.lit(percent(REDACTED)))
    if not values.str.contains(_NEEDS_ESCAPE).any():
        return pl.lit(values)
    escaped = (
        pl.lit(values)
        .cast(pl.Binary)
        .bin.encode("hex")
        .str.to_uppercase()
        .str.replace_all("(..)", "%${1}")
    )
    return escaped.str.replace_many(_ESCAPED_KEPT, _KEPT)


def hidden_columns(frame: pl.DataFrame, redact: bool) -> set[str]:
    """The columns shown as `<redacted>` when bodies are printed: plain-text PII."""
    return set(PLAIN_PII) | plain_outputs(frame) if redact else set()


def sent_columns(frame: pl.DataFrame) -> list[str]:
    """The value columns of a transformed frame that hold a value in some row."""
    return [
        name
        for name in frame.columns
        if not name.startswith("_") and frame[name].null_count() < frame.height
    ]


def with_bodies(frame: pl.DataFrame, query: pl.Expr, url_bytes: int) -> pl.DataFrame:
    """`frame` with `_body` (the query string), `_payload_sha256` (its SHA-256) and
    `_request_id`; a row whose URL (`url_bytes` plus the query) is over 8 KB gets
    `_reason = url_too_long`."""
    if frame.is_empty():
        return frame.with_columns(
            pl.lit(None, pl.String).alias(c) for c in ("_body", "_payload_sha256", "_request_id")
        )
    bodies = frame.select(query.alias("_body"), sha256(query).alias("_payload_sha256"))
    ids = uuid5(bodies["_payload_sha256"], NS_GET).alias("_request_id")
    too_long = pl.col("_body").str.len_bytes() + url_bytes > MAX_URL_BYTES
    return frame.with_columns(*bodies.get_columns(), ids).with_columns(
        pl.when(too_long).then(pl.lit("url_too_long")).otherwise(pl.col("_reason")).alias("_reason")
    )


class OneGet:
    """The HTTP side of a GET transport: `url` plus a row's query string, one
    conversion per request, answers read by their status alone; `keys` names the
    settings a 401 or 403 asks the user to check."""

    url: str
    keys: str

    def __init__(self, destination: DestinationConfig) -> None:
        self.destination = destination

    @property
    def url_bytes(self) -> int:
        return len(self.url.encode())

    def pack(self, bodies: pl.Series) -> Sequence[Request]:
        sizes = bodies.str.len_bytes().to_list()
        return [Request(i, i + 1, size, bulk=False) for i, size in enumerate(sizes)]

    def client(self, http: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            headers={"User-Agent": f"rokt-connector/{__version__}"},
            timeout=httpx.Timeout(self.destination.timeout_s),
            limits=httpx.Limits(max_connections=self.destination.concurrency),
            transport=http,
        )

    def request(self, bodies: pl.Series, bulk: bool) -> tuple[str, str, bytes]:
        [body] = bodies.to_list()
        return "GET", self.url + body, b""

    def classify(self, response: httpx.Response | None, error: Exception | None) -> Outcome:
        return statuses.classify(response, error, self.keys)

    def read(self, content: bytes, texts: list[str], ids: list[str], bulk: bool) -> Verdict:
        return Verdict()  # one conversion per request: the status says it all


class _HiddenUrls(logging.Filter):
    """Shows a GET of these transports in httpx's own log lines as its host alone: its
    URL holds a key (pixel: in the path; RudderStack: the write key) and the values sent."""

    def __init__(self) -> None:
        super().__init__()
        self.prefixes: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and self.prefixes:
            record.args = tuple(self._hidden(a) for a in record.args)
        return True

    def _hidden(self, arg: object) -> object:
        text = str(arg) if isinstance(arg, httpx.URL | str) else ""
        if any(text.startswith(p) for p in self.prefixes):
            url = httpx.URL(text)
            return f"{url.scheme}://{url.netloc.decode()}/<hidden>"
        return arg


_HIDDEN = _HiddenUrls()


def hide_in_httpx_logs(prefix: str) -> None:
    """Keep URLs starting with `prefix` out of httpx's log records (an application that
    logs httpx at INFO would otherwise write each request's URL). `prefix` is compared as
    httpx writes it (`https://Host:443/...` is logged `https://host/...`)."""
    _HIDDEN.prefixes.add(str(httpx.URL(prefix)))
    logger = logging.getLogger("httpx")
    if _HIDDEN not in logger.filters:
        logger.addFilter(_HIDDEN)
