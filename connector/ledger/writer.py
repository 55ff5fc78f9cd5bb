"""Writing a run's conversions to the ledger: `pending` before their requests leave
(write-ahead), rejected locally, and their answers settled in batches off the event
loop (`Settler`)."""

from __future__ import annotations

import asyncio
from typing import Protocol

import polars as pl

from connector.engine.crash import crash_point
from connector.status import Status
from connector.threads import in_thread
from connector.transports.sender import Attempt


def pending_rows(encoded: pl.DataFrame) -> pl.DataFrame:
    """Ledger rows written before their request leaves (write-ahead)."""
    return encoded.select(
        pl.col("_ref").alias("ref"),
        pl.lit(Status.PENDING).alias("status"),
        pl.col("_request_id").alias("request_id"),
        pl.col("_payload_sha256").alias("payload_sha256"),
        pl.col("_warnings").alias("warnings"),
        *_LEDGER_FIELDS,
    )


def local_rejections(rejected: pl.DataFrame) -> pl.DataFrame:
    """Ledger rows of rows rejected before sending (those with a confirmationref)."""
    return rejected.filter(pl.col("_ref").is_not_null()).select(
        pl.col("_ref").alias("ref"),
        pl.lit(Status.REJECTED_LOCAL).alias("status"),
        pl.col("_reason").alias("reason"),
        *_LEDGER_FIELDS,
    )


_LEDGER_FIELDS = (
    pl.col("_identity_sha256").alias("identity_sha256"),
    pl.col("_conversiontype").alias("conversiontype"),
    pl.col("_amount").alias("amount"),
    pl.col("_currency").alias("currency"),
    pl.col("_event_ms").alias("event_ms"),
)

_TRIES_SCHEMA: dict[str, pl.DataType] = {
    "request": pl.Int64(),
    "attempt": pl.Int32(),
    "attempted_at": pl.Datetime("us", "UTC"),
    "http_status": pl.Int32(),
    "error": pl.String(),
    "message": pl.String(),
}

# The longest a conversion's answer waits for its ledger write.
SETTLE_WAIT_S = 10.0


class Settles(Protocol):
    """What a `Settler` writes to: `Rows` (conversions), or an audience run's changes."""

    def settle(self, settled: pl.DataFrame, tries: pl.DataFrame, run_id: str) -> None: ...


class Settler:
    """Writes final states and every attempt to the ledger off the event loop: a
    write waits for the answers of `rows_per_write` conversions (a sync: `chunk_rows`,
    as many as each write-ahead) or for `wait_s`, whichever comes first, and takes
    every answer that has gathered by then.

    Writes must be few: DuckDB keeps 4-10 KB for good after each UPDATE that joins
    the rows it changes (sql/ledger_settle.sql). Written as answers came in (a
    request or two a time), a 5,000,000-row sync in bench/memory.py grew by about
    55 MB of them.

    Sending never waits for the ledger: delivered requests queue up and one task
    writes them in a worker thread, states and attempts in one transaction. A crash
    before a write leaves those rows `pending`, which the next run resends with the
    same request ids; closing writes what has gathered at once.
    """

    def __init__(
        self, ledger: Settles, run_id: str, rows_per_write: int, wait_s: float = SETTLE_WAIT_S
    ) -> None:
        self._ledger = ledger
        self._run_id = run_id
        self._rows_per_write = rows_per_write
        self._wait_s = wait_s
        self._queue: asyncio.Queue[tuple[pl.DataFrame, list[Attempt]] | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._write())

    def put(self, settled: pl.DataFrame, history: list[Attempt]) -> None:
        """`settled(ref, request_id, status, reason, attempt)` of one request (an
        audience run: `(change_id, status, reason, attempts)`)."""
        if self._task.done():
            self._task.result()  # a failed ledger write stops the run now, not at its end
        self._queue.put_nowait((settled, history))

    async def close(self) -> None:
        self._queue.put_nowait(None)
        await self._task

    def _flush(self, delivered: list[tuple[pl.DataFrame, list[Attempt]]]) -> None:
        """One ledger write: number the requests, fan their attempts out in SQL."""
        settled = pl.concat(
            frame.with_columns(pl.lit(number, pl.Int64).alias("request"))
            for number, (frame, _) in enumerate(delivered)
        )
        tries = pl.DataFrame(
            [
                (number, a.number, a.at, a.http_status, a.error, a.message)
                for number, (_, history) in enumerate(delivered)
                for a in history
            ],
            schema=_TRIES_SCHEMA,
            orient="row",
        )
        self._ledger.settle(settled, tries, self._run_id)

    async def _gather(self) -> tuple[list[tuple[pl.DataFrame, list[Attempt]]], bool]:
        """The requests of the next write, and whether the settler was closed."""
        loop = asyncio.get_running_loop()
        item = await self._queue.get()
        deadline = loop.time() + self._wait_s
        ready: list[tuple[pl.DataFrame, list[Attempt]]] = []
        rows = 0
        while item is not None:
            ready.append(item)
            rows += item[0].height
            if not self._queue.empty():  # what has gathered goes in this write
                item = self._queue.get_nowait()
            elif rows >= self._rows_per_write:
                break
            else:
                try:
                    item = await asyncio.wait_for(self._queue.get(), deadline - loop.time())
                except TimeoutError:
                    break
        return ready, item is None

    async def _write(self) -> None:
        closed = False
        while not closed:
            ready, closed = await self._gather()
            if ready:
                crash_point("settle")
                await in_thread(self._flush, ready)
