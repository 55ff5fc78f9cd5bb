"""Packing batches into requests: limits, order, nothing lost or repeated."""

from __future__ import annotations

import itertools
import json
import random

import polars as pl

from connector.spec import MAX_BATCH_BYTES, MAX_BATCHES_PER_REQUEST, MAX_REQUEST_BYTES
from connector.transports.events_api_json import pack


def bodies(sizes: list[int]) -> pl.Series:
    """Valid JSON objects of exactly the given byte sizes, numbered."""
    out = []
    for i, size in enumerate(sizes):
        head = f'{{"i":{i},"p":"'
        out.append(head + "x" * (size - len(head) - 2) + '"}')
    return pl.Series(out)


def unpack(requests: list[bytes]) -> list[int]:
    return [batch["i"] for body in requests for batch in json.loads(body)]


def test_bulk_respects_both_limits_and_keeps_order() -> None:
    rng = random.Random(3)
    sizes = [rng.choice([300, 900, 5_000, 40_000, MAX_BATCH_BYTES]) for _ in range(1_500)]
    batches = bodies(sizes)
    requests = pack(batches)
    assert unpack([r.body(batches) for r in requests]) == list(range(len(sizes)))
    assert all(len(r.body(batches)) == r.size <= MAX_REQUEST_BYTES for r in requests)
    assert all(r.batches <= MAX_BATCHES_PER_REQUEST for r in requests)
    assert [r.start for r in requests[1:]] == [r.stop for r in requests[:-1]]
    # greedy: no request could have taken the next batch as well
    for request, following in itertools.pairwise(requests):
        fits = request.size + 1 + sizes[following.start] <= MAX_REQUEST_BYTES
        assert request.batches == MAX_BATCHES_PER_REQUEST or not fits


def test_small_batches_fill_a_request_to_one_hundred() -> None:
    batches = bodies([500] * 250)
    requests = pack(batches)
    assert [r.batches for r in requests] == [100, 100, 50]
    assert len(requests[0].body(batches)) == requests[0].size == 100 * 500 + 99 + 2


def test_exact_fit_at_the_byte_limit() -> None:
    # two batches whose array is exactly 256 KiB: "[" + a + "," + b + "]"
    half = (MAX_REQUEST_BYTES - 3) // 2
    sizes = [half, MAX_REQUEST_BYTES - 3 - half, 10]
    batches = bodies(sizes)
    requests = pack(batches)
    assert [r.batches for r in requests] == [2, 1]
    assert len(requests[0].body(batches)) == requests[0].size == MAX_REQUEST_BYTES


def test_single_batch_requests_when_bulk_is_off() -> None:
    batches = bodies([100, 200, 300])
    requests = pack(batches, bulk=False)
    assert [(r.start, r.stop, r.size) for r in requests] == [(0, 1, 100), (1, 2, 200), (2, 3, 300)]
    assert [json.loads(r.body(batches))["i"] for r in requests] == [0, 1, 2]
    assert pack(pl.Series([], dtype=pl.String)) == []
