"""The results ledger: what each confirmationref's delivery came to.

Owns (so far): first-wins deduplication of confirmationrefs within one run, kept in
an in-process DuckDB table so a run of millions of rows needs no Python set. Must
not: store raw PII.
"""

from __future__ import annotations

import duckdb
import polars as pl

from connector.digest import sql_file


class RunDedup:
    """Remembers the confirmationrefs of one run; the first row with a ref wins."""

    def __init__(self) -> None:
        self._con = duckdb.connect()
        self._con.execute("CREATE TABLE seen (ref VARCHAR)")  # appends; no index to maintain

    def duplicates(self, refs: pl.Series) -> pl.Series:
        """True for each ref an earlier row of this run (or this chunk) already had."""
        chunk_refs = pl.DataFrame({"ref": refs.cast(pl.String)})
        self._con.register("chunk_refs", chunk_refs)
        try:
            earlier = self._con.sql(sql_file("run_dedup.sql")).pl()["ref"]
            self._con.execute(sql_file("run_dedup_remember.sql"))
        finally:
            self._con.unregister("chunk_refs")
        ref = pl.col("ref")
        return chunk_refs.select(
            (ref.is_not_null() & (~ref.is_first_distinct() | ref.is_in(earlier.implode())))
            .fill_null(False)
            .alias("duplicate")
        ).to_series()

    def close(self) -> None:
        self._con.close()
