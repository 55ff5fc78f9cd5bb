"""`sync`, `backfill` and `ledger reconcile` with the pixel transports, end to end: the
CLI, a real ledger file, one GET per conversion over loopback to the sandbox's Pixel
Service (`pixel`) or RudderStack Pixel API (`rudderstack_pixel`). Each valid conversion
is delivered once, whichever transport carries it."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import (
    PIXEL_KEYS,
    PIXEL_KINDS,
    SandboxProcess,
    base_config,
    cli,
    for_transport,
    pixel_sync_config,
    sigkill_sync_when,
    write_config,
)

from connector.transform import NS_MESSAGE

pytestmark = pytest.mark.e2e
WINDOW = ["--since", "2026-09-01", "--until", "2026-11-02"]
RANGE = ["--since", "2026-10-05", "--until", "2026-11-02"]  # the example: [10-07, 11-01)
StartSandbox = Callable[..., SandboxProcess]
Example = tuple[Path, dict[str, Any]]
kinds = pytest.mark.parametrize("kind", PIXEL_KINDS)
# The environment the sandbox records: the Pixel Service's from `dbg` (the connector's,
# development for a loopback base_url), RudderStack's Rokt destination always production.
RECORDED_ENVIRONMENT = {"pixel": "development", "rudderstack_pixel": "production"}
_HEX64 = re.compile(r"[0-9a-f]{64}")


def sync(config: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    result = cli("sync", "--config", str(config), *WINDOW, "--json", *extra)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


def query(ledger: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(ledger), read_only=True) as con:
        return con.sql(sql, params=list(params) or None).fetchall()


def refs(ledger: Path, status: str) -> set[str]:
    rows = query(ledger, "SELECT confirmationref FROM ledger WHERE status = ?", status)
    return {ref for (ref,) in rows}


def assert_each_valid_conversion_once(
    sandbox: SandboxProcess, ledger: Path, valid: int, kind: str
) -> None:
    """What the ledger says was accepted is what the sandbox accepted, once each, and
    each record's receipt key is the hash of the query the ledger kept."""
    stats = sandbox.stats()
    assert stats["unique_confirmationrefs"] == stats["batches"] == valid
    assert stats["duplicate_confirmationrefs"] == 0
    records = sandbox.records()
    accepted = query(
        ledger, "SELECT confirmationref, payload_sha256 FROM ledger WHERE status = 'accepted'"
    )
    assert {r["confirmationref"]: r["source_request_id"] for r in records} == dict(accepted)
    assert {r["transport"] for r in records} == {kind}
    assert refs(ledger, "pending") == refs(ledger, "failed") == set()


def source_rows(example_dir: Path) -> dict[str, dict[str, Any]]:
    """The example warehouse's orders by order id."""
    with duckdb.connect(str(example_dir / "warehouse.duckdb"), read_only=True) as con:
        result = con.sql("SELECT * FROM orders")
        names = result.columns
        return {row[0]: dict(zip(names, row, strict=True)) for row in result.fetchall()}


def email_sha256(email: str) -> str:
    """The hash the platform should receive for a source email: of the trimmed,
    lower-cased address, or the given hash lower-cased."""
    normal = email.strip().lower()
    return normal if _HEX64.fullmatch(normal) else hashlib.sha256(normal.encode()).hexdigest()


def check_pixel_record(record: dict[str, Any], row: dict[str, Any], event_ms: int) -> None:
    batch = record["batch"]
    assert (batch["dt"], batch["et"], batch["n"], batch["ct"]) == (
        "AppEvent",
        "Transaction",
        "conversion",
        event_ms,
    )
    identities = batch["identities"]
    assert identities["other"] == email_sha256(row["customer_email"])  # the hashed email
    assert "email" not in identities  # hashed by default: no plain address travels
    assert identities.get("customerid") == row["customer_id"]
    attributes = batch["event_attributes"]
    assert list(attributes)[:2] == ["conversiontype", "confirmationref"]
    assert attributes["confirmationref"] == row["order_id"] == record["confirmationref"]
    assert attributes["conversiontype"] == row["order_type"]
    assert attributes["productname"] == row["product_name"]
    assert all(_HEX64.fullmatch(v) for k, v in batch["user_attributes"].items() if "sha256" in k)
    assert {"firstnamesha256", "mobilesha256"} & set(batch["user_attributes"])


