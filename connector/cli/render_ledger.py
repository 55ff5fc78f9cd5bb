"""How the `ledger` commands' answers read on a terminal: one conversion's history,
the conversions of an identity, the summary, an export, a report and a reconciliation."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from connector.cli.render import ISO, cell, details, duration, new_table, say, stdout, table
from connector.cli.render_runs import ROW_COUNTS


def print_identity(found: list[dict[str, Any]]) -> None:
    """The conversions of one email hash, one row each."""
    rows = [
        {
            "confirmationref": c["confirmationref"],
            "status": c["status"],
            "reason": c["reason"],
            "event time (UTC)": c["event_time"],
            "amount": " ".join(cell(c[k]) for k in ("amount", "currency")).strip(),
        }
        for c in found
    ]
    stdout.print(table(rows, wrap=("reason",)))


def print_conversion(conversion: dict[str, Any]) -> None:
    """One conversion: its state, its fields, and every HTTP attempt."""
    history = conversion.pop("history")
    say(
        f"[bold]{conversion['confirmationref']}[/]: [bold]{conversion['status']}[/]"
        + (f" ({conversion['reason']})" if conversion["reason"] else "")
    )
    shown = ("confirmationref", "status", "reason")
    stdout.print(details({k: v for k, v in conversion.items() if k not in shown}))
    if history:
        attempts = [
            {
                "run": a["run_id"][:8],
                "#": a["attempt"],
                "time (UTC)": a["attempted_at"],
                "HTTP": a["http_status"] or a["error"],
                "outcome": a["outcome"],
                "message": a["message"],
            }
            for a in history
        ]
        stdout.print(table(attempts, f"{len(history)} attempt(s)", wrap=("message",)))
    else:
        stdout.print("no HTTP attempts (it was never sent)", highlight=False)


def print_summary(summary: dict[str, Any], days: int) -> None:
    """Conversions by status, reason, warning and event day, and the latest runs."""
    say(
        f"Ledger {summary['ledger']} ({summary['environment']}): "
        f"[bold]{summary['conversions']:,}[/] conversions"
    )
    sections = [
        ("by status", summary["by_status"]),
        ("not accepted, by reason", summary["by_reason"]),
        ("sent without a field, by warning", summary["by_warning"]),
        (f"by event day (UTC), latest {days}", summary["by_day"]),
    ]
    for title, rows in sections:
        if rows:
            stdout.print(table(rows, title, wrap=("reason",)))
    if summary["runs"]:
        latest = [
            {
                "run": run["run_id"][:8],
                "started (UTC)": run["started_at"],
                "mode": run["mode"],
                "status": run["status"],
                "took": duration(run["duration_s"]) if run["duration_s"] is not None else "",
            }
            for run in summary["runs"]
        ]
        stdout.print(table(latest, f"runs, latest {len(latest)} of {summary['runs_total']}"))
        columns = {**ROW_COUNTS, "retries": "retries"}
        counts = [
            {"run": run["run_id"][:8]} | {name: run[count] for name, count in columns.items()}
            for run in summary["runs"]
        ]
        stdout.print(table(counts, "rows per run"))


def print_export(written: int, out: Path) -> None:
    stdout.print(f"exported {written:,} conversions to {out}", highlight=False)


def print_report(written: dict[str, Any]) -> None:
    """Where the report went, and what it holds."""
    by_status = written["by_status"]
    stdout.print(
        f"wrote a report of {written['conversions']:,} conversions ({by_status['accepted']:,} "
        f"accepted) and {written['runs']:,} runs to {written['out']} "
        f"({written['bytes'] / 1024:,.0f} KB)",
        highlight=False,
    )


def print_reconcile(
    result: dict[str, Any], config: Path, start: datetime, end: datetime, code: int
) -> None:
    """Conversions by state with examples; when some were not delivered (`code`), the
    sync that sends them."""
    say(
        f"Reconciled [{start:{ISO}}, {end:{ISO}}): "
        f"{result['source_rows']:,} source rows, {result['conversions']:,} conversions"
    )
    states = new_table()
    states.add_column("state", no_wrap=True)
    states.add_column("conversions", justify="right", no_wrap=True)
    states.add_column("examples", overflow="fold")
    for state, count in result["by_state"].items():
        listed = [
            e["confirmationref"] + (f" ({e['reason']})" if e["reason"] else "")
            for e in result["examples"].get(state) or []
        ]
        if count > len(listed) > 0:
            listed.append(f"and {count - len(listed):,} more")
        states.add_row(state, f"{count:,}", ", ".join(listed))
    stdout.print(states)
    if result["rows_without_confirmationref"]:
        say(
            f"{result['rows_without_confirmationref']:,} source rows have no confirmationref "
            "(sync rejects them: missing_confirmationref)"
        )
    if result["duplicate_rows"]:
        say(
            f"{result['duplicate_rows']:,} source rows repeat a confirmationref (the first "
            "row counts)"
        )
    if result["ledger_only"]:
        gone = ", ".join(
            f"{e['confirmationref']} ({e['status']})" for e in result["ledger_only_examples"]
        )
        say(
            f"{result['ledger_only']:,} conversions of this window are in the ledger but no "
            "longer in the source" + (f": {gone}" if gone else "")
        )
    if code:
        say(
            f"[bold]{result['undelivered']:,} conversion(s) not delivered[/] (missing, pending "
            "or failed). This sends them:"
        )
        stdout.print(  # one line, not wrapped: to copy
            f"  rokt-connector sync --config {config} --since {start:{ISO}} --until {end:{ISO}}",
            highlight=False,
            markup=False,
        )
        say("and `rokt-connector ledger show REF` tells what happened to one.")
