"""The sandbox's inspection endpoints: `/_sandbox/batches` pages what was accepted, in order,
and `/_sandbox/reset` forgets everything.
"""

from __future__ import annotations

from sandbox_helpers import BULK, Client, FakeClock, batch, bulk, codes


def test_batches_pages_in_acceptance_order_and_keep_bodies_caps_them() -> None:
    sandbox = Client(keep_bodies=3, wall_clock=lambda: 1_790_000_000.5)
    sandbox.post(BULK, bulk([batch(i) for i in range(5)]))
    everything = sandbox.recorded()
    assert everything["total"] == 5
    assert [r["confirmationref"] for r in everything["batches"]] == [
        "ORD-00000",
        "ORD-00001",
        "ORD-00002",
    ]
    first = everything["batches"][0]
    assert first["received_at"] == 1_790_000_000.5
    assert first["source_request_id"] == batch(0)["source_request_id"]
    assert first["batch"] == batch(0)
    assert first["transport"] == "events_api"
    page = sandbox.recorded("?offset=1&limit=1")
    assert [r["confirmationref"] for r in page["batches"]] == ["ORD-00001"]
    assert sandbox.recorded("?offset=10")["batches"] == []
    stats = sandbox.stats()
    assert stats["batches"] == 5
    assert stats["requests_by_endpoint"] == {"events_api": 1, "pixel": 0, "rudderstack_pixel": 0}
    for query in ["?offset=-1", "?limit=x", "?limit=10001"]:
        response = sandbox.request("GET", f"/_sandbox/batches{query}")
        assert (response.status_code, codes(response)) == (400, ["invalid_query"])


def test_reset_forgets_everything() -> None:
    clock = FakeClock()
    sandbox = Client(rate_limit=1, clock=clock)
    hundred = bulk([batch(i) for i in range(100)])
    assert sandbox.post(BULK, hundred).status_code == 202
    assert sandbox.post(BULK, hundred).status_code == 429
    reset = sandbox.request("POST", "/_sandbox/reset")
    assert reset.json() == {"reset": True}
    stats = sandbox.stats()
    assert stats["requests"] == stats["batches"] == stats["max_batches_per_request"] == 0
    assert stats["bulk_requests"] == 0
    assert set(stats["responses_by_status"].values()) == {0}
    assert {"200", "202", "414"} <= set(stats["responses_by_status"])  # always listed
    assert set(stats["requests_by_endpoint"].values()) == {0}
    assert sandbox.recorded() == {"total": 0, "batches": []}
    assert sandbox.post(BULK, hundred).status_code == 202  # bucket full again
    assert sandbox.stats()["resent"] == 0  # idempotency memory is gone too
