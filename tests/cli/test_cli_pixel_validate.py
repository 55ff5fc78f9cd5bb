"""`validate` with the pixel transports, through the CLI over the example warehouse:
the query strings it would send, and what it tells the user each transport leaves out
or cannot know."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from conftest import REPO, base_config, cli, write_config
from test_cli_validate import WINDOW, raw_pii

DESTINATIONS: dict[str, dict[str, Any]] = {
    "pixel": {"transport": "pixel", "api_key": "pixel-key-s3cr3t"},
    "rudderstack_pixel": {
        "transport": "rudderstack_pixel",
        "write_key": "write-key-s3cr3t",
        "base_url": "http://127.0.0.1:9",
    },
}


def leaks(example_dir: Path, output: str) -> list[str]:
    """The example warehouse's plain PII found in `output` as whole words, plain or
    percent-encoded (a last name "Doe" is not found in "does")."""
    words = set(re.findall(r"[\w.@+%-]+", output))
    return [v for v in raw_pii(example_dir) if v in words or quote(v, safe="") in words]


def pixel_config(tmp: Path, example_dir: Path, kind: str) -> Path:
    config = base_config(
        tmp,
        source={
            "database": str(example_dir / "warehouse.duckdb"),
            "query": str(REPO / "sql" / "conversions.sql"),
        },
        destination=DESTINATIONS[kind] | {"environment": "development"},
    )
    del config["destination"]["api_secret"]
    return write_config(tmp, config)


def test_validate_shows_pixel_queries_and_what_the_pixel_cannot_carry(
    tmp_path: Path, example_dir: Path, manifest: dict[str, Any]
) -> None:
    config = pixel_config(tmp_path, example_dir, "pixel")
    result = cli("validate", "--config", str(config), *WINDOW, "--show", "3", "--json")
    assert result.returncode == 1, result.stderr  # the dirty rows
    report = json.loads(result.stdout)
    assert report["rows_read"] == manifest["rows"]
    counted = report["valid"] + report["duplicates"] + report["rejected"]
    assert counted == report["rows_read"]
    assert report["requests"] == report["valid"]  # one conversion per GET
    assert len(report["payloads"]) == 3
    assert all(
        p.startswith("dt=AppEvent&et=Transaction&n=conversion&ct=") for p in report["payloads"]
    )
    assert any("the pixel has no place for ipaddress" in n for n in report["notes"])
    output = result.stdout + result.stderr
    assert "pixel-key-s3cr3t" not in output
    assert leaks(example_dir, output) == []


def test_validate_says_rudderstack_cannot_see_refusals_and_sends_no_hashed_email(
    tmp_path: Path, example_dir: Path
) -> None:
    config = pixel_config(tmp_path, example_dir, "rudderstack_pixel")
    result = cli("validate", "--config", str(config), *WINDOW, "--show", "1")
    assert result.returncode == 1, result.stderr
    text = " ".join(result.stdout.split())
    assert "note: RudderStack's gateway answers 200 whatever becomes of a request" in text
    assert "note: no email is sent: RudderStack's Rokt destination reads only a plain email" in text
    assert "anonymousId=" in text and "properties.order_id=" in text
    assert "write-key-s3cr3t" not in result.stdout + result.stderr
    assert leaks(example_dir, result.stdout + result.stderr) == []