def check_rudderstack_record(record: dict[str, Any], row: dict[str, Any], event_ms: int) -> None:
    batch = record["batch"]
    ref = row["order_id"]
    assert (batch["type"], batch["event"]) == ("track", "Order Completed")
    assert batch["properties"]["order_id"] == ref == record["confirmationref"]
    assert batch["properties"]["conversiontype"] == row["order_type"]
    assert batch["properties"]["productname"] == row["product_name"]
    # the conversion's source_message_id: the same on every run and every transport
    assert batch["messageId"] == str(uuid.uuid5(NS_MESSAGE, f"development:{ref}"))
    stamp = datetime.fromisoformat(batch["originalTimestamp"])
    assert round(stamp.timestamp() * 1000) == event_ms
    assert batch.get("userId") == row["customer_id"]
    assert uuid.UUID(batch["anonymousId"])  # no session id in the example: a UUIDv5
    traits = batch.get("context", {}).get("traits", {})
    assert "email" not in traits  # hashed by default: RudderStack's destination gets none


CHECK_RECORD = {"pixel": check_pixel_record, "rudderstack_pixel": check_rudderstack_record}


@kinds
def test_sync_delivers_each_valid_conversion_once(
    kind: str, tmp_path: Path, small_example: Example, sandbox_factory: StartSandbox
) -> None:
    example_dir, manifest = small_example
    sandbox = sandbox_factory()
    config = pixel_sync_config(tmp_path, example_dir, sandbox.url, kind)
    code, report, stderr = sync(config)
    assert code == 1, stderr  # the example's dirty rows are rejected locally
    valid = manifest["valid"]
    assert report["accepted"] == report["requests"] == report["batches_sent"] == valid
    assert report["rows_read"] == manifest["rows"]
    assert report["rows_duplicate"] == manifest["duplicates"]
    assert report["rejected_by_reason"] == manifest["rejected"]
    assert report["warnings"] == manifest["warnings"]
    assert (report["rejected"], report["failed"], report["status"]) == (
        0,
        0,
        "completed_with_rejections",
    )

    stats = sandbox.stats()
    assert stats["requests_by_endpoint"] == {
        "events_api": 0,
        "pixel": 0,
        "rudderstack_pixel": 0,
    } | {kind: valid}
    assert stats["requests"] == stats["responses_by_status"]["200"] == valid
    assert stats["max_batches_per_request"] == 1
    assert (stats["resent"], stats["rejected"]) == (0, 0)
    ledger = tmp_path / "ledger.duckdb"
    assert_each_valid_conversion_once(sandbox, ledger, valid, kind)
    assert query(ledger, "SELECT DISTINCT transport FROM ledger WHERE status = 'accepted'") == [
        (kind,)
    ]
    local = query(
        ledger, "SELECT reason, count(*) FROM ledger WHERE status = 'rejected_local' GROUP BY 1"
    )
    assert dict(local) == manifest["rejected"]

    # what the platform received is each source row, as the transport carries it
    rows = source_rows(example_dir)
    times = dict(
        query(
            ledger,
            "SELECT confirmationref, epoch_ms(event_time) FROM ledger WHERE status = 'accepted'",
        )
    )
    records = sandbox.records()
    assert {r["environment"] for r in records} == {RECORDED_ENVIRONMENT[kind]}
    for record in records:
        ref = record["confirmationref"]
        CHECK_RECORD[kind](record, rows[ref], times[ref])
    if kind == "rudderstack_pixel":  # anonymousId: one per person, stable
        people = query(
            ledger,
            "SELECT confirmationref, identity_sha256 FROM ledger WHERE status = 'accepted'",
        )
        anonymous = {r["confirmationref"]: r["batch"]["anonymousId"] for r in records}
        by_person: dict[str, set[str]] = {}
        for ref, identity in people:
            by_person.setdefault(identity, set()).add(anonymous[ref])
        assert {len(ids) for ids in by_person.values()} == {1}
        assert len(set(anonymous.values())) == len(by_person)

    code, again, stderr = sync(config)  # nothing left to send
    assert code == 0 and again["status"] == "succeeded", stderr
    assert (again["requests"], again["accepted"]) == (0, 0)
    assert again["rows_skipped_ledger"] == valid
    assert again["rows_rejected_known"] == sum(manifest["rejected"].values())
    assert sandbox.stats()["requests"] == valid


