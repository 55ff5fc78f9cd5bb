"""The allocator policy: which processes hand polars' freed pages back at once."""

from __future__ import annotations

import pytest

from connector._allocator import (
    KEEP_FREED_PAGES,
    RETURN_FREED_PAGES,
    cli_command,
    jemalloc_conf,
)


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["/opt/venv/bin/rokt-connector", "sync", "--config", "c.yaml"], "sync"),
        (["rokt-connector", "--help"], None),
        (["-m", "backfill", "--since", "2026-01-01"], "backfill"),  # python -m connector
        (["/usr/bin/pytest", "sync"], None),  # another program
        (["/srv/dags/connector_dag.py"], None),  # the library inside someone's program
        ([], None),
    ],
)
def test_the_cli_command_is_read_only_from_the_cli(argv: list[str], command: str | None) -> None:
    assert cli_command(argv) == command


@pytest.mark.parametrize(
    ("argv", "conf"),
    [
        (["rokt-connector", "sync", "-c", "c.yaml"], RETURN_FREED_PAGES),
        (["-m", "backfill"], RETURN_FREED_PAGES),
        (["rokt-connector", "audiences", "sync", "-c", "c.yaml"], RETURN_FREED_PAGES),
        (["rokt-connector", "validate", "-c", "c.yaml"], KEEP_FREED_PAGES),
        (["rokt-connector", "ledger", "summary"], KEEP_FREED_PAGES),
        (["bench/prepare.py"], KEEP_FREED_PAGES),
    ],
)
def test_paced_runs_return_freed_pages_and_the_rest_keep_them(argv: list[str], conf: str) -> None:
    assert jemalloc_conf(argv) == conf
