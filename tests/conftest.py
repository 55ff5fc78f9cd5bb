"""Shared fixtures: config files written into tmp dirs, and the example warehouse."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

ANCHOR = date(2026, 11, 1)  # fixed, so the example rows are the same on every day
EXAMPLE_ROWS = 3000
SECRET = "s3cr3t-Do-Not-Print-7f3a"
API_KEY = "key-Visible-Not-Secret-91"


def base_config(tmp: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A minimal valid config dict for a source in `tmp`, with sections overridden."""
    config: dict[str, Any] = {
        "source": {"database": "warehouse.duckdb", "query": "query.sql", "chunk_rows": 1000},
        "destination": {
            "base_url": "http://127.0.0.1:9",
            "api_key": API_KEY,
            "api_secret": SECRET,
        },
        "ledger": {"path": "ledger.duckdb"},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


def write_config(tmp: Path, config: dict[str, Any], name: str = "config.yaml") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def example_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example warehouse (DuckDB file, Parquet export, manifest) built once."""
    from build_warehouse import build

    out = tmp_path_factory.mktemp("example")
    build(out, rows=EXAMPLE_ROWS, seed=7, anchor=ANCHOR)
    return out


@pytest.fixture(scope="session")
def manifest(example_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((example_dir / "warehouse.manifest.json").read_text())
    return data
