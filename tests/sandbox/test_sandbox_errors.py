"""Where the sandbox's errors point: located as the platform's .NET reader does
(`Path '[n]...'` or `position N` in the body, in UTF-16 units), never by source_request_id;
with --opaque-errors a bulk answer does not say which batch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from sandbox_helpers import (
    BAD_REQUEST,
    BULK,
    EVENTS,
    OPAQUE,
    Client,
    batch,
    bulk,
    codes,
    compact,
    located,
    position,
    reason,
    spans,
    utf16,
)


def test_the_platforms_two_error_shapes() -> None:
    """As the platform's .NET reader: a device id that is not a UUID is named by the
    batch's index in the array; any other error by a path inside the batch, so only
    its position (the last character of the key) locates the batch."""
    sandbox = Client()
    batches = [batch(i) for i in range(3)]
    batches[1]["device_info"] = {"ios_advertising_id": "not-a-guid"}
    batches[2]["events"][0]["data"]["custom_attributes"]["currency"] = {"code": "USD"}
    body = bulk(batches)
    response = sandbox.post(BULK, body)
    assert response.status_code == 202
    device, currency = response.json()["errors"]
    assert re.fullmatch(
        r"device_info\.ios_advertising_id must be a UUID \(invalid_device_id\)\. "
        r"Path '\[1\]\.device_info\.ios_advertising_id', line 1, position \d+\.",
        device["message"],
    )
    assert body[: position(device)].endswith('"ios_advertising_id"')
    assert located(batches, device) == 1
    path = "Path 'events[0].data.custom_attributes.currency', line 1, position "
    assert path in currency["message"]
    assert body[: position(currency)].endswith('"currency"')
    assert located(batches, currency) == 2
    assert "not-a-guid" not in response.text
    single = sandbox.post(EVENTS, compact(batches[1]))
    assert single.status_code == 400
    assert "Path 'device_info.ios_advertising_id', line 1" in single.json()["errors"][0]["message"]


def test_every_error_lies_inside_its_batch_also_with_non_ascii_text() -> None:
    """Positions count UTF-16 code units: accented letters (2 bytes, 1 unit) and emoji
    (4 bytes, 1 Python character, 2 units) before an error must not shift it."""
    batches: list[Any] = [batch(i) for i in range(7)]
    attributes = [b["events"][0]["data"]["custom_attributes"] for b in batches]
    attributes[0]["productname"] = "Crème brûlée 🎉" * 100
    attributes[0]["sku"] = "🎉" * 1000
    batches[1]["environment"] = "staging"
    attributes[2]["productname"] = "Ünïcödé 🎉🎉" * 300
    attributes[3]["productname"] = "Zürich 🎉" * 300
    attributes[3]["currency"] = {"code": "€"}
    batches[4]["user_attributes"] = {"city": "São Paulo"}
    batches[4]["device_info"] = {"ios_advertising_id": "pas-un-guid-é"}
    attributes[5]["sku"] = "🎉" * 2000
    del attributes[5]["conversiontype"]  # no such key: the position is the batch's start
    batches[6] = "ceci n'est pas un lot 🎉"
    body = bulk(batches)
    assert len(body.encode()) != utf16(body) != len(body)
    sandbox = Client()
    response = sandbox.post(BULK, body)
    assert response.status_code == 202
    errors = response.json()["errors"]
    expected = [
        (1, "invalid_environment"),
        (3, "invalid_custom_attributes"),
        (4, "invalid_device_id"),
        (5, "missing_conversiontype"),
        (6, "invalid_batch"),
    ]
    assert [(located(batches, e), reason(e)) for e in errors] == expected
    assert position(errors[3]) == spans(batches)[5].start + 1
    units = body.encode("utf-16-le")
    assert units[: 2 * position(errors[1])].decode("utf-16-le").endswith('"currency"')
    for measure in (len, lambda text: len(text.encode())):  # Python characters, bytes
        assert [located(batches, e, measure) for e in errors] != [i for i, _ in expected]
    assert [r["confirmationref"] for r in sandbox.recorded()["batches"]] == [
        "ORD-00000",
        "ORD-00002",
    ]


def test_opaque_errors_do_not_say_which_batch() -> None:
    sandbox = Client(opaque_errors=True)
    batches = [batch(i) for i in range(4)]
    batches[1]["environment"] = "staging"
    batches[3]["device_info"] = {"ios_advertising_id": "not-a-guid"}
    response = sandbox.post(BULK, bulk(batches))
    assert response.status_code == 202
    assert response.json() == {"errors": [{"code": BAD_REQUEST, "message": OPAQUE}] * 2}
    assert [r["confirmationref"] for r in sandbox.recorded()["batches"]] == [
        "ORD-00000",
        "ORD-00002",
    ]
    # a single batch's 400 concerns that batch: still explained and located
    alone = sandbox.post(EVENTS, compact(batches[1]))
    assert (alone.status_code, codes(alone)) == (400, ["invalid_environment"])
    assert "Path 'environment', line 1, position " in alone.text
    rejecting = Client(opaque_errors=True, reject_rate=1.0, seed=1)
    rejected = rejecting.post(BULK, bulk(batches[:1]))
    assert rejected.json() == {"errors": [{"code": BAD_REQUEST, "message": OPAQUE}]}
    assert rejecting.stats()["rejections_by_code"] == {"rejected_by_sandbox": 1}
    empty = sandbox.post(BULK, "[]")  # about the request: as without the option
    assert (empty.status_code, codes(empty)) == (400, ["invalid_bulk"])
    assert sandbox.stats()["rejections_by_code"] == {
        "invalid_device_id": 1,
        "invalid_environment": 2,
    }


def test_the_opaque_errors_option_of_the_command(sandbox_factory: Callable[..., Any]) -> None:
    opaque = sandbox_factory("--opaque-errors")
    bad = batch(1) | {"environment": "staging"}
    with httpx.Client(base_url=opaque.url, auth=("sandbox-key", "sandbox-secret")) as client:
        response = client.post(BULK, content=bulk([batch(0), bad]))
    assert (response.status_code, response.json()) == (
        202,
        {"errors": [{"code": BAD_REQUEST, "message": OPAQUE}]},
    )
    assert opaque.stats()["batches"] == 1
