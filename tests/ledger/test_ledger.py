"""Ledger rules (docs/ledger.md): write-ahead pending, skip accepted and unchanged
rejected, resend pending/failed with the same request id, re-evaluate
rejected_local, one run at a time."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import polars as pl
import pytest
from conftest import base_config, cli, write_config

from connector.config import Config, Transport, load_config
from connector.digest import EXTENSIONS_OFF
from connector.engine.run import sync
from connector.errors import ConfigError
from connector.ledger import rows as ledger_rows
from connector.report import RunReport
from connector.transports import TRANSPORTS

SINCE, UNTIL = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)


def warehouse(tmp: Path, rows: list[dict[str, Any]]) -> Config:
    """A DuckDB file with `rows` as table `o`, and a config that sends them."""
    path = tmp / "warehouse.duckdb"
    path.unlink(missing_ok=True)
    frame = pl.DataFrame(rows)
    with duckdb.connect(str(path)) as con:
        con.register("frame", frame)
        con.execute("CREATE TABLE o AS SELECT * FROM frame")
    (tmp / "query.sql").write_text(
        "SELECT * FROM o WHERE event_time::TIMESTAMPTZ >= $since"
        " AND event_time::TIMESTAMPTZ < $until ORDER BY 1",
        encoding="utf-8",
    )
    config = base_config(tmp, destination={"max_attempts": 2, "retry_base_s": 0})
    return load_config(write_config(tmp, config))


def order(ref: str, **values: Any) -> dict[str, Any]:
    return {
        "confirmationref": ref,
        "email": f"{ref.lower()}@example.com",
        "conversiontype": "purchase",
        "amount": 10.0,
        "event_time": "2026-01-10T12:00:00Z",
    } | values


class Platform:
    """A scripted Event API: answers by a rule and records the request ids it saw."""

    def __init__(self, rule: Callable[[dict[str, Any]], str | None] = lambda b: None) -> None:
        self.rule = rule  # batch -> error message to reject it with, or None
        self.seen: list[dict[str, Any]] = []
        self.status = 202

    def __call__(self, request: httpx.Request) -> httpx.Response:
        batches = json.loads(request.content)
        self.seen += batches
        if self.status != 202:
            return httpx.Response(self.status)
        errors = [
            {"code": "bad", "message": message, "source_request_id": b["source_request_id"]}
            for b in batches
            if (message := self.rule(b)) is not None
        ]
        return httpx.Response(202, json={"errors": errors} if errors else {})

    def refs(self) -> list[str]:
        return [b["events"][0]["data"]["custom_attributes"]["confirmationref"] for b in self.seen]


def run(config: Config, platform: Platform, **options: Any) -> RunReport:
    return sync(config, SINCE, UNTIL, now=UNTIL, transport=httpx.MockTransport(platform), **options)


def ledger(config: Config) -> dict[str, tuple[str, str | None, int, str | None]]:
    with duckdb.connect(str(config.ledger.path), read_only=True) as con:
        rows = con.sql(
            "SELECT confirmationref, status, reason, attempts, request_id FROM ledger"
        ).fetchall()
    return {
        ref: (status, reason, attempts, request_id)
        for ref, status, reason, attempts, request_id in rows
    }


def test_pending_is_written_before_the_request_leaves(tmp_path: Path) -> None:
    config = warehouse(tmp_path, [order("A"), order("B")])
    seen_in_ledger: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        # the same process's database: opened with the ledger's own config
        with duckdb.connect(str(config.ledger.path), config=EXTENSIONS_OFF) as con:
            rows = con.sql("SELECT confirmationref, status FROM ledger").fetchall()
        seen_in_ledger.append(dict(rows))
        return httpx.Response(202)

    report = sync(config, SINCE, UNTIL, now=UNTIL, transport=httpx.MockTransport(handler))
    assert seen_in_ledger == [{"A": "pending", "B": "pending"}]
    assert report.accepted == 2
    assert {s for s, *_ in ledger(config).values()} == {"accepted"}


def test_rejected_is_skipped_until_its_payload_changes(tmp_path: Path) -> None:
    config = warehouse(tmp_path, [order("A"), order("B")])
    platform = Platform(lambda b: "no" if "B" in json.dumps(b) else None)
    first = run(config, platform)
    assert (first.accepted, first.rejected, first.exit_code) == (1, 1, 1)
    assert ledger(config)["B"][:2] == ("rejected", "bad: no")

    again = run(config, Platform())
    assert (again.requests, again.rows_skipped_ledger) == (0, 2)

    config = warehouse(tmp_path, [order("A"), order("B", amount=12.5)])  # B changed
    fixed = Platform()
    third = run(config, fixed)
    assert fixed.refs() == ["B"] and third.accepted == 1 and third.exit_code == 0
    assert ledger(config)["B"][0] == "accepted"


def test_failed_rows_are_resent_with_the_same_request_id(tmp_path: Path) -> None:
    config = warehouse(tmp_path, [order("A"), order("B")])
    down = Platform()
    down.status = 503
    first = run(config, down)
    assert (first.failed, first.requests, first.exit_code) == (2, 2, 1)  # max_attempts 2
    before = ledger(config)
    assert {v[0] for v in before.values()} == {"failed"}

    up = Platform()
    run(config, up)
    after = ledger(config)
    sent_ids = {b["source_request_id"] for b in up.seen}
    assert sent_ids == {before["A"][3], before["B"][3]}  # same source_request_id
    assert {v[0] for v in after.values()} == {"accepted"}
    assert after["A"][2] == 3  # attempts add up across runs


def attempts(config: Config) -> dict[str, list[tuple[int, str, int | None, str]]]:
    """Each conversion's attempts: (attempt, outcome, http_status, message)."""
    with duckdb.connect(str(config.ledger.path), read_only=True) as con:
        rows = con.sql(
            "SELECT confirmationref, attempt, outcome, http_status, message FROM attempts "
            "ORDER BY confirmationref, attempted_at, attempt"
        ).fetchall()
    history: dict[str, list[tuple[int, str, int | None, str]]] = {}
    for ref, *attempt in rows:
        history.setdefault(ref, []).append(tuple(attempt))  # type: ignore[arg-type]
    return history