@kinds
def test_sigkill_mid_sync_then_rerun_accepts_each_conversion_once(
    kind: str, tmp_path: Path, small_example: Example, sandbox_factory: StartSandbox
) -> None:
    """The sandbox answers each request 0.1 s late, so requests are in flight when the
    sync is killed: the sandbox records them, the ledger keeps them `pending`, and the
    rerun sends them again. The same query has the same receipt key: the sandbox
    counts each such conversion a resend, never a second one."""
    example, manifest = small_example
    valid = manifest["valid"]
    sandbox = sandbox_factory("--latency", "0.1")
    config = pixel_sync_config(tmp_path, example, sandbox.url, kind, max_requests_per_second=100)

    def ready() -> bool:  # a third delivered, and requests in flight to cut off
        stats = sandbox.stats()
        return bool(stats["batches"] >= valid // 3 and stats["in_flight"])

    sigkill_sync_when(config, WINDOW, ready, poll_s=0.02)
    deadline = time.monotonic() + 30
    while sandbox.stats()["in_flight"]:  # the requests cut off are answered, to no one
        assert time.monotonic() < deadline
        time.sleep(0.02)
    ledger = tmp_path / "ledger.duckdb"
    delivered = set(sandbox.accepted_refs())
    settled = refs(ledger, "accepted")
    assert 0 < len(delivered) < valid
    unanswered = delivered - settled  # accepted, but the killed run never heard so
    assert settled <= delivered and unanswered

    code, report, stderr = sync(config)
    new_rejections = report["rows_rejected_local"] - report["rows_rejected_known"]
    assert code == (1 if new_rejections else 0), stderr
    assert report["failed"] == 0 and report["accepted"] == valid - len(settled)
    assert_each_valid_conversion_once(sandbox, ledger, valid, kind)
    assert sandbox.stats()["resent"] == len(unanswered)  # recognised by the receipt key


@kinds
def test_backfill_then_reconcile_finds_every_conversion_accepted(
    kind: str, tmp_path: Path, small_example: Example, sandbox_factory: StartSandbox
) -> None:
    example, manifest = small_example
    valid = manifest["valid"]
    sandbox = sandbox_factory()
    config = pixel_sync_config(tmp_path, example, sandbox.url, kind, max_requests_per_second=500)
    ledger = tmp_path / "ledger.duckdb"
    args = ["backfill", "--config", str(config), *RANGE, "--window", "7d", "--json"]

    plan = json.loads(cli(*args, "--plan").stdout)
    assert not ledger.exists() and sandbox.stats()["requests"] == 0
    assert len(plan["windows"]) == 4
    assert plan["rows"] == sum(w["rows"] for w in plan["windows"]) == manifest["rows"]
    assert plan["estimated_s"] == round(plan["batches"] / 500, 1)
    assert plan["max_requests_per_second"] == 500 and "max_batches_per_second" not in plan
    text = cli(*args[:-1], "--plan").stdout  # what a person reads
    assert "at 500 requests/s." in " ".join(text.split())

    result = cli(*args)
    assert result.returncode == 1, result.stderr  # the dirty rows
    report = json.loads(result.stdout)
    assert report["status"] == "completed_with_rejections"
    assert (report["windows_total"], report["windows_finished"], report["windows_left"]) == (
        4,
        4,
        0,
    )
    assert report["accepted"] == report["requests"] == valid
    assert report["rejected_by_reason"] == manifest["rejected"]
    for planned, done in zip(plan["windows"], report["windows"], strict=True):
        assert (planned["since"], planned["until"]) == (done["since"], done["until"])
        assert planned["rows"] == done["rows_read"]
        # one conversion per request: each window sends what its plan counted
        assert planned["batches"] >= done["requests"] == done["accepted"]
    assert_each_valid_conversion_once(sandbox, ledger, valid, kind)
    assert sandbox.stats()["requests_by_endpoint"][kind] == valid

    again = json.loads(cli(*args).stdout)  # every window is done: nothing read or sent
    assert (again["windows_skipped"], again["rows_read"], again["requests"]) == (4, 0, 0)

    window = ["--since", "2026-10-05", "--until", "2026-11-02"]
    result = cli("ledger", "reconcile", "--config", str(config), *window, "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["by_state"] == {
        "accepted": valid,
        "pending": 0,
        "failed": 0,
        "rejected": 0,
        "rejected_local": sum(manifest["rejected"].values()),
        "missing": 0,
    }
    assert (found["undelivered"], found["ledger_only"]) == (0, 0)
    assert found["source_rows"] == manifest["rows"]
    assert sandbox.stats()["requests"] == valid  # reconcile sends nothing


def test_a_wrong_pixel_api_key_stops_the_run_with_exit_3_and_is_never_shown(
    tmp_path: Path, small_example: Example, sandbox_factory: StartSandbox
) -> None:
    example, _ = small_example
    sandbox = sandbox_factory()
    wrong = "WRONG-pixel-key-5d1e"
    config = pixel_sync_config(tmp_path, example, sandbox.url, "pixel", api_key=wrong)
    started = time.monotonic()
    result = cli("sync", "--config", str(config), *WINDOW, "--json")
    assert result.returncode == 3, result.stderr
    assert time.monotonic() - started < 20
    assert "credentials refused (HTTP 403); check destination.api_key" in result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "failed" and report["accepted"] == 0
    stats = sandbox.stats()
    assert stats["batches"] == 0 and stats["responses_by_status"]["403"] > 0
    ledger = tmp_path / "ledger.duckdb"
    assert refs(ledger, "accepted") == set()
    written = [p for p in tmp_path.iterdir() if p.is_file() and p.name != "config.yaml"]
    assert ledger in written
    for where, text in [
        ("stdout", result.stdout),
        ("stderr", result.stderr),
        *((p.name, p.read_bytes().decode("latin-1")) for p in written),
    ]:
        assert wrong not in text, f"the key is in {where}"


def test_a_wrong_rudderstack_write_key_cannot_be_seen_the_sandbox_counts_the_drops(
    tmp_path: Path, small_example: Example, sandbox_factory: StartSandbox
) -> None:
    """The known blind spot (docs/transports.md): rudder-server answers 200 with a GIF
    whatever became of a request, a wrong write key included, so the connector records
    every conversion `accepted` (by RudderStack's gateway) and exits as if all went
    well. Only the gateway's side shows the drops, as the sandbox's stats do here."""
    example, manifest = small_example
    valid = manifest["valid"]
    sandbox = sandbox_factory()
    wrong = "WRONG-write-key-a7c2"
    config = pixel_sync_config(tmp_path, example, sandbox.url, "rudderstack_pixel", write_key=wrong)
    result = cli("sync", "--config", str(config), *WINDOW, "--json")
    assert result.returncode == 1, result.stderr  # the dirty rows, as with the right key
    report = json.loads(result.stdout)
    assert (report["accepted"], report["rejected"], report["failed"]) == (valid, 0, 0)
    assert len(refs(tmp_path / "ledger.duckdb", "accepted")) == valid
    stats = sandbox.stats()
    assert stats["responses_by_status"]["200"] == stats["requests"] == valid
    assert stats["batches"] == 0  # nothing reached RudderStack's destinations
    assert stats["rejections_by_code"] == {"invalid_write_key": valid}
    assert wrong not in result.stdout + result.stderr


def comma_warehouse(tmp: Path, url: str, kind: str) -> Path:
    """Three orders, one whose product name holds a comma; a config sending them."""
    with duckdb.connect(str(tmp / "warehouse.duckdb")) as con:
        con.execute(
            "CREATE TABLE o AS SELECT * FROM (VALUES "
            "('R1', 'a1@x.co', 'Shoe, blue'), ('R2', 'a2@x.co', 'Shoe'), ('R3', 'a3@x.co', 'Hat')"
            ") t(confirmationref, email, productname)"
        )
    (tmp / "query.sql").write_text(
        "SELECT *, 'purchase' AS conversiontype, TIMESTAMPTZ '2026-10-20 10:00:00+00' AS "
        "event_time FROM o WHERE $since < $until",
        encoding="utf-8",
    )
    destination = {"base_url": url, "transport": kind, **PIXEL_KEYS[kind]}
    config = base_config(tmp, destination=destination)
    config["destination"] = for_transport(config["destination"])
    return write_config(tmp, config)


@kinds
def test_a_value_with_a_comma_cannot_travel_in_a_pixel_list(
    kind: str, tmp_path: Path, sandbox_factory: StartSandbox
) -> None:
    """The Pixel Service splits its lists on commas after decoding, so the connector
    refuses such a row, naming the column and never the value; RudderStack's query has
    one parameter per value, and carries it."""
    sandbox = sandbox_factory()
    config = comma_warehouse(tmp_path, sandbox.url, kind)
    code, report, stderr = sync(config)
    ledger = tmp_path / "ledger.duckdb"
    statuses = query(ledger, "SELECT confirmationref, status, reason FROM ledger ORDER BY 1")
    records = {r["confirmationref"]: r["batch"] for r in sandbox.records()}
    if kind == "pixel":
        assert code == 1, stderr
        assert report["rejected_by_reason"] == {"pixel_unsafe_value": 1}
        assert statuses == [
            ("R1", "rejected_local", "pixel_unsafe_value"),
            ("R2", "accepted", None),
            ("R3", "accepted", None),
        ]
        events = [line.split()[1:] for line in stderr.splitlines()]
        warning = ["warning", "pixel_unsafe_value", "column=productname", "rows=1"]
        assert [e for e in events if e[1:2] == ["pixel_unsafe_value"]] == [warning]
        assert "Shoe, blue" not in stderr and "Shoe%2C" not in stderr
        assert set(records) == {"R2", "R3"}
        assert records["R2"]["event_attributes"]["productname"] == "Shoe"
        assert sandbox.stats()["rejected"] == 0  # nothing unsplittable reached the service
    else:
        assert code == 0, stderr
        assert report["accepted"] == 3 and "pixel_unsafe_value" not in stderr
        assert statuses == [(ref, "accepted", None) for ref in ("R1", "R2", "R3")]
        assert records["R1"]["properties"]["productname"] == "Shoe, blue"
