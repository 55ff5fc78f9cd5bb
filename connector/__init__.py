"""rokt-connector: conversions from a DuckDB/Parquet warehouse to Rokt, each sent once.

The public API is what this module exports (loaded on first use); the rest is private.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

import connector._allocator  # noqa: F401  (before polars loads)
from connector._version import __version__ as __version__

if TYPE_CHECKING:
    from connector.audiences import AudienceReport, sync_audiences
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

# Each public name and the module it comes from, imported when first used, so that
# `rokt-connector --help` does not load polars, DuckDB or pydantic.
_EXPORTS = {
    "AudienceReport": "connector.audiences",
    "BackfillPlan": "connector.backfill_report",
    "BackfillReport": "connector.backfill_report",
    "Config": "connector.config",
    "ConfigError": "connector.errors",
    "ConnectorError": "connector.errors",
    "FatalSendError": "connector.errors",
    "Interrupted": "connector.errors",
    "LedgerLocked": "connector.ledger",
    "RetryableSendError": "connector.errors",
    "RowRejected": "connector.errors",
    "RunReport": "connector.report",
    "SourceError": "connector.errors",
    "ValidationReport": "connector.report",
    "backfill": "connector.jobs",
    "load_config": "connector.config",
    "plan_backfill": "connector.jobs",
    "sync": "connector.jobs",
    "sync_audiences": "connector.audiences",
    "validate": "connector.jobs",
}

__all__ = [
    "AudienceReport",
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
    "backfill",
    "load_config",
    "plan_backfill",
    "sync",
    "sync_audiences",
    "validate",
]


def __getattr__(name: str) -> Any:
    """A public name, from its module (PEP 562); AttributeError for any other."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'connector' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # the next access does not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
