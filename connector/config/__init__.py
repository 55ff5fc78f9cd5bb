"""The config file: its models (`models`, `destination`), their building blocks
(`fields`) and how a file is read and checked (`loading`). The names below are the
config's public API."""

from connector.config.destination import DestinationConfig, Transport
from connector.config.fields import PIXEL_ROOT, POD_HOSTS, is_loopback_host, parse_duration
from connector.config.loading import load_config
from connector.config.models import (
    AudiencesConfig,
    Config,
    LedgerConfig,
    MappingConfig,
    SourceConfig,
    SyncConfig,
    UnknownColumns,
    WarehouseConfig,
)

__all__ = [
    "PIXEL_ROOT",
    "POD_HOSTS",
    "AudiencesConfig",
    "Config",
    "DestinationConfig",
    "LedgerConfig",
    "MappingConfig",
    "SourceConfig",
    "SyncConfig",
    "Transport",
    "UnknownColumns",
    "WarehouseConfig",
    "is_loopback_host",
    "load_config",
    "parse_duration",
]
