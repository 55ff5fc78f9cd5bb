"""The package's public API (`import connector`): every name it exports, each loaded
on first use, so importing the package loads no heavy library."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import connector

PROBE = """
import json, sys
import connector
before = sorted(sys.modules)
connector.sync
print(json.dumps({"before": before, "after": sorted(sys.modules)}))
"""


def test_every_exported_name_resolves() -> None:
    for name in connector.__all__:
        assert getattr(connector, name) is not None, name
    assert set(connector.__all__) <= set(dir(connector))
    assert connector.__version__


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = connector.nope  # type: ignore[attr-defined]


def test_the_package_loads_polars_only_when_a_job_is_used() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    modules = json.loads(probe.stdout)
    assert "polars" not in modules["before"]
    assert "polars" in modules["after"]
    assert "connector._allocator" in modules["before"]  # set up before polars loads
