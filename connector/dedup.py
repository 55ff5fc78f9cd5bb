"""First-wins deduplication of confirmationrefs within one run (docs/ledger.md: the first
row with a ref is sent, the rest count as `rows_duplicate`).

Owns: remembering every ref a run has kept, as a 64-bit fingerprint (XXH3-64 of the
ref, with a seed drawn anew for each run), in sorted runs of doubling size, so
checking a chunk costs a binary search per run rather than a pass over everything
seen (which made a 5,000,000-row sync quadratic). Runs stop growing at `MERGE_LIMIT`
keys, so a merge never needs much memory at once. With each key, a 32-bit
fingerprint of the winning row's content (the caller's), so a duplicate that differs
from the row that won is told from a plain repeat (compared only where a row
repeats a ref). Memory: 12 bytes per distinct ref
(60 MB for 5,000,000). Within one chunk, repeats are found on the refs themselves.
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


def _found(run: pl.DataFrame, keys: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Where `keys` (no nulls) are in `run` (sorted by `key`), and the content
    fingerprint `run` holds for each (meaningless where not found)."""
    at = run["key"].search_sorted(keys).clip(upper_bound=run.height - 1)
    return run["key"].gather(at) == keys, run["content"].gather(at)


class RunDedup:
    """The refs one run has kept so far, with a fingerprint of each winning row's
    content; the first row with a ref wins."""

    def __init__(self) -> None:
        self._seed = secrets.randbits(64)
        # sorted by key; after the full runs (MERGE_LIMIT), each at least twice the next
        # one's size
        self._runs: list[pl.DataFrame] = []

    def duplicates(self, refs: pl.Series) -> pl.Series:
        """True for each ref an earlier row of this run (or of this chunk) already had."""
        return self.check(refs, pl.repeat(0, refs.len(), dtype=pl.UInt32, eager=True))[0]

    def check(self, refs: pl.Series, contents: pl.Series) -> tuple[pl.Series, pl.Series]:
        """(duplicate, differs) for each row: its ref was an earlier row's, and its
        `contents` (a UInt32 fingerprint of the row) differs from that row's."""
        text = refs.cast(pl.String)
        rows = pl.DataFrame(
            {"ref": text, "key": _fingerprints(text, self._seed), "content": contents}
        )
        present = rows["key"].is_not_null()
        first = text.is_first_distinct()
        firsts = rows.filter(first & present).sort("key")  # sorted: searches share their path
        earlier = pl.repeat(False, firsts.height, eager=True)
        winner = firsts["content"]  # the content of the row that won each ref
        for run in self._runs:
            found, content = _found(run, firsts["key"])
            taken = pl.select(pl.when(found & ~earlier).then(content).otherwise(winner))
            winner, earlier = taken.to_series(), earlier | found
        fresh = firsts.filter(~earlier).unique("key", keep="first", maintain_order=True)
        self._remember(fresh.select("key", "content"))
        if not earlier.any() and (first | ~present).all():  # no row repeats one: nothing to compare
            nothing = pl.repeat(False, rows.height, eager=True)
            return nothing.rename("duplicate"), nothing
        winners = firsts.select("ref", winner=winner, earlier=earlier)
        joined = rows.join(winners, on="ref", how="left", maintain_order="left")
        repeated = present & (~first | joined["earlier"].fill_null(False))
        differs = repeated & (joined["content"] != joined["winner"])
        return repeated.fill_null(False).rename("duplicate"), differs.fill_null(False)

    def _remember(self, keys: pl.DataFrame) -> None:
        """Add `keys` (key, content; sorted by key, none known yet), merging runs to keep
        their sizes doubling."""
        run = keys
        while self._runs and self._runs[-1].height <= min(2 * run.height, MERGE_LIMIT - run.height):
            run = self._runs.pop().vstack(run).sort("key")
        if run.height:
            self._runs.append(run)
