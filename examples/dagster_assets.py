"""Dagster: the scheduled sync as an asset every 15 minutes, and the history as a
daily-partitioned asset whose backfill sends the selected days in one run.

Load it with `dagster dev -f dagster_assets.py` and set ROKT_CONNECTOR_CONFIG to
your config file. The asset bodies are the plain functions `sync_conversions` and
`send_history`, so they run (and are tested) without Dagster.
"""

from __future__ import annotations

import os
from datetime import datetime

import connector

CONFIG = os.environ.get("ROKT_CONNECTOR_CONFIG", "/etc/rokt-connector/config.yaml")


def _numbers(report: dict[str, object]) -> dict[str, int]:
    return {key: value for key, value in report.items() if isinstance(value, int)}


def sync_conversions(config: str = CONFIG) -> dict[str, int]:
    """One scheduled sync; its counts become the materialization's metadata."""
    return _numbers(connector.sync(config).as_dict())


def send_history(start: datetime, end: datetime, config: str = CONFIG) -> dict[str, int]:
    """Backfill [start, end) one day per window. Days an earlier run finished are
    skipped, so re-materializing a partition sends nothing twice."""
    return _numbers(connector.backfill(config, start, end, window="1d").as_dict())


try:
    import dagster as dg
except ImportError:  # imported without Dagster (as the tests do): the asset bodies only
    pass
else:
    retry = dg.RetryPolicy(max_retries=3, delay=300)  # e.g. while another run holds the ledger

    @dg.asset(retry_policy=retry)
    def rokt_conversions() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata=sync_conversions())

    @dg.asset(
        partitions_def=dg.DailyPartitionsDefinition(start_date="2026-01-01"),
        backfill_policy=dg.BackfillPolicy.single_run(),  # one run holds the ledger
        retry_policy=retry,
    )
    def rokt_conversions_history(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        days = context.partition_time_window  # every day this run materializes
        return dg.MaterializeResult(metadata=send_history(days.start, days.end))

    defs = dg.Definitions(
        assets=[rokt_conversions, rokt_conversions_history],
        schedules=[
            dg.ScheduleDefinition(
                job=dg.define_asset_job("rokt_sync", selection=[rokt_conversions]),
                cron_schedule="*/15 * * * *",
            )
        ],
    )