def test_every_attempt_is_recorded_per_conversion_with_the_settle(tmp_path: Path) -> None:
    config = warehouse(tmp_path, [order("A"), order("B"), order("C")])
    answers = iter(
        [
            httpx.Response(503),
            httpx.Response(400, json={"errors": [{"code": "bad", "message": "no B"}]}),
            httpx.ReadTimeout("slow"),
            httpx.Response(202),
        ]
    )
    ids: dict[str, str] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        for batch in json.loads(request.content):
            ref = batch["events"][0]["data"]["custom_attributes"]["confirmationref"]
            ids[ref] = batch["source_request_id"]
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        if answer.status_code == 400:  # name B's batch: A and C are resent
            return httpx.Response(
                400,
                json={
                    "errors": [{"code": "bad", "message": "no B", "source_request_id": ids["B"]}]
                },
            )
        return answer

    config = config.model_copy(
        update={"destination": config.destination.model_copy(update={"max_attempts": 5})}
    )
    report = sync(config, SINCE, UNTIL, now=UNTIL, transport=httpx.MockTransport(handler))
    assert (report.accepted, report.rejected, report.requests) == (2, 1, 4)
    resent = "resent: HTTP 400 rejected other batches of it"
    for ref in ("A", "C"):
        assert attempts(config)[ref] == [
            (1, "retry", 503, "server error (HTTP 503)"),
            (2, "retry", 400, resent),
            (3, "retry", None, "timed out: ReadTimeout"),
            (4, "accepted", 202, "accepted"),
        ]
    assert attempts(config)["B"] == [
        (1, "retry", 503, "server error (HTTP 503)"),
        (2, "rejected", 400, "bad: no B"),
    ]
    state = ledger(config)
    assert (state["A"][0], state["A"][2], state["B"][0], state["B"][2]) == (
        "accepted",
        4,
        "rejected",
        2,
    )


def test_a_fatal_stop_records_the_attempts_it_made(tmp_path: Path) -> None:
    config = warehouse(tmp_path, [order("A")])
    answers = iter([httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(401)])
    transport = httpx.MockTransport(lambda _: next(answers))
    report = sync(config, SINCE, UNTIL, now=UNTIL, transport=transport)
    assert report.status == "failed"
    (_, _, _, last) = attempts(config)["A"][-1]
    assert [a[:3] for a in attempts(config)["A"]] == [(1, "retry", 429), (2, "failed", 401)]
    assert "credentials missing (HTTP 401)" in last
    assert ledger(config)["A"][:3] == ("failed", last, 2)


def test_rejected_local_is_re_evaluated_and_accepted_stays_accepted(tmp_path: Path) -> None:
    config = warehouse(tmp_path, [order("A"), order("B", email=None)])
    first = run(config, Platform())
    assert ledger(config)["B"][:2] == ("rejected_local", "missing_identity")
    assert first.rows_rejected_local == 1

    config = warehouse(tmp_path, [order("A", email=None), order("B")])  # B fixed, A broken
    platform = Platform()
    second = run(config, platform)
    assert platform.refs() == ["B"]
    assert ledger(config)["A"][0] == "accepted"  # an accepted conversion is never undone
    assert (second.accepted, second.rows_skipped_ledger, second.rows_rejected_local) == (1, 1, 0)


