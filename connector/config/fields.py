"""The building blocks of the config models: durations, usable file paths, loopback
hosts, the platform's hosts, and the limits on what an error message may show."""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
)

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")

_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# keys whose value an error never shows (`options`: a warehouse driver's, tokens among them)
SECRET_KEYS = {"api_key", "api_secret", "write_key", "uri", "options"}

_MAX_DURATION = timedelta(days=36_525)  # a century; more overflows date arithmetic

MAX_NODES = 10_000  # keys and values of a config, after YAML aliases are expanded

MAX_SHOWN = 80  # characters of a value or key quoted in an error message

MAX_ERRORS = 20

USERINFO = re.compile(r"://[^/?#]*@")  # a URL with user:password in it is never shown

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


def usable_path(path: Path) -> Path:
    """A path the OS can open: no NUL character, no name longer than it allows."""
    text = str(path)
    if "\x00" in text:
        raise ValueError("must not contain a NUL character")
    if len(os.fsencode(text)) > 4096 or any(len(os.fsencode(p)) > 255 for p in path.parts):
        raise ValueError("is too long for a file path")
    return path


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

FilePath = Annotated[Path, AfterValidator(usable_path)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def clip(text: str) -> str:
    """`text` cut to a readable length for an error message."""
    return text if len(text) <= MAX_SHOWN else f"{text[: MAX_SHOWN - 5]}...{text[-2:]}"
