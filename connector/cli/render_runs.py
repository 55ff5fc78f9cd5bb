"""How the reports of validate, sync and backfill (and a backfill's plan) read on a
terminal: tables and lines, through `render`."""

from __future__ import annotations

from pathlib import Path

from connector.backfill_report import BackfillPlan, BackfillReport
from connector.cli.render import (
    ISO,
    cell,
    clip,
    duration,
    new_table,
    say,
    span,
    stdout,
    table,
    when,
)
from connector.report import COUNTS, RunReport, ValidationReport
from connector.spec import HINTS, REASONS, WARNINGS

DIFFERING = (
    "a duplicate confirmationref whose values differ from the first row's: only the "
    "first was sent; fix the source (a sync fails on each the first time)"
)
CHANGED = (
    "accepted before, payload now differs: not resent (Rokt deduplicates by "
    "confirmationref; see the README on corrections)"
)
# A run's rows by outcome: table headers, and RunReport fields (the ledger's runs
# columns). `rej. local`: by the connector's checks; `skipped`: the ledger had them.
ROW_COUNTS = {
    "read": "rows_read",
    "accepted": "accepted",
    "rejected": "rejected",
    "rej. local": "rows_rejected_local",
    "skipped": "rows_skipped_ledger",
    "failed": "failed",
}


def _print_amounts(amounts: list[dict[str, object]]) -> None:
    result = new_table("amount per currency (valid rows)")
    for name in ("currency", "rows", "min", "median", "max"):
        result.add_column(name, justify="left" if name == "currency" else "right", no_wrap=True)
    for row in amounts:
        result.add_row(*(cell("-" if v is None else v) for v in row.values()))
    stdout.print(result)


def print_validation(report: ValidationReport, config_path: Path) -> None:
    say(f"Validated [bold]{config_path}[/]: window [{report.since:{ISO}}, {report.until:{ISO}})")
    result = new_table()
    result.add_column("rows", no_wrap=True)
    result.add_column("count", justify="right", no_wrap=True)
    result.add_column("what to do / examples", overflow="fold")
    result.add_row("read", str(report.rows_read), "")
    result.add_row("valid (would be sent)", str(report.valid), "")
    result.add_row("duplicate confirmationref", str(report.duplicates), "the first row wins")
    if report.duplicates_differing:
        examples = ", ".join(report.differing_examples)
        result.add_row(
            "  unlike the first",
            str(report.duplicates_differing),
            f"{DIFFERING}; e.g. {examples}",
        )
    result.add_row("settled in the ledger", str(report.skipped), "a sync skips them")
    if report.changed_after_accept:
        examples = ", ".join(report.changed_examples)
        result.add_row(
            "  changed_after_accept",
            str(report.changed_after_accept),
            f"{CHANGED}; e.g. {examples}",
        )
    result.add_row("rejected", str(report.rows_rejected), "")
    for reason, count in sorted(report.rejected.items(), key=lambda kv: -kv[1]):
        examples = ", ".join(report.rejected_examples.get(reason, []))
        result.add_row(f"  {reason}", str(count), f"{HINTS[reason]}; e.g. {examples}")
    for reason, count in sorted(report.warnings.items()):
        result.add_row(f"valid, field dropped: {reason}", str(count), WARNINGS[reason])
    stdout.print(result)
    if report.no_event_time:
        rows = "1 row has" if report.no_event_time == 1 else f"{report.no_event_time} rows have"
        reasons = ", ".join(f"{r} {n}" for r, n in report.no_event_time_by_reason.items() if n)
        say(f"event time: {rows} none that parses ({reasons}); fix the query's formats")
    if report.amounts:
        _print_amounts(report.amounts)
    if report.ledger:
        say(f"ledger not read: {report.ledger}")
    for note in report.notes:
        say(f"note: {note}")
    say(f"{report.requests} request(s), {report.request_bytes:,} bytes; nothing was sent.")
    for i, body in enumerate(report.payloads, 1):
        stdout.print(f"\n[bold]payload {i}[/] (plain-text PII redacted):")
        if body.startswith("{"):
            stdout.print_json(body)
        else:  # a pixel's query string
            stdout.print(body, markup=False, highlight=False, soft_wrap=True)


