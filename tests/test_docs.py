"""The docs keep up with the code where that is cheap to check: every config key, exit
code, exception, command and flag, attribute, reason code, warning and ledger table
appears in its page, links between the pages resolve, and no file points elsewhere."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel

import connector
from connector import errors
from connector.cli import app
from connector.config import Config
from connector.spec import ATTRIBUTES, REASONS, WARNINGS

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
# The contracts once lived outside the repository, in documents of these names.
OUTSIDE = ("DESIGN" + ".md", "ATTRIBUTES" + ".md")
# Files other branches of #17 are moving; they still name the documents above, and
# each entry leaves this set when its move lands (the test below says when).
SCANNED = ("connector", "sql", "tests", "bench", "examples", "docs", ".ci")
TOP_LEVEL = ("README.md", "Makefile", "pyproject.toml", "config.example.yaml")
TEXT = {"", ".py", ".sql", ".md", ".yaml", ".yml", ".toml", ".txt", ".json", ".cfg", ".sh"}


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """The text under `heading` (a whole heading line), up to the next heading of the
    same or a higher level."""
    level = heading.split(" ", 1)[0]
    lines = text.split("\n")
    assert heading in lines, f"no heading {heading!r}"
    start = lines.index(heading) + 1
    body: list[str] = []
    for line in lines[start:]:
        marks = line.split(" ", 1)[0]
        if marks and set(marks) == {"#"} and len(marks) <= len(level):
            break
        body.append(line)
    return "\n".join(body)


def _table_keys(text: str) -> list[str]:
    """The first cell of each table row of `text` that is one `code` span."""
    return re.findall(r"^\| `([^`]+)` \|", text, flags=re.MULTILINE)


def _fields(model: type[BaseModel]) -> list[str]:
    return [name for name, field in model.model_fields.items() if not field.exclude]


def _keys(model: type[BaseModel]) -> list[str]:
    """The model's keys, and those of a section nested in it as `section.key`."""
    keys = []
    for name in _fields(model):
        annotation = model.model_fields[name].annotation
        nested = [a for a in (*typing.get_args(annotation), annotation) if _is_model(a)]
        keys += [name, *(f"{name}.{key}" for model in nested for key in _keys(model))]
    return keys


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _heading(page: str, prefix: str) -> str:
    """The one heading line of `page` that starts with `prefix`."""
    [line] = [line for line in page.split("\n") if line.startswith(prefix)]
    return line


@pytest.mark.parametrize("section", _fields(Config))
def test_every_config_key_is_in_config_md(section: str) -> None:
    model: Any = Config.model_fields[section].annotation
    page = _page("config.md")
    text = _section(page, _heading(page, f"## `{section}`"))
    assert set(_table_keys(text)) == set(_keys(model))


def test_every_exit_code_is_in_exit_codes_md() -> None:
    table = _section(_page("exit-codes.md"), "# Exit codes")
    rows = re.findall(r"^\| (\d+) \| `(EXIT_[A-Z_]+)` \|", table, flags=re.MULTILINE)
    codes = {name: value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    assert {name: int(value) for value, name in rows} == codes


def test_every_exception_is_in_exit_codes_md_with_its_code() -> None:
    table = _section(_page("exit-codes.md"), "## Exceptions")
    rows = dict(re.findall(r"^\| `(\w+)` \| (\d+) \|", table, flags=re.MULTILINE))
    public = [getattr(connector, name) for name in connector.__all__]
    defined = list(vars(errors).values())
    classes = {
        c for c in public + defined if isinstance(c, type) and issubclass(c, errors.ConnectorError)
    }
    assert {c.__name__: str(c.exit_code) for c in classes} == rows


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every leaf command of the CLI by its path (`("ledger", "show")`)."""
    if hasattr(command, "commands"):
        return [
            leaf for name, sub in command.commands.items() for leaf in _commands(sub, (*path, name))
        ]
    return [(path, command)]


COMMANDS = _commands(typer.main.get_command(app))


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_and_flag_is_in_cli_md(path: tuple[str, ...], command: Any) -> None:
    heading = ("## " if len(path) == 1 else "### ") + " ".join(path)
    text = _section(_page("cli.md"), heading)
    flags = [
        opt
        for param in command.params
        for opt in (*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ()))
        if opt.startswith("--") and opt != "--help"
    ]
    assert flags, f"{heading}: the command has no options?"
    for flag in flags:
        assert f"`{flag}`" in text, f"cli.md, {heading}: {flag} is not described"


def test_every_attribute_reason_and_warning_is_in_attributes_md() -> None:
    page = _page("attributes.md")
    where = _section(page, "## Where each column goes")
    for attribute in ATTRIBUTES:
        assert f"`{attribute.column}`" in where, f"{attribute.column} is not in attributes.md"
    reasons = _table_keys(_section(page, _heading(page, "## Reason codes")))
    assert reasons == list(REASONS), "attributes.md lists the reason codes in their order"
    warnings = _table_keys(_section(page, _heading(page, "## Field warnings")))
    assert warnings == list(WARNINGS), "attributes.md lists the field warnings in their order"


def _tables(ddl: str) -> dict[str, list[str]]:
    """Each table of a DDL file and its columns."""
    tables: dict[str, list[str]] = {}
    for name, body in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);", ddl, re.S):
        lines = (line.split("--")[0].strip() for line in body.split("\n"))
        columns = [line.split()[0] for line in lines if line and not line.startswith("PRIMARY")]
        tables[name] = columns
    return tables


def test_every_ledger_table_and_column_is_in_ledger_md() -> None:
    page = _page("ledger.md")
    tables = _tables((REPO / "sql" / "ledger.sql").read_text(encoding="utf-8"))
    assert {"ledger", "attempts", "runs"} <= set(tables)
    for table, columns in tables.items():
        text = _section(page, _heading(page, f"### `{table}`"))
        for column in columns:
            assert f"`{column}`" in text, f"ledger.md, {table}: {column} is not described"


def test_ledger_md_names_the_schema_version_and_every_migration() -> None:
    migrations = sorted(
        int(m[1])
        for p in (REPO / "sql").glob("ledger_migrate_*_to_*.sql")
        if (m := re.fullmatch(r"ledger_migrate_\d+_to_(\d+)\.sql", p.name))
    )
    latest = migrations[-1]
    text = _section(_page("ledger.md"), "## Identity, schema version and migrations")
    assert f"version **{latest}**" in text
    versions = [int(v) for v in re.findall(r"^\| (\d+) \|", text, flags=re.MULTILINE)]
    assert versions == list(range(1, latest + 1))


def test_every_page_is_linked_from_the_readme_and_every_link_resolves() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    documentation = readme.split("\n## Documentation\n", 1)[1].split("\n## ", 1)[0]
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)\)", documentation))
    assert linked == {p.name for p in DOCS.glob("*.md")}
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([\w./-]+\.md)(?:#[\w-]+)?\)", page.read_text("utf-8")):
            assert (page.parent / target).is_file(), f"{page.name} links to a missing {target}"


def _repository_files() -> list[Path]:
    files = [REPO / name for name in TOP_LEVEL]
    for top in SCANNED:
        files += [p for p in (REPO / top).rglob("*") if p.is_file() and p.suffix in TEXT]
    return files


def _names_outside(path: Path) -> bool:
    text = path.read_text(encoding="utf-8", errors="replace")
    return any(name in text for name in OUTSIDE)


def test_no_file_points_to_the_documents_outside_the_repository() -> None:
    offenders = {
        str(path.relative_to(REPO)) for path in _repository_files() if _names_outside(path)
    }
    assert offenders == set(), "point these at docs/ instead"
