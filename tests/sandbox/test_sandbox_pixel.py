"""Rokt's Pixel Service in the sandbox (`GET /v1/{api_key}/Pixel`): an accepted conversion is
answered with a GIF and recorded parsed, each refusal has its code and never shows a value,
a resend counts once (across a restart too), and the faults apply as to the Event API.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pixel_helpers import (
    EMAIL_HASH,
    FIRST_HASH,
    MOBILE_HASH,
    Params,
    is_gif,
    pixel_conversion,
    pixel_path,
    query,
    refusal,
)
from sandbox_helpers import EVENTS, KEY, SECRET, Client, FakeClock, batch, compact

from connector.sandbox import FAULTS, Reply, Sandbox, SandboxSettings
from connector.sandbox.pixel import check_query
from connector.sandbox.pixel_common import receive


def get(sandbox: Client, path: str) -> Any:
    return sandbox.request("GET", path, auth=None)


def test_over_loopback_a_gif_a_403_and_a_414(sandbox_factory: Callable[..., Any]) -> None:
    sandbox = sandbox_factory()  # the command's defaults: --api-key sandbox-key
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        accepted = client.get(pixel_path(pixel_conversion(), key="sandbox-key"))
        assert is_gif(accepted) and int(accepted.headers["content-length"]) == 43
        forbidden = client.get(pixel_path(pixel_conversion(), key="another-key"))
        assert refusal(forbidden) == (403, "forbidden") and "another-key" not in forbidden.text
        long = pixel_path(pixel_conversion(ttl="x" * 9000), key="sandbox-key")
        assert refusal(client.get(long)) == (414, "uri_too_long")
    stats = sandbox.stats()
    assert stats["requests_by_endpoint"]["pixel"] == 3
    assert [r["transport"] for r in sandbox.records()] == ["pixel"]


def test_an_accepted_conversion_is_answered_with_a_gif_and_recorded_parsed() -> None:
    sandbox = Client(wall_clock=lambda: 1_790_000_000.5)
    sent = query(pixel_conversion())
    assert is_gif(get(sandbox, pixel_path(sent)))
    [record] = sandbox.recorded()["batches"]
    assert record == {
        "received_at": 1_790_000_000.5,
        "source_request_id": hashlib.sha256(sent.encode()).hexdigest(),
        "environment": "development",  # dbg=true
        "confirmationref": "ORD-1",
        "transport": "pixel",
        "batch": {
            "dt": "AppEvent",
            "et": "Transaction",
            "n": "conversion",
            "ct": 1764547200000,
            "identities": {"other": EMAIL_HASH, "customerid": "C-1", "other3": "sess-9"},
            "user_attributes": {"firstnamesha256": FIRST_HASH, "mobilesha256": MOBILE_HASH},
            "event_attributes": {
                "conversiontype": "purchase",
                "confirmationref": "ORD-1",
                "amount": "300.5",
                "currency": "USD",
            },
        },
        "receipts": 1,
    }
    for dbg in ("false", None):
        params = pixel_conversion(dbg=dbg, attrs_v=["purchase", f"ORD-{dbg}", "1", "USD"])
        assert is_gif(get(sandbox, pixel_path(params)))
    environments = [r["environment"] for r in sandbox.recorded()["batches"]]
    assert environments == ["development", "production", "production"]
    stats = sandbox.stats()
    assert (stats["batches"], stats["unique_confirmationrefs"], stats["rejected"]) == (3, 3, 0)
    assert stats["requests_by_endpoint"] == {"events_api": 0, "pixel": 3, "rudderstack_pixel": 0}
    assert stats["responses_by_status"]["200"] == 3


def test_every_identity_type_and_the_optional_parameters_are_accepted() -> None:
    sandbox = Client()
    kinds = ["email", "other", "customerid", *(f"other{n}" for n in range(2, 11)), "mobile_number"]
    values = ["j.smith+tag@example.com", EMAIL_HASH, *(f"v{i}" for i in range(len(kinds) - 2))]
    extra = {"lc": "40.7,-74.0", "av": "1.2", "hn": "shop.example", "ttl": "Thanks!"}
    params = pixel_conversion(ui_t=kinds, ui_v=values, flags_k=["f"], flags_v=["x y"], **extra)
    assert is_gif(get(sandbox, pixel_path(params)))
    [record] = sandbox.recorded()["batches"]
    assert record["batch"]["identities"] == dict(zip(kinds, values, strict=True))
    assert record["batch"]["custom_flags"] == {"f": "x y"}
    assert {k: record["batch"][k] for k in extra} == extra


VALUE = "Val-Ue-91"  # every value under test holds it: no answer may show it
NAME_TOO_LONG = "attribute_name_too_long"
ATTRS_K = ["conversiontype", "confirmationref"]
C = pixel_conversion
REFUSALS: list[tuple[str, Params | str, str]] = [
    ("unknown parameter", C(zz=VALUE), "invalid_query"),
    ("repeated parameter", query(C()) + "&dt=AppEvent", "invalid_query"),
    ("bad escape", query(C(hn=VALUE)) + "%zz", "invalid_query"),
    ("not UTF-8", query(C()) + "&ttl=" + VALUE + "%ff", "invalid_query"),
    ("page view", C(dt="ScreenView"), "invalid_event_type"),
    ("other event type", C(et="Navigation"), "invalid_event_type"),
    ("other name", C(n=VALUE), "invalid_event_name"),
    ("no ct", C(ct=None), "invalid_timestamp"),
    ("ct in seconds", C(ct="1764547200"), "invalid_timestamp"),
    ("ct in 2100", C(ct="4102444800000"), "invalid_timestamp"),
    ("ct as text", C(ct="2026-11-30"), "invalid_timestamp"),
    ("ct signed", C(ct="+1764547200000"), "invalid_timestamp"),
    ("dbg", C(dbg="yes"), "invalid_debug"),
    ("empty dbg", C(dbg=""), "invalid_debug"),
    ("one value short", C(ua_v=[FIRST_HASH]), "list_length_mismatch"),
    ("values alone", C(attrs_k=None), "list_length_mismatch"),
    ("empty key", C(ua_k=["", "mobilesha256"]), "empty_key"),
    ("key twice", C(attrs_k=[*ATTRS_K, "amount", "amount"]), "duplicate_key"),
    ("identity type", C(ui_t=["other", "phone", "other3"]), "unknown_identity"),
    ("empty identity", C(ui_v=[EMAIL_HASH, "", "s"]), "invalid_identity"),
    ("hashed email", C(ui_v=[VALUE, "C-1", "s"]), "invalid_hash"),
    ("upper-case hash", C(ua_v=[FIRST_HASH.upper(), MOBILE_HASH]), "invalid_hash"),
    ("email", C(ui_t=["email"], ui_v=[VALUE]), "invalid_email"),
    ("session only", C(ui_t=["other3"], ui_v=[VALUE]), "missing_identity"),
    ("no ref", C(attrs_k=["conversiontype"], attrs_v=[VALUE]), "missing_confirmationref"),
    ("blank ref", C(attrs_k=ATTRS_K, attrs_v=[VALUE, " "]), "missing_confirmationref"),
    ("no type", C(attrs_k=ATTRS_K, attrs_v=["", VALUE]), "missing_conversiontype"),
    ("amount", C(attrs_v=["p", "ORD-1", VALUE, "USD"]), "invalid_amount"),
    ("quantity", C(attrs_k=[*ATTRS_K, "quantity"], attrs_v=["p", "R", VALUE]), "invalid_quantity"),
    ("long name", C(attrs_k=[*ATTRS_K, "k" * 257], attrs_v=["p", "R", VALUE]), NAME_TOO_LONG),
    ("long value", C(ua_k=["city"], ua_v=[VALUE + "v" * 4096]), "attribute_value_too_long"),
]


@pytest.mark.parametrize(
    ("params", "code"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_each_refusal_is_a_400_with_its_code_and_shows_no_value(
    params: Params | str, code: str
) -> None:
    sandbox = Client()
    response = get(sandbox, pixel_path(params))
    assert refusal(response) == (400, code)
    assert VALUE not in response.text
    assert KEY not in response.text
    stats = sandbox.stats()
    assert (stats["batches"], stats["rejected"], stats["rejections_by_code"]) == (0, 1, {code: 1})
    assert stats["request_errors_by_code"] == {}
    assert sandbox.recorded()["total"] == 0


def test_the_first_failing_check_gives_the_code() -> None:
    sandbox = Client()
    both = pixel_conversion(dt="ScreenView", ct="soon", ui_t=["phone"])
    assert refusal(get(sandbox, pixel_path(both))) == (400, "invalid_event_type")
    later = pixel_conversion(ct="soon", ui_t=["phone"])
    assert refusal(get(sandbox, pixel_path(later))) == (400, "invalid_timestamp")
    unknown_first = query(pixel_conversion(dt="ScreenView")) + "&zz=1"
    assert refusal(get(sandbox, pixel_path(unknown_first))) == (400, "invalid_query")


def test_a_comma_sent_as_percent_2c_still_splits_the_list() -> None:
    """The server decodes each parameter, then splits it on `,`: an encoded comma inside
    a value makes one item two, and the lists no longer pair up."""
    sandbox = Client()
    params = pixel_conversion(attrs_v=["purchase", "ORD,1", "300.5", "USD"])
    assert "ORD%2C1" in query(params)
    response = get(sandbox, pixel_path(params))
    assert refusal(response) == (400, "list_length_mismatch")
    message = response.json()["errors"][0]["message"]
    assert "attrs_k" in message and "attrs_v" in message and "ORD" not in message


def test_a_wrong_key_is_403_and_no_answer_shows_a_key() -> None:
    sandbox = Client()
    wrong = "wrong-Pixel-Key-Sh0wn-Nowhere"
    for key in (wrong, KEY + "x", KEY.upper(), ""):
        response = get(sandbox, pixel_path(pixel_conversion(), key=key) if key else "/v1//Pixel")
        if key:
            assert refusal(response) == (403, "forbidden")
        else:
            assert response.status_code == 404  # no key: no such path
        assert wrong not in response.text and KEY not in response.text
    assert SECRET not in get(sandbox, pixel_path(pixel_conversion())).text
    stats = sandbox.stats()
    assert (stats["batches"], stats["rejected"]) == (1, 0)
    assert stats["responses_by_status"]["403"] == 3


def test_a_url_over_8192_bytes_is_414() -> None:
    sandbox = Client()
    base = pixel_path(pixel_conversion()) + "&ttl="
    fits = base + "x" * (8192 - len(base))
    assert is_gif(get(sandbox, fits))
    over = pixel_path(pixel_conversion(ct="soon")) + "&ttl=" + "x" * 8192
    assert refusal(get(sandbox, over)) == (414, "uri_too_long")  # before the query's checks
    stats = sandbox.stats()
    assert stats["request_errors_by_code"] == {"uri_too_long": 1}
    assert (stats["responses_by_status"]["414"], stats["rejected"]) == (1, 0)


def test_a_resend_is_answered_alike_and_counted_once() -> None:
    sandbox = Client()
    path = pixel_path(pixel_conversion())
    assert all(is_gif(get(sandbox, path)) for _ in range(3))
    stats = sandbox.stats()
    assert (stats["batches"], stats["resent"], stats["max_receipts"]) == (1, 2, 3)
    assert sandbox.recorded()["batches"][0]["receipts"] == 3
    # The same conversion in another order is another request: a duplicate confirmationref.
    reordered = dict(reversed(list(pixel_conversion().items())))
    assert is_gif(get(sandbox, pixel_path(reordered)))
    stats = sandbox.stats()
    assert (stats["batches"], stats["duplicate_confirmationrefs"]) == (2, 1)


def test_a_confirmationref_sent_by_both_endpoints_is_a_duplicate() -> None:
    sandbox = Client()
    assert sandbox.post(EVENTS, compact(batch(0))).status_code == 202  # ORD-00000, development
    params = pixel_conversion(attrs_v=["purchase", "ORD-00000", "1", "USD"])
    assert is_gif(get(sandbox, pixel_path(params)))
    stats = sandbox.stats()
    assert (stats["batches"], stats["unique_confirmationrefs"]) == (2, 1)
    assert stats["duplicate_confirmationrefs"] == 1
    assert [r["transport"] for r in sandbox.recorded()["batches"]] == ["events_api", "pixel"]


def test_reject_rate_refuses_a_conversion_every_time_it_is_sent() -> None:
    sandbox = Client(reject_rate=1.0, seed=3)
    path = pixel_path(pixel_conversion())
    for _ in range(2):
        assert refusal(get(sandbox, path)) == (400, "rejected_by_sandbox")
    stats = sandbox.stats()
    assert (stats["batches"], stats["resent"], stats["rejected"]) == (0, 0, 2)
    half = Client(reject_rate=0.5, seed=7)
    paths = [
        pixel_path(pixel_conversion(attrs_v=["purchase", f"ORD-{i}", "1", "USD"]))
        for i in range(30)
    ]
    first = [get(half, p).status_code for p in paths]
    assert {200, 400} == set(first)
    assert [get(half, p).status_code for p in paths] == first


def test_faults_and_the_rate_limit_apply_one_token_per_request() -> None:
    clock = FakeClock()
    sandbox = Client(rate_limit=10, clock=clock)
    paths = [
        pixel_path(pixel_conversion(attrs_v=["purchase", f"ORD-{i}", "1", "USD"]))
        for i in range(101)
    ]
    assert all(is_gif(get(sandbox, p)) for p in paths[:100])  # the bucket holds 100
    limited = get(sandbox, paths[100])
    assert (refusal(limited), limited.headers["Retry-After"]) == ((429, "rate_limited"), "1")
    clock.now += 0.1
    assert is_gif(get(sandbox, paths[100]))
    assert sandbox.stats()["batches"] == 101

    failing = Client(fail_rate=1.0, seed=11)
    statuses = {get(failing, paths[0]).status_code for _ in range(40)}
    assert statuses == {status for status, _ in FAULTS}
    stats = failing.stats()
    assert (stats["batches"], stats["max_receipts"]) == (0, 40)  # each arrival a receipt
    storm = Client(storm_429_rate=1.0, retry_after_max_s=5, seed=4)
    waits = {int(get(storm, paths[0]).headers["Retry-After"]) for _ in range(30)}
    assert waits <= set(range(6)) and len(waits) > 1


def test_latency_waits_on_the_injected_sleep_but_not_before_a_403() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    sandbox = Client(latency_s=0.25, sleep=sleep)
    assert is_gif(get(sandbox, pixel_path(pixel_conversion())))
    assert refusal(get(sandbox, pixel_path(pixel_conversion(ct="x")))) == (400, "invalid_timestamp")
    assert refusal(get(sandbox, pixel_path(pixel_conversion(), key="nope")))[0] == 403
    assert slept == [0.25, 0.25]


def _answer(sandbox: Sandbox, params: Params) -> Reply:
    """One pixel request straight into the sandbox (a drop or a hang shows as its fate)."""
    raw = query(params).encode()
    return asyncio.run(receive(sandbox, "pixel", check_query(raw), lambda p: Reply(400, {})))


def test_hung_dropped_and_slow_answers() -> None:
    hung = Sandbox(SandboxSettings(hang_rate=1.0))
    assert _answer(hung, pixel_conversion()).fate == "hang"
    assert hung.stats()["batches"] == 0
    dropped = Sandbox(SandboxSettings(reset_rate=1.0, seed=8))
    params = [pixel_conversion(attrs_v=["p", f"ORD-{i}", "1", "USD"]) for i in range(40)]
    assert {_answer(dropped, p).fate for p in params} == {"drop"}
    assert 5 < dropped.stats()["batches"] < 35  # about half recorded before the drop
    waited: list[int] = []

    async def sleep(seconds: float) -> None:
        waited.append(slow.stats()["batches"])

    slow = Sandbox(SandboxSettings(slow_rate=1.0, sleep=sleep))
    reply = _answer(slow, pixel_conversion())
    assert (reply.status, reply.media_type, waited) == (200, "image/gif", [1])


def test_a_restarted_sandbox_knows_a_resend_from_its_journal(tmp_path: Path) -> None:
    journal = tmp_path / "sandbox.journal"
    path = pixel_path(pixel_conversion())
    first = Client(journal=journal)
    assert is_gif(get(first, path))
    first.sandbox.close()
    again = Client(journal=journal)
    assert again.recorded() == first.recorded()
    assert is_gif(get(again, path))
    stats = again.stats()
    assert (stats["batches"], stats["resent"], stats["max_receipts"]) == (1, 1, 2)
    again.request("POST", "/_sandbox/reset")
    assert is_gif(get(again, path))  # forgotten: accepted as new
    assert (again.stats()["batches"], again.stats()["resent"]) == (1, 0)
    again.sandbox.close()
