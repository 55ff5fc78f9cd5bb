"""The pipeline's own duties: what it opens stays quiet, and stopping never pulls a
resource out from under a worker thread."""

from __future__ import annotations

import ast
import asyncio
import threading
from pathlib import Path

import pytest

from connector import digest
from connector.pipeline import _in_thread

PACKAGE = Path(digest.__file__).parent


def test_every_duckdb_connection_keeps_its_progress_bar_off_stdout() -> None:
    # DuckDB draws a progress bar on stdout for a query slower than 2 s, which broke
    # `sync --json` on a busy machine; every module opens DuckDB through digest.connect
    opened = [
        path.name
        for path in PACKAGE.glob("*.py")
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
        task = asyncio.create_task(_in_thread(read_a_chunk))
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
        "current_setting('temp_directory')"
    ).fetchall()
    ((limit, threads, spill),) = settings
    assert (limit, threads) == ("30.5 MiB", 1)  # 32 MB in DuckDB's units
    assert Path(spill).is_dir() and Path(spill).name.startswith("rokt-connector-duckdb-")
    sorted_rows = con.sql(
        "SELECT count(*) FROM (SELECT md5(i::VARCHAR) AS h FROM range(2000000) t(i) ORDER BY h)"
    ).fetchall()
    assert sorted_rows == [(2_000_000,)]  # more than 32 MB to sort
    con.close()
    del con
    assert not Path(spill).exists()  # the folder goes with the connection
