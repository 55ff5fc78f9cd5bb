"""What every batch check shares: `Invalid` (a code, a message naming the field, the field's
reader path), `Checked`, and the checks of one field (type, length, hash, the depth limit);
none keeps state or echoes a batch value.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

from connector.spec import MAX_NAME_CHARS, MAX_VALUE_CHARS
from connector.values import UUID

_HEX = re.compile(r"[0-9a-f]{64}")  # hashes are sent lower-case (docs/hashing.md)
UUID_PATTERN = re.compile(UUID)
DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")  # a number as text (the SDK's amounts)
DIGITS = re.compile(r"[0-9]+")  # an integer as text
_PATH_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")  # a key shown in a Path; others are not
# The platform's JSON reader refuses deeper nesting (Newtonsoft's MaxDepth).
MAX_DEPTH = 64


class Invalid(Exception):
    """A request or batch the sandbox refuses: a code and a message naming the field.

    `path` is the field's reader path inside the batch ("" for none); `indexed`: the
    platform's answer prefixes it with the batch's index in a bulk array (`[3].`), as
    its .NET reader does for values it fails to convert (the device ids' UUIDs).
    """

    def __init__(self, code: str, message: str, path: str = "", indexed: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.path = path
        self.indexed = indexed


class Checked(NamedTuple):
    batch: dict[str, Any]
    source_request_id: str | None  # optional in the platform's schema
    environment: str
    confirmationref: str


def field_path(where: str, key: object) -> str:
    """`where.key`, or just `where` when the key is not a plain short name."""
    if not (isinstance(key, str) and _PATH_KEY.fullmatch(key)):
        return where
    return f"{where}.{key}" if where else key


def shown(key: object) -> str:
    text = str(key)
    return repr(text if len(text) <= 64 else text[:64] + "...")


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def as_object(value: object, where: str, code: str, path: str | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(code, f"{where} must be a JSON object", where if path is None else path)
    return value


def check_sized(where: str, name: str, value: object, path: str) -> None:
    """Name and value length limits (docs/attributes.md, "Limits") of one attribute;
    `path`: its object's."""
    if len(name) > MAX_NAME_CHARS:
        raise Invalid(
            "attribute_name_too_long",
            f"{where} has an attribute name longer than {MAX_NAME_CHARS} characters",
            path,
        )
    texts = value if isinstance(value, list) else [value]
    if any(len(v if isinstance(v, str) else json.dumps(v)) > MAX_VALUE_CHARS for v in texts):
        raise Invalid(
            "attribute_value_too_long",
            f"{where}.{name} is longer than {MAX_VALUE_CHARS} characters",
            field_path(path, name),
        )


def check_hash(where: str, value: object, path: str) -> None:
    if not (isinstance(value, str) and _HEX.fullmatch(value)):
        raise Invalid(
            "invalid_hash", f"{where} must be 64 lowercase hex characters (SHA-256)", path
        )
