"""The `connector` package's import graph has no cycles: every import counts, those in
functions and under `TYPE_CHECKING` included (read from the source, nothing imported).
"""

from __future__ import annotations

import ast
from pathlib import Path

import connector

PACKAGE = Path(connector.__file__).resolve().parent

# Imports (importer, imported) that close a cycle today, to be removed as each cycle is
# broken: the test fails on a listed import that is gone, and must end up with none.
EXPECTED_FOR_NOW: set[tuple[str, str]] = set()


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its `__init__.py`)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that module `name` (at `path`) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from a import b` imports module a.b when there is one, else a name of a
            targets.update(
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            )
    return {target for target in targets if target in known} - {name}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(name, path, set(found)) for name, path in found.items()}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (its modules, the first repeated at the end), or None."""
    done: set[str] = set()
    for start in sorted(edges):
        if start in done:
            continue
        trail: list[str] = []
        on_trail: set[str] = set()
        stack = [(start, iter(sorted(edges[start])))]
        trail.append(start)
        on_trail.add(start)
        while stack:
            node, rest = stack[-1]
            following = next(rest, None)
            if following is None:
                stack.pop()
                trail.pop()
                on_trail.discard(node)
                done.add(node)
            elif following in on_trail:
                return [*trail[trail.index(following) :], following]
            elif following not in done:
                stack.append((following, iter(sorted(edges[following]))))
                trail.append(following)
                on_trail.add(following)
    return None


def test_the_connector_package_imports_no_module_that_imports_it_back() -> None:
    edges = graph()
    gone = {edge for edge in EXPECTED_FOR_NOW if edge[1] not in edges.get(edge[0], set())}
    assert not gone, f"no longer imported: remove {sorted(gone)} from EXPECTED_FOR_NOW"
    for importer, target in EXPECTED_FOR_NOW:
        edges[importer] = edges[importer] - {target}
    found = cycle(edges)
    assert found is None, "import cycle: " + " -> ".join(found or [])


def test_the_check_finds_a_cycle_and_passes_a_graph_without_one() -> None:
    edges = {"a": {"b"}, "b": {"c", "d"}, "c": {"a"}, "d": set()}
    assert cycle(edges) == ["a", "b", "c", "a"]
    assert cycle(edges | {"c": {"d"}}) is None
