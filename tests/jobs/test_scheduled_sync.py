"""The scheduled sync end to end, through the CLI against the sandbox: the window
`[now - lookback, now)` in UTC, late rows picked up by overlapping windows and nothing
sent twice, time zones across DST changes, `too_old` and `future_event_time` events."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import SandboxProcess, base_config, cli, write_config

from connector.clock import NOW_VARIABLE

pytestmark = pytest.mark.e2e
StartSandbox = Callable[..., SandboxProcess]
T0 = datetime(2026, 11, 1, tzinfo=UTC)

CAST_QUERY = """
SELECT confirmationref, email, conversiontype, TRY_CAST(created_at AS TIMESTAMPTZ) AS event_time
FROM o
WHERE TRY_CAST(created_at AS TIMESTAMPTZ) >= $since AND TRY_CAST(created_at AS TIMESTAMPTZ) < $until
"""
# the text goes to the connector as it is: it parses ISO 8601 itself
TEXT_QUERY = CAST_QUERY.replace(
    "TRY_CAST(created_at AS TIMESTAMPTZ) AS event_time", "created_at AS event_time"
)


def add_orders(tmp: Path, orders: dict[str, str]) -> None:
    """Rows `confirmationref -> created_at` (text, as a warehouse export has it)."""
    with duckdb.connect(str(tmp / "warehouse.duckdb")) as con:
        con.execute(
            "CREATE TABLE IF NOT EXISTS o (confirmationref VARCHAR, email VARCHAR, "
            "conversiontype VARCHAR, created_at VARCHAR)"
        )
        con.executemany(
            "INSERT INTO o VALUES (?, ?, 'purchase', ?)",
            [[ref, f"{ref.lower()}@example.com", created] for ref, created in orders.items()],
        )


def setup(tmp: Path, url: str, query: str = CAST_QUERY, **sync: str) -> Path:
    (tmp / "query.sql").write_text(query, encoding="utf-8")
    destination = {"base_url": url, "api_key": "sandbox-key", "api_secret": "sandbox-secret"}
    return write_config(tmp, base_config(tmp, destination=destination, sync=sync))


def run(command: str, config: Path, now: datetime, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli(
        command, "--config", str(config), "--json", *args, env={NOW_VARIABLE: now.isoformat()}
    )
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def sent(sandbox: SandboxProcess) -> dict[str, int]:
    """confirmationref -> timestamp_unixtime_ms of every batch the sandbox accepted."""
    total = sandbox.get("/_sandbox/batches?limit=0")["total"]
    batches = sandbox.get(f"/_sandbox/batches?limit={total}")["batches"]
    times = {b["confirmationref"]: b["batch"]["events"][0]["data"] for b in batches}
    assert len(times) == len(batches)  # each once
    return {ref: data["timestamp_unixtime_ms"] for ref, data in times.items()}


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_overlapping_scheduled_syncs_pick_up_a_late_row_and_resend_nothing(
    tmp_path: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    hours = {"h-30": -30, "h-20": -20, "h-10": -10, "h-1": -1}
    add_orders(tmp_path, {ref: (T0 + timedelta(hours=h)).isoformat() for ref, h in hours.items()})
    config = setup(tmp_path, sandbox.url, lookback="24h")

    code, first = run("sync", config, T0)  # [T0 - 24h, T0)
    assert code == 0 and (first["rows_read"], first["accepted"]) == (3, 3)
    assert set(sent(sandbox)) == {"h-20", "h-10", "h-1"}

    # a row that happened before T0 lands in the warehouse late, and a new one arrives
    add_orders(
        tmp_path,
        {
            "late-2": (T0 - timedelta(hours=2)).isoformat(),
            "h+3": (T0 + timedelta(hours=3)).isoformat(),
        },
    )
    code, second = run("sync", config, T0 + timedelta(hours=6))  # [T0 - 18h, T0 + 6h)
    assert code == 0
    assert (second["rows_read"], second["rows_skipped_ledger"], second["accepted"]) == (4, 2, 2)
    assert set(sent(sandbox)) == {"h-20", "h-10", "h-1", "late-2", "h+3"}
    stats = sandbox.stats()
    assert stats["batches"] == stats["unique_confirmationrefs"] == 5
    assert (stats["duplicate_confirmationrefs"], stats["resent"]) == (0, 0)
    with duckdb.connect(str(tmp_path / "ledger.duckdb"), read_only=True) as con:
        windows = con.sql("SELECT window_since, window_until FROM runs ORDER BY started_at")
        assert windows.fetchall() == [
            (T0 - timedelta(hours=24), T0),
            (T0 - timedelta(hours=18), T0 + timedelta(hours=6)),
        ]


# Rows around the DST changes of 2026: New York falls back on Nov 1 (01:00-01:59 happens
# twice) and springs forward on Mar 8 (02:00-02:59 never happens); London falls back on
# Oct 25 and springs forward on Mar 29. Each with the UTC instant it means; None where
# the connector's own ISO 8601 parser must refuse the text (a zone name is not ISO 8601).
DST_ROWS: dict[str, tuple[str, str | None, str]] = {
    # ref: (created_at, UTC when the query passes text, UTC when the SQL casts it)
    "ny-edt-0059": ("2026-11-01 00:59:59.999-04:00", "2026-11-01T04:59:59.999+00:00", "same"),
    "ny-edt-0130": ("2026-11-01T01:30:00-04:00", "2026-11-01T05:30:00+00:00", "same"),
    "ny-est-0100": ("2026-11-01T01:00:00-05:00", "2026-11-01T06:00:00+00:00", "same"),
    "ny-est-0130": ("2026-11-01 01:30:00-05:00", "2026-11-01T06:30:00+00:00", "same"),
    # ambiguous local time by zone name: DuckDB reads it in standard time (EST)
    "ny-zone-0130": ("2026-11-01 01:30:00 America/New_York", None, "2026-11-01T06:30:00+00:00"),
    # a local time that does not exist, with an offset: still one exact instant
    "ny-gap-offset": ("2026-03-08T02:30:00-05:00", "2026-03-08T07:30:00+00:00", "same"),
    # ... and by zone name: read in standard time (EST), i.e. 03:30 EDT
    "ny-gap-zone": ("2026-03-08 02:30:00 America/New_York", None, "2026-03-08T07:30:00+00:00"),
    "ldn-bst-0130": ("2026-10-25T01:30:00+01:00", "2026-10-25T00:30:00+00:00", "same"),
    "ldn-gmt-0130": ("2026-10-25T01:30:00+00:00", "2026-10-25T01:30:00+00:00", "same"),
    "ldn-zone-0130": ("2026-10-25 01:30:00 Europe/London", None, "2026-10-25T01:30:00+00:00"),
    "ldn-gap-zone": ("2026-03-29 01:30:00 Europe/London", None, "2026-03-29T01:30:00+00:00"),
    "ldn-bst-0245": ("2026-03-29T02:45:00+01:00", "2026-03-29T01:45:00+00:00", "same"),
    "naive": ("2026-11-01 01:30:00", "2026-11-01T01:30:00+00:00", "same"),  # naive = UTC
    "zulu": ("2026-11-01T01:30:00.250Z", "2026-11-01T01:30:00.250+00:00", "same"),
}


@pytest.mark.parametrize("query", [TEXT_QUERY, CAST_QUERY], ids=["iso-text", "sql-cast"])
def test_dst_edges_each_event_sent_once_at_its_utc_instant(
    tmp_path: Path, sandbox_factory: StartSandbox, query: str
) -> None:
    sandbox = sandbox_factory()
    add_orders(tmp_path, {ref: created for ref, (created, _, _) in DST_ROWS.items()})
    config = setup(tmp_path, sandbox.url, query, lookback="1h", max_event_age="400d")
    cast = query == CAST_QUERY
    expected = {}
    for ref, (_, as_text, as_cast) in DST_ROWS.items():
        utc = (as_text if as_cast == "same" else as_cast) if cast else as_text
        if utc is not None:
            expected[ref] = ms(utc)

    # New York's first 01:00-02:00 (EDT), given with offsets: [05:00Z, 06:00Z)
    first_hour = ["--since", "2026-11-01T01:00:00-04:00", "--until", "2026-11-01T01:00:00-05:00"]
    code, report = run("sync", config, T0 + timedelta(days=1), *first_hour)
    assert code == 0 and report["accepted"] == 1
    assert sent(sandbox) == {"ny-edt-0130": expected["ny-edt-0130"]}

    # the scheduled sync at 02:00 EST looks back one hour: the repeated 01:00-02:00 (EST)
    code, report = run("sync", config, datetime(2026, 11, 1, 7, tzinfo=UTC))
    repeated = {"ny-est-0100", "ny-est-0130"} | ({"ny-zone-0130"} if cast else set())
    assert report["accepted"] == len(repeated)
    assert set(sent(sandbox)) == {"ny-edt-0130"} | repeated
    assert code == (0 if cast else 1)  # as text, the zone-named row is rejected, not guessed

    # London's first 01:00-02:00 (BST) on Oct 25: [00:00Z, 01:00Z)
    london = ["--since", "2026-10-25T01:00:00+01:00", "--until", "2026-10-25T01:00:00+00:00"]
    code, report = run("sync", config, T0 + timedelta(days=1), *london)
    assert code == 0 and report["accepted"] == 1 and "ldn-bst-0130" in sent(sandbox)

    # everything else; nothing sent twice
    everything = ["--since", "2026-03-01", "--until", "2026-11-02"]
    code, report = run("sync", config, T0 + timedelta(days=1), *everything)
    assert report["rows_read"] == len(DST_ROWS)
    assert report["rows_skipped_ledger"] == 1 + len(repeated) + 1
    assert sent(sandbox) == expected
    stats = sandbox.stats()
    assert (stats["duplicate_confirmationrefs"], stats["resent"]) == (0, 0)
    with duckdb.connect(str(tmp_path / "ledger.duckdb"), read_only=True) as con:
        rejected = con.sql(
            "SELECT confirmationref, reason FROM ledger WHERE status = 'rejected_local'"
        ).fetchall()
    assert dict(rejected) == {ref: "invalid_event_time" for ref in DST_ROWS if ref not in expected}


def test_events_older_than_max_event_age_are_too_old_until_it_is_raised(
    tmp_path: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    ages = {"d-40": 40, "d-31": 31, "d-29": 29, "d-1": 1}
    add_orders(tmp_path, {ref: (T0 - timedelta(days=d)).isoformat() for ref, d in ages.items()})
    config = setup(tmp_path, sandbox.url, lookback="60d")  # max_event_age: the default 30d

    code, check = run("validate", config, T0)
    assert code == 1 and check["rejected_by_reason"] == {"too_old": 2}
    text = cli("validate", "--config", str(config), env={NOW_VARIABLE: T0.isoformat()}).stdout
    assert "too_old" in text and "sync.max_event_age" in text  # the hint says what to do

    code, report = run("sync", config, T0)
    assert code == 1 and report["status"] == "completed_with_rejections"
    assert (report["rows_rejected_local"], report["accepted"]) == (2, 2)
    assert set(sent(sandbox)) == {"d-29", "d-1"}
    with duckdb.connect(str(tmp_path / "ledger.duckdb"), read_only=True) as con:
        rows = con.sql("SELECT confirmationref, status, reason FROM ledger ORDER BY 1").fetchall()
    assert rows == [
        ("d-1", "accepted", None),
        ("d-29", "accepted", None),
        ("d-31", "rejected_local", "too_old"),
        ("d-40", "rejected_local", "too_old"),
    ]

    # the account takes older events: raise the limit, and the next sync sends them
    config = setup(tmp_path, sandbox.url, lookback="60d", max_event_age="45d")
    code, report = run("sync", config, T0)
    assert code == 0 and (report["accepted"], report["rows_skipped_ledger"]) == (2, 2)
    assert set(sent(sandbox)) == set(ages)


def test_event_times_later_than_now_plus_the_skew_are_rejected_and_stay_out_of_the_summary(
    tmp_path: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    add_orders(
        tmp_path,
        {
            "h-1": (T0 - timedelta(hours=1)).isoformat(),
            "m+5": (T0 + timedelta(minutes=5)).isoformat(),  # within sync.max_clock_skew (10m)
            "local": "2026-11-01 03:00:00",  # 03:00 in a zone east of UTC, read as UTC
            "y9999": "9999-12-31 23:59:59+00",
        },
    )
    every_row = CAST_QUERY.split("WHERE")[0] + "WHERE $since <= $until"
    config = setup(tmp_path, sandbox.url, every_row)

    code, report = run("sync", config, T0)
    assert code == 1 and report["rejected_by_reason"] == {"future_event_time": 2}
    assert (report["rows_rejected_local"], report["accepted"]) == (2, 2)
    assert set(sent(sandbox)) == {"h-1", "m+5"}
    with duckdb.connect(str(tmp_path / "ledger.duckdb"), read_only=True) as con:
        rows = con.sql("SELECT confirmationref, status, reason FROM ledger ORDER BY 1").fetchall()
    assert rows == [
        ("h-1", "accepted", None),
        ("local", "rejected_local", "future_event_time"),
        ("m+5", "accepted", None),
        ("y9999", "rejected_local", "future_event_time"),
    ]
    text = cli("validate", "--config", str(config), env={NOW_VARIABLE: T0.isoformat()}).stdout
    assert "future_event_time" in text and "local time read as UTC" in " ".join(text.split())

    result = cli("ledger", "summary", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert [day["event_day"] for day in summary["by_day"]] == ["2026-11-01", "2026-10-31"]
    assert {r["reason"]: r["conversions"] for r in summary["by_reason"]} == {"future_event_time": 2}
