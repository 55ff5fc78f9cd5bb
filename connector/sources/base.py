"""What a source gives the engine (`Source`): the query's rows for a time window, in
chunks of polars frames with lower-cased column names, and how many there are."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

import polars as pl


class Source(Protocol):
    def chunks(
        self, since: datetime, until: datetime, limit: int | None = None
    ) -> Iterator[pl.DataFrame]:
        """Rows of `[since, until)`, at most `chunk_rows` a frame (at most `limit` in all)."""
        ...

    def counts(self, windows: Sequence[tuple[datetime, datetime]]) -> list[int]:
        """How many rows each `[since, until)` has (for progress bars and plans)."""
        ...

    def members(self, query: Path) -> Iterator[pl.DataFrame]:
        """Every row of the query file `query`, which has no window (audience
        membership), at most `chunk_rows` a frame."""
        ...
