"""The checks of who a batch is about: its user identities (one must identify the user),
user attributes, device info and ip, and integration attributes.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from connector.sandbox.checks_fields import (
    UUID_PATTERN,
    Invalid,
    as_object,
    check_hash,
    check_sized,
    field_path,
    is_scalar,
    shown,
)
from connector.spec import ATTRIBUTES, DEVICE_IDENTITIES, MAX_USER_ATTRIBUTES, Group, Kind

IDENTITY_KEYS = ("email", "other", "customerid", *(f"other_id_{n}" for n in range(2, 11)))
# Any one of these (or a device id in device_info) identifies the user.
MAIN_IDENTITIES = ("email", "other", "customerid", "other_id_2")
UUID_DEVICE_IDS = tuple(
    a.column for a in ATTRIBUTES if a.group == Group.DEVICE and a.kind == Kind.UUID
)


def check_identities(batch: dict[str, Any], device: dict[str, Any]) -> None:
    identities = as_object(batch.get("user_identities", {}), "user_identities", "invalid_identity")
    for key, value in identities.items():
        if key not in IDENTITY_KEYS:
            raise Invalid(
                "unknown_identity",
                f"user_identities.{shown(key)} is not an identity type; "
                f"use one of {', '.join(IDENTITY_KEYS)}",
                field_path("user_identities", key),
            )
        if not isinstance(value, str) or not value:
            raise Invalid(
                "invalid_identity",
                f"user_identities.{key} must be a non-empty string",
                f"user_identities.{key}",
            )
    if "other" in identities:
        where = "user_identities.other"
        check_hash(f"{where} (the hashed email)", identities["other"], where)
    if "email" in identities and "@" not in identities["email"]:
        raise Invalid(
            "invalid_email",
            "user_identities.email is not an email address",
            "user_identities.email",
        )
    if not any(k in identities for k in MAIN_IDENTITIES) and not any(
        isinstance(device.get(k), str) and device[k] for k in DEVICE_IDENTITIES
    ):
        raise Invalid(
            "missing_identity",
            f"user_identities needs one of {', '.join(MAIN_IDENTITIES)} "
            f"(or device_info needs one of {', '.join(DEVICE_IDENTITIES)})",
            "user_identities",
        )


def check_user_attributes(batch: dict[str, Any]) -> None:
    where = "user_attributes"
    attributes = as_object(batch.get(where, {}), where, "invalid_user_attributes")
    if len(attributes) > MAX_USER_ATTRIBUTES:
        raise Invalid(
            "too_many_user_attributes",
            f"user_attributes has {len(attributes)} keys; the limit is {MAX_USER_ATTRIBUTES}",
            where,
        )
    for name, value in attributes.items():
        if not (is_scalar(value) or (isinstance(value, list) and all(is_scalar(v) for v in value))):
            raise Invalid(
                "invalid_user_attributes",
                f"user_attributes.{shown(name)} must be a string, number, boolean or a list",
                field_path(where, name),
            )
        check_sized(where, name, value, where)
        if name.endswith("sha256"):
            check_hash(f"user_attributes.{name}", value, field_path(where, name))


def check_device_and_ip(batch: dict[str, Any], device: dict[str, Any]) -> None:
    for key, value in device.items():
        if not is_scalar(value):
            raise Invalid(
                "invalid_device_info",
                f"device_info.{shown(key)} must be a scalar",
                field_path("device_info", key),
            )
    for key in ("android_uuid", "http_header_user_agent"):
        if key in device and not isinstance(device[key], str):
            raise Invalid(
                "invalid_device_info", f"device_info.{key} must be a string", f"device_info.{key}"
            )
    for key in UUID_DEVICE_IDS:
        if key in device and not (
            isinstance(device[key], str) and UUID_PATTERN.fullmatch(device[key])
        ):
            where = f"device_info.{key}"
            raise Invalid("invalid_device_id", f"{where} must be a UUID", where, indexed=True)
    if "ip" in batch:
        ip = batch["ip"]
        try:
            ok = isinstance(ip, str) and "%" not in ip and bool(ipaddress.ip_address(ip))
        except ValueError:
            ok = False
        if not ok:
            raise Invalid("invalid_ipaddress", "ip must be an IPv4 or IPv6 address", "ip")
    integrations = as_object(
        batch.get("integration_attributes", {}),
        "integration_attributes",
        "invalid_integration_attributes",
    )
    for integration, attributes in integrations.items():
        where = f"integration_attributes.{shown(integration)}"
        path = field_path("integration_attributes", integration)
        code = "invalid_integration_attributes"
        for name, value in as_object(attributes, where, code, path).items():
            if not isinstance(value, str):
                raise Invalid(
                    code, f"{where}.{shown(name)} must be a string", field_path(path, name)
                )
            check_sized(where, name, value, path)
