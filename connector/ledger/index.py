"""An in-memory index of one ledger's confirmationrefs, built once by a long run: it
answers what `sql/ledger_lookup.sql` answers with a binary search per ref instead of a
scan of the whole ledger per chunk.
"""

from __future__ import annotations

import duckdb
import polars as pl

from connector.digest import sql_file
from connector.status import Status

_KEYS = ["k1", "k2"]


def _shared(sorted_keys: pl.Series) -> pl.Series:
    """True where a key of a sorted series equals its neighbour's."""
    return (
        (sorted_keys == sorted_keys.shift(1)) | (sorted_keys == sorted_keys.shift(-1))
    ).fill_null(False)


def _find(index: pl.DataFrame, chunk: pl.DataFrame, *columns: str) -> pl.DataFrame:
    """The rows of `chunk` (sorted by k1) whose fingerprint `index` (sorted by k1, no
    k1 twice) has, with the index's `columns`."""
    if index.is_empty() or chunk.is_empty():
        return chunk.clear().with_columns(index[c].clear() for c in columns)
    at = index["k1"].search_sorted(chunk["k1"]).clip(upper_bound=index.height - 1)
    hit = (index["k1"].gather(at) == chunk["k1"]) & (index["k2"].gather(at) == chunk["k2"])
    return chunk.filter(hit).with_columns(index[c].gather(at.filter(hit)) for c in columns)


class RefIndex:
    """The ledger's refs (one environment's) at the time of `build`, searchable by
    fingerprint: two independent 64-bit hashes per ref (`sql/ledger_index*.sql`), sorted
    by the first, with each one's status, the payload hash of the rejected ones and the
    first 32 bits of the accepted ones'. A false match needs both hashes to collide at
    once (odds about ledger rows / 2^128 per ref looked up).

    Memory: about 25 bytes per ledger row (250 MB for 10,000,000), plus the rejected
    conversions' payload hashes. It does not see later writes, so it must not outlive
    the run that built it; that is right because a run uses the answer for a ref's first
    row only (later rows with it are duplicates).
    """

    def __init__(self, known: pl.DataFrame, rejected: pl.DataFrame) -> None:
        """`known(k1, k2, status, payload_prefix)` and `rejected(k1, k2,
        payload_sha256)`, each sorted by k1."""
        shared = _shared(known["k1"])  # two refs with one first hash: rare
        self._known = known.filter(~shared)
        self._shared = known.filter(shared)  # matched exactly, by a join
        # a rejected ref whose first hash is shared gets no payload here: it is resent
        self._rejected = rejected.filter(~_shared(rejected["k1"]))

    @classmethod
    def build(cls, con: duckdb.DuckDBPyConnection, environment: str) -> RefIndex:
        params = {"environment": environment}
        known = con.sql(sql_file("ledger_index.sql"), params=params).pl()
        rejected = con.sql(sql_file("ledger_index_rejected.sql"), params=params).pl()
        known = known.with_columns(pl.col("status").cast(pl.Categorical))
        return cls(known.sort("k1"), rejected.sort("k1"))

    def lookup(self, con: duckdb.DuckDBPyConnection, refs: pl.Series) -> pl.DataFrame:
        """(ref, status, payload_sha256, payload_prefix) of the refs (no nulls) the
        ledger had, as `sql/ledger_lookup.sql` answers."""
        con.register("chunk_refs", pl.DataFrame({"ref": refs}))
        chunk = con.sql(sql_file("ledger_fingerprints.sql")).pl().sort("k1")
        found = _find(self._known, chunk, "status", "payload_prefix")
        if not self._shared.is_empty():
            found = pl.concat([found, chunk.join(self._shared, on=_KEYS)])
        rejected = found.filter(pl.col("status") == Status.REJECTED).drop("status")
        payloads = _find(self._rejected, rejected, "payload_sha256").drop("ref")
        return found.join(payloads, on=_KEYS, how="left").select(
            "ref", pl.col("status").cast(pl.String), "payload_sha256", "payload_prefix"
        )
