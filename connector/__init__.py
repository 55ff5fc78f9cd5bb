"""rokt-connector: conversions from a DuckDB/Parquet warehouse to Rokt, each sent once.

The public API is what this module exports; everything else is private.
"""

import connector._allocator  # noqa: F401  (before polars loads)
from connector._version import __version__
from connector.backfill_report import BackfillPlan, BackfillReport
from connector.config import Config, load_config
from connector.errors import (
    ConfigError,
    ConnectorError,
    FatalSendError,
    Interrupted,
    RetryableSendError,
    RowRejected,
    SourceError,
)
from connector.jobs import backfill, plan_backfill, sync, validate
from connector.ledger import LedgerLocked
from connector.report import RunReport, ValidationReport

__all__ = [
    "BackfillPlan",
    "BackfillReport",
    "Config",
    "ConfigError",
    "ConnectorError",
    "FatalSendError",
    "Interrupted",
    "LedgerLocked",
    "RetryableSendError",
    "RowRejected",
    "RunReport",
    "SourceError",
    "ValidationReport",
    "__version__",
    "backfill",
    "load_config",
    "plan_backfill",
    "sync",
    "validate",
]
