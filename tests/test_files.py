"""No file the connector writes can be redirected (issue 15, findings 1, 2 and 7),
end to end through the CLI against the sandbox: links planted where it writes its
marker, an export or its ledger leave their targets as they were, an `--out` that
is a link or a directory is refused, and a dry run creates nothing."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import SandboxProcess, cli, sync_config

pytestmark = pytest.mark.e2e
StartSandbox = Callable[..., SandboxProcess]
VICTIM_BYTES = b"someone else's data\n"


def sync(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("sync", "--config", str(config), "--json", *extra)


def report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode in (0, 1), result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def victim(tmp: Path) -> Path:
    """A file of the user's that no run should touch."""
    path = tmp / "victim.txt"
    path.write_bytes(VICTIM_BYTES)
    path.chmod(0o644)
    return path


def assert_untouched(path: Path) -> None:
    assert path.read_bytes() == VICTIM_BYTES
    assert path.stat().st_mode & 0o777 == 0o644


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def stderr_text(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join(result.stderr.split())  # rich wraps long lines


def set_ledger_path(config: Path, ledger: str) -> None:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["ledger"]["path"] = ledger
    config.write_text(yaml.safe_dump(data), encoding="utf-8")


def test_links_at_the_marker_and_its_partial_file_redirect_nothing(
    tmp_path: Path, example_dir: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    config = sync_config(tmp_path, example_dir, sandbox.url)
    target = victim(tmp_path)
    marker = tmp_path / "ledger.duckdb.marker.json"
    partial = tmp_path / "ledger.duckdb.marker.json.partial"
    partial.symlink_to(target)

    assert report(sync(config, "--dry-run"))["mode"] == "dry_run"
    assert_untouched(target)
    first = report(sync(config))
    assert first["accepted"] > 0
    assert_untouched(target)
    assert not marker.is_symlink() and mode(marker) == 0o600
    assert json.loads(marker.read_text())["runs"] == 1

    marker.unlink()
    marker.symlink_to(target)
    for extra in (["--dry-run"], []):
        refused = sync(config, *extra)
        assert refused.returncode == 2 and refused.stdout == ""
        message = stderr_text(refused)
        assert f"{marker} is a symbolic link to {target}" in message
        assert_untouched(target)
    assert sandbox.stats()["requests"] == first["requests"]  # nothing sent meanwhile


def test_export_refuses_a_link_or_a_directory_and_writes_owner_only(
    tmp_path: Path, example_dir: Path, sandbox_factory: StartSandbox
) -> None:
    config = sync_config(tmp_path, example_dir, sandbox_factory().url)
    report(sync(config))
    export = ["ledger", "export", "--config", str(config), "--out"]

    target = victim(tmp_path)
    link = tmp_path / "failed.csv"
    link.symlink_to(target)
    refused = cli(*export, str(link))
    assert refused.returncode == 2, refused.stderr
    assert f"--out: {link} is a symbolic link to {target}" in stderr_text(refused)
    assert_untouched(target)
    assert link.is_symlink()

    folder = tmp_path / "october.parquet"
    folder.mkdir(mode=0o755)
    refused = cli(*export, str(folder))
    assert refused.returncode == 2
    assert f"--out: {folder} is a directory" in stderr_text(refused)
    assert mode(folder) == 0o755 and not any(folder.iterdir())

    for suffix in (".csv", ".parquet"):
        out = tmp_path / f"export{suffix}"
        out.write_bytes(b"an older export, readable by all\n")
        out.chmod(0o644)
        exported = cli(*export, str(out))
        assert exported.returncode == 0, exported.stderr
        assert mode(out) == 0o600 and out.stat().st_size > 100
    leftovers = {p.name for p in tmp_path.iterdir()} - {
        "config.yaml",
        "ledger.duckdb",
        "ledger.duckdb.marker.json",
        "victim.txt",
        "failed.csv",
        "october.parquet",
        "export.csv",
        "export.parquet",
    }
    assert not leftovers  # no temporary file or directory left behind


def test_a_dry_run_creates_no_ledger_marker_or_directory(
    tmp_path: Path, example_dir: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    config = sync_config(tmp_path, example_dir, sandbox.url)
    set_ledger_path(config, "sub/dir/ledger.duckdb")
    before = sorted(tmp_path.rglob("*"))

    dry = report(sync(config, "--dry-run"))
    assert dry["mode"] == "dry_run" and dry["rows_read"] > 0 and dry["requests"] == 0
    assert sorted(tmp_path.rglob("*")) == before  # no ledger, marker, nor sub/dir
    assert sandbox.stats()["requests"] == 0

    synced = report(sync(config))  # a real sync creates them
    assert synced["accepted"] > 0 and mode(tmp_path / "sub/dir/ledger.duckdb") == 0o600
    ledger = tmp_path / "sub/dir/ledger.duckdb"
    files = {p: p.stat().st_mtime_ns for p in ledger.parent.iterdir()}
    again = report(sync(config, "--dry-run"))  # reads the ledger, writes none of it
    assert again["rows_skipped_ledger"] == synced["accepted"] and again["requests"] == 0
    assert {p: p.stat().st_mtime_ns for p in ledger.parent.iterdir()} == files
    summary = cli("ledger", "summary", "--config", str(config), "--json")
    assert json.loads(summary.stdout)["runs_total"] == 1  # the dry run left no runs row


def test_a_ledger_path_that_is_a_link_is_refused_before_anything_is_created(
    tmp_path: Path, example_dir: Path, sandbox_factory: StartSandbox
) -> None:
    sandbox = sandbox_factory()
    config = sync_config(tmp_path, example_dir, sandbox.url)
    link = tmp_path / "ledger.duckdb"
    target = tmp_path / "elsewhere.duckdb"
    link.symlink_to(target)  # dangling
    commands = [
        ["sync", "--config", str(config), "--dry-run"],
        ["sync", "--config", str(config)],
        ["backfill", "--config", str(config), "--since", "2026-10-01", "--until", "2026-10-03"],
        ["ledger", "summary", "--config", str(config)],
    ]
    for args in commands:
        refused = cli(*args)
        assert refused.returncode == 2, (args, refused.stderr)
        assert f"ledger.path: {link} is a symbolic link to {target}" in stderr_text(refused)
        assert not target.exists() and link.is_symlink()
    assert not (tmp_path / "elsewhere.duckdb.marker.json").exists()

    link.unlink()  # a link to a real ledger is refused too
    set_ledger_path(config, str(target))
    sent = report(sync(config))["requests"]
    set_ledger_path(config, str(link))
    link.symlink_to(target)
    before = target.read_bytes()
    for args in commands:
        refused = cli(*args)
        assert refused.returncode == 2, (args, refused.stderr)
        assert f"ledger.path: {link} is a symbolic link to {target}" in stderr_text(refused)
    assert target.read_bytes() == before
    assert not (tmp_path / "ledger.duckdb.marker.json").exists()
    assert sandbox.stats()["requests"] == sent