def print_run(report: RunReport) -> None:
    say(f"run {report.run_id} ({report.mode}): [bold]{report.status}[/] in {report.duration_s}s")
    result = new_table()
    result.show_header = False
    result.add_column()
    result.add_column(justify="right")
    for key in COUNTS:
        result.add_row(key, f"{getattr(report, key):,}")
    for reason, count in report.rejected_by_reason.most_common():
        result.add_row(f"  rejected: {clip(reason or '(no reason given)')}", f"{count:,}")
    for reason, count in sorted(report.warnings.items()):
        result.add_row(f"sent without a field: {reason}", f"{count:,}")
    stdout.print(result)
    if report.rows_rejected_known:
        say(
            f"{report.rows_rejected_known:,} of the rejected rows were rejected before for the "
            "same reason and are unchanged (known: they alone do not fail the run)."
        )
    if report.duplicates_differing:
        examples = ", ".join(report.differing_examples)
        say(
            f"duplicates_differing {report.duplicates_differing:,} "
            f"({report.duplicates_differing_known:,} seen before): {DIFFERING}; e.g. {examples}"
        )
    if report.changed_after_accept:
        examples = ", ".join(report.changed_examples)
        say(f"changed_after_accept {report.changed_after_accept:,}: {CHANGED}; e.g. {examples}")


def print_plan(plan: BackfillPlan) -> None:
    say(
        f"Backfill plan: [{plan.since:{ISO}}, {plan.until:{ISO}}) in {len(plan.windows)} "
        f"windows of {span(plan.window)}, as of {plan.now:{ISO}}"
    )
    result = new_table()
    for column in ("since", "until", "rows", "too old", "batches", "time"):
        result.add_column(
            column, justify="left" if column in ("since", "until") else "right", no_wrap=True
        )
    for window in plan.windows:
        since, until = when(window.since), when(window.until)
        if window.done:
            result.add_row(since, until, "done", "", "", "skipped")
        else:
            numbers = (window.rows or 0, window.too_old, window.batches)
            time_s = duration(plan.estimated_s(window.batches))
            result.add_row(since, until, *(f"{n:,}" for n in numbers), time_s)
    stdout.print(result)
    batches = plan.total("batches")
    say(
        f"{len(plan.windows) - len(plan.to_run)} window(s) finished earlier are skipped. "
        f"To run: {plan.total('rows'):,} rows, at most {batches:,} batches, about "
        f"{duration(plan.estimated_s(batches))} at {plan.rate:,g} {plan.unit}/s."
    )
    if plan.total("too_old"):
        say(
            f"{plan.total('too_old'):,} rows are before {plan.oldest_event:{ISO}} "
            f"and will be recorded as rejected_local, not sent: {REASONS['too_old']}."
        )
    stdout.print("Nothing was sent.")


def print_backfill(report: BackfillReport) -> None:
    document = report.as_dict()
    say(
        f"backfill {report.backfill_id}: [bold]{report.status}[/] in {report.duration_s}s; "
        f"windows: {document['windows_finished']} finished now, {document['windows_skipped']} "
        f"skipped (finished earlier), {document['windows_left']} left"
    )
    windows = [
        {
            "since": when(w.since),
            "until": when(w.until),
            "status": w.status,
            "run": w.run.run_id[:8] if w.run else "",
        }
        for w in report.windows
    ]
    stdout.print(table(windows))
    counts = [
        {"since": when(w.since)}
        | {name: getattr(w.run, count) if w.run else None for name, count in ROW_COUNTS.items()}
        for w in report.windows
    ]
    result = table(counts, "rows per window")
    result.add_row("total", *(f"{report.total(c):,}" for c in ROW_COUNTS.values()), style="bold")
    stdout.print(result)
