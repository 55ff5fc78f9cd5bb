"""`ledger report` over ledgers built by hand (real DuckDB files in the ledger's schema):
the numbers it shows are the ledger's, by window; ledger text reaches the page escaped;
the audience section appears only with an audience table; the file is owner-only and
never written through a link, into a directory, or under another suffix."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

import duckdb
import pytest
from conftest import base_config, cli, write_config

from connector.ledger import Ledger
from connector.ledger.audit import Audit

NOW = datetime(2026, 11, 1, tzinfo=UTC)
# 40 conversions a day over 2026-10-01..10: 36 accepted, 2 rejected_local, 1 rejected,
# 1 failed; an accepted one's event was 10 minutes before it was accepted.
ROWS = """
INSERT INTO ledger (environment, confirmationref, status, reason, attempts, run_id,
                    event_time, first_seen_at, accepted_at)
SELECT 'development', 'REF-' || lpad(i::VARCHAR, 5, '0'),
       CASE WHEN i % 40 < 36 THEN 'accepted' WHEN i % 40 < 38 THEN 'rejected_local'
            WHEN i % 40 = 38 THEN 'rejected' ELSE 'failed' END,
       CASE WHEN i % 40 BETWEEN 36 AND 37 THEN 'negative_amount'
            WHEN i % 40 = 38 THEN $message WHEN i % 40 = 39 THEN 'ConnectError' END,
       CASE WHEN i % 40 < 36 THEN 1 WHEN i % 40 = 39 THEN 8 ELSE 0 END,
       'run-1',
       TIMESTAMPTZ '2026-10-01 00:00:00+00' + to_seconds(i * 2160),
       TIMESTAMPTZ '2026-10-01 00:00:00+00' + to_seconds(i * 2160 + 60),
       CASE WHEN i % 40 < 36
            THEN TIMESTAMPTZ '2026-10-01 00:00:00+00' + to_seconds(i * 2160 + 600) END
FROM range($rows) AS r(i)
"""
RUN = """
INSERT INTO runs (run_id, mode, status, environment, started_at, finished_at, rows_read,
                  accepted, requests, retries, duration_s)
VALUES ($run_id, 'sync', $status, 'development', $started, $started + INTERVAL 1 MINUTE,
        400, 360, 5, 1, 60.0)
"""


def build(tmp: Path, rows: int = 400, message: str = "BAD_REQUEST: bad value") -> Path:
    """A ledger of `rows` conversions (and two runs), with its config; the config's path."""
    path = tmp / "ledger.duckdb"
    Ledger.open(path, "development").close()
    with duckdb.connect(str(path)) as con:
        con.execute(ROWS, {"rows": rows, "message": message})
        for run_id, status, started in (
            ("run-1", "failed", datetime(2026, 10, 5, tzinfo=UTC)),
            ("run-2", "completed_with_rejections", datetime(2026, 10, 11, tzinfo=UTC)),
        ):
            con.execute(RUN, {"run_id": run_id, "status": status, "started": started})
    (tmp / "query.sql").write_text("SELECT 1 WHERE $since < $until", encoding="utf-8")
    return write_config(tmp, base_config(tmp))


def report(tmp: Path, now: datetime = NOW, **window: datetime) -> tuple[dict[str, object], str]:
    with Audit.open(tmp / "ledger.duckdb", "development") as audit:
        written = audit.report(tmp / "report.html", now=now, **window)
    return written, (tmp / "report.html").read_text(encoding="utf-8")


def metric(page: str, name: str) -> str:
    found = re.search(rf'data-metric="{name}">([^<]*)<', page)
    assert found, name
    return found[1]


def test_the_headline_is_the_ledgers_counts(tmp_path: Path) -> None:
    build(tmp_path)
    written, page = report(tmp_path)
    assert written["conversions"] == 400
    assert [metric(page, m) for m in ("conversions", "accepted", "pending", "failed")] == [
        "400",
        "360",
        "0",
        "10",
    ]
    assert metric(page, "rejected") == "10" and metric(page, "rejected_local") == "20"
    assert "90.0% of all" in page
    assert metric(page, "last_run") == "completed_with_rejections"  # run-2, the latest
    assert "Median about 10 min; 90% within 10 min" in page  # accepted 10 min after
    # every day charted: 10 days by 4 statuses, each a bar
    days = re.search(r'data-chart="days">(.*?)</figure>', page, re.S)
    assert days and len(re.findall(r"<path[^>]*fill=\"#", days[1].split("mark-rect")[1])) >= 40


def test_the_window_keeps_conversions_by_event_time_and_runs_by_start(tmp_path: Path) -> None:
    build(tmp_path)
    since, until = datetime(2026, 10, 3, tzinfo=UTC), datetime(2026, 10, 6, tzinfo=UTC)
    written, page = report(tmp_path, since=since, until=until)
    assert written["conversions"] == 120 and written["runs"] == 1  # 3 days; run-1 started 10-05
    assert metric(page, "accepted") == "108" and metric(page, "last_run") == "failed"
    assert "event times from 2026-10-03 00:00 UTC to 2026-10-06 00:00 UTC" in page


