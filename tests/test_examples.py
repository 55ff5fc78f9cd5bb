"""The examples the README shows: each is included verbatim from `examples/`, and the
README's mapping query runs. The orchestrators run their examples in
test_airflow_example.py and test_dagster_example.py."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
from conftest import REPO, SandboxProcess, base_config, cli, write_config

from connector.spec import REASONS, WARNINGS

StartSandbox = Callable[..., SandboxProcess]
INCLUDE = re.compile(r"<!-- include: (\S+) -->\n```\w*\n(.*?)```\n", re.DOTALL)
README = (REPO / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    """The README's text under `## title`, up to the next section."""
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_shows_each_example_file_as_it_is() -> None:
    included = INCLUDE.findall(README)
    assert {name for name, _ in included} >= {
        "examples/airflow_dag.py",
        "examples/dagster_assets.py",
    }
    for name, shown in included:
        assert shown == (REPO / name).read_text(encoding="utf-8"), f"README shows an old {name}"


def test_the_readme_mapping_example_runs_on_the_example_warehouse(
    tmp_path: Path, example_dir: Path, manifest: dict[str, Any]
) -> None:
    """The query under "Mapping your warehouse" reads every row of the example warehouse
    (its created_at is text in mixed renderings), and keeps a row whose time it cannot
    read, rejected as invalid_event_time instead of lost."""
    (query,) = re.findall(r"```sql\n(.*?)```", _section("Mapping your warehouse"), re.DOTALL)
    (tmp_path / "query.sql").write_text(query, encoding="utf-8")
    shutil.copy(example_dir / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    config = str(write_config(tmp_path, base_config(tmp_path)))
    window = ["--since", "2026-09-01", "--until", "2026-11-02", "--json"]
    result = cli("validate", "--config", config, *window)
    assert result.returncode <= 1, result.stderr
    report = json.loads(result.stdout)
    assert (report["rows_read"], report["valid"]) == (manifest["rows"], manifest["valid"])
    assert report["rejected_by_reason"] == manifest["rejected"]

    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("UPDATE orders SET created_at = '28/10/2026 10:00' WHERE rowid < 2")
    result = cli("validate", "--config", config, *window)
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["rows_read"] == manifest["rows"]
    assert report["rejected_by_reason"]["invalid_event_time"] == 2


def test_the_readme_lists_every_reason_code_and_warning() -> None:
    text = " ".join(re.sub(r"\([^)]*\)", "", _section("Validate before you send")).split())
    reasons = re.search(r"Reason codes ?:(.*?)Each one's hint", text)
    warnings = re.search(r"Field warnings\..*?Codes ?:(.*?)\.", text)
    assert reasons and warnings, "the README's lists of reason codes and warnings moved"
    assert sorted(re.findall(r"`([a-z_]+)`", reasons[1])) == sorted(REASONS)
    assert sorted(re.findall(r"`([a-z_]+)`", warnings[1])) == sorted(WARNINGS)
