"""`rokt-connector ledger report` as its reader sees it: two syncs of the example
warehouse into the sandbox (rejections by the connector and the platform, retries),
the page written by the CLI, then opened in headless Chromium (Debian's `chromium`)
with every network request sent to a closed port: the charts are drawn (SVG marks, as
many as the ledger has days, reasons and runs), the numbers shown are the ledger's, and
a screenshot of the page is taken."""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
from conftest import SandboxProcess, cli, sync_config

pytestmark = pytest.mark.e2e
INSTALL = "apt-get install -y --no-install-recommends chromium fonts-liberation"
FLAGS = [
    *("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"),
    *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
    # nothing leaves the machine: requests go to a closed port, no name is resolved
    "--proxy-server=127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(
            "the report is tested in a real browser, and `chromium` is not installed: "
            f"`{INSTALL}` (as root; .ci/run does it where it is missing)"
        )
    return found


@dataclass
class Page(HTMLParser):
    """What the browser shows: the headline numbers, and per chart its SVGs and marks
    (the elements inside Vega's `role-mark` groups: bars, points, lines)."""

    metrics: dict[str, str] = field(default_factory=dict)
    svgs: dict[str, int] = field(default_factory=dict)
    marks: dict[str, dict[str, int]] = field(default_factory=dict)
    reasons: list[list[str]] = field(default_factory=list)
    _open: list[tuple[str, str]] = field(default_factory=list)  # (tag, class)
    _chart: str = ""
    _metric: str = ""
    _cells: list[str] | None = None
    _section: str = ""

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        css = attributes.get("class") or ""
        if tag == "section":
            self._section = attributes.get("id") or ""
        if tag == "figure":
            self._chart = attributes.get("data-chart") or ""
        if tag == "svg" and self._chart:
            self.svgs[self._chart] = self.svgs.get(self._chart, 0) + 1
        if self._open and "role-mark" in self._open[-1][1] and tag != "g":
            kind = self._open[-1][1].split()[0]  # mark-rect, mark-symbol, mark-line
            counts = self.marks.setdefault(self._chart, {})
            counts[kind] = counts.get(kind, 0) + 1
        if "data-metric" in attributes:
            self._metric = attributes["data-metric"] or ""
        if tag == "tr" and self._section == "reasons" and not self._chart:
            self._cells = []
        if tag == "td" and self._cells is not None:
            self._cells.append("")
        self._open.append((tag, css))

    def handle_endtag(self, tag: str) -> None:
        while self._open and self._open.pop()[0] != tag:
            pass
        if tag == "figure":
            self._chart = ""
        if tag == "tr" and self._cells:
            self.reasons.append(self._cells)
        if tag == "tr":
            self._cells = None

    def handle_data(self, data: str) -> None:
        if self._metric:
            self.metrics[self._metric] = data
            self._metric = ""
        if self._cells:
            self._cells[-1] += data


@dataclass(frozen=True)
class Written:
    config: Path
    ledger: Path
    html: Path


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, example_dir: Path) -> Written:
    tmp = tmp_path_factory.mktemp("report")
    sandbox = SandboxProcess("--reject-rate", "0.05", "--fail-rate", "0.1", "--seed", "3")
    try:
        config = sync_config(tmp, example_dir, sandbox.url, chunk_rows=500)
        for since, until in (("2026-09-01", "2026-10-20"), ("2026-10-20", "2026-11-02")):
            run = cli("sync", "--config", str(config), "--since", since, "--until", until)
            assert run.returncode == 1, run.stderr  # the example's dirty rows are rejected
    finally:
        sandbox.stop()
    html = tmp / "report.html"
    result = cli("ledger", "report", "--config", str(config), "--out", str(html))
    assert result.returncode == 0, result.stderr
    return Written(config, tmp / "ledger.duckdb", html)


def ledger(written: Written, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(written.ledger), read_only=True) as con:
        return con.sql(sql).fetchall()


def browse(written: Written, *args: str) -> subprocess.CompletedProcess[str]:
    profile = written.html.parent / "profile"
    shutil.rmtree(profile, ignore_errors=True)
    return subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *args, written.html.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def page(written: Written) -> Page:
    shown = browse(written, "--dump-dom")
    assert shown.returncode == 0 and "</html>" in shown.stdout, shown.stderr[-2000:]
    parsed = Page()
    parsed.feed(shown.stdout)
    return parsed


def test_the_headline_numbers_are_the_ledgers(written: Written, page: Page) -> None:
    by_status = dict(ledger(written, "SELECT status, count(*) FROM ledger GROUP BY status"))
    total = sum(int(n) for n in by_status.values())  # type: ignore[call-overload]
    assert page.metrics["conversions"] == f"{total:,}"
    for status in ("accepted", "pending", "failed", "rejected", "rejected_local"):
        assert page.metrics[status] == f"{by_status.get(status, 0):,}", status
    assert by_status["rejected"] and by_status["rejected_local"]  # both kinds are shown
    [(last,)] = ledger(written, "SELECT status FROM runs ORDER BY started_at DESC LIMIT 1")
    assert page.metrics["last_run"] == last


def test_every_chart_is_drawn_with_a_mark_per_value(written: Written, page: Page) -> None:
    assert page.svgs == dict.fromkeys(["days", "reasons", "delay", "runs", "requests"], 1)
    [(groups,)] = ledger(
        written,
        "SELECT count(DISTINCT (epoch_us(event_time) // 86400000000, status)) FROM ledger "
        "WHERE event_time < TIMESTAMPTZ '2026-11-02 00:00:00+00'",
    )
    assert page.marks["days"]["mark-rect"] == groups  # one bar per day and status
    [(reasons,)] = ledger(
        written,
        "SELECT count(DISTINCT (status, reason)) FROM ledger "
        "WHERE status IN ('rejected_local', 'rejected', 'failed')",
    )
    assert page.marks["reasons"]["mark-rect"] == min(reasons, 12)  # type: ignore[call-overload]
    assert page.marks["delay"]["mark-rect"] == 10  # a bar per bucket
    [(runs,)] = ledger(written, "SELECT count(*) FROM runs")
    assert runs == 2
    assert page.marks["runs"] == {"mark-symbol": runs, "mark-rect": runs}  # duration, rows
    assert page.marks["requests"]["mark-line"] == 2  # requests and retries


def test_the_reasons_table_counts_what_the_ledger_holds(written: Written, page: Page) -> None:
    held = {
        (status, reason): f"{n:,}"
        for status, reason, n in ledger(
            written,
            "SELECT status, reason, count(*) FROM ledger "
            "WHERE status IN ('rejected_local', 'rejected', 'failed') GROUP BY ALL",
        )
    }
    shown = {(row[0], row[1]): row[2] for row in page.reasons}
    assert len(shown) == min(len(held), 12) and shown.items() <= held.items()
    hints = {row[1]: row[3] for row in page.reasons}
    assert hints["missing_identity"].startswith("no email or email_sha256")


def test_a_screenshot_shows_the_page(written: Written) -> None:
    shot = written.html.parent / "report.png"
    taken = browse(written, "--hide-scrollbars", "--window-size=1280,2200", f"--screenshot={shot}")
    assert taken.returncode == 0, taken.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, 2200)
    assert len(data) > 100_000  # charts and text, not a blank page
