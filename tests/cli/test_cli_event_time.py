"""Event times the shipped `sql/conversions.sql` cannot read, end to end through the
CLI: no row vanishes from the window; `validate` counts them, `sync` records them
`rejected_local` and sends the rest."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import SandboxProcess, cli, sync_config

pytestmark = pytest.mark.e2e
WINDOW = ["--since", "2026-09-01", "--until", "2026-11-02"]
BEFORE = ["--since", "2026-01-01", "--until", "2026-01-02"]  # before every row

# Rows of the example with nothing else wrong (an address, a positive total, a known
# currency, an order id of their own): their event time decides their fate.
_CLEAN = r"""
SELECT order_id FROM orders
WHERE regexp_full_match(customer_email, '[^@\s]+@[^@\s]+\.[^@\s]+')
  AND order_total > 0 AND currency_code IN ('USD', 'EUR', 'GBP')
  AND order_id IN (SELECT order_id FROM orders GROUP BY order_id HAVING count(*) = 1)
ORDER BY order_id
"""
_UPDATE = "UPDATE orders SET created_at = {} WHERE list_contains($refs, order_id)"


@dataclass
class Foreign:
    """The small example with some event times in formats the shipped query lacks."""

    config: Path
    manifest: dict[str, Any]
    invalid: list[str]  # '10/20/2026 14:03', and one ISO 8601 without seconds
    missing: list[str]  # NULL and blank


@pytest.fixture
def foreign(tmp_path: Path, small_example: tuple[Path, dict[str, Any]]) -> Foreign:
    example, manifest = small_example
    shutil.copy(example / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("SET TimeZone = 'UTC'")
        refs = [ref for (ref,) in con.sql(_CLEAN).fetchall()]
        us, minutes, null, blank = refs[:6], refs[6:7], refs[7:8], refs[8:9]
        instant = "CAST(created_at AS TIMESTAMPTZ)"
        for value, rows in (
            (f"strftime({instant}, '%m/%d/%Y %H:%M')", us),
            (f"strftime({instant}, '%Y-%m-%dT%H:%M')", minutes),
            ("NULL", null),
            ("'  '", blank),
        ):
            con.execute(_UPDATE.format(value), {"refs": rows})
    config = sync_config(tmp_path, tmp_path, "http://127.0.0.1:9")
    return Foreign(config, manifest, us + minutes, null + blank)


def test_validate_counts_the_rows_without_an_event_time_that_parses(foreign: Foreign) -> None:
    result = cli("validate", "--config", str(foreign.config), *WINDOW, "--json")
    assert result.returncode != 2, result.stderr
    report = json.loads(result.stdout)
    manifest = foreign.manifest
    assert report["rows_read"] == manifest["rows"]  # none vanished from the window
    assert report["no_event_time"] == 9
    assert report["rejected_by_reason"] == {
        **manifest["rejected"],
        "invalid_event_time": 7,
        "missing_event_time": 2,
    }
    assert report["valid"] == manifest["valid"] - 9
    examples = report["rejected_examples"]["invalid_event_time"]
    assert len(examples) == 3
    assert all(
        f"(confirmationref {ref})" in examples[i] for i, ref in enumerate(foreign.invalid[:3])
    )

    text = cli("validate", "--config", str(foreign.config), *WINDOW).stdout
    assert (
        "event time: 9 rows have none that parses (invalid_event_time 7, missing_event_time 2); "
        "fix the query's formats"
    ) in text

    # a window that holds none of the valid rows still reads them: every run does
    result = cli("validate", "--config", str(foreign.config), *BEFORE, "--json")
    before = json.loads(result.stdout)
    assert (before["rows_read"], before["no_event_time"], before["valid"]) == (9, 9, 0)


def test_sync_records_them_rejected_local_and_sends_the_rest(
    foreign: Foreign, sandbox_factory: Callable[..., SandboxProcess]
) -> None:
    sandbox = sandbox_factory()
    config = sync_config(foreign.config.parent, foreign.config.parent, sandbox.url)
    manifest = foreign.manifest

    result = cli("sync", "--config", str(config), *WINDOW, "--json")
    assert result.returncode != 2, result.stderr
    report = json.loads(result.stdout)
    assert report["rows_read"] == manifest["rows"]
    assert report["rows_rejected_local"] == sum(manifest["rejected"].values()) + 9
    assert report["accepted"] == report["batches_sent"] == manifest["valid"] - 9
    assert (report["rejected"], report["failed"]) == (0, 0)
    assert sandbox.stats()["batches"] == manifest["valid"] - 9
    assert not set(sandbox.accepted_refs()) & {*foreign.invalid, *foreign.missing}

    with duckdb.connect(str(config.parent / "ledger.duckdb"), read_only=True) as con:
        rows = con.sql(
            "SELECT reason, list(confirmationref ORDER BY confirmationref) FROM ledger "
            "WHERE status = 'rejected_local' AND reason LIKE '%event_time' GROUP BY reason"
        ).fetchall()
    assert dict(rows) == {
        "invalid_event_time": sorted(foreign.invalid),
        "missing_event_time": sorted(foreign.missing),
    }

    # the next sync reads them again, and sends nothing
    again = json.loads(cli("sync", "--config", str(config), *WINDOW, "--json").stdout)
    assert (again["rows_read"], again["requests"]) == (manifest["rows"], 0)
    assert again["rows_rejected_local"] == report["rows_rejected_local"]
