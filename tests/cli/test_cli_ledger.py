"""`rokt-connector ledger ...` end to end: the audit commands read a real ledger
written by real syncs to the sandbox, and print what a user asks: a conversion's
history, a summary, an export, a reconciliation with the source."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from conftest import SECRET, SandboxProcess, cli, sync_config
from polars.testing import assert_frame_equal

pytestmark = pytest.mark.e2e
WINDOW = ["--since", "2026-09-01", "--until", "2026-11-02"]
StartSandbox = Callable[..., SandboxProcess]
FAULT_STATUSES = {429, 500, 502, 503}  # what the sandbox's --fail-rate answers


def sync(config: Path, *extra: str) -> dict[str, Any]:
    result = cli("sync", "--config", str(config), *WINDOW, "--json", *extra)
    assert result.returncode in (0, 1), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def ledger_query(config: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(config.parent / "ledger.duckdb"), read_only=True) as con:
        return con.sql(sql).fetchall()


def raw_pii(example_dir: Path) -> set[str]:
    """Every raw email, name and phone number of the example warehouse (its emails
    given already hashed are hashes, not raw PII)."""
    with duckdb.connect(str(example_dir / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql("SELECT customer_email, first_name, last_name, phone FROM orders").fetchall()
    values = {str(v).strip() for row in rows for v in row if v is not None}
    hashed = re.compile(r"[0-9a-fA-F]{64}")
    return {v for v in values if len(v) >= 5 and not hashed.fullmatch(v)} | {SECRET}


def assert_no_leak(text: str, example_dir: Path) -> None:
    leaked = sorted(v for v in raw_pii(example_dir) if v in text)
    assert not leaked, f"raw PII or a secret in the output: {leaked[:3]}"


@dataclass(frozen=True)
class Synced:
    """A ledger written by a sync of the example warehouse (read-only for tests)."""

    config: Path
    report: dict[str, Any]
    sandbox_stats: dict[str, Any]


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory, example_dir: Path) -> Synced:
    """Accepted, rejected by the platform (--reject-rate) and rejected locally."""
    tmp = tmp_path_factory.mktemp("synced")
    sandbox = SandboxProcess("--reject-rate", "0.05", "--seed", "11")
    try:
        config = sync_config(tmp, example_dir, sandbox.url)
        report = sync(config)
        stats = sandbox.stats()
    finally:
        sandbox.stop()
    assert report["rejected"] > 0 and report["rows_rejected_local"] > 0
    return Synced(config, report, stats)


def own_copy(synced: Synced, tmp: Path, example_dir: Path, url: str, **destination: Any) -> Path:
    """A config of its own over a copy of the synced ledger, sending to `url`."""
    shutil.copy(synced.config.parent / "ledger.duckdb", tmp / "ledger.duckdb")
    return sync_config(tmp, example_dir, url, **destination)


def test_show_lists_every_attempt_of_a_conversion_that_needed_retries(
    tmp_path: Path, example_dir: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory("--fail-rate", "0.3", "--seed", "5")
    # one batch per request: each HTTP request the sandbox answers is one attempt row
    config = sync_config(
        tmp_path,
        example_dir,
        sandbox.url,
        bulk=False,
        max_attempts=12,
        retry_base_s=0.005,
        retry_max_s=0.02,
    )
    report = sync(config, "--limit", "400")
    assert report["failed"] == 0 and report["retries"] > 0
    answered = {int(s): n for s, n in sandbox.stats()["responses_by_status"].items() if n}
    recorded = ledger_query(config, "SELECT http_status, count(*) FROM attempts GROUP BY ALL")
    assert dict(recorded) == answered
    (ref, attempts), *_ = ledger_query(
        config, "SELECT confirmationref, attempts FROM ledger WHERE attempts >= 3 ORDER BY 1"
    )

    result = cli("ledger", "show", "--config", str(config), ref, "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert (shown["confirmationref"], shown["status"], shown["attempts"]) == (
        ref,
        "accepted",
        attempts,
    )
    history = shown["history"]
    assert [a["attempt"] for a in history] == list(range(1, attempts + 1))
    assert {a["run_id"] for a in history} == {report["run_id"]}
    assert all(a["outcome"] == "retry" for a in history[:-1])
    assert {a["http_status"] for a in history[:-1]} <= FAULT_STATUSES
    assert (history[-1]["outcome"], history[-1]["http_status"]) == ("accepted", 202)
    times = [a["attempted_at"] for a in history]
    assert times == sorted(times) and shown["accepted_at"] == times[-1]

    text = cli("ledger", "show", "--config", str(config), f"  {ref} ")  # trimmed like sync
    assert text.returncode == 0
    assert f"{ref}: accepted" in text.stdout
    assert text.stdout.count(f"\n{report['run_id'][:8]}  ") == attempts  # a line per attempt
    assert_no_leak(result.stdout + text.stdout + text.stderr, example_dir)


def test_show_an_unknown_ref_exits_1_and_finds_by_identity_hash_not_by_email(
    synced: Synced, example_dir: Path
) -> None:
    config = str(synced.config)
    unknown = cli("ledger", "show", "--config", config, "NO-SUCH-ORDER")
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert "'NO-SUCH-ORDER' is not in the ledger" in unknown.stderr
    assert "ledger reconcile" in unknown.stderr

    with duckdb.connect(str(example_dir / "warehouse.duckdb"), read_only=True) as con:
        ((email, ref),) = con.sql(
            "SELECT customer_email, order_id FROM orders WHERE customer_email LIKE '%@%' "
            "ORDER BY order_id LIMIT 1"
        ).fetchall()
    identity = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    found = cli("ledger", "show", "--config", config, "--identity", identity.upper(), "--json")
    assert found.returncode == 0, found.stderr
    refs = [c["confirmationref"] for c in json.loads(found.stdout)["conversions"]]
    assert ref in refs
    by_email = cli("ledger", "show", "--config", config, "--identity", email)
    assert by_email.returncode == 2 and "never the email itself" in by_email.stderr
    assert email not in by_email.stderr
    assert_no_leak(found.stdout, example_dir)


def test_audit_commands_exit_4_while_a_run_writes_the_ledger(
    synced: Synced, tmp_path: Path, example_dir: Path
) -> None:
    config = sync_config(tmp_path, example_dir, "http://127.0.0.1:9")
    missing = cli("ledger", "show", "--config", str(config), "ORD-0000001")
    assert missing.returncode == 2 and "no ledger at" in missing.stderr
    config = own_copy(synced, tmp_path, example_dir, "http://127.0.0.1:9")
    with duckdb.connect(str(tmp_path / "ledger.duckdb")):  # a writer holds the file
        locked = cli("ledger", "show", "--config", str(config), "ORD-0000001")
    assert locked.returncode == 4
    assert "is writing the ledger" in locked.stderr and "run this again" in locked.stderr
    with duckdb.connect(str(tmp_path / "ledger.duckdb"), read_only=True):  # readers share
        shared = cli("ledger", "show", "--config", str(config), "ORD-0000001")
    assert shared.returncode == 0


def ledger_frame(config: Path) -> pl.DataFrame:
    """Every column of the ledger but the index's copy of the payload hash's first bits."""
    with duckdb.connect(str(config.parent / "ledger.duckdb"), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        query = "SELECT * EXCLUDE (payload_prefix) FROM ledger ORDER BY event_time, confirmationref"
        return con.sql(query).pl()


def test_summary_counts_what_the_sync_did(
    synced: Synced, manifest: dict[str, Any], example_dir: Path
) -> None:
    result = cli("ledger", "summary", "--config", str(synced.config), "--json", "--days", "400")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    report = synced.report
    by_status = {row["status"]: row["conversions"] for row in summary["by_status"]}
    assert by_status == {
        "accepted": report["accepted"],
        "rejected": report["rejected"],
        "rejected_local": sum(manifest["rejected"].values()),
    }
    assert summary["conversions"] == sum(by_status.values())
    reasons = {(r["status"], r["reason"]): r["conversions"] for r in summary["by_reason"]}
    rejected_message = (
        "BAD_REQUEST: sandbox --reject-rate rejected this batch (rejected_by_sandbox)."
    )
    assert reasons.pop(("rejected", rejected_message)) == synced.sandbox_stats["rejected"]
    assert {reason: n for (_, reason), n in reasons.items()} == manifest["rejected"]

    ledger = ledger_frame(synced.config)
    days = (
        ledger.group_by(pl.col("event_time").dt.date().alias("event_day"))
        .agg(pl.len().alias("total"), (pl.col("status") == "accepted").sum().alias("accepted"))
        .sort("event_day", descending=True, nulls_last=True)
    )
    shown = [(d["event_day"], d["total"], d["accepted"]) for d in summary["by_day"]]
    expected = [(d.isoformat(), t, a) for d, t, a in days.iter_rows()]
    assert shown == expected
    (run,) = summary["runs"]
    assert summary["runs_total"] == 1
    assert (run["run_id"], run["status"], run["accepted"]) == (
        report["run_id"],
        report["status"],
        report["accepted"],
    )

    text = cli("ledger", "summary", "--config", str(synced.config), "--days", "3")
    assert text.returncode == 0
    assert f"{summary['conversions']:,} conversions" in text.stdout
    assert "by event day (UTC), latest 3" in text.stdout and rejected_message in text.stdout
    assert_no_leak(result.stdout + text.stdout, example_dir)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_round_trips_and_filters(
    synced: Synced, tmp_path: Path, example_dir: Path, suffix: str
) -> None:
    ledger = ledger_frame(synced.config)
    config = str(synced.config)
    out = tmp_path / f"ledger{suffix}"

    def exported(*options: str) -> pl.DataFrame:
        result = cli("ledger", "export", "--config", config, "--out", str(out), *options)
        assert result.returncode == 0, result.stderr
        assert out.stat().st_mode & 0o777 == 0o600
        frame = (
            pl.read_parquet(out) if suffix == ".parquet" else pl.read_csv(out, schema=ledger.schema)
        )
        assert f"exported {frame.height:,} conversions to {out}" in result.stdout
        assert_no_leak(out.read_bytes().decode("utf-8", "replace"), example_dir)
        return frame.select(ledger.columns)

    assert_frame_equal(exported(), ledger)
    rejected = exported("--status", "rejected", "--status", "rejected_local")
    assert_frame_equal(
        rejected, ledger.filter(pl.col("status").is_in(["rejected", "rejected_local"]))
    )
    since, until = datetime(2026, 10, 10, tzinfo=UTC), datetime(2026, 10, 12, 6, tzinfo=UTC)
    window = exported("--since", "2026-10-10", "--until", "2026-10-12T06:00:00Z")
    in_window = (pl.col("event_time") >= since) & (pl.col("event_time") < until)
    assert 0 < window.height < ledger.height
    assert_frame_equal(window, ledger.filter(in_window))

    wrong = cli("ledger", "export", "--config", config, "--out", str(tmp_path / "x.json"))
    assert wrong.returncode == 2 and "must end in .csv or .parquet" in wrong.stderr
    unknown = cli("ledger", "export", "--config", config, "--out", str(out), "--status", "sent")
    assert unknown.returncode == 2 and "'sent' is not one of" in unknown.stderr


def test_reconcile_finds_a_conversion_deleted_from_the_ledger_and_one_that_failed(
    synced: Synced,
    tmp_path: Path,
    example_dir: Path,
    manifest: dict[str, Any],
    sandbox_factory: StartSandbox,
) -> None:
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    shutil.copy(example_dir / "warehouse.duckdb", warehouse)
    failing = sandbox_factory("--fail-rate", "1", "--seed", "2")
    config = own_copy(synced, tmp_path, warehouse, failing.url, max_attempts=1)
    ledger = tmp_path / "ledger.duckdb"
    deleted, failed, gone = (
        ref
        for (ref,) in ledger_query(
            config,
            "SELECT confirmationref FROM ledger WHERE status = 'accepted' "
            "ORDER BY confirmationref LIMIT 3",
        )
    )
    with duckdb.connect(str(ledger)) as con:  # the next sync sends `failed` again: it fails
        con.execute("DELETE FROM ledger WHERE confirmationref = ?", [failed])
    report = sync(config)
    assert (report["failed"], report["accepted"], failing.stats()["requests"]) == (1, 0, 1)
    with duckdb.connect(str(ledger)) as con:
        con.execute("DELETE FROM ledger WHERE confirmationref = ?", [deleted])
    with duckdb.connect(str(warehouse / "warehouse.duckdb")) as con:  # the source drops one
        con.execute("DELETE FROM orders WHERE order_id = ?", [gone])

    result = cli("ledger", "reconcile", "--config", str(config), *WINDOW, "--json")
    assert result.returncode == 1, result.stderr
    found = json.loads(result.stdout)
    assert found["by_state"] == {
        "accepted": synced.report["accepted"] - 3,
        "pending": 0,
        "failed": 1,
        "rejected": synced.report["rejected"],
        "rejected_local": sum(manifest["rejected"].values()),
        "missing": 1,
    }
    assert [e["confirmationref"] for e in found["examples"]["missing"]] == [deleted]
    ((failure,),) = [found["examples"]["failed"]]
    assert failure["confirmationref"] == failed
    assert failure["reason"].startswith("gave up after 1 attempts")
    assert found["ledger_only_examples"] == [{"confirmationref": gone, "status": "accepted"}]
    assert (found["ledger_only"], found["undelivered"]) == (1, 2)
    assert found["source_rows"] == manifest["rows"] - 1
    assert found["duplicate_rows"] == manifest["duplicates"]

    args = ("ledger", "reconcile", "--config", str(config), *WINDOW, "--examples", "0")
    counts_only = cli(*args, "--json")  # the help allows 0: counts, no examples
    assert counts_only.returncode == 1, counts_only.stderr
    counted = json.loads(counts_only.stdout)
    assert (counted["by_state"], counted["ledger_only"]) == (found["by_state"], 1)
    assert counted["ledger_only_examples"] == [] and counted["examples"]["missing"] == []
    bare = cli(*args)
    assert bare.returncode == 1 and "Traceback" not in bare.stderr

    text = cli("ledger", "reconcile", "--config", str(config), *WINDOW)
    assert text.returncode == 1
    assert deleted in text.stdout and failed in text.stdout and gone in text.stdout
    assert "2 conversion(s) not delivered" in text.stdout
    assert_no_leak(result.stdout + text.stdout + text.stderr, example_dir)

    healthy = sandbox_factory()  # the sync the reconcile suggests delivers both
    config = sync_config(tmp_path, warehouse, healthy.url)
    assert sync(config)["accepted"] == 2
    assert set(healthy.accepted_refs()) == {deleted, failed}
    clean = cli("ledger", "reconcile", "--config", str(config), *WINDOW, "--json")
    assert clean.returncode == 0 and json.loads(clean.stdout)["undelivered"] == 0
    shown = json.loads(cli("ledger", "show", "--config", str(config), failed, "--json").stdout)
    runs = [(a["outcome"], a["attempt"]) for a in shown["history"]]
    assert runs[-2:] == [("failed", 1), ("accepted", 1)]  # the failed run, then the good one


def narrow(*args: str) -> list[str]:
    """`rokt-connector ARGS` on an 80-column terminal: the lines of its stdout, each
    at most 80 characters (but a command to copy, alone on its line)."""
    result = cli(*args, env={"COLUMNS": "80"})
    assert result.returncode in (0, 1), result.stderr
    lines = result.stdout.splitlines()
    too_long = [line for line in lines if len(line) > 80]
    assert [line for line in too_long if not line.startswith("  rokt-connector ")] == []
    return lines


def one_line(lines: list[str], *values: object) -> str:
    """The line holding `values` in this order, each unbroken, apart by whitespace."""
    pattern = re.compile(
        r"\s+".join(re.escape(f"{v:,}" if isinstance(v, int) else str(v)) for v in values)
    )
    found = [line for line in lines if pattern.search(line)]
    assert len(found) == 1, (values, lines)
    return found[0]


def test_tables_fit_an_80_column_terminal(
    tmp_path: Path, example_dir: Path, sandbox_factory: StartSandbox
) -> None:
    """backfill (its plan and report) and the ledger commands print tables whose lines
    fit 80 columns, each run id (8 characters), count and hash whole on one line."""
    sandbox = sandbox_factory("--reject-rate", "0.05", "--seed", "3")
    config = str(sync_config(tmp_path, example_dir, sandbox.url))
    days = ["--since", "2026-10-20", "--until", "2026-10-22", "--window", "12h"]
    plan = json.loads(cli("backfill", "--config", config, *days, "--plan", "--json").stdout)
    lines = narrow("backfill", "--config", config, *days, "--plan")
    for window in plan["windows"]:
        since, until = (
            window[k][:16].replace("T", " ").removesuffix(" 00:00") for k in ("since", "until")
        )
        one_line(lines, since, until, window["rows"], window["too_old"], window["batches"])

    lines = narrow("backfill", "--config", config, *days)
    utc = "strftime(timezone('UTC', {}), '%Y-%m-%d %H:%M')"
    runs = ledger_query(
        Path(config),
        f"SELECT run_id, status, {utc.format('window_since')}, {utc.format('window_until')}, "
        "rows_read, accepted, rejected, rows_rejected_local, rows_skipped_ledger, failed "
        "FROM runs",
    )
    assert len(runs) == 4 and sum(run[6] for run in runs) > 0  # some rejected
    for run_id, status, since, until, *counts in runs:
        since, until = since.removesuffix(" 00:00"), until.removesuffix(" 00:00")
        one_line(lines, since, until, status, run_id[:8])
        one_line(lines, since, *counts)

    summary = json.loads(cli("ledger", "summary", "--config", config, "--json").stdout)
    lines = narrow("ledger", "summary", "--config", config)
    for run in summary["runs"]:
        one_line(
            lines,
            run["run_id"][:8],
            run["started_at"][:19].replace("T", " "),
            run["mode"],
            run["status"],
        )
        counts = ("rows_read", "accepted", "rejected", "rows_rejected_local", "rows_skipped_ledger")
        one_line(lines, run["run_id"][:8], *(run[c] for c in counts), run["failed"], run["retries"])
    for row in summary["by_day"]:
        one_line(lines, row["event_day"], row["accepted"])

    ((ref, identity),) = ledger_query(
        Path(config),
        "SELECT confirmationref, identity_sha256 FROM ledger "
        "WHERE status = 'rejected' ORDER BY 1 LIMIT 1",
    )
    shown = json.loads(cli("ledger", "show", "--config", config, ref, "--json").stdout)
    lines = narrow("ledger", "show", "--config", config, ref)
    one_line(lines, "payload_sha256", shown["payload_sha256"])
    one_line(lines, "identity_sha256", identity)
    one_line(lines, shown["history"][0]["run_id"][:8], 1)
    one_line(lines, f"{ref}: rejected")  # the header
    lines = narrow("ledger", "show", "--config", config, "--identity", identity)
    one_line(lines, ref, "rejected")

    week = ["--since", "2026-10-18", "--until", "2026-10-23"]
    result = json.loads(cli("ledger", "reconcile", "--config", config, *week, "--json").stdout)
    lines = narrow("ledger", "reconcile", "--config", config, *week)
    for state, count in result["by_state"].items():
        one_line(lines, state, count)
