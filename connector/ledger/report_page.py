"""The page of `ledger report`: one self-contained HTML document (inline CSS, the charts
as inline SVG, no script, nothing fetched from anywhere) that reads on a laptop screen
and prints; every value from the ledger is escaped."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from html import escape
from typing import Any

from connector.ledger import report_charts as charts
from connector.ledger.report_data import ReportData

LATEST_RUNS = 20  # the runs listed in the table
CSS = """
:root { color-scheme: light; --ink: #1d2330; --muted: #5b6475; --line: #d9dde5; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #f5f6f8;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", sans-serif; }
main { max-width: 1000px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 6px; padding-top: 12px; border-top: 1px solid var(--line); }
p.meta, p.lead, p.note, footer { color: var(--muted); margin: 4px 0 12px; }
code { font-size: 90%; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr));
  gap: 10px; margin: 18px 0 8px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card .label { color: var(--muted); font-size: 13px; }
.card .n { display: block; font-size: 24px; font-weight: 600; }
.card .sub { font-size: 13px; color: var(--muted); }
.card.accepted .n { color: #2e7d32; } .card.failed .n { color: #c62828; }
.card.last { grid-column: span 2; }
.card.last .n { font-size: 19px; }
figure { margin: 8px 0; overflow-x: auto; }
figure svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 8px 0; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: #eef0f4; font-weight: 600; }
th.num { text-align: right; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.reason { min-width: 140px; max-width: 300px; overflow-wrap: break-word; }
.scroll { overflow-x: auto; }
td.time { white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
p.empty { padding: 18px; border: 1px dashed var(--line); color: var(--muted); }
@media print {
  @page { size: A4; margin: 12mm; }
  body { background: #fff; font-size: 11pt; }
  main { max-width: 100%; padding: 0; }
  figure, tr, .card { break-inside: avoid; }
  h2 { break-after: avoid; }
  figure, .scroll { overflow: visible; }
  table { font-size: 9pt; }
}
"""


def _n(value: int | float | None) -> str:
    return "" if value is None else f"{value:,}"


def _time(moment: datetime | None, zone: str = " UTC") -> str:
    return "" if moment is None else f"{moment:%Y-%m-%d %H:%M}{zone}"


def span(seconds: float | None) -> str:
    """A duration for people: `45 s`, `12 min`, `3.4 h`, `2.1 days`."""
    if seconds is None:
        return ""
    for limit, unit, size in ((60, "s", 1), (3600, "min", 60), (86400, "h", 3600)):
        if abs(seconds) < limit:
            value = seconds / size
            return f"{value:.0f} {unit}" if unit != "h" else f"{value:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _card(metric: str, label: str, value: int | None, sub: str = "", kind: str = "") -> str:
    return (
        f'<div class="card {kind}"><span class="label">{escape(label)}</span>'
        f'<span class="n" data-metric="{metric}">{_n(value)}</span>'
        f'<span class="sub">{escape(sub)}</span></div>'
    )


def _table(head: list[str], rows: list[list[str]], classes: dict[int, str]) -> str:
    """A table whose cells are given as HTML (escaped by the caller); `classes` names
    the class of some columns (`num`: right-aligned figures)."""
    cls = [f' class="{classes[i]}"' if i in classes else "" for i in range(len(head))]
    header = "".join(f"<th{c}>{escape(h)}</th>" for c, h in zip(cls, head, strict=True))
    body = "".join(
        "<tr>" + "".join(f"<td{c}>{v}</td>" for c, v in zip(cls, row, strict=True)) + "</tr>"
        for row in rows
    )
    return (
        f'<div class="scroll"><table><thead><tr>{header}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _figure(name: str, chart: Any) -> str:
    return f'<figure data-chart="{name}">{charts.svg(chart, name)}</figure>'


def _window(report: ReportData) -> str:
    if report.since is None and report.until is None:
        return "every event time"
    since = _time(report.since) if report.since else "the first"
    until = _time(report.until) if report.until else "the last"
    return f"event times from {since} to {until} (exclusive)"


def _headline(report: ReportData) -> str:
    by = report.by_status
    share = report.accepted_share
    cards = [
        _card("conversions", "Conversions", report.conversions, f"{_n(report.attempts)} attempts"),
        _card(
            "accepted",
            "Accepted",
            by["accepted"],
            "" if share is None else f"{share:.1%} of all",
            "accepted",
        ),
        _card("pending", "Pending now", by["pending"], "sent, no answer recorded yet"),
        _card(
            "failed",
            "Failed now",
            by["failed"],
            "the next sync sends them again",
            "failed" if by["failed"] else "",
        ),
        _card("rejected", "Rejected by the platform", by["rejected"]),
        _card("rejected_local", "Rejected by the connector", by["rejected_local"], "never sent"),
    ]
    if report.runs:
        last = report.runs[0]
        took = f", took {span(last['duration_s'])}" if last["duration_s"] is not None else ""
        cards.append(
            '<div class="card last"><span class="label">Last run</span>'
            f'<span class="n" data-metric="last_run">{escape(last["status"])}</span>'
            f'<span class="sub">{escape(last["mode"])} started {_time(last["started_at"])}'
            f"{took}; {_n(last['rows_read'])} rows read, {_n(last['accepted'])} accepted"
            "</span></div>"
        )
    return f'<section id="headline"><div class="cards">{"".join(cards)}</div></section>'


def _days(report: ReportData) -> str:
    unit = "week" if report.weekly else "day"
    left = report.conversions - report.charted_days
    note = (
        f'<p class="note">{_n(left)} conversions have no event {unit} up to today (no event '
        "time, or one in the future) and are not in the chart.</p>"
        if left
        else ""
    )
    chart = _figure("days", charts.days_chart(report)) if report.days else _empty()
    return (
        f'<section id="days"><h2>Conversions per event {unit}, by status</h2>'
        f'<p class="lead">Each conversion counted once, in its current status.</p>'
        f"{chart}{note}</section>"
    )


def _reasons(report: ReportData) -> str:
    if not report.reasons:
        body = '<p class="empty">No conversion was rejected or failed.</p>'
    else:
        rows = [
            [
                escape(r["status"]),
                escape(r["reason"]),
                _n(r["conversions"]),
                escape(r["hint"]),
                escape(", ".join(r["examples"] or ())),
            ]
            for r in report.reasons
        ]
        head = ["status", "reason", "conversions", "what it means", "e.g."]
        table = _table(head, rows, {1: "reason", 2: "num"})
        body = _figure("reasons", charts.reasons_chart(report)) + table
    warnings = ""
    if report.warnings:
        rows = [
            [escape(w["warning"]), _n(w["conversions"]), escape(w["hint"])] for w in report.warnings
        ]
        head = ["field warning", "conversions", "what it means"]
        warnings = (
            '<section id="warnings"><h3>Sent without a field</h3>'
            f"{_table(head, rows, {1: 'num'})}</section>"
        )
    return (
        '<section id="reasons"><h2>Rejections by reason</h2>'
        f'<p class="lead">{_n(report.reasons_total)} conversions rejected or failed; the '
        f"{len(report.reasons)} largest reasons, with the first refs of each.</p>"
        f"{body}</section>{warnings}"
    )


def _delay(report: ReportData) -> str:
    accepted = sum(row["conversions"] for row in report.delay)
    lead = "Accepted conversions by the time from their event to the attempt that was accepted."
    if report.delay_quantiles:
        median, p90, p99 = (span(q) for q in report.delay_quantiles)
        lead += f" Median about {median}; 90% within {p90}; 99% within {p99}."
    chart = _figure("delay", charts.delay_chart(report)) if accepted else _empty()
    return (
        f'<section id="delay"><h2>Time from event to acceptance</h2><p class="lead">'
        f"{escape(lead)}</p>{chart}</section>"
    )


def _runs(report: ReportData) -> str:
    if not report.runs:
        return (
            '<section id="runs"><h2>Runs</h2><p class="empty">No run in this window.</p></section>'
        )
    shown = len(report.runs)
    of = (
        f"the latest {shown} of {_n(report.runs_total)}"
        if shown < report.runs_total
        else "every run"
    )
    rows = [
        [
            _time(r["started_at"], ""),
            escape(r["mode"]),
            escape(r["status"]).replace("_", "_<wbr>"),  # may break after an underscore
            _n(r["exit_code"]),
            span(r["duration_s"]),
            *(_n(r[k]) for k in ("rows_read", "accepted", "rejected", "failed")),
            *(_n(r[k]) for k in ("rows_rejected_local", "rows_skipped_ledger", "requests")),
            _n(r["retries"]),
        ]
        for r in report.runs[:LATEST_RUNS]
    ]
    head = ["started (UTC)", "mode", "status", "exit", "took", "rows read", "accepted"]
    head += ["rejected", "failed", "rejected locally", "skipped", "requests", "retries"]
    table = _table(head, rows, {0: "time"} | dict.fromkeys(range(3, len(head)), "num"))
    return (
        '<section id="runs"><h2>Runs over time</h2>'
        f'<p class="lead">Duration and rows read of {of} runs, by exit status.</p>'
        + _figure("runs", charts.runs_chart(report))
        + "<h2>Retries and attempts per run</h2>"
        '<p class="lead">HTTP requests made (each attempt, retries included) and retries.</p>'
        + _figure("requests", charts.requests_chart(report))
        + f"<h2>Latest runs</h2>{table}</section>"
    )


def _audiences(report: ReportData) -> str:
    if report.audiences is None:
        return ""
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in report.audiences:
        totals[row["audience"]][row["change"]] += row["changes"]
        totals[row["audience"]][row["status"]] += row["changes"]
    rows = [
        [escape(name), *(_n(t[k]) for k in ("add", "drop", "accepted", "pending", "failed"))]
        for name, t in sorted(totals.items())
    ]
    chart = _figure("audiences", charts.audiences_chart(report)) if rows else _empty()
    head = ["audience", "adds", "drops", "accepted", "pending", "failed"]
    table = _table(head, rows, dict.fromkeys(range(1, len(head)), "num"))
    return f'<section id="audiences"><h2>Audience changes</h2>{chart}{table}</section>'


def _empty() -> str:
    return '<p class="empty">No conversions in this window.</p>'


def page(report: ReportData, version: str) -> str:
    """The whole report as one HTML document."""
    title = f"rokt-connector: conversions of {report.ledger} ({report.environment})"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
        "<h1>What became of the conversions</h1>"
        f'<p class="meta">Ledger <code>{escape(report.ledger)}</code>, environment '
        f"<code>{escape(report.environment)}</code>; {escape(_window(report))}. "
        f"As of {_time(report.now)}.</p>"
        + _headline(report)
        + _days(report)
        + _reasons(report)
        + _delay(report)
        + _runs(report)
        + _audiences(report)
        + f"<footer><p>Written by rokt-connector {escape(version)} from its ledger, which "
        "holds no raw PII: conversions appear by their confirmationref only.</p></footer>"
        "</main></body></html>\n"
    )
