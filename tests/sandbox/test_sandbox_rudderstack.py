"""RudderStack's Pixel API in the sandbox (`GET /pixel/v1/track`): every request not hit by a
fault is answered 200 with the GIF, as rudder-server answers; the sandbox records the payload
rudder-server would build and counts each request a real gateway would drop, by its code.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pixel_helpers import (
    FIRST_HASH,
    MOBILE_HASH,
    WRITE_KEY,
    Params,
    is_gif,
    query,
    refusal,
    rudder_conversion,
    rudder_path,
)
from sandbox_helpers import Client, FakeClock

from connector.sandbox import FAULTS, SandboxSettings

NOW = 1_795_995_200.25  # 2026-11-29T23:33:20.250Z


def rudder(**settings: Any) -> Client:
    return Client(write_key=WRITE_KEY, wall_clock=lambda: NOW, **settings)


def get(sandbox: Client, path: str) -> httpx.Response:
    return sandbox.request("GET", path, auth=None)


def test_an_accepted_track_call_is_recorded_as_rudder_server_builds_it() -> None:
    sandbox = rudder()
    sent = query(rudder_conversion())
    assert is_gif(get(sandbox, rudder_path(sent)))
    [record] = sandbox.recorded()["batches"]
    without_key = sent.removeprefix(f"writeKey={WRITE_KEY}&")
    assert record == {
        "received_at": NOW,
        "source_request_id": hashlib.sha256(without_key.encode()).hexdigest(),
        "environment": "production",
        "confirmationref": "ORD-1",
        "transport": "rudderstack_pixel",
        "batch": {
            "channel": "web",
            "integrations": {"All": True},
            "originalTimestamp": "2026-11-30T00:00:00.000Z",
            "sentAt": "2026-11-29T23:33:20.250Z",
            "anonymousId": "sess-9",
            "userId": "C-1",
            "event": "Order Completed",
            "messageId": "5b0c1a6e-0d7f-4f5e-9a57-8d8f5cc1e001",
            "properties": {
                "order_id": "ORD-1",
                "conversiontype": "purchase",
                "amount": "300.5",
                "currency": "USD",
                "rtid": "abc",
            },
            "context": {
                "traits": {"firstNameSha256": FIRST_HASH, "phoneSha256": MOBILE_HASH},
                "ip": "203.0.113.9",
                "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
            },
            "type": "track",
        },
        "receipts": 1,
    }
    assert WRITE_KEY not in str(sandbox.recorded()) + str(sandbox.stats())
    stats = sandbox.stats()
    assert stats["requests_by_endpoint"] == {"events_api": 0, "pixel": 0, "rudderstack_pixel": 1}
    assert (stats["batches"], stats["rejected"], stats["responses_by_status"]["200"]) == (1, 0, 1)


def test_quotes_around_the_anonymous_id_go_and_defaults_yield_to_the_query() -> None:
    sandbox = rudder()
    params = rudder_conversion(
        anonymousId='"sess-9"', originalTimestamp=None, type="identify", **{"integrations.X": "1"}
    )
    assert is_gif(get(sandbox, rudder_path(params)))
    built = sandbox.recorded()["batches"][0]["batch"]
    assert (built["anonymousId"], built["type"]) == ("sess-9", "track")
    assert built["originalTimestamp"] == built["sentAt"] == "2026-11-29T23:33:20.250Z"
    assert built["integrations"] == {"All": True, "X": "1"}


WRONG_KEY = "wk-Guess-Not-Shown-3"
DROPS: list[tuple[str, Params | str, str]] = [
    ("no write key", rudder_conversion(writeKey=None), "invalid_write_key"),
    ("wrong write key", rudder_conversion(writeKey=WRONG_KEY), "invalid_write_key"),
    ("write key twice", query(rudder_conversion()) + "&writeKey=x", "repeated_parameter"),
    ("event twice", query(rudder_conversion()) + "&event=Other", "repeated_parameter"),
    ("no anonymous id", rudder_conversion(anonymousId=None), "missing_anonymous_id"),
    ("quoted nothing", rudder_conversion(anonymousId='""'), "missing_anonymous_id"),
    ("empty event", rudder_conversion(event=""), "missing_event"),
    ("no event", rudder_conversion(event=None), "missing_event"),
    ("no order id", rudder_conversion(**{"properties.order_id": None}), "missing_confirmationref"),
    ("no type", rudder_conversion(**{"properties.conversiontype": ""}), "missing_conversiontype"),
    ("bad hash", rudder_conversion(**{"context.traits.phoneSha256": "x"}), "invalid_hash"),
    ("upper hash", rudder_conversion(**{"context.traits.emailsha256": "A" * 64}), "invalid_hash"),
    ("timestamp", rudder_conversion(originalTimestamp="yesterday"), "invalid_timestamp"),
    ("value and parent", rudder_conversion(properties="x"), "conflicting_parameter"),
    ("bad escape", query(rudder_conversion()) + "%zz", "invalid_query"),
]


@pytest.mark.parametrize(("params", "code"), [d[1:] for d in DROPS], ids=[d[0] for d in DROPS])
def test_a_dropped_request_is_answered_with_the_gif_counted_and_not_recorded(
    params: Params | str, code: str
) -> None:
    sandbox = rudder()
    response = get(sandbox, rudder_path(params))
    assert is_gif(response)
    stats = sandbox.stats()
    assert (stats["batches"], stats["rejected"], stats["rejections_by_code"]) == (0, 1, {code: 1})
    assert stats["responses_by_status"]["200"] == 1
    assert sandbox.recorded()["total"] == 0
    assert WRONG_KEY not in str(stats) and WRITE_KEY not in str(stats)


def test_the_write_key_is_left_out_of_the_receipt_key() -> None:
    """A request dropped for its write key, sent again with the right one, is accepted: the
    key is of the rest of the query, which a resend repeats whatever its write key."""
    sandbox = rudder()
    rest = query(rudder_conversion(writeKey=None))
    assert is_gif(get(sandbox, rudder_path(f"writeKey={WRONG_KEY}&{rest}")))
    for sent in (f"writeKey={WRITE_KEY}&{rest}", f"{rest}&writeKey={WRITE_KEY}"):
        assert is_gif(get(sandbox, rudder_path(sent)))
    stats = sandbox.stats()
    assert (stats["batches"], stats["resent"], stats["rejected"]) == (1, 1, 1)
    [record] = sandbox.recorded()["batches"]
    assert record["source_request_id"] == hashlib.sha256(rest.encode()).hexdigest()
    assert record["receipts"] == 2  # the dropped request was no receipt


def test_a_url_over_8192_bytes_is_414_like_a_load_balancer() -> None:
    sandbox = rudder()
    base = rudder_path(rudder_conversion()) + "&context.page.title="
    assert is_gif(get(sandbox, base + "x" * (8192 - len(base))))
    over = get(sandbox, base + "x" * (8193 - len(base)))
    assert refusal(over) == (414, "uri_too_long")
    stats = sandbox.stats()
    assert (stats["request_errors_by_code"], stats["rejected"]) == ({"uri_too_long": 1}, 0)


def test_faults_and_the_rate_limit_answer_as_the_load_balancer_would() -> None:
    clock = FakeClock()
    sandbox = rudder(rate_limit=10, clock=clock)
    paths = [rudder_path(rudder_conversion(messageId=f"m-{i}")) for i in range(101)]
    assert all(is_gif(get(sandbox, p)) for p in paths[:100])
    limited = get(sandbox, paths[100])
    assert (refusal(limited), limited.headers["Retry-After"]) == ((429, "rate_limited"), "1")
    clock.now += 0.1
    assert is_gif(get(sandbox, paths[100]))
    stats = sandbox.stats()
    assert (stats["batches"], stats["duplicate_confirmationrefs"]) == (101, 100)  # one ORD-1
    failing = rudder(fail_rate=1.0, seed=11)
    assert {get(failing, paths[0]).status_code for _ in range(40)} == {s for s, _ in FAULTS}
    assert failing.stats()["batches"] == 0
    dropped = rudder(fail_rate=1.0, seed=11)  # a dropped request still meets the faults
    bad = rudder_path(rudder_conversion(writeKey=WRONG_KEY))
    assert get(dropped, bad).status_code != 200
    assert dropped.stats()["rejected"] == 0


def test_reject_rate_drops_with_the_gif_and_drops_a_resend_again() -> None:
    sandbox = rudder(reject_rate=1.0, seed=3)
    path = rudder_path(rudder_conversion())
    assert is_gif(get(sandbox, path)) and is_gif(get(sandbox, path))
    stats = sandbox.stats()
    assert (stats["batches"], stats["rejections_by_code"]) == (0, {"rejected_by_sandbox": 2})


def test_a_restarted_sandbox_knows_a_resend_from_its_journal(tmp_path: Path) -> None:
    journal = tmp_path / "sandbox.journal"
    path = rudder_path(rudder_conversion())
    first = rudder(journal=journal)
    assert is_gif(get(first, path))
    first.sandbox.close()
    assert WRITE_KEY not in journal.read_text()
    again = rudder(journal=journal)
    assert is_gif(get(again, path))
    stats = again.stats()
    assert (stats["batches"], stats["resent"]) == (1, 1)
    again.sandbox.close()


def test_the_write_key_comes_from_the_environment_and_stays_out_of_ps_and_repr(
    sandbox_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert WRITE_KEY not in repr(SandboxSettings(write_key=WRITE_KEY))
    monkeypatch.setenv("ROKT_SANDBOX_WRITE_KEY", WRITE_KEY)
    sandbox = sandbox_factory()
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        for key in (WRITE_KEY, "sandbox-write-key"):
            response = client.get(rudder_path(rudder_conversion(writeKey=key)))
            assert response.status_code == 200
            assert response.headers["content-type"] == "image/gif"
    stats = sandbox.stats()
    assert (stats["batches"], stats["rejections_by_code"]) == (1, {"invalid_write_key": 1})
    shown = subprocess.run(
        ["ps", "-ww", "-o", "args=", "-p", str(sandbox.process.pid)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "connector sandbox" in shown and WRITE_KEY not in shown
