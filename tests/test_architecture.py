"""The floors of the house, checked: imports run down the floors, never up, and never in a circle.

Floors, bottom to top (docs/architecture in the README): ``features`` → ``sources``, ``models`` →
``artifact``, ``reporting`` → ``pipelines``. Every import counts, also one inside a function:
a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS: dict[str, int] = {
    "features": 0,
    "sources": 1,
    "models": 1,
    "artifact": 2,
    "reporting": 2,
    "pipelines": 3,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _source_files() -> list[Path]:
    return sorted(p for package in FLOORS for p in (ROOT / package).rglob("*.py"))


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The siyu modules ``path`` imports (``from a.b import c`` counts as ``a.b.c`` when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            if name.split(".")[0] not in FLOORS:
                continue
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in _source_files()}
    modules = set(files)
    return {name: _imports(path, modules) - {name} for name, path in files.items()}


def test_no_import_runs_up_a_floor() -> None:
    upward = [
        f"{source} -> {target}"
        for source, targets in _graph().items()
        for target in sorted(targets)
        if FLOORS[target.split(".")[0]] > FLOORS[source.split(".")[0]]
        or (
            FLOORS[target.split(".")[0]] == FLOORS[source.split(".")[0]]
            and target.split(".")[0] != source.split(".")[0]
        )
    ]
    assert not upward, "imports that run up (or across) a floor:\n" + "\n".join(upward)


def test_no_import_cycle() -> None:
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_every_package_is_installed(package: str) -> None:
    """pyproject's package list names every floor, so a wheel holds the whole house."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'"{package}*"' in text
