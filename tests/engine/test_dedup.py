"""First-wins deduplication within one run (docs/ledger.md: `rows_duplicate`)."""

from __future__ import annotations

from unittest.mock import patch

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from connector import dedup as dedup_module
from connector.dedup import RunDedup


def test_first_wins_across_chunks() -> None:
    dedup = RunDedup()
    first = dedup.duplicates(pl.Series(["a", "b", "a", None, None]))
    assert first.to_list() == [False, False, True, False, False]
    assert dedup.duplicates(pl.Series(["b", "c", "c"])).to_list() == [True, False, True]
    assert dedup.duplicates(pl.Series([], dtype=pl.String)).to_list() == []


refs = st.one_of(st.none(), st.text(max_size=4), st.sampled_from(["ORD-1", "ORD-2", " "]))


@given(st.lists(st.lists(refs, max_size=40), max_size=30))
@settings(max_examples=150, deadline=None)
def test_same_answers_as_a_set_over_many_chunks(chunks: list[list[str | None]]) -> None:
    """Many small chunks make the remembered refs merge again and again, and (with a
    small merge limit) leave several full runs to search."""
    dedup, seen = RunDedup(), set()
    with patch.object(dedup_module, "MERGE_LIMIT", 16):
        _check_chunks(dedup, seen, chunks)


rows = st.tuples(refs, st.integers(min_value=0, max_value=2))


@given(st.lists(st.lists(rows, max_size=40), max_size=30))
@settings(max_examples=150, deadline=None)
def test_a_duplicate_differs_where_its_content_is_not_the_winners(
    chunks: list[list[tuple[str | None, int]]],
) -> None:
    """Against a dict of each ref's first content: duplicate, and differs from it."""
    dedup, won = RunDedup(), {}
    with patch.object(dedup_module, "MERGE_LIMIT", 16):
        for chunk in chunks:
            expected_duplicate, expected_differs = [], []
            for ref, content in chunk:
                seen = ref is not None and ref in won
                expected_duplicate.append(seen)
                expected_differs.append(seen and won[ref] != content)
                if ref is not None:
                    won.setdefault(ref, content)
            duplicate, differs = dedup.check(
                pl.Series([r for r, _ in chunk], dtype=pl.String),
                pl.Series([c for _, c in chunk], dtype=pl.UInt32),
            )
            assert duplicate.to_list() == expected_duplicate
            assert differs.to_list() == expected_differs


def _check_chunks(dedup: RunDedup, seen: set[str], chunks: list[list[str | None]]) -> None:
    for chunk in chunks:
        expected = []
        for ref in chunk:
            expected.append(ref is not None and ref in seen)
            if ref is not None:
                seen.add(ref)
        assert dedup.duplicates(pl.Series(chunk, dtype=pl.String)).to_list() == expected


seeds_seen: list[int] = []


def _colliding(refs: pl.Series, seed: int) -> pl.Series:
    """Every ref gets one fingerprint: the worst case of a 64-bit collision."""
    seeds_seen.append(seed)
    return pl.Series([None if r is None else 7 for r in refs], dtype=pl.UInt64)


def test_colliding_fingerprints_are_told_apart_within_a_chunk_and_each_run_reseeds() -> None:
    """A collision across chunks counts the later ref as a duplicate (odds about
    rows^2 / 2^65 a run); within a chunk the refs themselves decide; and each run
    hashes with a seed of its own, so a ref miscounted once is sent by the next run."""
    seeds_seen.clear()
    with patch.object(dedup_module, "_fingerprints", _colliding):
        first, second = RunDedup(), RunDedup()
        assert first.duplicates(pl.Series(["a", "b", "a", None])).to_list() == [
            False,
            False,
            True,
            False,
        ]
        assert first.duplicates(pl.Series(["c"])).to_list() == [True]
        assert second.duplicates(pl.Series(["c"])).to_list() == [False]
    assert seeds_seen[0] == seeds_seen[1] != seeds_seen[2]