def test_reasons_show_their_hint_and_first_refs(tmp_path: Path) -> None:
    build(tmp_path)
    _, page = report(tmp_path)
    table = page.split('id="reasons"')[1].split("</section>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    cells = [[unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in rows]
    assert cells[0][:3] == ["rejected_local", "negative_amount", "20"]
    assert cells[0][3].startswith("amount is negative")
    assert cells[0][4] == "REF-00036, REF-00037, REF-00076"
    assert {tuple(c[:3]) for c in cells[1:]} == {
        ("rejected", "BAD_REQUEST: bad value", "10"),
        ("failed", "ConnectError", "10"),
    }


def test_ledger_text_reaches_the_page_escaped(tmp_path: Path) -> None:
    build(tmp_path, message='<script>alert("x")</script><img src=x onerror=1>')
    _, page = report(tmp_path)
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_nothing_on_the_page_is_fetched(tmp_path: Path) -> None:
    build(tmp_path)
    _, page = report(tmp_path)
    for tag in ("<script", "<link", "<img", "<iframe", "<object", "<embed", "@import"):
        assert tag not in page.lower()
    references = re.findall(r'(?:src|href)="([^"]*)"', page) + re.findall(r"url\(([^)]*)\)", page)
    assert all(ref.startswith("#") for ref in references), references


def test_audience_changes_appear_only_when_the_ledger_has_them(tmp_path: Path) -> None:
    build(tmp_path)
    assert 'id="audiences"' not in report(tmp_path)[1]
    with duckdb.connect(str(tmp_path / "ledger.duckdb")) as con:
        con.execute(
            "INSERT INTO audience_changes (environment, change_id, audience, member_key, "
            "action, seq, status, run_id, identities, event_ms, recorded_at, settled_at) "
            "SELECT 'development', 'c' || i, CASE WHEN i < 5 THEN 'vip' ELSE 'lapsed' END, "
            "'m' || i, CASE WHEN i % 3 = 0 THEN 'drop' ELSE 'add' END, 1, 'accepted', 'r', "
            "'{}', 0, TIMESTAMPTZ '2026-10-01 00:00:00+00', "
            "TIMESTAMPTZ '2026-10-02 00:00:00+00' + to_seconds(i * 3600) FROM range(8) r(i)"
        )
    section = report(tmp_path)[1].split('id="audiences"')[1].split("</section>")[0]
    assert "<svg" in section
    rows = re.findall(r"<tr><td>(\w+)</td>((?:<td[^>]*>[^<]*</td>)+)</tr>", section)
    counts = {name: re.findall(r">([^<]*)<", cells)[::2] for name, cells in rows}
    assert counts["vip"][:3] == ["3", "2", "5"] and counts["lapsed"][:3] == ["2", "1", "3"]


def test_a_long_span_is_charted_by_week(tmp_path: Path) -> None:
    build(tmp_path, rows=20_000)  # 500 days from 2026-10-01
    assert "Conversions per event day, by status" in report(tmp_path)[1]  # to NOW: 31 days
    _, page = report(tmp_path, now=datetime(2028, 3, 1, tzinfo=UTC))
    assert "Conversions per event week, by status" in page


def test_an_empty_ledger_says_so(tmp_path: Path) -> None:
    build(tmp_path, rows=0)
    with duckdb.connect(str(tmp_path / "ledger.duckdb")) as con:
        con.execute("DELETE FROM runs")
    written, page = report(tmp_path)
    assert written["conversions"] == 0 and metric(page, "conversions") == "0"
    assert "No conversions in this window." in page and "No run in this window." in page
    assert "<svg" not in page


def test_the_file_is_owner_only_and_never_written_through_a_link(tmp_path: Path) -> None:
    config = build(tmp_path)
    command = ["ledger", "report", "--config", str(config), "--out"]
    victim = tmp_path / "victim.txt"
    victim.write_text("someone else's\n", encoding="utf-8")
    link = tmp_path / "link.html"
    link.symlink_to(victim)
    refused = cli(*command, str(link))
    assert refused.returncode == 2 and "is a symbolic link" in refused.stderr
    assert victim.read_text(encoding="utf-8") == "someone else's\n"
    (tmp_path / "folder.html").mkdir()
    assert cli(*command, str(tmp_path / "folder.html")).returncode == 2
    wrong = cli(*command, str(tmp_path / "report.csv"))
    assert wrong.returncode == 2 and "must end in .html" in wrong.stderr
    backwards = cli(
        *command, str(tmp_path / "r.html"), "--since", "2026-10-05", "--until", "2026-10-01"
    )
    assert backwards.returncode == 2 and "must be before --until" in backwards.stderr

    out = tmp_path / "report.html"
    out.write_text("an older report, readable by all", encoding="utf-8")
    out.chmod(0o644)
    written = cli(*command, str(out))
    assert written.returncode == 0, written.stderr
    assert "wrote a report of 400 conversions (360 accepted) and 2 runs to" in written.stdout
    assert out.stat().st_mode & 0o777 == 0o600 and "<svg" in out.read_text(encoding="utf-8")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial file


@pytest.mark.parametrize("option", ["--since", "--until"])
def test_a_wrong_time_is_a_usage_error(tmp_path: Path, option: str) -> None:
    config = build(tmp_path)
    result = cli("ledger", "report", "--config", str(config), "--out", "r.html", option, "soon")
    assert result.returncode == 2 and f"{option}: expected an ISO date" in result.stderr
