"""The transport seam: a new transport is one class plus one registry line, and the
engine drives it end to end (ledger, retries, rejections) without knowing its wire."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import polars as pl
import pytest
from conftest import sync_config

from connector.config import DestinationConfig, Transport, load_config
from connector.digest import sha256, uuid5
from connector.engine import run as engine
from connector.errors import ConfigError
from connector.transports import TRANSPORTS, transport_for
from connector.transports.base import Outcome, Request, Verdict
from connector.transports.events_api import EventsApi
from connector.transports.events_api_json import NS_REQUEST

URL = "http://recording.invalid/conversions"
SINCE, UNTIL = datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)


class Recording:
    """One conversion per PUT, as `{"ref": ...}`; a 422 rejects it."""

    def __init__(self, destination: DestinationConfig) -> None:
        self.destination = destination

    def encode(self, frame: pl.DataFrame, redact: bool = False) -> pl.DataFrame:
        body = pl.concat_str(pl.lit('{"ref":"'), pl.col("_ref"), pl.lit('"}'))
        encoded = frame.with_columns(_body=body, _payload_sha256=sha256(body))
        return encoded.with_columns(_request_id=uuid5(encoded["_payload_sha256"], NS_REQUEST))

    def pack(self, bodies: pl.Series) -> list[Request]:
        sizes = bodies.str.len_bytes().to_list()
        return [Request(i, i + 1, size, bulk=False) for i, size in enumerate(sizes)]

    def client(self, http: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=http)

    def request(self, bodies: pl.Series, bulk: bool) -> tuple[str, str, bytes]:
        [body] = bodies.to_list()
        return "PUT", URL, body.encode()

    def classify(self, response: httpx.Response | None, error: Exception | None) -> Outcome:
        if response is None:
            return Outcome("retry", None, "network error")
        if response.status_code == 503:
            return Outcome("retry", 503, "busy")
        action = "accept" if response.is_success else "reject"
        return Outcome(action, response.status_code, response.text or "ok")

    def read(self, content: bytes, texts: list[str], ids: list[str], bulk: bool) -> Verdict:
        return Verdict()

    def notes(self, columns: list[str], hashed: list[str]) -> list[str]:
        return []


def test_the_engine_drives_a_transport_it_was_never_written_for(
    tmp_path: Path, example_dir: Path, manifest: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(TRANSPORTS, Transport.PIXEL, Recording)
    config = load_config(
        sync_config(tmp_path, example_dir, "http://127.0.0.1:9", transport="pixel")
    )
    seen: list[str] = []
    busy_once: set[str] = set()

    def answer(request: httpx.Request) -> httpx.Response:
        ref = json.loads(request.content)["ref"]
        assert (request.method, str(request.url)) == ("PUT", URL)
        if ref not in busy_once:  # each conversion is retried once
            busy_once.add(ref)
            return httpx.Response(503)
        seen.append(ref)
        return httpx.Response(422, text="no") if ref.endswith("7") else httpx.Response(200)

    report = engine.sync(
        config,
        SINCE,
        UNTIL,
        now=datetime(2026, 11, 1, tzinfo=UTC),
        transport=httpx.MockTransport(answer),
        sleep=_no_sleep,
    )
    rejected = sum(ref.endswith("7") for ref in seen)
    assert len(seen) == len(set(seen)) == manifest["valid"]
    assert (report.accepted, report.rejected) == (manifest["valid"] - rejected, rejected)
    assert report.retries == manifest["valid"]
    with duckdb.connect(str(tmp_path / "ledger.duckdb"), read_only=True) as con:
        states = dict(con.sql("SELECT status, count(*) FROM ledger GROUP BY 1").fetchall())
        transports = con.sql("SELECT DISTINCT transport FROM ledger").fetchall()
    assert (states["accepted"], states["rejected"]) == (report.accepted, rejected)
    assert transports == [("pixel",)]


async def _no_sleep(seconds: float) -> None:
    return None


def test_a_transport_without_a_registry_line_is_refused_and_events_api_is_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = DestinationConfig(base_url="http://127.0.0.1:9", api_key="k", api_secret="s")
    assert isinstance(transport_for(events), EventsApi)
    monkeypatch.delitem(TRANSPORTS, Transport.PIXEL)
    pixel = events.model_copy(update={"transport": Transport.PIXEL})
    with pytest.raises(ConfigError, match="pixel is not implemented yet"):
        transport_for(pixel)
