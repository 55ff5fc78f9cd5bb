"""`rokt-connector ledger ...` end to end: the audit commands read a real ledger
written by real syncs to the sandbox, and print what a user asks: a conversion's
history, a summary, an export, a reconciliation with the source."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import SECRET, SandboxProcess, cli, sync_config

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
    """Every raw email, name and phone number of the example warehouse."""
    with duckdb.connect(str(example_dir / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql("SELECT customer_email, first_name, last_name, phone FROM orders").fetchall()
    values = {str(v).strip() for row in rows for v in row if v is not None}
    return {v for v in values if len(v) >= 5 and not v.isdigit()} | {SECRET}


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
    assert text.stdout.count(f"│ {report['run_id'][:8]} │") == attempts  # a line per attempt
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
