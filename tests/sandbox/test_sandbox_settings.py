"""The sandbox's settings are checked before anything is served; a host other than loopback
is refused.
"""

from __future__ import annotations

from typing import Any

import pytest

from connector.sandbox import SandboxSettings, serve


def test_settings_are_checked() -> None:
    bad_settings: list[dict[str, Any]] = [
        {"fail_rate": 1.5},
        {"reject_rate": -0.1},
        {"rate_limit": 0},
        {"latency_s": -1},
        {"keep_bodies": -1},
        {"burst_503_rate": 2},
        {"hang_rate": -0.5},
        {"burst_length": 0},
        {"retry_after_max_s": -1},
        {"slow_s": -1},
        {"header_timeout_s": 0},
        {"max_connections": 0},
    ]
    for bad in bad_settings:
        with pytest.raises(ValueError):
            SandboxSettings(**bad)
    with pytest.raises(ValueError, match="non-loopback"):
        serve(SandboxSettings(), host="0.0.0.0", port=0)
