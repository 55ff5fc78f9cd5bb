"""Airflow (3, or 2.4+): the scheduled sync every 15 minutes.

Install beside the connector: pip install 'apache-airflow>=3'
Put this file in your DAGs folder and set ROKT_CONNECTOR_CONFIG to your config file
(try it once: `airflow dags test rokt_conversions`). The task's log shows the
connector's events with their fields (run_id, counts, status); its XCom is the report.
"""

import os
from datetime import UTC, datetime, timedelta

import connector

try:
    from airflow.sdk import dag, task  # Airflow 3
except ImportError:
    from airflow.decorators import dag, task  # Airflow 2.4+


def sync_conversions() -> dict[str, object]:
    """One scheduled sync over [now - sync.lookback, now).

    A config or query error, refused credentials, a held ledger or a stop signal
    raises a connector.ConnectorError: the task fails and Airflow retries it. Rows
    rejected or failed do not raise: they are counted in the returned report (the
    task's XCom) and recorded in the ledger.
    """
    config = os.environ.get("ROKT_CONNECTOR_CONFIG", "/etc/rokt-connector/config.yaml")
    return connector.sync(config).as_dict()


@dag(
    schedule=timedelta(minutes=15),
    start_date=datetime(2026, 11, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,  # one run at a time holds the ledger
    default_args={"retries": 3, "retry_delay": timedelta(minutes=5)},
)
def rokt_conversions() -> None:
    task(sync_conversions)()


rokt_conversions()
