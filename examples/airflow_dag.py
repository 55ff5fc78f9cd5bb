"""Airflow (2.4+): the scheduled sync every 15 minutes.

Put this file in your DAGs folder and set ROKT_CONNECTOR_CONFIG to your config file.
The task body is the plain function `sync_conversions`, so it runs (and is tested)
without Airflow.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import connector

CONFIG = os.environ.get("ROKT_CONNECTOR_CONFIG", "/etc/rokt-connector/config.yaml")


def sync_conversions(config: str = CONFIG) -> dict[str, object]:
    """One scheduled sync over [now - sync.lookback, now).

    A config or query error, refused credentials, a held ledger or a stop signal
    raises a connector.ConnectorError: the task fails and Airflow retries it. Rows
    rejected or failed do not raise: they are counted in the returned report (the
    task's XCom) and recorded in the ledger.
    """
    return connector.sync(config).as_dict()


try:
    from airflow.decorators import dag, task
except ImportError:  # imported without Airflow (as the tests do): the task body only
    pass
else:

    @dag(
        schedule=timedelta(minutes=15),
        start_date=datetime(2026, 11, 1),
        catchup=False,
        max_active_runs=1,  # one run at a time holds the ledger
        default_args={"retries": 3, "retry_delay": timedelta(minutes=5)},
    )
    def rokt_conversions() -> None:
        task(sync_conversions)()

    rokt_conversions()
