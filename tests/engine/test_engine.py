"""The pipeline's own duties: what it opens stays quiet, and stopping never pulls a
resource out from under a worker thread."""

from __future__ import annotations

import ast
import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from connector import digest
from connector.ledger.writer import Settler
from connector.threads import in_thread
from connector.transports.sender import Attempt

PACKAGE = Path(digest.__file__).parent


def test_every_duckdb_connection_keeps_its_progress_bar_off_stdout() -> None:
    # DuckDB draws a progress bar on stdout for a query slower than 2 s, which broke
    # `sync --json` on a busy machine; every module opens DuckDB through digest.connect
    opened = [
        path.name
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr == "connect"
        if isinstance(node.value, ast.Name) and node.value.id == "duckdb"
    ]
    assert opened == ["digest.py"], "open DuckDB with connector.digest.connect()"
    con = digest.connect()
    for session in (con, con.cursor()):
        setting = session.sql("SELECT current_setting('enable_progress_bar')").fetchall()
        assert setting == [(False,)]


def test_a_cancelled_run_waits_for_its_worker_thread_before_going_on() -> None:
    # a second Ctrl-C used to close the source generator while a thread was still
    # reading from it ("generator already executing")
    started, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    def read_a_chunk() -> None:
        started.set()
        release.wait(10)
        finished.append(True)

    async def run() -> None:
        task = asyncio.create_task(in_thread(read_a_chunk))
        await asyncio.to_thread(started.wait, 10)
        task.cancel()
        for _ in range(5):
            await asyncio.sleep(0)  # the cancellation lands
        assert not task.done(), "the caller went on while the thread was still working"
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert finished == [True]

    asyncio.run(run())


def test_each_duckdb_has_a_memory_limit_and_spills_to_its_own_folder() -> None:
    # DuckDB's default (80% of the machine) let a sorted source query of 5,000,000
    # rows take gigabytes; over the limit, sorts spill to disk instead
    con = digest.connect(memory_limit="32MB", threads=1)
    settings = con.sql(
        "SELECT current_setting('memory_limit'), current_setting('threads'), "
        "current_setting('temp_directory'), current_setting('allocator_flush_threshold')"
    ).fetchall()
    ((limit, threads, spill, flush),) = settings
    assert (limit, threads) == ("30.5 MiB", 1)  # 32 MB in DuckDB's units
    assert flush == digest.ALLOCATOR_FLUSH  # freed memory goes back (default: 128 MB)
    assert Path(spill).is_dir() and Path(spill).name.startswith("rokt-connector-duckdb-")
    sorted_rows = con.sql(
        "SELECT count(*) FROM (SELECT md5(i::VARCHAR) AS h FROM range(2000000) t(i) ORDER BY h)"
    ).fetchall()
    assert sorted_rows == [(2_000_000,)]  # more than 32 MB to sort
    con.close()
    del con
    assert not Path(spill).exists()  # the folder goes with the connection


class _WritesLedger:
    """Stands in for `Ledger.settle`: the refs of each write, in order."""

    def __init__(self) -> None:
        self.writes: list[list[str]] = []
        self.wrote = threading.Event()

    def settle(self, settled: pl.DataFrame, tries: pl.DataFrame, run_id: str) -> None:
        assert run_id == "run-1" and tries.height == settled["request"].n_unique()
        self.writes.append(settled["ref"].to_list())
        self.wrote.set()


def _answers(request: int, rows: int) -> tuple[pl.DataFrame, list[Attempt]]:
    refs = [f"R{request}-{i}" for i in range(rows)]
    settled = pl.DataFrame(
        {"ref": refs, "request_id": refs, "status": "accepted", "reason": None, "attempt": 1},
        schema_overrides={"reason": pl.String, "attempt": pl.Int32},
    )
    return settled, [Attempt(1, datetime(2026, 1, 1, tzinfo=UTC), 202, None, "")]


def test_the_ledger_settles_many_requests_per_write_and_everything_on_close() -> None:
    # DuckDB keeps some KB for good after each UPDATE: a write every request or two
    # grew a 5,000,000-row sync by about 55 MB
    async def run() -> list[list[str]]:
        ledger = _WritesLedger()
        settler = Settler(ledger, "run-1", rows_per_write=1000, wait_s=3600)  # type: ignore[arg-type]
        for request in range(10):
            settler.put(*_answers(request, 100))
            for _ in range(3):
                await asyncio.sleep(0)  # the writer takes each answer as it comes
        settler.put(*_answers(10, 100))
        await asyncio.wait_for(settler.close(), 30)  # the last 100 are written at once
        return ledger.writes

    writes = asyncio.run(run())
    assert [len(w) for w in writes] == [1000, 100]
    every = [ref for write in writes for ref in write]
    assert every == [f"R{r}-{i}" for r in range(11) for i in range(100)]


def test_answers_that_gathered_while_the_ledger_was_busy_go_in_one_write() -> None:
    async def run() -> list[int]:
        ledger = _WritesLedger()
        settler = Settler(ledger, "run-1", rows_per_write=100, wait_s=3600)  # type: ignore[arg-type]
        for request in range(25):  # all queued before the writer runs
            settler.put(*_answers(request, 100))
        await settler.close()
        return [len(w) for w in ledger.writes]

    assert asyncio.run(run()) == [2500]


def test_answers_wait_for_their_ledger_write_no_longer_than_wait_s() -> None:
    async def run() -> list[list[str]]:
        ledger = _WritesLedger()
        settler = Settler(ledger, "run-1", rows_per_write=10**6, wait_s=0)  # type: ignore[arg-type]
        settler.put(*_answers(0, 3))
        assert await asyncio.to_thread(ledger.wrote.wait, 30), "never written"
        settler.put(*_answers(1, 2))
        await settler.close()
        return ledger.writes

    assert asyncio.run(run()) == [["R0-0", "R0-1", "R0-2"], ["R1-0", "R1-1"]]
