"""The ledger is precious (issue 4.3), end to end through the CLI against the sandbox:
a ledger that is missing where the marker beside it records history, replaced by an
older copy or another ledger, corrupt, of another environment, of a newer schema, or
held by another run stops the run with a clear message and sends nothing; the
documented ways out (`--new-ledger`, moving the ledger, migrations) work."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from conftest import SandboxProcess, base_config, cli, write_config

from connector.config import load_config
from connector.engine import run as engine
from connector.ledger import Ledger
from connector.report import RunReport

pytestmark = pytest.mark.e2e
ROWS = 40
WINDOW = ["--since", "2026-09-01", "--until", "2026-11-01"]
SINCE, UNTIL = datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
StartSandbox = Callable[..., SandboxProcess]


def project(tmp: Path, url: str, **destination: Any) -> Path:
    """A warehouse of ROWS valid orders and a config that sends them to `url`."""
    with duckdb.connect(str(tmp / "warehouse.duckdb")) as con:
        con.execute(
            "CREATE OR REPLACE TABLE orders AS SELECT 'ORD-' || lpad(i::VARCHAR, 4, '0') "
            "AS confirmationref, 'buyer' || i || '@example.com' AS email, 'purchase' AS "
            "conversiontype, 10.5 + i AS amount, TIMESTAMPTZ '2026-10-20 12:00:00+00' + "
            f"INTERVAL (i) MINUTE AS event_time FROM range({ROWS}) r(i)"
        )
    (tmp / "query.sql").write_text(
        "SELECT * FROM orders WHERE event_time >= $since AND event_time < $until "
        "ORDER BY confirmationref",
        encoding="utf-8",
    )
    config = base_config(
        tmp,
        destination={
            "base_url": url,
            "api_key": "sandbox-key",
            "api_secret": "sandbox-secret",
            "max_batches_per_second": 20_000,
            "retry_base_s": 0.01,
            "retry_max_s": 0.05,
            **destination,
        },
    )
    return write_config(tmp, config)


def set_ledger_path(config: Path, ledger: Path) -> None:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["ledger"]["path"] = str(ledger)
    config.write_text(yaml.safe_dump(data), encoding="utf-8")


def sync(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("sync", "--config", str(config), *WINDOW, "--json", *extra)


def earlier_run(config: Path) -> RunReport:
    """A run that only sets the scene, in this process (real ledger, real HTTP)."""
    done = engine.sync(load_config(config), SINCE, UNTIL)
    assert done.status == "succeeded", done.message
    return done


def after_one_run(tmp: Path, sandbox_factory: StartSandbox) -> tuple[SandboxProcess, Path, Path]:
    """A sandbox, a project sending to it, and its ledger after a run that sent every row."""
    sandbox = sandbox_factory()
    config = project(tmp, sandbox.url)
    assert earlier_run(config).accepted == ROWS
    return sandbox, config, tmp / "ledger.duckdb"


def report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode in (0, 1), result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def assert_stopped(result: subprocess.CompletedProcess[str], code: int, *phrases: str) -> None:
    """The run stopped before reading or sending anything, with a clear message."""
    assert result.returncode == code, result.stderr
    assert result.stdout == ""  # no run report: the run never started
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())  # rich wraps long lines
    for phrase in phrases:
        assert phrase in message, message


def marker(ledger: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ledger.with_name(ledger.name + ".marker.json").read_text())
    return data


def meta(ledger: Path) -> dict[str, str]:
    with duckdb.connect(str(ledger), read_only=True) as con:
        return dict(con.sql("SELECT key, value FROM ledger_meta").fetchall())


def test_a_deleted_ledger_stops_every_run_until_the_user_starts_over(
    tmp_path: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox, config, ledger = after_one_run(tmp_path, sandbox_factory)
    first_id = meta(ledger)["ledger_id"]
    assert marker(ledger) | {"last_run_id": None, "last_run_at": None} == {
        "ledger": "ledger.duckdb",
        "ledger_id": first_id,
        "environment": "development",
        "runs": 1,
        "last_run_id": None,
        "last_run_at": None,
    }
    assert (ledger.with_name("ledger.duckdb.marker.json").stat().st_mode & 0o777) == 0o600
    sent = sandbox.stats()["requests"]

    ledger.unlink()
    backfill = ["backfill", "--config", str(config), "--since", "2026-10-01", "--until"]
    for result in (
        sync(config),
        sync(config, "--dry-run"),
        cli(*backfill, "2026-11-01", "--json"),
        cli(*backfill, "2026-11-01", "--plan"),
    ):
        assert_stopped(
            result,
            2,
            f"ledger.path: {ledger} does not exist",
            "ledger.duckdb.marker.json beside it records",
            f"ledger {first_id} with 1 run(s)",
            "would send every conversion in the window again",
            "rerun with --new-ledger",
        )
        assert not ledger.exists()  # no empty ledger left behind for the next run
    assert sandbox.stats()["requests"] == sent
    planned = cli(*backfill, "2026-11-01", "--plan", "--new-ledger", "--json")
    assert planned.returncode == 0 and not ledger.exists()  # a plan writes nothing

    again = report(sync(config, "--new-ledger"))  # starting over sends everything again
    assert again["accepted"] == ROWS and sandbox.stats()["resent"] == ROWS
    assert meta(ledger)["ledger_id"] != first_id
    assert marker(ledger)["ledger_id"] == meta(ledger)["ledger_id"]

    # left in a cron line, the flag is refused once the ledger is back
    assert_stopped(
        sync(config, "--new-ledger"), 2, "there is nothing to start over", "without --new-ledger"
    )
    settled = report(sync(config))
    assert (settled["requests"], settled["rows_skipped_ledger"]) == (0, ROWS)
    assert marker(ledger)["runs"] == 2


def test_moving_the_ledger_keeps_its_history(tmp_path: Path, sandbox_factory: StartSandbox) -> None:
    sandbox, config, ledger = after_one_run(tmp_path, sandbox_factory)

    moved = tmp_path / "moved" / "ledger.duckdb"  # with its marker
    moved.parent.mkdir()
    for name in ("ledger.duckdb", "ledger.duckdb.marker.json"):
        shutil.move(tmp_path / name, moved.parent / name)
    set_ledger_path(config, moved)
    after_move = report(sync(config))
    assert (after_move["requests"], after_move["rows_skipped_ledger"]) == (0, ROWS)

    alone = tmp_path / "alone" / "orders-ledger.duckdb"  # the file only: adopted as it is
    alone.parent.mkdir()
    shutil.move(moved, alone)
    set_ledger_path(config, alone)
    adopted = report(sync(config))
    assert (adopted["requests"], adopted["rows_skipped_ledger"]) == (0, ROWS)
    assert marker(alone)["runs"] == 3
    assert sandbox.stats()["batches"] == ROWS
    assert not ledger.exists()


def test_an_older_copy_or_another_ledger_stops_the_run(
    tmp_path: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox, config, ledger = after_one_run(tmp_path, sandbox_factory)
    backup = tmp_path / "backup.duckdb"
    shutil.copy(ledger, backup)
    earlier_run(config)
    ledger_id = meta(ledger)["ledger_id"]
    sent = sandbox.stats()["requests"]

    shutil.copy(backup, ledger)  # restoring yesterday's backup
    assert_stopped(
        sync(config),
        2,
        f"ledger.path: {ledger} is not the ledger the last run left",
        f"records ledger {ledger_id} with 2 run(s)",
        f"the file holds ledger {ledger_id} with 1 run(s)",
        "rerun with --new-ledger",
    )
    other = tmp_path / "other.duckdb"
    Ledger.open(other, "development").close()
    shutil.copy(other, ledger)  # another project's ledger
    other_id = meta(other)["ledger_id"]
    assert_stopped(sync(config), 2, f"the file holds ledger {other_id} with 0 run(s)")
    assert sandbox.stats()["requests"] == sent

    shutil.copy(backup, ledger)  # on purpose: carry on with the older copy
    carried = report(sync(config, "--new-ledger"))
    assert (carried["requests"], carried["rows_skipped_ledger"]) == (0, ROWS)
    assert marker(ledger)["runs"] == 2


def _corrupt(ledger: Path, config: Path) -> None:
    ledger.write_bytes(b"\x00garbage, not a DuckDB file" * 300)


def _other_environment(ledger: Path, config: Path) -> None:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["destination"]["environment"] = "production"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")


def _newer_schema(ledger: Path, config: Path) -> None:
    with duckdb.connect(str(ledger)) as con:
        con.execute("UPDATE ledger_meta SET value = '99' WHERE key = 'schema_version'")


def _garbled_schema(ledger: Path, config: Path) -> None:
    with duckdb.connect(str(ledger)) as con:
        con.execute("UPDATE ledger_meta SET value = 'two' WHERE key = 'schema_version'")


@pytest.mark.parametrize(
    ("damage", "phrases"),
    [
        (_corrupt, ["cannot be opened as a DuckDB ledger", "starting a new ledger would send"]),
        (
            _other_environment,
            ["records environment 'development'", "sends to 'production'", "one ledger per"],
        ),
        (_newer_schema, ["has schema version 99, newer than", "upgrade rokt-connector"]),
        (_garbled_schema, ["records no valid schema version ('two')", "restore the ledger"]),
    ],
    ids=["corrupt", "other_environment", "newer_schema", "garbled_schema"],
)
def test_a_damaged_or_foreign_ledger_stops_the_run_and_sends_nothing(
    tmp_path: Path,
    sandbox_factory: StartSandbox,
    damage: Callable[[Path, Path], None],
    phrases: list[str],
) -> None:
    sandbox, config, ledger = after_one_run(tmp_path, sandbox_factory)
    sent = sandbox.stats()["requests"]
    damage(ledger, config)
    before = ledger.read_bytes()
    assert_stopped(sync(config), 2, f"ledger.path: {ledger}", *phrases)
    assert sandbox.stats()["requests"] == sent
    assert ledger.read_bytes() == before  # left as it was, for the user to inspect


# The columns schemas 4 and 5 added.
NEW_SINCE_4 = {
    "runs": (
        "rows_rejected_known",
        "changed_after_accept",
        "pending",
        "duplicates_differing",
        "duplicates_differing_known",
        "warnings",
        "rejected_by_reason",
    ),
    "ledger": ("warnings", "payload_prefix"),
}


def test_an_old_schema_ledger_is_migrated_in_place(
    tmp_path: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox, config, ledger = after_one_run(tmp_path, sandbox_factory)
    with duckdb.connect(str(ledger)) as con:  # what rokt-connector with schema 1 left
        con.execute("DELETE FROM ledger_meta WHERE key = 'ledger_id'")
        con.execute("ALTER TABLE runs DROP COLUMN isolated")
        for column in NEW_SINCE_4["runs"]:
            con.execute(f"ALTER TABLE runs DROP COLUMN {column}")
        for column in NEW_SINCE_4["ledger"]:
            con.execute(f"ALTER TABLE ledger DROP COLUMN {column}")
        con.execute("DROP TABLE rejected_rows")
        con.execute("DROP TABLE audience_members")  # schema 6
        con.execute("DROP TABLE audience_changes")
        con.execute("UPDATE ledger_meta SET value = '1' WHERE key = 'schema_version'")
    ledger.with_name("ledger.duckdb.marker.json").unlink()

    migrated = report(sync(config))
    assert (migrated["requests"], migrated["rows_skipped_ledger"]) == (0, ROWS)
    upgraded = meta(ledger)
    assert upgraded["schema_version"] == "7" and upgraded["environment"] == "development"
    with duckdb.connect(str(ledger), read_only=True) as con:
        audiences = "SELECT count(*) FROM audience_members, audience_changes"
        assert con.sql(audiences).fetchall() == [(0,)]  # schema 6's tables, empty
        runs = con.sql("SELECT isolated FROM runs ORDER BY started_at").fetchall()
        prefixed = con.sql(  # schema 4 copies the payload hash's first bits for the index
            "SELECT count(*) FROM ledger "
            "WHERE payload_prefix = ('0x' || left(payload_sha256, 8))::UINTEGER"
        ).fetchall()
    assert runs == [(0,), (0,)]  # code before schema 3 never resent a batch alone
    assert prefixed == [(ROWS,)]
    assert len(upgraded["ledger_id"]) == 36
    assert marker(ledger)["ledger_id"] == upgraded["ledger_id"]
    assert sandbox.stats()["batches"] == ROWS


def test_a_second_concurrent_run_exits_4_and_sends_nothing(
    tmp_path: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    config = project(tmp_path, sandbox.url, bulk=False, concurrency=1, max_batches_per_second=40)
    ledger = tmp_path / "ledger.duckdb"
    args = [sys.executable, "-m", "connector", "sync", "--config", str(config), *WINDOW, "--json"]
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while sandbox.stats()["requests"] == 0:
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)  # polling the other process, not waiting out a timer
        first.send_signal(signal.SIGSTOP)  # it holds the ledger, mid-run, until SIGCONT
        wal = ledger.with_name("ledger.duckdb.wal")
        for file in (ledger, wal):  # the WAL too, though DuckDB makes it after the open
            assert file.stat().st_mode & 0o777 == 0o600, file
        paused_at = sandbox.stats()["requests"]

        second = sync(config)
        assert_stopped(second, 4, "another run holds the ledger", f"(process {first.pid})")
        assert sandbox.stats()["requests"] == paused_at
    finally:
        first.send_signal(signal.SIGCONT)
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    stats = sandbox.stats()
    assert stats["requests"] == json.loads(out)["requests"] == ROWS  # all of them the first's
    assert (stats["unique_confirmationrefs"], stats["duplicate_confirmationrefs"]) == (ROWS, 0)
    assert os.path.exists(ledger)
