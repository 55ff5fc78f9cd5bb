"""The config file: pydantic models of DESIGN.md's YAML, loaded and checked.

Owns: parsing YAML (duplicate keys, alias bombs and undecodable text are errors),
`${VAR}` / `${VAR:-default}` expansion from the environment, resolving paths
relative to the config file, and turning every validation failure into one
`ConfigError` that names the key path. Must not: open the source, send anything, or
put a secret's value (nor any value read from the environment) in an error message.
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

import httpx
import yaml
from pydantic import (
    AfterValidator,
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
_MAX_DURATION = timedelta(days=36_525)  # a century; more overflows date arithmetic
_MAX_NODES = 10_000  # keys and values of a config, after YAML aliases are expanded
_MAX_SHOWN = 80  # characters of a value or key quoted in an error message
_MAX_ERRORS = 20
_USERINFO = re.compile(r"://[^/?#]*@")  # a URL with user:password in it is never shown

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
        raise ValueError("expected a duration like 7d, 12h or 30m")
    amount, unit = match.groups()
    try:
        duration = timedelta(**{_DURATION_UNITS[unit]: int(amount)})
    except OverflowError:
        duration = _MAX_DURATION * 2
    if duration > _MAX_DURATION:
        raise ValueError(f"must be at most {_MAX_DURATION.days}d")
    return duration


def _usable_path(path: Path) -> Path:
    """A path the OS can open: no NUL character, no name longer than it allows."""
    text = str(path)
    if "\x00" in text:
        raise ValueError("must not contain a NUL character")
    if len(os.fsencode(text)) > 4096 or any(len(os.fsencode(p)) > 255 for p in path.parts):
        raise ValueError("is too long for a file path")
    return path


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
FilePath = Annotated[Path, AfterValidator(_usable_path)]


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
    kind: Literal["duckdb"] = "duckdb"  # which connector.sources reads it
    database: FilePath | None = None
    parquet: dict[str, str] = Field(default_factory=dict)
    query: FilePath
    chunk_rows: int = Field(default=10_000, gt=0, le=5_000_000)
    # DuckDB's memory for the query; past it, sorts and joins spill to a temp folder
    memory_limit: str = Field(default="64MB", pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB)$")

    @field_validator("parquet")
    @classmethod
    def _view_names(cls, views: dict[str, str]) -> dict[str, str]:
        for name, pattern in views.items():
            if not _IDENTIFIER.fullmatch(name):
                raise ValueError(f"view name {_clip(repr(name))} must be a plain SQL identifier")
            _usable_path(Path(pattern))
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
    # Required, except for a loopback base_url (the local sandbox): then development.
    environment: Literal["development", "production"]
    bulk: bool = True
    max_batches_per_second: float = Field(default=270, gt=0, le=100_000)
    concurrency: int = Field(default=8, ge=1, le=256)
    timeout_s: float = Field(default=30, gt=0, le=600)
    max_attempts: int = Field(default=8, ge=1, le=100)
    retry_base_s: float = Field(default=0.5, ge=0, le=60)  # full-jitter backoff: first ceiling
    retry_max_s: float = Field(default=30, ge=0, le=600)  # and the largest

    @model_validator(mode="before")
    @classmethod
    def _development_on_loopback(cls, data: Any) -> Any:
        """An unset environment is development when base_url is a loopback host, else
        an error (the pod's and the pixel's hosts are never loopback)."""
        if not isinstance(data, dict) or data.get("environment") is not None:
            return data
        url = data.get("base_url")
        try:
            host = urlsplit(url).hostname if isinstance(url, str) else None
        except ValueError:  # base_url's own check says what is wrong with it
            host = None
        return {**data, "environment": "development" if host and is_loopback_host(host) else None}

    @field_validator("environment", mode="before")
    @classmethod
    def _environment_set(cls, value: Any) -> Any:
        if value is None:
            raise ValueError(
                "not set: write `environment: production` (real conversions) or "
                "`environment: development` (test data); only a loopback base_url (the "
                "local sandbox) defaults to development"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must look like scheme://host[:port]")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not hold credentials (user:password@); use api_key/api_secret")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must be scheme://host[:port] with no path")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError("http:// is allowed only for loopback hosts; use https://")
        try:
            httpx.URL(url)  # the checks httpx makes when it sends
            valid = parts.port != 0 and not any(c.isspace() for c in parts.hostname)
        except (httpx.InvalidURL, ValueError):  # a bad port or host name
            valid = False
        if not valid:
            raise ValueError("is not a valid URL (scheme://host[:port])")
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
                f"cannot hash {_clip(', '.join(unknown))}; hashable columns: {', '.join(HASHABLE)}"
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
                f"{_clip(', '.join(never))}: canonical columns that are never refused as "
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


class SyncConfig(_Strict):
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


class LedgerConfig(_Strict):
    path: FilePath = Path("ledger.duckdb")


class Config(_Strict):
    source: SourceConfig
    destination: DestinationConfig
    mapping: MappingConfig = MappingConfig()
    sync: SyncConfig = SyncConfig()
    ledger: LedgerConfig = LedgerConfig()
    path: Path | None = Field(default=None, exclude=True)


def _clip(text: str) -> str:
    """`text` cut to a readable length for an error message."""
    return text if len(text) <= _MAX_SHOWN else f"{text[: _MAX_SHOWN - 5]}...{text[-2:]}"


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing a key that appears twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {_clip(repr(key.value))} appears twice", key.start_mark
                    )
                seen.add(key.value)
        return super().construct_mapping(node, deep)


class _Expansion:
    """`${VAR}` expansion over the whole document, remembering what it read."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.read: set[str] = set()  # values taken from the environment: never shown
        self.nodes = 0

    def __call__(self, node: Any, where: str) -> Any:
        self.nodes += 1
        if self.nodes > _MAX_NODES or where.count(".") + where.count("[") > 32:
            raise ConfigError(
                f"{_clip(where)}: the config is too large or too deeply nested "
                f"(more than {_MAX_NODES} values after YAML aliases are expanded)"
            )
        if isinstance(node, dict):
            return {k: self(v, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [self(v, f"{where}[{i}]") for i, v in enumerate(node)]
        if not isinstance(node, str):
            return node
        try:
            node.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(
                f"{_clip(where)}: not valid Unicode text (a lone surrogate)"
            ) from None
        return _ENV_REF.sub(lambda match: self._substitute(match, where), node)

    def _substitute(self, match: re.Match[str], where: str) -> str:
        name, default = match.group(1), match.group(2)
        if default is not None and "${" in default:
            raise ConfigError(f"{_clip(where)}: a ${{...}} inside a default is not supported")
        if name in self.env:
            if self.env[name]:
                self.read.add(self.env[name])
            return self.env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{_clip(where)}: environment variable {name} is not set "
            f"(export {name}=... or write ${{{name}:-default}})"
        )


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


def _describe(error: dict[str, Any], hidden: set[str]) -> str:
    loc = ".".join(_clip(str(p)) for p in error["loc"] if not str(p).startswith("function-"))
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{loc}: unknown key (check its spelling against config.example.yaml)"
    shown = error.get("input")
    secret = (
        bool(_SECRET_KEYS & {str(p) for p in error["loc"]})
        or any(value in str(shown) for value in hidden)
        or bool(_USERINFO.search(str(shown)))
    )
    if not secret and isinstance(shown, str | int | float | bool) and error["type"] != "missing":
        return f"{loc}: {message} (got {_clip(repr(shown))})"
    return f"{loc}: {message}"


def load_config(path: str | os.PathLike[str], env: dict[str, str] | None = None) -> Config:
    """Read, expand and validate a config file; raise `ConfigError` naming what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        raw = yaml.load(text, Loader=_Loader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None)
        raise ConfigError(f"{path}: not valid YAML{where}: {problem or exc}") from None
    except (ValueError, OverflowError) as exc:  # e.g. a timestamp like 2026-13-45
        raise ConfigError(f"{path}: not valid YAML: {_clip(str(exc))}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with source, destination, ...")
    if "path" in raw:  # Config.path is where the file was found, not a setting
        raise ConfigError(f"{path}: invalid config:\n  path: unknown key")
    expansion = _Expansion(dict(os.environ) if env is None else env)
    raw = expansion(raw, "")
    _resolve_paths(raw, path.resolve().parent)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        errors = [_describe(dict(e), expansion.read) for e in exc.errors()]
        more = len(errors) - _MAX_ERRORS
        lines = "\n  ".join(errors[:_MAX_ERRORS] + ([f"... and {more} more"] if more > 0 else []))
        raise ConfigError(f"{path}: invalid config:\n  {lines}") from None
    return config.model_copy(update={"path": path.resolve()})
