"""rokt-connector: conversions from a DuckDB/Parquet warehouse to Rokt, each sent once.

The public API is what this module exports; everything else is private.
"""

__version__ = "0.1.0"

import connector._allocator  # noqa: F401  (before polars loads)
from connector.config import Config, load_config
from connector.errors import (
    ConfigError,
    ConnectorError,
    FatalSendError,
    RetryableSendError,
    RowRejected,
    SourceError,
)
from connector.pipeline import sync, validate
from connector.report import RunReport, ValidationReport

__all__ = [
    "Config",
    "ConfigError",
    "ConnectorError",
    "FatalSendError",
    "RetryableSendError",
    "RowRejected",
    "RunReport",
    "SourceError",
    "ValidationReport",
    "load_config",
    "sync",
    "validate",
]
