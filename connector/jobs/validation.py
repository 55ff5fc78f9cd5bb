"""The validate job: the front half without sending, counted as a sync would count it
(`ValidationReport`), with the amounts per currency and examples per reason."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from connector.config import Config
from connector.engine.prepare import Lookup, add_examples, prepare
from connector.report import ValidationReport
from connector.transports import transport_for


def _amounts(amounts: pl.DataFrame) -> list[dict[str, object]]:
    """Rows, min, median and max of the amount, per currency (cents sent for dollars
    show as a median 100 times too large)."""
    return (
        amounts.group_by(pl.col("_currency").alias("currency"))
        .agg(
            pl.len().alias("rows"),
            pl.col("_amount").min().alias("min"),
            pl.col("_amount").median().alias("median"),
            pl.col("_amount").max().alias("max"),
        )
        .sort("rows", "currency", descending=[True, False], nulls_last=True)
        .to_dicts()
    )


def validate(
    config: Config,
    since: datetime,
    until: datetime,
    now: datetime,
    show: int = 0,
    examples_per_reason: int = 3,
    lookup: Lookup | None = None,
) -> ValidationReport:
    """Run the front half without sending; plain PII in shown payloads is redacted.
    With the ledger's `lookup`, rows it settled are counted as a sync would skip them."""
    report = ValidationReport(since=since, until=until)
    amounts, columns = [], list[str]()
    for part in prepare(config, since, until, now, show=show, lookup=lookup):
        columns = columns or part.columns
        report.rows_read += part.rows_read
        report.valid += part.encoded.height
        report.duplicates += part.duplicates
        report.duplicates_differing += part.differing.height
        add_examples(report.differing_examples, part.differing["_ref"])
        report.skipped += part.skipped
        report.changed_after_accept += part.changed.len()
        add_examples(report.changed_examples, part.changed)
        report.warnings.update(part.warnings)
        amounts.append(part.amounts)
        reasons = part.rejected.group_by("_reason").agg(
            pl.len().alias("n"),
            pl.col("_row").head(examples_per_reason),
            pl.col("_ref").head(examples_per_reason),
        )
        for reason, n, rows, refs in reasons.iter_rows():
            report.rejected[reason] += n
            seen = report.rejected_examples.setdefault(reason, [])
            for row, ref in zip(rows, refs, strict=True):
                if len(seen) < examples_per_reason:
                    seen.append(f"row {row}" + (f" (confirmationref {ref})" if ref else ""))
        report.requests += len(part.requests)
        report.request_bytes += sum(r.size for r in part.requests)
        report.payloads += part.shown[: show - len(report.payloads)]
    if amounts:
        report.amounts = _amounts(pl.concat(amounts))
    report.notes = transport_for(config.destination).notes(columns, config.mapping.hash)
    return report
