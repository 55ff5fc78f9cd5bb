"""Dagster: the scheduled sync as an asset every 15 minutes, and the history as a
daily-partitioned asset whose backfill sends the selected days in one run.

Install beside the connector: pip install 'dagster>=1.10' dagster-webserver
(dagster-webserver serves the UI of `dagster dev`). Then, from the repository:
    ROKT_CONNECTOR_CONFIG=config.yaml dagster dev -f examples/dagster_assets.py
The run's counts are the materialization's metadata (a history partition's are its
day's), the check `no_new_rejections` warns when a run rejected or failed rows it had
not before, and the connector's events (run_id, counts, status) are in the run's log.
"""

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg

import connector

CHECK = "no_new_rejections"


def config() -> str:
    return os.environ.get("ROKT_CONNECTOR_CONFIG", "/etc/rokt-connector/config.yaml")


def metadata(values: Mapping[str, object]) -> dict[str, object]:
    """A report's fields as Dagster metadata: counts, ids, status (None left out)."""
    return {key: value for key, value in values.items() if value is not None}


def no_new_rejections(report: Mapping[str, Any]) -> dg.AssetCheckResult:
    """Passes when every row was accepted, skipped, a duplicate or rejected before just
    so (status succeeded); a warning with the counts when rows were newly rejected or
    failed (status completed_with_rejections: `rokt-connector ledger` says which)."""
    return dg.AssetCheckResult(
        check_name=CHECK,
        passed=report["status"] == "succeeded",
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "new_local_rejections": report["rows_rejected_local"] - report["rows_rejected_known"],
            "rejected_by_platform": report["rejected"],
            "failed": report["failed"],
            "rejected_by_reason": report["rejected_by_reason"],
        },
    )


class _RunLog(logging.Handler):
    def __init__(self, log: logging.Logger) -> None:
        super().__init__()
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        self.log.log(record.levelno, record.getMessage())  # `event key=value ...`


@contextmanager
def events_in(context: dg.AssetExecutionContext) -> Iterator[None]:
    """The connector's events at INFO and up in the run's log, unless the instance's
    `python_logs.managed_python_loggers` already takes the `connector` (or root) logger."""
    logger = logging.getLogger("connector")
    if {"connector", "root"} & set(context.instance.managed_python_loggers):
        yield
        return
    handler, level = _RunLog(context.log), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


retry = dg.RetryPolicy(max_retries=3, delay=300)  # e.g. while another run holds the ledger


@dg.asset(retry_policy=retry, check_specs=[dg.AssetCheckSpec(CHECK, asset="rokt_conversions")])
def rokt_conversions(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """One scheduled sync over [now - sync.lookback, now)."""
    with events_in(context):
        report = connector.sync(config()).as_dict()
    return dg.MaterializeResult(
        metadata=metadata(report), check_results=[no_new_rejections(report)]
    )


@dg.asset(
    partitions_def=dg.DailyPartitionsDefinition(start_date="2026-01-01"),  # your first day
    backfill_policy=dg.BackfillPolicy.single_run(),  # one run holds the ledger
    retry_policy=retry,
    check_specs=[dg.AssetCheckSpec(CHECK, asset="rokt_conversions_history")],
)
def rokt_conversions_history(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Backfill the days this run materializes, one window a day. Days an earlier run
    finished are skipped, so re-materializing a partition sends nothing twice."""
    days = context.partition_time_window
    with events_in(context):
        report = connector.backfill(config(), days.start, days.end, window="1d")
    for window in report.windows:  # each partition's own counts
        day = window.since.strftime("%Y-%m-%d")
        context.add_asset_metadata(metadata(window.as_dict()), partition_key=day)
    summary = report.as_dict()
    return dg.MaterializeResult(
        metadata={"backfill_id": report.backfill_id, "backfill_status": report.status},
        check_results=[no_new_rejections(summary)],
    )


defs = dg.Definitions(
    assets=[rokt_conversions, rokt_conversions_history],
    schedules=[
        dg.ScheduleDefinition(
            job=dg.define_asset_job("rokt_sync", selection=[rokt_conversions]),
            cron_schedule="*/15 * * * *",
        )
    ],
)
