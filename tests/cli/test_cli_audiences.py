"""`rokt-connector audiences sync` and `status` end to end, as a user runs them: a
warehouse table of segments, the sandbox process, the adds and drops it receives."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import base_config, cli, sandbox_destination, write_config

from connector.audiences import run, sync_audiences
from connector.engine.crash import CRASH_AT_ENV
from connector.ledger import Ledger

StartSandbox = Any

VIP, LAPSED = 250, 120  # members; the first 60 of VIP are also LAPSED (emails)


def _warehouse(path: Path, vip: range, lapsed: range, customers: int = 5) -> None:
    """`segments(audience_name, email, customerid)`: VIP and lapsed buyers by email,
    and a few customers without an email in `suppress`."""
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE OR REPLACE TABLE segments "
            "(audience_name VARCHAR, email VARCHAR, customerid VARCHAR)"
        )
        con.execute(
            "INSERT INTO segments SELECT 'vip', 'Buyer' || i || '@Example.com', NULL "
            "FROM range(?, ?) t(i)",
            [vip.start, vip.stop],
        )
        con.execute(
            "INSERT INTO segments SELECT 'lapsed', ' buyer' || i || '@example.com ', NULL "
            "FROM range(?, ?) t(i)",
            [lapsed.start, lapsed.stop],
        )
        con.execute(
            "INSERT INTO segments SELECT 'suppress', NULL, 'cust-' || i FROM range(?) t(i)",
            [customers],
        )


def _config(tmp: Path, url: str, **audiences: Any) -> Path:
    (tmp / "query.sql").write_text(
        "SELECT * FROM segments WHERE $since IS NOT NULL AND $until IS NOT NULL", "utf-8"
    )
    (tmp / "audiences.sql").write_text("SELECT audience_name, email, customerid FROM segments")
    config = base_config(
        tmp,
        # the answers of about 50 changes to a ledger write: a run killed at its second
        # write has some changes settled and some not
        source={"database": str(tmp / "warehouse.duckdb"), "query": "query.sql", "chunk_rows": 50},
        destination=sandbox_destination(url),
        audiences={"query": "audiences.sql", **audiences},
    )
    return write_config(tmp, config)


def _sync(config: Path, *flags: str, env: dict[str, str] | None = None) -> tuple[int, Any, str]:
    done = cli("audiences", "sync", "--config", str(config), "--json", *flags, env=env)
    report = json.loads(done.stdout) if done.stdout.strip() else None
    return done.returncode, report, done.stderr


def _status(config: Path) -> dict[str, dict[str, Any]]:
    done = cli("audiences", "status", "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    return {row["audience"]: row for row in json.loads(done.stdout)["audiences"]}


@pytest.fixture
def setup(tmp_path: Path, sandbox_factory: StartSandbox) -> tuple[Path, Any]:
    _warehouse(tmp_path / "warehouse.duckdb", range(VIP), range(LAPSED))
    sandbox = sandbox_factory()
    return _config(tmp_path, sandbox.url), sandbox


def test_first_run_adds_everyone_and_an_unchanged_rerun_sends_nothing(
    setup: tuple[Path, Any],
) -> None:
    config, sandbox = setup
    code, report, stderr = _sync(config)
    assert code == 0, stderr
    assert (report["adds"], report["drops"], report["accepted"]) == (375, 0, 375)
    # one batch per member: the first 120 VIPs are lapsed too
    assert report["batches"] == VIP + 5
    stats = sandbox.stats()
    assert stats["audience_changes"] == {
        "lapsed": {"add": LAPSED, "drop": 0},
        "suppress": {"add": 5, "drop": 0},
        "vip": {"add": VIP, "drop": 0},
    }
    assert stats["rejected"] == 0 and stats["duplicate_audience_changes"] == 0
    status = _status(config)
    assert {a: row["members"] for a, row in status.items()} == {
        "lapsed": LAPSED,
        "suppress": 5,
        "vip": VIP,
    }
    assert all(row["pending"] == row["failed"] == 0 for row in status.values())
    shown = cli("audiences", "status", "--config", str(config), env={"COLUMNS": "80"})
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for audience, row in status.items():  # every count whole, on its audience's line
        counts = [f"{row[k]:,}" for k in ("members", "pending", "failed", "rejected", "adds")]
        assert any(line.startswith(audience) and line.split()[1:6] == counts for line in lines)

    code, again, _ = _sync(config)
    assert code == 0 and (again["adds"], again["drops"], again["requests"]) == (0, 0, 0)
    assert sandbox.stats()["requests"] == stats["requests"]


def test_a_member_in_two_audiences_gets_one_batch_hashed_as_conversions(
    setup: tuple[Path, Any],
) -> None:
    config, sandbox = setup
    assert _sync(config)[0] == 0
    batches = [r["batch"] for r in sandbox.records()]
    both = [b for b in batches if len(b["events"]) == 2]
    assert len(both) == LAPSED
    batch = both[0]
    assert set(batch["user_identities"]) == {"other"}  # the email's SHA-256, never the email
    assert len(batch["user_identities"]["other"]) == 64
    assert batch["user_attributes"] == {"audience_lapsed": True, "audience_vip": True}
    event = batch["events"][0]
    assert event["event_type"] == "custom_event"
    assert event["data"]["event_name"] == "audiencemembershipupdate"
    assert event["data"]["custom_event_type"] == "other"
    assert event["data"]["custom_attributes"] == {"audience_name": "lapsed", "status": "add"}
    assert "example.com" not in json.dumps(batches).lower()


def test_after_the_table_changes_exactly_the_adds_and_drops_are_sent(
    setup: tuple[Path, Any], tmp_path: Path
) -> None:
    config, sandbox = setup
    assert _sync(config)[0] == 0
    # 20 VIPs leave, 10 join; lapsed unchanged; buyer0 leaves VIP only
    _warehouse(tmp_path / "warehouse.duckdb", range(20, VIP + 10), range(LAPSED))
    code, report, stderr = _sync(config)
    assert code == 0, stderr
    assert (report["adds"], report["drops"], report["accepted"]) == (10, 20, 30)
    assert report["audiences"]["vip"] == {"delivered": VIP, "adds": 10, "drops": 20}
    stats = sandbox.stats()
    assert stats["audience_changes"]["vip"] == {"add": VIP + 10, "drop": 20}
    assert stats["audience_changes"]["lapsed"] == {"add": LAPSED, "drop": 0}
    drops = [
        b["batch"]
        for b in sandbox.records()
        if any(e["data"]["custom_attributes"]["status"] == "drop" for e in b["batch"]["events"])
    ]
    assert len(drops) == 20
    assert all(b["user_attributes"] == {"audience_vip": False} for b in drops)
    assert _status(config)["vip"]["members"] == VIP - 10

    # buyer0 back in VIP: added, dropped, added again is three ids
    _warehouse(tmp_path / "warehouse.duckdb", range(VIP + 10), range(LAPSED))
    code, report, _ = _sync(config)
    assert code == 0 and (report["adds"], report["drops"]) == (20, 0)
    ids = {
        e["data"]["source_message_id"]
        for r in sandbox.records()
        for e in r["batch"]["events"]
        if e["data"]["custom_attributes"]["audience_name"] == "vip"
    }
    assert len(ids) == VIP + 10 + 20 + 20
    assert sandbox.stats()["duplicate_audience_changes"] == 0


def test_a_run_killed_before_settling_is_rerun_and_sends_each_change_once(
    setup: tuple[Path, Any],
) -> None:
    config, sandbox = setup
    code, report, _ = _sync(config, env={CRASH_AT_ENV: "settle:2"})
    assert code == -9 and report is None  # SIGKILLed with the 2nd answer unsettled
    delivered = sandbox.stats()["audience_changes"]
    assert 0 < sum(c["add"] for c in delivered.values()) <= 375  # some answers unsettled
    assert sum(row["pending"] for row in _status(config).values()) > 0

    code, rerun, stderr = _sync(config)
    assert code == 0, stderr
    assert rerun["resent"] > 0 and rerun["adds"] + rerun["drops"] == rerun["accepted"]
    stats = sandbox.stats()
    assert stats["audience_changes"] == {
        "lapsed": {"add": LAPSED, "drop": 0},
        "suppress": {"add": 5, "drop": 0},
        "vip": {"add": VIP, "drop": 0},
    }
    assert stats["duplicate_audience_changes"] == 0  # resends carry the same request ids
    status = _status(config)
    assert sum(row["members"] for row in status.values()) == 375
    assert all(row["pending"] == 0 for row in status.values())


def test_a_truncated_audience_is_refused_then_allowed_with_the_flag(
    setup: tuple[Path, Any], tmp_path: Path
) -> None:
    config, sandbox = setup
    assert _sync(config)[0] == 0
    requests = sandbox.stats()["requests"]
    _warehouse(tmp_path / "warehouse.duckdb", range(0), range(LAPSED))  # vip truncated
    code, report, stderr = _sync(config)
    assert code == 2 and report is None
    assert "'vip' is missing from the result" in stderr and f"{VIP} members" in stderr
    assert "--allow-mass-drop" in stderr
    assert sandbox.stats()["requests"] == requests  # nothing sent

    _warehouse(tmp_path / "warehouse.duckdb", range(100), range(LAPSED))  # 60% of vip gone
    code, _, stderr = _sync(config)
    assert code == 2 and "'vip' would drop 150 of its 250 members" in stderr

    code, report, stderr = _sync(config, "--allow-mass-drop")
    assert code == 0, stderr
    assert (report["drops"], report["accepted"]) == (150, 150)
    assert sandbox.stats()["audience_changes"]["vip"] == {"add": VIP, "drop": 150}
    assert _status(config)["vip"]["members"] == 100


def test_audiences_need_the_event_api(tmp_path: Path) -> None:
    config = base_config(
        tmp_path,
        destination={"transport": "pixel", "api_key": "k", "api_secret": None},
        audiences={"query": "audiences.sql"},
    )
    del config["destination"]["api_secret"]
    done = cli("audiences", "sync", "--config", str(write_config(tmp_path, config)))
    assert done.returncode == 2 and done.stdout == ""
    assert "needs destination.transport: events_api (this config has pixel)" in done.stderr


def _held_by_sandbox(sandbox: Any) -> dict[str, set[str]]:
    """Who each audience holds by what the sandbox accepted, in order: the members
    (email hash or customerid) whose last change was an add."""
    last: dict[tuple[str, str], str] = {}
    for record in sandbox.records():
        batch = record["batch"]
        ids = batch["user_identities"]
        member = ids.get("other") or ids["customerid"]
        for event in batch["events"]:
            change = event["data"]["custom_attributes"]
            last[change["audience_name"], member] = change["status"]
    held: dict[str, set[str]] = {}
    for (audience, member), status in last.items():
        if status == "add":
            held.setdefault(audience, set()).add(member)
    return held


def test_members_a_killed_run_may_have_added_are_dropped_when_they_leave(
    setup: tuple[Path, Any], tmp_path: Path
) -> None:
    config, sandbox = setup
    code, _, _ = _sync(config, env={CRASH_AT_ENV: "settle:2"})
    assert code == -9  # adds reached the sandbox, their answers never settled
    reached = _held_by_sandbox(sandbox)["vip"]
    assert reached
    # 20 VIPs leave before the rerun: each is dropped, whether its add arrived or not
    leaving = [hashlib.sha256(f"buyer{i}@example.com".encode()).hexdigest() for i in range(20)]
    with duckdb.connect(str(tmp_path / "ledger.duckdb"), read_only=True) as con:
        [(unanswered,)] = con.execute(
            "SELECT count(*) FROM audience_changes WHERE audience = 'vip' AND "
            "status = 'pending' AND member_key IN (SELECT unnest($1))",
            [leaving],
        ).fetchall()
    assert unanswered > 0
    _warehouse(tmp_path / "warehouse.duckdb", range(20, VIP), range(LAPSED))
    code, rerun, stderr = _sync(config)
    assert code == 0, stderr
    assert rerun["drops"] == 20 and rerun["superseded"] == unanswered
    held = _held_by_sandbox(sandbox)
    status = _status(config)
    assert {a: len(m) for a, m in held.items()} == {a: r["members"] for a, r in status.items()}
    assert status["vip"]["members"] == VIP - 20 and status["vip"]["pending"] == 0
    # those 20 are lapsed too: a lapsed add that shared a batch with a superseded vip add
    # is resent in a batch of its own, so Rokt may see its source_message_id twice
    assert sandbox.stats()["duplicate_audience_changes"] <= 20


def test_user_attributes_travel_hashed_and_the_run_is_in_the_ledger(
    setup: tuple[Path, Any], tmp_path: Path
) -> None:
    config, sandbox = setup
    (tmp_path / "audiences.sql").write_text(
        "SELECT audience_name, email, customerid, ' Ann ' AS firstname, 'gold' AS tier, "
        "'NY' AS state FROM segments"
    )
    code, report, stderr = _sync(config)
    assert code == 0, stderr
    batch = sandbox.records()[0]["batch"]
    attributes = batch["user_attributes"]
    assert attributes.pop("firstnamesha256") == hashlib.sha256(b"ann").hexdigest()
    assert (attributes.pop("tier"), attributes.pop("state")) == ("gold", "NY")
    assert attributes and all(isinstance(v, bool) for v in attributes.values())
    assert "Ann" not in json.dumps([r["batch"] for r in sandbox.records()])
    summary = cli("ledger", "summary", "--config", str(config), "--json")
    [run] = json.loads(summary.stdout)["runs"]
    assert (run["mode"], run["status"], run["accepted"]) == ("audiences", "succeeded", 375)

    requests = sandbox.stats()["requests"]
    (tmp_path / "audiences.sql").write_text(
        "SELECT audience_name, email, 9.5 AS amount FROM segments"
    )
    code, report, stderr = _sync(config)
    assert code == 2 and report is None
    assert "amount belong to a conversion" in stderr
    assert sandbox.stats()["requests"] == requests


def test_a_batch_over_128_kb_is_rejected_unsent_and_the_rest_delivered(
    setup: tuple[Path, Any], tmp_path: Path
) -> None:
    config, sandbox = setup
    wide = ", ".join(
        f"CASE WHEN customerid = 'cust-0' THEN repeat('x', 4000) END AS note{i}" for i in range(35)
    )
    (tmp_path / "audiences.sql").write_text(
        f"SELECT audience_name, email, customerid, {wide} FROM segments"
    )
    code, report, stderr = _sync(config)
    assert code == 1, stderr  # completed with rejections
    assert (report["rejected"], report["accepted"]) == (1, 374)
    sent = {r["batch"]["user_identities"].get("customerid") for r in sandbox.records()}
    assert "cust-0" not in sent and "cust-1" in sent
    assert _status(config)["suppress"]["rejected"] == 1


def test_a_schema_6_ledger_is_upgraded_with_its_audiences(
    setup: tuple[Path, Any], tmp_path: Path
) -> None:
    config, sandbox = setup
    assert _sync(config)[0] == 0
    before = _status(config)
    with duckdb.connect(str(tmp_path / "ledger.duckdb")) as con:  # as schema 6 left them
        con.execute("CREATE TABLE m AS SELECT * FROM audience_members")
        con.execute("CREATE TABLE c AS SELECT * EXCLUDE (attributes) FROM audience_changes")
        con.execute("DROP TABLE audience_members; DROP TABLE audience_changes")
        con.execute(
            "CREATE TABLE audience_members (environment VARCHAR, audience VARCHAR, "
            "member_key VARCHAR, identities VARCHAR, change_id VARCHAR, added_at TIMESTAMPTZ, "
            "PRIMARY KEY (environment, audience, member_key))"
        )
        con.execute("CREATE TABLE audience_changes AS SELECT * FROM c LIMIT 0")
        con.execute("ALTER TABLE audience_changes ADD PRIMARY KEY (environment, change_id)")
        con.execute("INSERT INTO audience_members SELECT * FROM m")
        con.execute("INSERT INTO audience_changes SELECT * FROM c; DROP TABLE m; DROP TABLE c")
        con.execute("UPDATE ledger_meta SET value = '6' WHERE key = 'schema_version'")
    requests = sandbox.stats()["requests"]
    code, again, stderr = _sync(config)
    assert code == 0 and (again["adds"], again["drops"]) == (0, 0), stderr
    assert sandbox.stats()["requests"] == requests
    assert _status(config) == before
    with duckdb.connect(str(tmp_path / "ledger.duckdb"), read_only=True) as con:
        meta = dict(con.sql("SELECT key, value FROM ledger_meta").fetchall())
        keys = con.sql(
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name LIKE 'audience_%' "
            "AND constraint_type = 'PRIMARY KEY'"
        ).fetchall()
    assert meta["schema_version"] == "7" and keys == [(0,)]


def test_faults_and_rejections_leave_each_change_accepted_once_or_rejected_once(
    tmp_path: Path, sandbox_factory: StartSandbox
) -> None:
    _warehouse(tmp_path / "warehouse.duckdb", range(VIP), range(LAPSED))
    faults = ["--burst-503", "0.2", "--storm-429", "0.1", "--retry-after-max", "0"]
    faults += ["--reset-rate", "0.1", "--reject-rate", "0.05", "--seed", "5"]
    sandbox = sandbox_factory(*faults)
    config = _config(tmp_path, sandbox.url)
    code, report, stderr = _sync(config)
    assert code == 1, stderr  # completed with rejections
    assert report["rejected"] > 0 and report["retries"] > 0 and report["pending"] == 0
    assert report["accepted"] + report["rejected"] == 375
    stats = sandbox.stats()
    assert stats["duplicate_audience_changes"] == 0
    assert sum(sum(c.values()) for c in stats["audience_changes"].values()) == report["accepted"]
    status = _status(config)
    assert sum(row["rejected"] for row in status.values()) == report["rejected"]
    held = _held_by_sandbox(sandbox)
    assert {a: len(m) for a, m in held.items()} == {a: r["members"] for a, r in status.items()}

    code, again, stderr = _sync(config)  # the rejected ones are known: not resent
    assert code == 0, stderr
    assert (again["adds"], again["requests"], again["rejected_known"]) == (0, 0, report["rejected"])


def test_a_run_in_slices_writes_each_ahead_and_sends_each_change_once(
    setup: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, sandbox = setup
    monkeypatch.setattr(run, "SLICE_CHANGES", 100)  # 375 changes: 4 slices
    written: list[int] = []
    record = Ledger.record_changes
    monkeypatch.setattr(
        Ledger,
        "record_changes",
        lambda self, changes, *rest: written.append(changes.height) or record(self, changes, *rest),
    )
    report = sync_audiences(config)
    assert len(written) == 4 and sum(written) == 375 and max(written) <= 100 + 1
    assert (report.batches, report.accepted, report.exit_code) == (VIP + 5, 375, 0)
    assert sandbox.stats()["duplicate_audience_changes"] == 0
    assert sum(row["members"] for row in _status(config).values()) == 375
