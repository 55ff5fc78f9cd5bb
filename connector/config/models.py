"""The config file's keys as pydantic models (source, mapping, sync, ledger; the
destination's are in `destination`), each value checked where it is declared."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from connector.config.destination import DestinationConfig
from connector.config.fields import (
    IDENTIFIER,
    Duration,
    FilePath,
    Strict,
    clip,
    usable_path,
)


class UnknownColumns(StrEnum):
    ATTRIBUTE = "attribute"
    IGNORE = "ignore"
    ERROR = "error"


class WarehouseConfig(Strict):
    """`source.warehouse`: a database the query runs in, reached through an ADBC driver."""

    driver: Literal["postgresql", "snowflake", "bigquery", "flightsql", "sqlite"]
    uri: SecretStr | None = None  # holds the password or token: never shown
    # the driver's own connection options (short names like `warehouse` or `project` too)
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("uri")
    @classmethod
    def _uri_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _uri_of_the_driver(self) -> WarehouseConfig:
        if self.driver == "bigquery" and self.uri is not None:
            raise ValueError(
                "bigquery takes no uri: set options.project (and options.dataset); the "
                "credentials are Google's application default credentials, or "
                "options.credentials_file"
            )
        if self.driver != "bigquery" and self.uri is None:
            raise ValueError(f"uri is required with driver {self.driver}")
        if self.driver == "sqlite" and self.options:
            raise ValueError("sqlite takes no options: the uri is the database file")
        return self


class SourceConfig(Strict):
    kind: Literal["duckdb", "adbc"] = "duckdb"  # which connector.sources reads it
    database: FilePath | None = None
    parquet: dict[str, str] = Field(default_factory=dict)
    warehouse: WarehouseConfig | None = None  # instead of database / parquet
    query: FilePath
    chunk_rows: int = Field(default=10_000, gt=0, le=5_000_000)
    # DuckDB's memory for the query; past it, sorts and joins spill to a temp folder
    memory_limit: str = Field(default="64MB", pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB)$")

    @model_validator(mode="before")
    @classmethod
    def _kind_of_a_warehouse(cls, data: Any) -> Any:
        """`kind` is `adbc` when `warehouse` is given and `kind` is not."""
        if isinstance(data, dict) and "warehouse" in data and "kind" not in data:
            return {**data, "kind": "adbc"}
        return data

    @field_validator("parquet")
    @classmethod
    def _view_names(cls, views: dict[str, str]) -> dict[str, str]:
        for name, pattern in views.items():
            if not IDENTIFIER.fullmatch(name):
                raise ValueError(f"view name {clip(repr(name))} must be a plain SQL identifier")
            usable_path(Path(pattern))
        return views

    @model_validator(mode="after")
    def _one_kind_of_source(self) -> SourceConfig:
        """A warehouse, or DuckDB's database and/or parquet: never both."""
        if self.kind == "adbc" and self.warehouse is None:
            raise ValueError("kind adbc reads source.warehouse, which is not set")
        if self.kind == "duckdb" and self.warehouse is not None:
            raise ValueError("warehouse is read by kind adbc: remove `kind: duckdb`")
        duckdb_keys = {"database", "parquet", "memory_limit"} & self.model_fields_set
        if self.warehouse is not None and duckdb_keys:
            raise ValueError(
                f"{', '.join(sorted(duckdb_keys))} is for a DuckDB source; with warehouse the "
                "query runs in the warehouse: remove it"
            )
        return self


