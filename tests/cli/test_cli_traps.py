"""What a new user hit, through the CLI: a bad optional field costs the field, not the
conversion; a payload that changed after acceptance is reported; a scheduled sync
exits 0 on rejections the ledger already knew; the run report adds up and names its
reasons."""

from __future__ import annotations

import json
from hashlib import sha256
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import base_config, cli, write_config

pytestmark = pytest.mark.e2e
WINDOW = ["--since", "2026-10-01", "--until", "2026-11-01"]
COLUMNS = "ref, email, phone, ip, total_cents, currency"
QUERY = (
    "SELECT ref AS confirmationref, email, phone AS mobile, ip AS ipaddress, {amount} AS amount, "
    "currency, 'purchase' AS conversiontype, ordered_at AS event_time FROM orders "
    "WHERE ordered_at >= $since AND ordered_at < $until"
)
CENTS, DOLLARS = "total_cents", "total_cents / 100"
NARROW = {"COLUMNS": "80"}  # a terminal of 80 columns
ORDERS = [
    ("T-1", "a@example.com", "+1 555 123 4567", "10.0.0.1", 49098, "USD"),
    ("T-2", "b@example.com", "n/a", "10.0.0.2", 1999, "usd"),
    ("T-3", "c@example.com", "(555) 123-4568", "999.1.1.1", 500, "USD"),
    ("T-4", "d@example.com", "5551234569", "10.0.0.4", 12000, "EUR"),
]


def project(
    tmp: Path, url: str, orders: list[tuple[Any, ...]], amount: str = DOLLARS, **mapping: Any
) -> Path:
    """`orders` as a DuckDB warehouse (replacing any), and a config sending to `url`."""
    path = tmp / "warehouse.duckdb"
    path.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE orders (ref VARCHAR, email VARCHAR, phone VARCHAR, ip VARCHAR, "
            "total_cents BIGINT, currency VARCHAR, ordered_at TIMESTAMPTZ)"
        )
        con.executemany(
            f"INSERT INTO orders ({COLUMNS}, ordered_at) "
            "VALUES (?, ?, ?, ?, ?, ?, TIMESTAMPTZ '2026-10-20 12:00:00+00')",
            orders,
        )
    (tmp / "query.sql").write_text(QUERY.format(amount=amount), encoding="utf-8")
    destination = {"base_url": url, "api_key": "sandbox-key", "api_secret": "sandbox-secret"}
    return write_config(tmp, base_config(tmp, destination=destination, mapping=mapping))


