"""What the sandbox's tests share. Valid batches come from the connector's own pipeline
(transform -> encode -> pack), so the sandbox and the connector are checked against each
other; `Client` drives an in-process sandbox (no test sleeps: the clock and the sleep are
injected); `codes`, `position` and `located` read the platform's error messages.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import polars as pl
from starlette.applications import Starlette

from connector.config import MappingConfig
from connector.sandbox import Reply, Sandbox, SandboxSettings, create_app
from connector.sandbox.events_api import receive
from connector.transform import split, transform
from connector.transports.events_api_json import encode

REPO = Path(__file__).resolve().parents[2]

KEY = "key-Sandbox-Visible-3"
SECRET = "s3cr3t-Sandbox-Never-Echo-42"
TOKEN = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
IDFV = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
EVENTS, BULK = "/v2/events", "/v2/bulkevents"
DATA: tuple[str | int, ...] = ("events", 0, "data")
ATTRS = (*DATA, "custom_attributes")


@functools.cache
def pipeline_bodies(n: int = 250) -> tuple[str, ...]:
    """Batch JSON for `n` conversions, as the connector encodes them."""
    frame = transform(
        pl.DataFrame(
            {
                "confirmationref": [f"ORD-{i:05d}" for i in range(n)],
                "email": [f"User{i}@Example.com " for i in range(n)],
                "conversiontype": ["purchase"] * n,
                "event_time": ["2026-10-01T12:00:00Z"] * n,
                "amount": [10.0 + i for i in range(n)],
            }
        ),
        MappingConfig(),
        "development",
    )
    valid, rejected = split(frame)
    assert rejected.is_empty()
    return tuple(encode(valid, "development")["_body"].to_list())


def batch(i: int = 0) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(pipeline_bodies()[i])
    return parsed


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def bulk(batches: list[Any]) -> str:
    return compact(batches)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Client:
    """A synchronous face on an in-process sandbox app (httpx + ASGITransport)."""

    def __init__(self, **settings: Any) -> None:
        self.settings = SandboxSettings(api_key=KEY, api_secret=SECRET, **settings)
        self.app: Starlette = create_app(self.settings)
        self.sandbox: Sandbox = self.app.state.sandbox

    def client(self, auth: tuple[str, str] | None = (KEY, SECRET)) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://sandbox", auth=auth
        )

    def request(
        self,
        method: str,
        path: str,
        content: str | bytes | None = None,
        auth: tuple[str, str] | None = (KEY, SECRET),
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        async def go() -> httpx.Response:
            async with self.client(auth) as client:
                return await client.request(method, path, content=content, headers=headers)

        return asyncio.run(go())

    def post(self, path: str, content: str | bytes, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, content, **kwargs)

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = self.request("GET", "/_sandbox/stats").json()
        return data

    def recorded(self, query: str = "") -> dict[str, Any]:
        data: dict[str, Any] = self.request("GET", f"/_sandbox/batches{query}").json()
        return data


BAD_REQUEST = "BAD_REQUEST"
OPAQUE = "One or more batches in the request could not be processed"
_REASON = re.compile(r" \(([a-z_]+)\)\.(?: Path '[^']*', line 1, position \d+\.)?$")
_LOCATOR = re.compile(r"Path '(?:\[(\d+)\])?[^']*', line 1, position (\d+)\.$")


def reason(error: dict[str, Any]) -> str:
    """The sandbox's own code in a BAD_REQUEST error: `<explanation> (<code>).[ Path ...]`."""
    assert error["code"] == BAD_REQUEST, error
    match = _REASON.search(error["message"])
    assert match, error["message"]
    return match.group(1)


def codes(response: httpx.Response) -> list[str]:
    """Each error's code; for BAD_REQUEST errors the sandbox's own, from the message."""
    errors = response.json()["errors"]
    return [reason(e) if e["code"] == BAD_REQUEST else e["code"] for e in errors]


def utf16(text: str) -> int:
    """Length in UTF-16 code units, as .NET counts a reader's position."""
    return len(text.encode("utf-16-le")) // 2


def spans(batches: list[Any], measure: Callable[[str], int] = utf16) -> list[range]:
    """The 0-based offsets each batch covers in `bulk(batches)` (UTF-16 units unless
    another `measure` is given)."""
    found: list[range] = []
    at = measure("[")
    for target in batches:
        size = measure(compact(target))
        found.append(range(at, at + size))
        at += size + measure(",")
    return found


def position(error: dict[str, Any]) -> int:
    match = _LOCATOR.search(error["message"])
    assert match, error["message"]
    return int(match.group(2))


def located(
    batches: list[Any], error: dict[str, Any], measure: Callable[[str], int] = utf16
) -> int | None:
    """The index of the batch of `bulk(batches)` an error is about, from its position
    (None when the position lies in no batch); a `Path '[n]` must agree with it."""
    assert set(error) == {"code", "message"}  # no source_request_id, no index
    match = _LOCATOR.search(error["message"])
    assert match, error["message"]
    index, at = match.groups()
    inside = [i for i, span in enumerate(spans(batches, measure)) if int(at) - 1 in span]
    if index is not None and measure is utf16:
        assert inside == [int(index)], error["message"]
    return inside[0] if inside else None


DELETE = object()


def put(path: tuple[str | int, ...], value: object) -> Callable[[dict[str, Any]], None]:
    """A mutation setting (or, with DELETE, removing) `path` in a batch."""

    def mutate(target: dict[str, Any]) -> None:
        node: Any = target
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
        if value is DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    mutate.value = value  # type: ignore[attr-defined]
    return mutate


def pad_to(target: dict[str, Any], size: int) -> dict[str, Any]:
    """`target` with filler custom attributes so its compact JSON is exactly `size` bytes."""
    attributes = target["events"][0]["data"]["custom_attributes"]
    i = 0
    while len(compact(target).encode()) + 4200 < size:
        attributes[f"pad{i}"] = "x" * 4000
        i += 1
    attributes["padz"] = ""
    attributes["padz"] = "x" * (size - len(compact(target).encode()))
    assert len(compact(target).encode()) == size
    return target


def answer(sandbox: Sandbox, body: str) -> Reply:
    """One authorized request straight into the sandbox (no HTTP: drops and hangs show
    as the reply's `fate`; tests over loopback show what a client sees)."""
    return asyncio.run(receive(sandbox, bulk=True, body=body.encode()))


SANDBOX_AUTH = ("sandbox-key", "sandbox-secret")  # the command's defaults
