"""The `destination` section: which transport (`Transport`) and its keys, rates and
retries (`DestinationConfig`), each checked for the transport it serves."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from connector.config.fields import PIXEL_ROOT, POD_HOSTS, Strict, is_loopback_host


class Transport(StrEnum):
    EVENTS_API = "events_api"
    PIXEL = "pixel"
    RUDDERSTACK_PIXEL = "rudderstack_pixel"


class DestinationConfig(Strict):
    transport: Transport = Transport.EVENTS_API
    pod: Literal["US1", "US2", "EU1", "AU1"] = "US1"
    base_url: str | None = None
    api_key: SecretStr | None = None  # events_api and pixel (the pixel's is in the URL path)
    api_secret: SecretStr | None = None  # events_api
    write_key: SecretStr | None = None  # rudderstack_pixel
    event: str = Field(default="Order Completed", min_length=1)  # rudderstack_pixel
    # Required, except for a loopback base_url (the local sandbox): then development.
    environment: Literal["development", "production"]
    bulk: bool = True
    max_batches_per_second: float = Field(default=270, gt=0, le=100_000)  # events_api
    # the pixels: one conversion per request
    max_requests_per_second: float | None = Field(default=None, gt=0, le=100_000)
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

    @field_validator("api_key", "api_secret", "write_key")
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _keys_of_the_transport(self) -> DestinationConfig:
        """Each transport's credentials and rate setting, and nothing misleading."""
        transport, given = self.transport, self.model_fields_set
        needs = {
            Transport.EVENTS_API: ("api_key", "api_secret"),
            Transport.PIXEL: ("api_key",),
            Transport.RUDDERSTACK_PIXEL: ("base_url", "write_key"),
        }[transport]
        for name in needs:
            if getattr(self, name) is None:
                raise ValueError(f"{name} is required when transport is {transport}")
        if transport == Transport.EVENTS_API and "max_requests_per_second" in given:
            raise ValueError(
                "max_requests_per_second is for the pixel transports; the Event API's "
                "rate is max_batches_per_second"
            )
        if transport != Transport.EVENTS_API and "max_batches_per_second" in given:
            raise ValueError(
                f"transport {transport} sends one conversion per request: set "
                "max_requests_per_second instead of max_batches_per_second"
            )
        return self

    @property
    def rate(self) -> float:
        """Conversions per second the destination is sent at most."""
        if self.transport == Transport.EVENTS_API:
            return self.max_batches_per_second
        return self.max_requests_per_second or 100.0

    @property
    def per_request(self) -> int:
        """The most conversions one request carries."""
        from connector.spec import MAX_BATCHES_PER_REQUEST

        one = self.transport != Transport.EVENTS_API or not self.bulk
        return 1 if one else MAX_BATCHES_PER_REQUEST

    @property
    def root_url(self) -> str:
        """Scheme and host the transport sends to."""
        if self.base_url:
            return self.base_url
        if self.transport == Transport.EVENTS_API:
            return POD_HOSTS[self.pod]
        assert self.transport == Transport.PIXEL  # rudderstack_pixel requires base_url
        return PIXEL_ROOT
