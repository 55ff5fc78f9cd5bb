"""First-wins deduplication of confirmationrefs within one run (DESIGN.md: the first
row with a ref is sent, the rest count as `rows_duplicate`).

Owns: remembering every ref a run has kept, as a 64-bit fingerprint (XXH3-64 of the
ref, with a seed drawn anew for each run), in sorted runs of doubling size, so
checking a chunk costs a binary search per run rather than a pass over everything
seen (which made a 5,000,000-row sync quadratic). Runs stop growing at `MERGE_LIMIT`
keys, so a merge never needs much memory at once. Memory: 8 bytes per distinct ref
(40 MB for 5,000,000). Within one chunk, repeats are found on the refs themselves.
A false match needs two refs of one run, in different chunks, to share all 64 bits
(odds about rows^2 / 2^65: 7e-7 for a run of 5,000,000 rows). Its row then counts as
a duplicate and is not written to the ledger, so the next run, whose seed differs,
sends it. Must not: keep refs in plain text, or look at the ledger (that is
`ledger`'s check, made after this one).
"""

from __future__ import annotations

import secrets

import polars as pl
import polars_hash  # noqa: F401  (registers the `nchash` expression namespace)

MERGE_LIMIT = 1 << 20  # keys (8 MB) a run may reach by merging


def _fingerprints(refs: pl.Series, seed: int) -> pl.Series:
    """Seeded XXH3-64 of each ref (text; null stays null)."""
    frame = pl.DataFrame({"ref": refs})
    return frame.select(pl.col("ref").nchash.xxh3_64(seed=seed)).to_series()  # type: ignore[attr-defined]


def _found(run: pl.Series, keys: pl.Series) -> pl.Series:
    """True where `keys` (no nulls) are in `run` (sorted)."""
    at = run.search_sorted(keys).clip(upper_bound=run.len() - 1)
    return run.gather(at) == keys


class RunDedup:
    """The refs one run has kept so far; the first row with a ref wins."""

    def __init__(self) -> None:
        self._seed = secrets.randbits(64)
        # sorted; after the full runs (MERGE_LIMIT), each at least twice the next one's size
        self._runs: list[pl.Series] = []

    def duplicates(self, refs: pl.Series) -> pl.Series:
        """True for each ref an earlier row of this run (or of this chunk) already had."""
        text = refs.cast(pl.String)
        keys = _fingerprints(text, self._seed)
        present = keys.is_not_null()
        candidates = keys.filter(present).unique().sort()  # sorted: searches share their path
        earlier = pl.repeat(False, candidates.len(), eager=True)
        for run in self._runs:
            earlier = earlier | _found(run, candidates)
        new = candidates.filter(~earlier)
        repeated = present & (
            ~text.is_first_distinct() | keys.is_in(candidates.filter(earlier).implode())
        )
        self._remember(new)
        return repeated.fill_null(False).rename("duplicate")

    def _remember(self, keys: pl.Series) -> None:
        """Add `keys` (sorted, none known yet), merging runs to keep their sizes doubling."""
        run = keys
        while self._runs and self._runs[-1].len() <= min(2 * run.len(), MERGE_LIMIT - run.len()):
            run = self._runs.pop().append(run).sort()
        if run.len():
            self._runs.append(run)
