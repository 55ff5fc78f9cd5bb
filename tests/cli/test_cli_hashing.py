"""Hashing as Rokt matches, through the CLI: `validate` counts the mobiles that are no
phone numbers, and `sync` delivers what Rokt hashes (national numbers, ZIP+4, names
without spaces) to the sandbox, sending every conversion."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import base_config, cli, write_config

pytestmark = pytest.mark.e2e
WINDOW = ["--since", "2026-10-01", "--until", "2026-11-01"]
ROWS = [
    # confirmationref, mobile, zip, firstname
    ("H-1", "+1 (555) 123-4567", "12345-6789", "Mary Ann"),
    ("H-2", "n/a", "SW1A 1AA", "Zoe\u0308"),
    ("H-3", "020 7946 0001", "90210", "Jean-Luc"),
]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def project(tmp: Path, url: str = "http://127.0.0.1:9") -> Path:
    with duckdb.connect(str(tmp / "warehouse.duckdb")) as con:
        con.execute(
            "CREATE TABLE orders (ref VARCHAR, mobile VARCHAR, zip VARCHAR, first VARCHAR, "
            "email VARCHAR, ordered_at TIMESTAMPTZ)"
        )
        con.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, TIMESTAMPTZ '2026-10-20 12:00:00+00')",
            [(*row, f"{row[0].lower()}@example.com") for row in ROWS],
        )
    (tmp / "query.sql").write_text(
        "SELECT ref AS confirmationref, mobile, zip, first AS firstname, email, "
        "'purchase' AS conversiontype, ordered_at AS event_time FROM orders "
        "WHERE ordered_at >= $since AND ordered_at < $until",
        encoding="utf-8",
    )
    config = base_config(
        tmp,
        destination={"base_url": url, "api_key": "sandbox-key", "api_secret": "sandbox-secret"},
        mapping={"phone_region": "GB"},
    )
    return write_config(tmp, config)


def test_validate_counts_a_mobile_that_is_no_phone_as_a_warning(tmp_path: Path) -> None:
    config = project(tmp_path)
    result = cli("validate", "--config", str(config), *WINDOW, "--json")
    assert result.returncode == 0, result.stderr  # every conversion would be sent
    report = json.loads(result.stdout)
    assert (report["valid"], report["rejected"]) == (3, 0)
    assert report["warnings"] == {"invalid_mobile": 1}
    text = cli("validate", "--config", str(config), *WINDOW)
    assert "field dropped: invalid_mobile" in text.stdout
    assert "mobile is no phone number" in text.stdout


def test_sync_delivers_what_rokt_hashes(tmp_path: Path, sandbox_factory: Any) -> None:
    sandbox = sandbox_factory()
    result = cli("sync", "--config", str(project(tmp_path, sandbox.url)), *WINDOW, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["accepted"], report["warnings"]) == (3, {"invalid_mobile": 1})
    received = {r["confirmationref"]: r["batch"]["user_attributes"] for r in sandbox.records()}
    assert received == {
        "H-1": {
            "firstnamesha256": sha("maryann"),
            "mobilesha256": sha("5551234567"),
            "billingzipsha256": sha("12345"),
            "billingzip4sha256": sha("12345-6789"),
        },
        "H-2": {"firstnamesha256": sha("zo\u00eb"), "billingzipsha256": sha("SW1A1AA")},
        "H-3": {
            "firstnamesha256": sha("jean-luc"),
            "mobilesha256": sha("2079460001"),
            "billingzipsha256": sha("90210"),
        },
    }