def test_dry_run_and_progress(tmp_path: Path) -> None:
    config = warehouse(tmp_path, [order(f"R{i}") for i in range(5)])
    seen: list[int] = []
    report = run(config, Platform(), dry_run=True, progress=lambda r: seen.append(r.rows_read))
    assert report.mode == "dry_run" and report.requests == 0 and seen[-1] == 5
    assert not config.ledger.path.exists()  # a dry run writes nothing
    done: list[int] = []
    report = run(config, Platform(), progress=lambda r: done.append(r.rows_done))
    assert done[-1] == report.rows_read == 5 and done == sorted(done)


def test_second_run_exits_4_while_the_ledger_is_held(tmp_path: Path) -> None:
    config = warehouse(tmp_path, [order("A")])
    with duckdb.connect(str(config.ledger.path)):  # another process holds the ledger
        result = cli("sync", "--config", str(tmp_path / "config.yaml"), "--since", "2026-01-01")
    assert result.returncode == 4
    assert "another run holds the ledger" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_record_nothing_accepted(tmp_path: Path, status: int) -> None:
    config = warehouse(tmp_path, [order("A"), order("B")])
    platform = Platform()
    platform.status = status
    report = run(config, platform)
    assert report.status == "failed" and report.exit_code == 3
    assert "credentials" in str(report.message)
    assert "accepted" not in {v[0] for v in ledger(config).values()}


def test_a_transport_without_a_registry_line_is_refused_before_the_ledger_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = warehouse(tmp_path, [order("A")])
    monkeypatch.delitem(TRANSPORTS, Transport.PIXEL)
    pixel = config.model_copy(
        update={"destination": config.destination.model_copy(update={"transport": "pixel"})}
    )
    with pytest.raises(ConfigError, match="not implemented yet"):
        run(pixel, Platform())
    assert not config.ledger.path.exists()


def test_ledger_file_is_owner_only(tmp_path: Path) -> None:
    config = warehouse(tmp_path, [order("A")])
    run(config, Platform())
    assert config.ledger.path.stat().st_mode & 0o777 == 0o600


def test_corrupt_ledger_stops_the_run_and_is_left_as_it_was(tmp_path: Path) -> None:
    config = warehouse(tmp_path, [order("A")])
    config.ledger.path.write_bytes(b"not a database" * 100)
    platform = Platform()
    with pytest.raises(ConfigError, match="starting a new ledger would send"):
        run(config, platform)
    assert platform.seen == [] and config.ledger.path.read_bytes() == b"not a database" * 100
    result = cli("sync", "--config", str(tmp_path / "config.yaml"), "--since", "2026-01-01")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_ledger_of_another_environment_or_newer_schema_stops_the_run(tmp_path: Path) -> None:
    config = warehouse(tmp_path, [order("A")])
    run(config, Platform())
    production = config.model_copy(
        update={"destination": config.destination.model_copy(update={"environment": "production"})}
    )
    platform = Platform()
    with pytest.raises(ConfigError, match="records environment 'development'"):
        run(production, platform)
    with duckdb.connect(str(config.ledger.path)) as con:
        con.execute("UPDATE ledger_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(ConfigError, match="schema version 99, newer"):
        run(config, platform)
    assert platform.seen == []


def test_a_failed_ledger_write_ends_the_run_with_a_clear_error_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ledger that refuses the settle (here: DuckDB rejects the statement, as it would
    a damaged file) fails the run with exit 3 and a message naming the file; the rows
    stay pending, and a run with a working ledger sends them with the same ids."""
    config = warehouse(tmp_path, [order("A"), order("B")])
    real_sql_file = ledger_rows.sql_file
    monkeypatch.setattr(
        ledger_rows,
        "sql_file",
        lambda name: "SELECT broken FROM" if name == "ledger_settle.sql" else real_sql_file(name),
    )
    platform = Platform()
    report = run(config, platform)
    assert report.status == "failed" and report.exit_code == 3
    assert f"writing answers to {config.ledger.path} failed" in str(report.message)
    assert {v[0] for v in ledger(config).values()} == {"pending"}
    first_ids = {v[3] for v in ledger(config).values()}
    monkeypatch.undo()
    again = Platform()
    assert run(config, again).exit_code == 0
    assert {b["source_request_id"] for b in again.seen} == first_ids
    assert {v[0] for v in ledger(config).values()} == {"accepted"}
