"""The config file: pydantic models of DESIGN.md's YAML, loaded and checked.

Owns: parsing YAML, `${VAR}` / `${VAR:-default}` expansion from the environment,
resolving paths relative to the config file, and turning every validation failure
into one `ConfigError` that names the key path. Must not: open the source, send
anything, or put a secret's value in an error message.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from connector.errors import ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_KEYS = {"api_key", "api_secret"}

POD_HOSTS = {
    "US1": "https://s2s.us1.mparticle.com",
    "US2": "https://s2s.us2.mparticle.com",
    "EU1": "https://s2s.eu1.mparticle.com",
    "AU1": "https://s2s.au1.mparticle.com",
}
PIXEL_ROOT = "https://pixels.mparticle.com"


def parse_duration(value: str | timedelta) -> timedelta:
    """`7d`, `12h`, `30m`, `45s`, `2w` as a timedelta."""
    if isinstance(value, timedelta):
        return value
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"expected a duration like 7d, 12h or 30m, got {value!r}")
    amount, unit = match.groups()
    return timedelta(**{_DURATION_UNITS[unit]: int(amount)})


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Transport(StrEnum):
    EVENTS_API = "events_api"
    PIXEL = "pixel"
    RUDDERSTACK_PIXEL = "rudderstack_pixel"


class UnknownColumns(StrEnum):
    ATTRIBUTE = "attribute"
    IGNORE = "ignore"
    ERROR = "error"


class SourceConfig(_Strict):
    database: Path | None = None
    parquet: dict[str, str] = Field(default_factory=dict)
    query: Path
    chunk_rows: int = Field(default=50_000, gt=0, le=5_000_000)

    @field_validator("parquet")
    @classmethod
    def _view_names(cls, views: dict[str, str]) -> dict[str, str]:
        for name in views:
            if not _IDENTIFIER.match(name):
                raise ValueError(f"view name {name!r} must be a plain SQL identifier")
        return views


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DestinationConfig(_Strict):
    transport: Transport = Transport.EVENTS_API
    pod: Literal["US1", "US2", "EU1", "AU1"] = "US1"
    base_url: str | None = None
    api_key: SecretStr
    api_secret: SecretStr | None = None
    environment: Literal["development", "production"] = "development"
    bulk: bool = True
    max_batches_per_second: float = Field(default=270, gt=0, le=100_000)
    concurrency: int = Field(default=8, ge=1, le=256)
    timeout_s: float = Field(default=30, gt=0, le=600)
    max_attempts: int = Field(default=8, ge=1, le=100)
    retry_base_s: float = Field(default=0.5, ge=0, le=60)  # full-jitter backoff: first ceiling
    retry_max_s: float = Field(default=30, ge=0, le=600)  # and the largest

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must look like scheme://host[:port], got {url!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"must be scheme://host[:port] with no path, got {url!r}")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError("http:// is allowed only for loopback hosts; use https://")
        return url.rstrip("/")

    @field_validator("api_key", "api_secret")
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _secret_for_events_api(self) -> DestinationConfig:
        if self.transport == Transport.EVENTS_API and self.api_secret is None:
            raise ValueError("api_secret is required when transport is events_api")
        return self

    @property
    def root_url(self) -> str:
        """Scheme and host the transport sends to."""
        if self.base_url:
            return self.base_url
        if self.transport == Transport.EVENTS_API:
            return POD_HOSTS[self.pod]
        if self.transport == Transport.PIXEL:
            return PIXEL_ROOT
        raise ValueError("destination.base_url is required for transport rudderstack_pixel")


class MappingConfig(_Strict):
    hash: tuple[str, ...] = ("email", "firstname", "lastname", "mobile", "zip")
    require_email: bool = True
    unknown_columns: UnknownColumns = UnknownColumns.ATTRIBUTE
    conversiontype: str | None = None

    @field_validator("hash")
    @classmethod
    def _hashable(cls, columns: tuple[str, ...]) -> tuple[str, ...]:
        from connector.spec import HASHABLE

        unknown = sorted(set(columns) - set(HASHABLE))
        if unknown:
            raise ValueError(
                f"cannot hash {', '.join(unknown)}; hashable columns: {', '.join(HASHABLE)}"
            )
        return columns

    @field_validator("conversiontype")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


class SyncConfig(_Strict):
    lookback: Duration = timedelta(days=7)
    # The Event API takes events up to 30 days old; older ones are rejected locally.
    max_event_age: Duration = timedelta(days=30)

    @field_validator("lookback", "max_event_age")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value


class LedgerConfig(_Strict):
    path: Path = Path("ledger.duckdb")


class Config(_Strict):
    source: SourceConfig
    destination: DestinationConfig
    mapping: MappingConfig = MappingConfig()
    sync: SyncConfig = SyncConfig()
    ledger: LedgerConfig = LedgerConfig()
    path: Path | None = Field(default=None, exclude=True)


def _expand_env(node: Any, where: str, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            k: _expand_env(v, f"{where}.{k}" if where else str(k), env) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_expand_env(v, f"{where}[{i}]", env) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{where}: environment variable {name} is not set "
            f"(export {name}=... or write ${{{name}:-default}})"
        )

    return _ENV_REF.sub(substitute, node)


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    def rel(value: Any) -> Any:
        if isinstance(value, str) and value and not Path(value).is_absolute():
            return str(base / value)
        return value

    source = raw.get("source")
    if isinstance(source, dict):
        for key in ("database", "query"):
            if key in source:
                source[key] = rel(source[key])
        if isinstance(source.get("parquet"), dict):
            source["parquet"] = {k: rel(v) for k, v in source["parquet"].items()}
    ledger = raw.get("ledger")
    if isinstance(ledger, dict) and "path" in ledger:
        ledger["path"] = rel(ledger["path"])


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-"))
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{loc}: unknown key (check its spelling against config.example.yaml)"
    shown = error.get("input")
    secret = bool(_SECRET_KEYS & {str(p) for p in error["loc"]})
    if not secret and isinstance(shown, str | int | float | bool) and error["type"] != "missing":
        return f"{loc}: {message} (got {shown!r})"
    return f"{loc}: {message}"


def load_config(path: str | os.PathLike[str], env: dict[str, str] | None = None) -> Config:
    """Read, expand and validate a config file; raise `ConfigError` naming what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with source, destination, ...")
    raw = _expand_env(raw, "", dict(os.environ) if env is None else env)
    _resolve_paths(raw, path.resolve().parent)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        lines = "\n  ".join(_describe(dict(e)) for e in exc.errors())
        raise ConfigError(f"{path}: invalid config:\n  {lines}") from None
    return config.model_copy(update={"path": path.resolve()})