def run(command: str, config: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = cli(command, "--config", str(config), *WINDOW, "--json", *extra)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def ledger(tmp: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(tmp / "ledger.duckdb"), read_only=True) as con:
        return con.sql(sql).fetchall()


def test_a_bad_optional_field_costs_the_field_not_the_conversion(
    tmp_path: Path, sandbox_factory: Any
) -> None:
    sandbox = sandbox_factory()
    config = project(tmp_path, sandbox.url, ORDERS)
    code, report = run("sync", config)
    assert code == 0 and report["accepted"] == 4 and report["rows_rejected_local"] == 0
    assert report["warnings"] == {"invalid_mobile": 1, "invalid_ipaddress": 1}
    batches = {r["confirmationref"]: r["batch"] for r in sandbox.records()}
    assert "mobilesha256" not in batches["T-2"].get("user_attributes", {})
    assert batches["T-1"]["user_attributes"]["mobilesha256"]
    assert "ip" not in batches["T-3"] and batches["T-1"]["ip"] == "10.0.0.1"
    # the ledger keeps, per conversion and per run, which fields were left out
    assert ledger(tmp_path, "SELECT confirmationref, warnings FROM ledger ORDER BY 1") == [
        ("T-1", None),
        ("T-2", "invalid_mobile"),
        ("T-3", "invalid_ipaddress"),
        ("T-4", None),
    ]
    [(runs_warnings,)] = ledger(tmp_path, "SELECT warnings FROM runs")
    assert json.loads(runs_warnings) == report["warnings"]
    summary = cli("ledger", "summary", "--config", str(config), "--json")
    by_warning = json.loads(summary.stdout)["by_warning"]
    assert {row["warning"]: row["conversions"] for row in by_warning} == report["warnings"]
    text = cli("ledger", "summary", "--config", str(config))
    assert "sent without a field, by warning" in text.stdout and "invalid_ipaddress" in text.stdout

    # the setting that rejects the row instead
    (tmp_path / "strict").mkdir()
    strict = project(tmp_path / "strict", sandbox.url, ORDERS, invalid_fields="reject")
    code, report = run("sync", strict)
    assert code == 1 and report["accepted"] == 2
    assert report["rejected_by_reason"] == {"invalid_mobile": 1, "invalid_ipaddress": 1}


def test_a_payload_changed_after_acceptance_is_reported_not_resent(
    tmp_path: Path, sandbox_factory: Any
) -> None:
    """`total_cents AS amount` sent cents; after the fix, sync and validate say which
    accepted conversions now differ, and validate shows the amounts per currency."""
    sandbox = sandbox_factory()
    wrong = project(tmp_path, sandbox.url, ORDERS, amount=CENTS)
    code, report = run("sync", wrong)
    assert code == 0 and report["accepted"] == 4
    code, checked = run("validate", wrong)
    by_currency = {row["currency"]: row for row in checked["amounts"]}
    assert by_currency["USD"] == {
        "currency": "USD",
        "rows": 3,
        "min": 500.0,
        "median": 1999.0,
        "max": 49098.0,
    }
    assert (checked["valid"], checked["skipped"], checked["changed_after_accept"]) == (0, 4, 0)

    fixed = project(tmp_path, sandbox.url, ORDERS, amount=DOLLARS)
    code, checked = run("validate", fixed)
    assert checked["changed_after_accept"] == 4 and checked["changed_examples"] == [
        "T-1",
        "T-2",
        "T-3",
        "T-4",
    ]
    assert {row["currency"]: row["median"] for row in checked["amounts"]}["USD"] == 19.99
    text = cli("validate", "--config", str(fixed), *WINDOW, env=NARROW)
    assert "changed_after_accept" in text.stdout and "amount per currency" in text.stdout
    assert max(map(len, text.stdout.splitlines())) <= 80
    code, report = run("sync", fixed)
    assert code == 0 and report["accepted"] == 0 and report["rows_skipped_ledger"] == 4
    assert report["changed_after_accept"] == 4 and "T-1" in report["changed_examples"]
    text = cli("sync", "--config", str(fixed), *WINDOW)
    assert "changed_after_accept 4" in text.stdout and "deduplicates by" in text.stdout
    assert sandbox.stats()["batches"] == 4  # nothing was resent


def test_a_scheduled_sync_exits_0_on_rejections_the_ledger_already_knew(
    tmp_path: Path, sandbox_factory: Any
) -> None:
    sandbox = sandbox_factory()
    bad = [("T-5", None, None, None, 100, "USD"), (None, "e@example.com", None, None, 5, "USD")]
    config = project(tmp_path, sandbox.url, ORDERS + bad)
    code, first = run("sync", config)
    assert code == 1 and first["rows_rejected_local"] == 2 and first["rows_rejected_known"] == 0
    assert first["rejected_by_reason"] == {"missing_identity": 1, "missing_confirmationref": 1}
    for _ in range(2):  # every later run: the same two rows, known
        code, again = run("sync", config)
        assert code == 0 and again["status"] == "succeeded"
        assert (again["rows_rejected_local"], again["rows_rejected_known"]) == (2, 2)
    text = cli("sync", "--config", str(config), *WINDOW, env=NARROW)
    assert text.returncode == 0 and "rejected before for the same reason" in text.stdout
    assert max(map(len, text.stdout.splitlines())) <= 80
    # a new bad row, or a known one whose content changed, fails the run again
    changed = [("T-5", " ", None, None, 100, "USD"), bad[1]]
    code, report = run("sync", project(tmp_path, sandbox.url, ORDERS + changed))
    assert code == 1 and (report["rows_rejected_local"], report["rows_rejected_known"]) == (2, 1)
    code, report = run(
        "sync",
        project(tmp_path, sandbox.url, [*ORDERS, *changed, ("T-6", "x", None, None, 1, "USD")]),
    )
    assert code == 1 and report["rejected_by_reason"]["invalid_email"] == 1
    assert report["rows_rejected_known"] == 2


def test_a_duplicate_unlike_the_row_that_won_fails_the_run_once(
    tmp_path: Path, sandbox_factory: Any
) -> None:
    """One ref, three rows: a plain repeat passes; another email fails the first sync
    (and validate), names the ref, and is known to the next sync."""
    sandbox = sandbox_factory()
    repeat, other = ORDERS[0], ("T-1", "z@example.com", *ORDERS[0][2:])
    config = project(tmp_path, sandbox.url, [*ORDERS, repeat])
    code, plain = run("sync", config)
    assert code == 0 and (plain["rows_duplicate"], plain["duplicates_differing"]) == (1, 0)

    config = project(tmp_path, sandbox.url, [*ORDERS, repeat, other])
    code, checked = run("validate", config)
    assert code == 1 and checked["duplicates_differing"] == 1
    assert checked["differing_examples"] == ["T-1"]
    code, first = run("sync", config)
    assert code == 1 and first["status"] == "completed_with_rejections"
    assert (first["rows_duplicate"], first["duplicates_differing"]) == (2, 1)
    assert first["differing_examples"] == ["T-1"]
    code, again = run("sync", config)
    assert code == 0 and (again["duplicates_differing"], again["duplicates_differing_known"]) == (
        1,
        1,
    )
    text = cli("sync", "--config", str(config), *WINDOW, env=NARROW)
    assert "duplicates_differing 1 (1 seen before)" in text.stdout
    emails = [r["batch"]["user_identities"]["other"] for r in sandbox.records()]
    assert len(emails) == 4  # T-1 sent once, with the first row's email


def test_thousands_of_rows_under_one_ref_fail_once_and_the_first_is_sent(
    tmp_path: Path, sandbox_factory: Any
) -> None:
    """2,500 rows share T-9, over three chunks: every tenth has another email and
    amount. The first row is sent, the 250 unlike it fail the first sync (the ref named
    once), the 2,249 plain repeats never do, and the next sync knows all of them."""
    sandbox = sandbox_factory()
    base = ("T-9", "first@example.com", "+1 555 123 4567", "10.0.0.1", 1000, "USD")
    orders = [
        (*base[:1], f"other{i}@example.com", *base[2:4], 1000 + i, "USD") if i % 10 == 9 else base
        for i in range(2500)
    ]
    config = project(tmp_path, sandbox.url, orders)
    code, checked = run("validate", config)
    assert code == 1 and (checked["duplicates"], checked["duplicates_differing"]) == (2499, 250)
    code, first = run("sync", config)
    assert code == 1 and first["status"] == "completed_with_rejections"
    assert (first["accepted"], first["rows_duplicate"], first["duplicates_differing"]) == (
        1,
        2499,
        250,
    )
    assert first["differing_examples"] == ["T-9"] and first["rows_read"] == 2500
    [record] = sandbox.records()  # the first row's
    assert record["batch"]["user_identities"]["other"] == sha256(b"first@example.com").hexdigest()
    code, again = run("sync", config)
    assert code == 0 and again["status"] == "succeeded"
    assert (again["rows_skipped_ledger"], again["duplicates_differing_known"]) == (1, 250)
    assert len(sandbox.records()) == 1
    assert ledger(tmp_path, "SELECT count(*) FROM rejected_rows") == [(250,)]