class MappingConfig(Strict):
    hash: tuple[str, ...] = ("email", "firstname", "lastname", "mobile", "zip")
    require_email: bool = True
    unknown_columns: UnknownColumns = UnknownColumns.ATTRIBUTE
    conversiontype: str | None = None
    phone_region: str = "US"  # where a mobile without a country calling code is from
    # a bad value in an optional field (spec.WARNINGS): drop the field, or reject the row
    invalid_fields: Literal["drop", "reject"] = "drop"
    # columns sent as plain text on purpose: plain PII columns left out of `hash`, and
    # extra columns whose values look like email addresses or phone numbers (`pii`)
    allow_plain: tuple[str, ...] = ()

    @field_validator("phone_region")
    @classmethod
    def _region(cls, region: str) -> str:
        from connector.phones import check_region

        return check_region(region)

    @field_validator("hash")
    @classmethod
    def _hashable(cls, columns: tuple[str, ...]) -> tuple[str, ...]:
        from connector.spec import HASHABLE

        unknown = sorted(set(columns) - set(HASHABLE))
        if unknown:
            raise ValueError(
                f"cannot hash {clip(', '.join(unknown))}; hashable columns: {', '.join(HASHABLE)}"
            )
        return columns

    @field_validator("conversiontype")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("allow_plain")
    @classmethod
    def _plain_names(cls, columns: tuple[str, ...]) -> tuple[str, ...]:
        from connector.spec import BY_COLUMN, PLAIN_PII

        names = tuple(dict.fromkeys(c.strip().lower() for c in columns))  # as the query's
        if "" in names:
            raise ValueError("holds an empty column name")
        never = [n for n in names if n in BY_COLUMN and n not in PLAIN_PII]
        if never:
            raise ValueError(
                f"{clip(', '.join(never))}: canonical columns that are never refused as "
                f"plain PII; list only {', '.join(PLAIN_PII)} or extra columns"
            )
        return names

    @model_validator(mode="after")
    def _no_plain_pii(self) -> MappingConfig:
        from connector.spec import PLAIN_PII

        both = [c for c in self.allow_plain if c in self.hash]
        if both:
            raise ValueError(
                f"{', '.join(both)} is listed under both mapping.hash and "
                "mapping.allow_plain; remove it from one of them"
            )
        plain = [c for c in PLAIN_PII if c not in self.hash and c not in self.allow_plain]
        if plain:
            them = "it" if len(plain) == 1 else "them"
            raise ValueError(
                f"{', '.join(plain)} would be sent as plain text (not in mapping.hash): add "
                f"{them} to mapping.hash (a column the query does not return costs nothing), "
                f"or, to send {them} as is, list {them} under mapping.allow_plain: "
                f"[{', '.join(plain)}]"
            )
        return self


class SyncConfig(Strict):
    lookback: Duration = timedelta(days=7)
    # The Event API takes events up to 30 days old; older ones are rejected locally.
    max_event_age: Duration = timedelta(days=30)
    # Later than now plus this, an event time is rejected locally: a clock may run
    # ahead by a few minutes, a time zone mistake makes hours.
    max_clock_skew: Duration = timedelta(minutes=10)

    @field_validator("lookback", "max_event_age")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value


class LedgerConfig(Strict):
    path: FilePath = Path("ledger.duckdb")


class AudiencesConfig(Strict):
    # the current members: audience_name + identity columns (none: no audience sync)
    query: FilePath | None = None
    # a run that would drop more of an audience's members than this stops before sending
    max_drop_fraction: float = Field(default=0.5, ge=0.0, le=1.0)
    # each audience changed is the boolean user attribute <prefix><audience_name>
    attribute_prefix: str = Field(default="audience_", pattern=r"^[A-Za-z0-9_.-]{0,64}$")


class Config(Strict):
    source: SourceConfig
    destination: DestinationConfig
    mapping: MappingConfig = MappingConfig()
    sync: SyncConfig = SyncConfig()
    ledger: LedgerConfig = LedgerConfig()
    audiences: AudiencesConfig = AudiencesConfig()
    path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _audiences_need_events_api(self) -> Config:
        transport = self.destination.transport.value
        if self.audiences.query is not None and transport != "events_api":
            raise ValueError(
                f"audiences: audience sync sends Event API batches; it needs "
                f"destination.transport: events_api (this config has {transport})"
            )
        return self
