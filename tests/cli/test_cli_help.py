"""`--help` and `--version`: what they print, and that they load none of the heavy
libraries (polars, DuckDB, the sandbox's server, the HTTP client) to print it."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from connector import __version__
from connector.cli import app

HEAVY = ("polars", "duckdb", "pyarrow", "starlette", "uvicorn", "httpx")
# Runs the CLI's entry point as the console script does, then lists what it loaded.
PROBE = """
import json, sys
sys.argv = ["rokt-connector", *json.loads(sys.argv[1])]
from connector.cli import main
try:
    main()
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _commands() -> list[list[str]]:
    """Every command of the CLI as its words (["ledger", "show"] for one of a group)."""
    group: Any = typer.main.get_command(app)
    words = []
    for name, command in group.commands.items():
        subcommands = getattr(command, "commands", None)
        words += [[name, sub] for sub in subcommands] if subcommands else [[name]]
    return words


@pytest.mark.parametrize(
    "args", [["--version"], ["--help"], ["sync", "--help"], ["ledger", "show", "--help"]]
)
def test_help_and_version_load_no_heavy_library(args: list[str]) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(probe.stdout.splitlines()[-1])
    assert result["code"] in (0, None), probe.stdout
    loaded = {name.partition(".")[0] for name in result["modules"]}
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"rokt-connector {__version__}\n"


@pytest.mark.parametrize("words", _commands(), ids=" ".join)
def test_options_name_their_values_and_flags_show_none(words: list[str]) -> None:
    result = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    options = [line for line in result.output.splitlines() if " --" in line]
    assert any("--help" in line for line in options)
    for line in options:
        for placeholder in ("<bool>", "<str>", "<int", "<float", "<path>", "<list"):
            assert placeholder not in line, f"`{' '.join(words)} --help`: {line.strip()}"


def test_the_root_help_lists_every_command_and_version() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for line in ("--version", "Print the version and exit.", "--help"):
        assert line in result.output
    for words in _commands():
        assert words[0] in result.output
    assert "see the sandbox in the README" in result.output  # a document the repo has
