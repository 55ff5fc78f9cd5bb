"""The sources, by `source.kind`: a new one is a module with a class that satisfies
`base.Source`, and one line in `SOURCES`."""

from __future__ import annotations

from collections.abc import Callable

from connector.config import SourceConfig
from connector.sources.adbc import ADBCSource
from connector.sources.base import Source
from connector.sources.duckdb import DuckDBSource

SOURCES: dict[str, Callable[[SourceConfig], Source]] = {"duckdb": DuckDBSource, "adbc": ADBCSource}


def source_for(config: SourceConfig) -> Source:
    """The source `config` describes."""
    return SOURCES[config.kind](config)
