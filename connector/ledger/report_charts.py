"""The charts of `ledger report`: Altair (Vega-Lite) specs of the report's aggregates,
rendered offline to SVG by vl-convert (its own Vega, no browser, no network), each
ready to be inlined in one HTML page beside the others."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import altair as alt
import vl_convert as vlc

from connector.ledger.report_data import STATUSES, ReportData

WIDTH = 760
# Labels are measured in Liberation Sans (vl-convert's own), which has Arial's metrics:
# a browser drawing them in any of these fonts keeps them inside their chart.
FONT = "Liberation Sans, Arial, Helvetica, sans-serif"
COLORS = dict(zip(STATUSES, ["#2e7d32", "#1e88e5", "#c62828", "#ef6c00", "#8e24aa"], strict=True))
RUN_COLORS = {
    "succeeded": "#2e7d32",
    "completed_with_rejections": "#ef6c00",
    "failed": "#c62828",
    "interrupted": "#757575",
    "running": "#1e88e5",
}
REASON_CHARS = 60  # a longer reason is cut in the chart (the table has it whole)
UTC = alt.Scale(type="utc")
RUN_PADDING = timedelta(minutes=30)  # at least, either side of the runs
DAY = alt.Axis(format="%b %d")
_VL_VERSION = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
_ID = re.compile(r'\bid="([^"]+)"')


def _data(rows: list[dict[str, Any]]) -> alt.InlineData:
    return alt.InlineData(values=rows)


def _status_color(
    rows: list[dict[str, Any]], colors: dict[str, str] = COLORS, title: str = "status"
) -> alt.Color:
    """Each status in its own color on every chart; the legend lists those shown."""
    shown = [status for status in colors if any(row["status"] == status for row in rows)]
    scale = alt.Scale(domain=shown, range=[colors[status] for status in shown])
    return alt.Color("status:N", scale=scale, title=title, sort=shown)


def _days_axis(report: ReportData) -> alt.Axis:
    """Dates as `Nov 24`; a tick a day while a month or less is shown (not at noons)."""
    days = {row["event_day"] for row in report.days}
    if report.weekly or len(days) > 31:
        return DAY
    return alt.Axis(format="%b %d", tickCount={"interval": "day", "step": 1})


def days_chart(report: ReportData) -> alt.Chart:
    """Conversions per event day (or week), stacked by status."""
    unit = "week" if report.weekly else "day"
    chart: alt.Chart = (
        alt.Chart(_data(report.days), description=f"Conversions per event {unit}, by status")
        .mark_bar(aria=False)  # a label per bar of a year of days would double the page
        .encode(
            x=alt.X("event_day:T", title=f"event {unit} (UTC)", scale=UTC, axis=_days_axis(report)),
            x2="end:T",
            y=alt.Y("sum(conversions):Q", title="conversions", stack=True),
            color=_status_color(report.days),
            order=alt.Order("status_order:Q"),
        )
        .transform_calculate(
            status_order=f"indexof({list(STATUSES)!r}, datum.status)",
        )
        .properties(width=WIDTH, height=260)
    )
    return chart


def reasons_chart(report: ReportData) -> alt.Chart:
    """Conversions rejected or failed, by reason, the largest first."""
    rows = [
        {
            "label": r["reason"] if len(r["reason"]) <= REASON_CHARS else r["reason"][:59] + "…",
            "status": r["status"],
            "conversions": r["conversions"],
        }
        for r in report.reasons
    ]
    chart: alt.Chart = (
        alt.Chart(_data(rows))
        .mark_bar()
        .encode(
            y=alt.Y("label:N", sort="-x", title=None, axis=alt.Axis(labelLimit=420)),
            x=alt.X("conversions:Q", title="conversions"),
            color=_status_color(rows),
        )
        .properties(width=WIDTH - 420, height=max(60, 24 * len(rows)))
    )
    return chart


def delay_chart(report: ReportData) -> alt.Chart:
    """Accepted conversions by the time from their event to their acceptance."""
    chart: alt.Chart = (
        alt.Chart(_data(report.delay))
        .mark_bar(color="#2e7d32")
        .encode(
            x=alt.X(
                "delay:N",
                sort=alt.SortField("bucket"),
                title="event to acceptance",
                axis=alt.Axis(labelAngle=0),
            ),
            y=alt.Y("conversions:Q", title="accepted conversions"),
        )
        .properties(width=WIDTH, height=220)
    )
    return chart


def _run_time(report: ReportData) -> alt.Scale:
    """The runs' start times, with room either side: runs minutes apart read as times
    of day, not as milliseconds."""
    starts = [run["started_at"] for run in report.runs]
    pad = max((max(starts) - min(starts)) / 20, RUN_PADDING)
    edges = [(moment.timestamp() * 1000) for moment in (min(starts) - pad, max(starts) + pad)]
    return alt.Scale(type="utc", domain=edges)


def runs_chart(report: ReportData) -> alt.VConcatChart:
    """Each run by its start: its duration and the rows it read, colored by status."""
    rows = [
        {
            "started_at": run["started_at"].isoformat(),
            "status": run["status"],
            "duration_s": run["duration_s"],
            "rows_read": run["rows_read"],
        }
        for run in report.runs
    ]
    base = alt.Chart(_data(rows)).encode(
        x=alt.X("started_at:T", title="run started (UTC)", scale=_run_time(report)),
        color=_status_color(rows, RUN_COLORS, "run status"),
    )
    duration = base.mark_circle(size=60, opacity=0.9).encode(
        y=alt.Y("duration_s:Q", title="duration (s)")
    )
    read = base.mark_bar(size=4).encode(y=alt.Y("rows_read:Q", title="rows read"))
    return alt.vconcat(
        duration.properties(width=WIDTH, height=160), read.properties(width=WIDTH, height=160)
    )


def requests_chart(report: ReportData) -> alt.Chart:
    """HTTP requests (attempts, retries included) and retries of each run."""
    rows = [
        {"started_at": run["started_at"].isoformat(), "what": what, "count": run[column]}
        for run in report.runs
        for what, column in (("requests (attempts)", "requests"), ("retries", "retries"))
    ]
    chart: alt.Chart = (
        alt.Chart(_data(rows))
        .mark_line(point=True)
        .encode(
            x=alt.X("started_at:T", title="run started (UTC)", scale=_run_time(report)),
            y=alt.Y("count:Q", title="per run"),
            color=alt.Color(
                "what:N",
                title=None,
                scale=alt.Scale(range=["#1e88e5", "#ef6c00"]),
            ),
        )
        .properties(width=WIDTH, height=200)
    )
    return chart


def audiences_chart(report: ReportData) -> alt.Chart:
    """Audience membership changes per day, stacked by add or drop."""
    chart: alt.Chart = (
        alt.Chart(_data(report.audiences or []))
        .mark_bar()
        .encode(
            x=alt.X("day:T", title="day (UTC)", scale=UTC, timeUnit="utcyearmonthdate", axis=DAY),
            y=alt.Y("sum(changes):Q", title="changes"),
            color=alt.Color("change:N", title="change"),
        )
        .properties(width=WIDTH, height=200)
    )
    return chart


def svg(chart: alt.Chart | alt.VConcatChart, prefix: str) -> str:
    """The chart as an SVG element, its ids (clip paths, gradients) prefixed so that
    several charts share one page without one's reference reaching another's."""
    version = _VL_VERSION if _VL_VERSION in vlc.get_vegalite_versions() else None
    spec = chart.configure(font=FONT).configure_legend(labelLimit=0).to_dict()
    drawn = vlc.vegalite_to_svg(spec, vl_version=version, allowed_base_urls=[])
    for name in set(_ID.findall(drawn)):
        drawn = drawn.replace(f'id="{name}"', f'id="{prefix}-{name}"')
        drawn = drawn.replace(f"url(#{name})", f"url(#{prefix}-{name})")
        drawn = drawn.replace(f'href="#{name}"', f'href="#{prefix}-{name}"')
    return drawn
