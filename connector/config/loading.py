"""Reading a config file: YAML (duplicate keys, alias bombs and undecodable text are
errors), `${VAR}` / `${VAR:-default}` from the environment, paths relative to the
file, and every failure as one `ConfigError` naming the key, never a secret."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from connector.config.fields import (
    ENV_REF,
    MAX_ERRORS,
    MAX_NODES,
    SECRET_KEYS,
    USERINFO,
    clip,
)
from connector.config.models import (
    Config,
)
from connector.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing a key that appears twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {clip(repr(key.value))} appears twice", key.start_mark
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
        if self.nodes > MAX_NODES or where.count(".") + where.count("[") > 32:
            raise ConfigError(
                f"{clip(where)}: the config is too large or too deeply nested "
                f"(more than {MAX_NODES} values after YAML aliases are expanded)"
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
            raise ConfigError(f"{clip(where)}: not valid Unicode text (a lone surrogate)") from None
        return ENV_REF.sub(lambda match: self._substitute(match, where), node)

    def _substitute(self, match: re.Match[str], where: str) -> str:
        name, default = match.group(1), match.group(2)
        if default is not None and "${" in default:
            raise ConfigError(f"{clip(where)}: a ${{...}} inside a default is not supported")
        if name in self.env:
            if self.env[name]:
                self.read.add(self.env[name])
            return self.env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{clip(where)}: environment variable {name} is not set "
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
    audiences = raw.get("audiences")
    if isinstance(audiences, dict) and "query" in audiences:
        audiences["query"] = rel(audiences["query"])
    ledger = raw.get("ledger")
    if isinstance(ledger, dict) and "path" in ledger:
        ledger["path"] = rel(ledger["path"])


def _describe(error: dict[str, Any], hidden: set[str]) -> str:
    loc = ".".join(clip(str(p)) for p in error["loc"] if not str(p).startswith("function-"))
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{loc}: unknown key (check its spelling against config.example.yaml)"
    shown = error.get("input")
    secret = (
        bool(SECRET_KEYS & {str(p) for p in error["loc"]})
        or any(value in str(shown) for value in hidden)
        or bool(USERINFO.search(str(shown)))
    )
    if not secret and isinstance(shown, str | int | float | bool) and error["type"] != "missing":
        return f"{loc}: {message} (got {clip(repr(shown))})"
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
        raise ConfigError(f"{path}: not valid YAML: {clip(str(exc))}") from None
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
        more = len(errors) - MAX_ERRORS
        lines = "\n  ".join(errors[:MAX_ERRORS] + ([f"... and {more} more"] if more > 0 else []))
        raise ConfigError(f"{path}: invalid config:\n  {lines}") from None
    return config.model_copy(update={"path": path.resolve()})
