"""rokt-connector: conversions from a DuckDB/Parquet warehouse to Rokt, each sent once.

The public API is what this module exports; everything else is private.
"""

from connector.config import Config, load_config
from connector.errors import (
    ConfigError,
    ConnectorError,
    FatalSendError,
    RetryableSendError,
    RowRejected,
    SourceError,
)
from connector.pipeline import ValidationReport, validate

__all__ = [
    "Config",
    "ConfigError",
    "ConnectorError",
    "FatalSendError",
    "RetryableSendError",
    "RowRejected",
    "SourceError",
    "ValidationReport",
    "load_config",
    "validate",
]
