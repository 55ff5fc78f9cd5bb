"""The Event API's endpoints in the sandbox: auth, request-level checks and limits, bulk
partial rejection, exact bookkeeping under concurrency, and hostile bodies over loopback.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import polars as pl
import pytest
from sandbox_helpers import (
    ATTRS,
    BAD_REQUEST,
    BULK,
    EVENTS,
    KEY,
    SANDBOX_AUTH,
    SECRET,
    TOKEN,
    Client,
    batch,
    bulk,
    codes,
    compact,
    located,
    pad_to,
    pipeline_bodies,
    put,
    reason,
)

from connector.sandbox.checks import MAX_DEPTH
from connector.spec import MAX_BATCH_BYTES, MAX_BATCHES_PER_REQUEST, MAX_REQUEST_BYTES
from connector.transports.events_api_json import pack


def test_missing_auth_is_401_and_wrong_auth_is_403_and_nothing_is_recorded() -> None:
    sandbox = Client()
    body = compact(batch())
    missing = sandbox.post(EVENTS, body, auth=None)
    assert missing.status_code == 401
    assert codes(missing) == ["unauthorized"]
    for auth in [(KEY, "wrong"), ("wrong", SECRET)]:
        response = sandbox.post(EVENTS, body, auth=auth)
        assert (response.status_code, codes(response)) == (403, ["forbidden"])
    for header in ["", f"Bearer {TOKEN}", f"Basic {SECRET}", "Basic !!!", f"Digest {TOKEN}"]:
        response = sandbox.post(EVENTS, body, auth=None, headers={"Authorization": header})
        assert response.status_code == 403, header
    lower = sandbox.post(EVENTS, body, auth=None, headers={"authorization": f"basic {TOKEN}"})
    assert lower.status_code == 202  # the scheme is case-insensitive (RFC 7617)
    stats = sandbox.stats()
    assert stats["responses_by_status"]["401"] == 1
    assert stats["responses_by_status"]["403"] == 7
    assert stats["batches"] == 1
    assert (stats["requests"], stats["bulk_requests"]) == (9, 0)


def test_the_secret_never_appears_in_any_response_or_repr() -> None:
    sandbox = Client(fail_rate=0.5, seed=1)
    responses = [
        sandbox.post(EVENTS, "{}", auth=None),
        sandbox.post(EVENTS, "{}", auth=(KEY, SECRET + "x")),
        sandbox.post(EVENTS, "{}", auth=None, headers={"Authorization": f"Bearer {SECRET}"}),
        sandbox.post(EVENTS, "{}", auth=None, headers={"Authorization": f"Basic {SECRET}"}),
        *(sandbox.post(BULK, bulk([batch(i), {"bad": SECRET}])) for i in range(6)),
        sandbox.request("GET", "/_sandbox/stats"),
        sandbox.request("GET", "/_sandbox/batches"),
    ]
    assert {r.status_code for r in responses} >= {202, 401, 403}
    for response in responses:
        shown = response.text + json.dumps(dict(response.headers))
        assert SECRET not in shown
        assert TOKEN not in shown
    assert SECRET not in repr(sandbox.settings)


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        (EVENTS, b"{not json", "invalid_json"),
        (EVENTS, b'{"environment": NaN}', "invalid_json"),
        (BULK, b"[1e999]", "invalid_json"),
        (EVENTS, b"\xff\xfe{}", "invalid_json"),
        (EVENTS, b'{"environment": "development\\ud800"}', "invalid_json"),
        (BULK, b'[{"\\udfff": 1}]', "invalid_json"),
        (EVENTS, b"", "invalid_json"),
        (EVENTS, b"[]", "invalid_batch"),
        (EVENTS, b'"text"', "invalid_batch"),
        (BULK, b"{}", "invalid_bulk"),
        (BULK, b"[]", "invalid_bulk"),
    ],
    ids=[
        *("garbage", "nan", "overflow", "not_utf8", "lone_surrogate", "lone_surrogate_key"),
        *("empty", "array", "string", "object", "none"),
    ],
)
def test_malformed_requests_are_400(path: str, body: bytes, code: str) -> None:
    sandbox = Client()
    response = sandbox.post(path, body)
    assert (response.status_code, codes(response)) == (400, [code])
    [error] = response.json()["errors"]
    assert error["code"] == BAD_REQUEST
    if code != "invalid_batch":  # a single body that is not an object is its one batch
        assert "Path" not in error["message"]  # about the request, not one batch
    assert sandbox.stats()["batches"] == 0


def test_nesting_deeper_than_the_platform_reads_is_400_never_500() -> None:
    def nested(depth: int) -> str:
        flags = "[" * depth + "]" * depth  # custom_flags: the one place no check bounds
        return compact(batch(0)).replace('"data":{', f'"data":{{"custom_flags":{flags},', 1)

    sandbox = Client()
    assert sandbox.post(EVENTS, nested(MAX_DEPTH - 4)).status_code == 202  # 64 levels
    response = sandbox.post(EVENTS, nested(MAX_DEPTH - 3))
    assert (response.status_code, codes(response)) == (400, ["too_deep"])
    for depth in range(880, 1010, 3):  # around the interpreter's recursion limit
        for path, body in [(EVENTS, nested(depth)), (BULK, f"[{nested(depth)}]")]:
            response = sandbox.post(path, body)
            assert codes(response) in (["too_deep"], ["invalid_json"]), (depth, path)
    assert sandbox.stats()["responses_by_status"]["500"] == 0
    assert sandbox.recorded()["total"] == 1


def test_over_one_hundred_batches_is_400_and_nothing_is_recorded() -> None:
    sandbox = Client()
    batches = [batch(i) for i in range(MAX_BATCHES_PER_REQUEST + 1)]
    response = sandbox.post(BULK, bulk(batches))
    assert (response.status_code, codes(response)) == (400, ["invalid_bulk"])
    assert str(MAX_BATCHES_PER_REQUEST + 1) in response.json()["errors"][0]["message"]
    stats = sandbox.stats()
    assert stats["batches"] == 0
    assert stats["request_errors_by_code"] == {"invalid_bulk": 1}
    assert stats["max_batches_per_request"] == MAX_BATCHES_PER_REQUEST + 1
    assert sandbox.post(BULK, bulk(batches[:-1])).status_code == 202
    assert sandbox.stats()["batches"] == MAX_BATCHES_PER_REQUEST


def test_request_size_limit_is_exact() -> None:
    sandbox = Client()
    # "[" + a + "," + b + "]" is exactly MAX_REQUEST_BYTES; each batch fits its own limit
    first = MAX_BATCH_BYTES - 2
    a, b = pad_to(batch(0), first), pad_to(batch(1), MAX_REQUEST_BYTES - 3 - first)
    exact = bulk([a, b]).encode()
    assert len(exact) == MAX_REQUEST_BYTES
    assert sandbox.post(BULK, exact).status_code == 202
    over = bulk([a, pad_to(batch(2), MAX_REQUEST_BYTES - 2 - first)]).encode()
    assert len(over) == MAX_REQUEST_BYTES + 1
    response = sandbox.post(BULK, over)
    assert (response.status_code, codes(response)) == (400, ["request_too_large"])
    assert sandbox.stats()["batches"] == 2


def test_the_connectors_packed_requests_are_all_accepted() -> None:
    sandbox = Client()
    batches = pl.Series(pipeline_bodies())
    requests = pack(batches)
    for request in requests:
        response = sandbox.post(BULK, request.body(batches))
        assert (response.status_code, response.json()) == (202, {})
    stats = sandbox.stats()
    assert stats["batches"] == stats["unique_confirmationrefs"] == len(pipeline_bodies())
    assert stats["max_batches_per_request"] == MAX_BATCHES_PER_REQUEST
    assert stats["requests"] == stats["responses_by_status"]["202"] == len(requests)
    assert stats["bulk_requests"] == len(requests)
    assert stats["rejected"] == stats["resent"] == stats["duplicate_confirmationrefs"] == 0


def test_bulk_names_exactly_the_bad_batches_and_records_the_good_ones() -> None:
    sandbox = Client()
    batches: list[Any] = [batch(i) for i in range(6)]
    batches[1]["environment"] = "staging"
    del batches[3]["events"][0]["data"]["custom_attributes"]["confirmationref"]
    batches[4]["source_request_id"] = 42
    batches[5] = "not a batch"
    response = sandbox.post(BULK, bulk(batches))
    assert response.status_code == 202
    errors = response.json()["errors"]
    assert [(located(batches, e), reason(e)) for e in errors] == [
        (1, "invalid_environment"),
        (3, "missing_confirmationref"),
        (4, "invalid_source_request_id"),
        (5, "invalid_batch"),
    ]
    assert "Path 'environment'" in errors[0]["message"]  # relative to the batch: no index
    recorded = sandbox.recorded()
    assert recorded["total"] == 2
    assert [r["confirmationref"] for r in recorded["batches"]] == ["ORD-00000", "ORD-00002"]
    assert recorded["batches"][0]["batch"] == batches[0]
    stats = sandbox.stats()
    assert (stats["batches"], stats["rejected"]) == (2, 4)
    assert sum(stats["rejections_by_code"].values()) == 4


def test_bulk_where_every_batch_is_invalid_is_still_202() -> None:
    sandbox = Client()
    batches = [batch(i) for i in range(3)]
    for b in batches:
        b["schema_version"] = 2
    response = sandbox.post(BULK, bulk(batches))
    assert response.status_code == 202
    named = [(located(batches, e), reason(e)) for e in response.json()["errors"]]
    assert named == [(i, "unknown_field") for i in range(3)]
    assert sandbox.stats()["batches"] == 0


def test_bookkeeping_is_exact_with_many_requests_in_flight() -> None:
    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)  # yields to the other requests; no real time passes

    sandbox = Client(latency_s=1.0, sleep=sleep)
    bodies = [compact(batch(i)) for i in range(60)]

    async def go() -> list[int]:
        async with sandbox.client() as client:
            sends = [client.post(EVENTS, content=b) for b in bodies + bodies]
            return [r.status_code for r in await asyncio.gather(*sends)]

    assert asyncio.run(go()) == [202] * 120
    stats = sandbox.stats()
    assert (stats["requests"], stats["batches"], stats["resent"]) == (120, 60, 60)
    assert stats["duplicate_confirmationrefs"] == 0


def test_an_undecodable_body_is_400_and_the_sandbox_still_serves(
    sandbox_factory: Callable[..., Any],
) -> None:
    sandbox = sandbox_factory()
    lone = batch(0)
    put((*ATTRS, "productname"), "T-shirt \ud800")(lone)  # json.dumps escapes it: \ud800
    paired = batch(1)
    put((*ATTRS, "productname"), "T-shirt \U0001f455")(paired)  # escaped as a pair: valid
    undecodable = [
        (EVENTS, json.dumps(lone).encode()),
        (BULK, json.dumps([batch(2), lone]).encode()),  # the whole request, not one batch
        (EVENTS, b'{"\\udfff": 1, "environment": "development"}'),  # a key
        (EVENTS, compact(batch(3)).encode().replace(b"ORD-", b"ORD-\xff")),  # bad UTF-8
        (EVENTS, compact(batch(4)).encode()[:-1]),  # cut short: not JSON
    ]
    with httpx.Client(base_url=sandbox.url, auth=SANDBOX_AUTH) as client:
        for path, body in undecodable:
            response = client.post(path, content=body)
            assert (response.status_code, codes(response)) == (400, ["invalid_json"]), body[:60]
            [error] = response.json()["errors"]
            assert "Path" not in error["message"]  # about the request, not one batch
        assert "lone surrogate" in client.post(EVENTS, content=undecodable[0][1]).text
        assert b"\\ud83d\\udc55" in json.dumps(paired).encode()
        accepted = client.post(BULK, content=json.dumps([paired]).encode())
        assert (accepted.status_code, accepted.json()) == (202, {})
    stats = sandbox.stats()
    assert stats["responses_by_status"]["500"] == 0
    assert stats["request_errors_by_code"] == {"invalid_json": len(undecodable) + 1}
    [record] = sandbox.records()
    assert record["batch"]["events"][0]["data"]["custom_attributes"]["productname"] == (
        "T-shirt \U0001f455"
    )
