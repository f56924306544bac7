"""The floors of the house, checked: imports run down the floors, never up, and never in a circle.

Floors, bottom to top (docs/architecture in the README): ``features`` → ``sources``, ``models`` →
``artifact``, ``reporting`` → ``pipelines``. Every import counts, also one inside a function:
a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
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


# Imported by siyu's packages but deliberately not a dependency: LightGBM is optional (only the
# ranker's ``learner: lambdarank`` needs it, with a SiyuError naming the fix when it is missing);
# ``siyu_loader`` is artifact/loader.py itself, copied beside the MLflow pyfunc model.
UNDECLARED_IMPORTS = {"lightgbm", "siyu_loader"}


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level modules imported anywhere in siyu's packages that are neither stdlib nor siyu's."""
    found: dict[str, set[str]] = {}
    for path in _source_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in FLOORS and top != "__future__":
                    found.setdefault(top, set()).add(_module_name(path))
    return found


def _declared_distributions() -> set[str]:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {
        _normalised(re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0]) for spec in dependencies["dependencies"]
    }


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_import_is_a_declared_dependency() -> None:
    """What siyu imports it declares in pyproject (and so in requirements.in and the locks): a package
    that only arrives as another's dependency can vanish with that package's next release."""
    declared = _declared_distributions()
    distributions = importlib.metadata.packages_distributions()
    missing = [
        f"{module} (from {', '.join(sorted(users))}): declare one of {distributions.get(module, ['?'])}"
        for module, users in sorted(_third_party_imports().items())
        if module not in UNDECLARED_IMPORTS
        and not declared & {_normalised(d) for d in distributions.get(module, [module])}
    ]
    assert not missing, "imported but not declared in pyproject.toml:\n" + "\n".join(missing)


def test_declared_dependencies_are_in_requirements_in() -> None:
    """requirements.in (what the locks are compiled from) names every declared dependency."""
    lines = (ROOT / "requirements.in").read_text(encoding="utf-8").splitlines()
    listed = {
        _normalised(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0])
        for line in lines
        if line.strip() and not line.startswith("#")
    }
    assert _declared_distributions() - listed == set()
