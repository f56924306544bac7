"""One vocabulary, enforced: no module spells a contract or export column name as a raw string.

Every module under the source packages is parsed with ``ast``; a string literal equal to a table
or column name of the data contract (``features.columns``) or to a column of an exported file
(``features.catalog``) is an offender unless it sits in the modules that spell the names
(vocabulary, columns, contract, catalog) or in one of the few justified exceptions below.
Docstrings and the text pieces of f-strings are prose, not names, and do not count.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from features.catalog import export_columns
from features.columns import Col, Table
from features.vocabulary import (
    DistributorTier,
    LevelChange,
    ListSource,
    Movement,
    QualityLevel,
    TagType,
    ValidationKey,
)

ROOT = Path(__file__).parents[1]
PACKAGES = ("features", "sources", "models", "artifact", "reporting", "pipelines")

# The modules whose job is to spell the names.
SPELLERS = frozenset(
    {
        "features/columns.py",  # the contract vocabulary
        "features/vocabulary.py",  # the vocabulary of everything siyu makes
        "features/contract.py",  # the contract's column specs, keyed by the names above
        "features/catalog.py",  # the exported files and their documented columns
    }
)
# Justified exceptions: modules that must not import siyu, so they cannot use the vocabulary.
EXCEPTIONS = frozenset(
    {
        "artifact/loader.py",  # the leaf loader a backend vendors alone: imports only numpy and pyarrow
        "artifact/mlflow_model.py",  # copied into the MLflow model, loaded where siyu is not installed
    }
)


# Written at the end of a line whose literal is a value, not a column name (see ``raw_names``).
WAIVER = "# vocabulary: a value, not a column"

# Catalog names that are not only column names: ``as_of`` (a key of validation.json) is also the
# name of the run's date everywhere, as a SQL parameter, a config key and a CLI option.
NOT_GUARDED = frozenset({ValidationKey.AS_OF})


def guarded_names() -> frozenset[str]:
    """Contract table and column names, and every fixed column name of the exported files."""
    contract = {value for key, value in vars(Col).items() if key.isupper() and isinstance(value, str)}
    return frozenset(contract | set(Table.ALL) | export_columns()) - NOT_GUARDED


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string nodes that are docstrings (module, class, function)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _fstring_parts(tree: ast.AST) -> set[int]:
    """ids of the literal text pieces of f-strings (prose around the placeholders)."""
    return {
        id(part)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for part in node.values
        if isinstance(part, ast.Constant)
    }


def raw_names(path: Path, names: frozenset[str]) -> list[tuple[int, str]]:
    """(line, literal) of every string literal in ``path`` equal to one of ``names``.

    A line that ends with ``WAIVER`` is skipped: the literal there is a value that merely
    looks like a name (a config choice such as ``fit_method: "map"``), said where it stands.
    """
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    tree = ast.parse(text, filename=str(path))
    prose = _docstrings(tree) | _fstring_parts(tree)
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in names
        and id(node) not in prose
        and not lines[node.lineno - 1].rstrip().endswith(WAIVER)
    )


def offenders() -> list[str]:
    """``file:line 'name'`` for every raw contract or export name outside the spelling modules."""
    names = guarded_names()
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = path.relative_to(ROOT).as_posix()
            if module in SPELLERS or module in EXCEPTIONS:
                continue
            found += [f"{module}:{line} {value!r}" for line, value in raw_names(path, names)]
    return found


def test_the_scan_finds_a_raw_name_and_skips_prose(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text(
        '"""Reads consumer_id."""\n'
        "def f(frame, n):\n"
        '    """consumer_id"""\n'
        '    label = f"{n}consumer_id"\n'
        '    return frame["consumer_id"], frame["not_a_column"], label\n'
        f'scope = "category"  {WAIVER}\n',
        encoding="utf-8",
    )
    assert raw_names(source, guarded_names()) == [(5, Col.CONSUMER_ID)]


def test_guarded_names_cover_the_contract_and_the_exports() -> None:
    names = guarded_names()
    assert {Col.CONSUMER_ID, Table.ORDERS, "quality_alerts.csv"} - names == {"quality_alerts.csv"}
    assert {"rfm_segment", "recent_buyers", "churn_risk", "level"} <= names


def test_no_raw_contract_or_export_column_names_outside_the_vocabulary() -> None:
    found = offenders()
    per_module = Counter(entry.split(":")[0] for entry in found)
    summary = "\n".join(f"  {count:4d}  {module}" for module, count in per_module.most_common())
    assert not found, (
        f"{len(found)} raw column/table names outside the vocabulary, per module:\n{summary}\n"
        + "\n".join(found)
        + "\n  fix: use features.columns (Col, Table), features.vocabulary (*Col) or features.catalog"
    )


def test_value_sets_equal_the_models_constants() -> None:
    """The exported value sets live in the vocabulary; the models' own tuples must not drift from them."""
    from models.distributor_tiers import TIERS
    from models.member_tiers import MOVEMENTS, NEW_ROW
    from models.quality import CHANGES, LEVELS
    from models.recommenders.fallback import SOURCES
    from models.tags import TAG_TYPES

    assert QualityLevel.ALL == LEVELS
    assert LevelChange.ALL == CHANGES
    assert (Movement.ALL, Movement.NEW_ROW) == (MOVEMENTS, NEW_ROW)
    assert DistributorTier.ALL == TIERS
    assert ListSource.ALL == SOURCES
    assert TagType.ALL == TAG_TYPES
