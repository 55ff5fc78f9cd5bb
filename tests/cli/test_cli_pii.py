"""The plain-PII guard end to end: `validate` and `sync` refuse, before anything is
sent, an extra column holding email addresses or phone numbers and a plain PII column
left out of `mapping.hash`, unless `mapping.allow_plain` lists it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from conftest import REPO, SandboxProcess, cli, sync_config

pytestmark = pytest.mark.e2e
WINDOW = ["--since", "2026-09-01", "--until", "2026-11-02"]
StartSandbox = Callable[..., SandboxProcess]
LAST_COLUMN = "    loyalty_tier     AS loyalty_tier\n"


def configure(tmp: Path, example_dir: Path, url: str, extra_sql: str = "", **mapping: Any) -> Path:
    """A config syncing the example warehouse to `url`, its query (sql/conversions.sql)
    returning `extra_sql`'s columns too, and `mapping` set."""
    query = (REPO / "sql" / "conversions.sql").read_text(encoding="utf-8")
    assert LAST_COLUMN in query
    extra = "".join(f"  , {line}\n" for line in extra_sql.splitlines() if line.strip())
    (tmp / "query.sql").write_text(query.replace(LAST_COLUMN, LAST_COLUMN + extra), "utf-8")
    path = sync_config(tmp, example_dir, url)
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["source"]["query"] = "query.sql"
    config["mapping"] = mapping
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def raw_values(example_dir: Path, column: str) -> set[str]:
    """Every value of a column of the example warehouse, trimmed (and lower-cased)."""
    with duckdb.connect(str(example_dir / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql(f"SELECT DISTINCT trim({column}) FROM orders WHERE {column} IS NOT NULL")
        values = {v for (v,) in rows.fetchall() if len(v) >= 5}
    return values | {v.lower() for v in values}


def ledger_rows(path: Path) -> int:
    if not path.exists():
        return 0
    with duckdb.connect(str(path), read_only=True) as con:
        [(count,)] = con.sql("SELECT count(*) FROM ledger").fetchall()
    return int(count)


def assert_refused(
    config: Path, sandbox: SandboxProcess, needles: list[str], raw: set[str]
) -> None:
    """`validate` and `sync` exit 2 with a message holding every needle and no raw
    value, and nothing reaches the sandbox or the ledger."""
    for command in (["validate", "--show", "1"], ["sync", "--json"]):
        result = cli(*command, "--config", str(config), *WINDOW)
        output = result.stdout + result.stderr
        assert result.returncode == 2, (command, output)
        assert all(needle in result.stderr for needle in needles), (command, result.stderr)
        assert "Traceback" not in output
        assert [v for v in raw if v in output] == []
    assert sandbox.stats()["requests"] == 0
    assert ledger_rows(config.parent / "ledger.duckdb") == 0


def test_an_extra_column_of_emails_is_refused_before_anything_is_sent(
    tmp_path: Path, example_dir: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    config = configure(tmp_path, example_dir, sandbox.url, "customer_email AS customer_email_copy")
    needles = ["column customer_email_copy", "email addresses", "AS email", "allow_plain"]
    assert_refused(config, sandbox, needles, raw_values(example_dir, "customer_email"))


def test_an_extra_column_of_phone_numbers_is_refused_before_anything_is_sent(
    tmp_path: Path, example_dir: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    config = configure(tmp_path, example_dir, sandbox.url, "phone AS contact_phone")
    needles = ["column contact_phone", "phone numbers", "AS mobile", "allow_plain"]
    assert_refused(config, sandbox, needles, raw_values(example_dir, "phone"))


def test_an_extra_column_in_allow_plain_is_sent_as_is_and_redacted_when_shown(
    tmp_path: Path, example_dir: Path, manifest: dict[str, Any], sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    config = configure(
        tmp_path,
        example_dir,
        sandbox.url,
        "customer_email AS customer_email_copy",
        allow_plain=["Customer_Email_Copy"],  # column names are matched case-blind
    )
    emails = raw_values(example_dir, "customer_email")
    shown = cli("validate", "--config", str(config), *WINDOW, "--show", "1")
    assert shown.returncode == 1, shown.stderr  # the example's dirty rows
    assert '"customer_email_copy": "<redacted>"' in shown.stdout
    assert [v for v in emails if v in shown.stdout + shown.stderr] == []

    result = cli("sync", "--config", str(config), *WINDOW, "--json")
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["accepted"] == manifest["valid"]
    with duckdb.connect(str(example_dir / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql("SELECT order_id, trim(customer_email) FROM orders").fetchall()
    expected = dict(rows)
    sent = {
        r["confirmationref"]: r["batch"]["events"][0]["data"]["custom_attributes"]
        for r in sandbox.records()
    }
    assert len(sent) == manifest["valid"]
    for ref, attributes in sent.items():
        assert attributes.get("customer_email_copy") == (expected[ref] or None), ref
    assert any("@" in a["customer_email_copy"] for a in sent.values())
    assert ledger_rows(tmp_path / "ledger.duckdb") == manifest["rows"] - manifest["duplicates"]


def test_a_plain_email_is_refused_unless_allow_plain_lists_it(
    tmp_path: Path, example_dir: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    unhashed = ["firstname", "lastname", "mobile", "zip"]
    config = configure(tmp_path, example_dir, sandbox.url, hash=unhashed)
    for command in ("validate", "sync"):
        result = cli(command, "--config", str(config), *WINDOW)
        assert result.returncode == 2, result.stderr
        assert "mapping: email would be sent as plain text" in result.stderr
        assert "mapping.allow_plain: [email]" in result.stderr
    assert sandbox.stats()["requests"] == 0
    assert not (tmp_path / "ledger.duckdb").exists()  # refused before anything was opened

    config = configure(tmp_path, example_dir, sandbox.url, hash=unhashed, allow_plain=["email"])
    shown = cli("validate", "--config", str(config), *WINDOW, "--show", "2")
    assert shown.returncode == 1, shown.stderr
    assert shown.stdout.count('"email": "<redacted>"') == 2
    emails = raw_values(example_dir, "customer_email")
    assert [v for v in emails if v in shown.stdout + shown.stderr] == []
    result = cli("sync", "--config", str(config), *WINDOW, "--json")
    assert result.returncode == 1, result.stderr
    identities = [r["batch"]["user_identities"] for r in sandbox.records()]
    assert identities and all("@" in i["email"] for i in identities if "email" in i)


def test_numbers_that_are_no_phones_pass_and_canonical_fields_are_never_flagged(
    tmp_path: Path, example_dir: Path, manifest: dict[str, Any], sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    # numbers an order carries in extra columns, none of them a phone's
    numbers = """
        substr(order_id, 5, 7) || '00' AS order_number
        item_count * 1000 AS points
        order_total * 1000 AS order_total_milli
        strftime(event_time, '%Y-%m-%d') AS order_day
        strftime(event_time, '%d.%m.%Y') AS order_day_de
        ip_address AS client_ip
        '5' || substr(order_id, 5, 7) || '12' AS transactionid
    """
    config = configure(tmp_path, example_dir, sandbox.url, numbers)
    query = config.parent / "query.sql"
    sku = "'555-' || substr(order_id, 6, 3) || '-' || substr(order_id, 9, 3) AS sku,"
    query.write_text(query.read_text("utf-8").replace("sku              AS sku,", sku), "utf-8")
    result = cli("sync", "--config", str(config), *WINDOW, "--json")
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["accepted"] == manifest["valid"]
    sent = {r["confirmationref"]: r["batch"] for r in sandbox.records()}
    attributes = sent["ORD-0000001"]["events"][0]["data"]["custom_attributes"]
    # canonical fields holding phone-like digits are sent as they are
    assert (attributes["sku"], attributes["transactionid"]) == ("555-000-001", "5000000112")
    assert attributes["order_number"] == "000000100"
    assert attributes["order_day"].startswith("2026-1") and attributes["points"] == "2000"

    # the same number a digit longer has a phone's length: refused
    longer = "substr(order_id, 5, 7) || '000' AS order_number"
    longer_config = configure(tmp_path, example_dir, sandbox.url, longer)
    result = cli("validate", "--config", str(longer_config), *WINDOW)
    assert result.returncode == 2, result.stderr
    assert "column order_number" in result.stderr and "phone numbers (row 1)" in result.stderr
