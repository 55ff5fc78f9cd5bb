"""What the sandbox records: a resent batch is known by its source_request_id, a
confirmationref under a new id is a duplicate, every arrival counts a receipt, and a request
refused as a whole leaves no receipt, journal line or memory.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sandbox_helpers import BULK, EVENTS, SANDBOX_AUTH, Client, batch, bulk, codes, compact

from connector.spec import MAX_REQUEST_BYTES


def test_a_resent_batch_is_accepted_and_counted_as_resent() -> None:
    sandbox = Client()
    body = compact(batch())
    assert sandbox.post(EVENTS, body).status_code == 202
    assert sandbox.post(EVENTS, body).status_code == 202
    assert sandbox.post(BULK, bulk([batch(), batch(1), batch(1)])).json() == {}
    stats = sandbox.stats()
    assert (stats["batches"], stats["resent"], stats["duplicate_confirmationrefs"]) == (2, 3, 0)
    assert stats["unique_confirmationrefs"] == 2
    assert sandbox.recorded()["total"] == 2


def test_the_same_confirmationref_under_a_new_request_id_is_a_duplicate() -> None:
    sandbox = Client()
    first = batch()
    again = copy.deepcopy(first)
    again["source_request_id"] = "another-request-id"
    assert sandbox.post(EVENTS, compact(first)).status_code == 202
    assert sandbox.post(EVENTS, compact(again)).status_code == 202
    stats = sandbox.stats()
    assert (stats["batches"], stats["unique_confirmationrefs"]) == (2, 1)
    assert (stats["duplicate_confirmationrefs"], stats["resent"]) == (1, 0)
    # other environments are other data sets
    production = copy.deepcopy(first)
    production.update(environment="production", source_request_id="production-id")
    assert sandbox.post(EVENTS, compact(production)).status_code == 202
    assert sandbox.stats()["unique_confirmationrefs"] == 2


def test_receipts_count_every_arrival_of_a_request_id() -> None:
    sandbox = Client(fail_rate=0.5, seed=3)
    body = bulk([batch(0), batch(1)])
    statuses = [sandbox.post(BULK, body).status_code for _ in range(6)]
    assert 202 in statuses and len(set(statuses)) > 1  # faults and answers both count
    sandbox.post(BULK, bulk([batch(0)]))
    records = sandbox.recorded()["batches"]
    assert [(r["confirmationref"], r["receipts"]) for r in records] == [
        ("ORD-00000", 7),
        ("ORD-00001", 6),
    ]
    assert sandbox.stats()["max_receipts"] == 7


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        kb = next(line.split()[1] for line in status if line.startswith("VmRSS:"))
    return int(kb) / 1024


def test_a_refused_bulk_request_leaves_no_receipt_journal_line_or_memory(
    sandbox_factory: Callable[..., Any], tmp_path: Path
) -> None:
    journal = tmp_path / "sandbox.journal"
    sandbox = sandbox_factory("--journal", str(journal))

    def flood(name: str) -> bytes:
        """5,500 batches with new ids: small enough for the request limit."""
        body = bulk([{"source_request_id": f"{name}-{i}"} for i in range(5500)]).encode()
        assert len(body) <= MAX_REQUEST_BYTES
        return body

    with httpx.Client(base_url=sandbox.url, auth=SANDBOX_AUTH) as client:
        assert client.post(BULK, content=bulk([batch(0)])).status_code == 202
        before = (sandbox.records(), journal.read_bytes())
        refused = [
            client.post(BULK, content=bulk([batch(i) for i in range(101)])),
            *(client.post(BULK, content=flood(f"warm-{n}")) for n in range(3)),
        ]
        for response in refused:
            assert (response.status_code, codes(response)) == (400, ["invalid_bulk"])
        assert (sandbox.records(), journal.read_bytes()) == before  # receipts still 1
        rss = _rss_mb(sandbox.process.pid)
        for n in range(50):
            assert client.post(BULK, content=flood(f"flood-{n}")).status_code == 400
        grown = _rss_mb(sandbox.process.pid) - rss
    assert grown < 10, f"the sandbox grew {grown:.1f} MB on 50 refused requests"
    assert (sandbox.records(), journal.read_bytes()) == before
    stats = sandbox.stats()
    assert (stats["batches"], stats["max_receipts"]) == (1, 1)
    assert stats["request_errors_by_code"] == {"invalid_bulk": 54}
