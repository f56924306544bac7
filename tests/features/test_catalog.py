"""The catalog describes every step file, its columns in the order the writers produce them, and
docs/exports.md is generated from it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import openpyxl
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.catalog import (
    EXPORTS,
    ColumnDoc,
    ExportFile,
    StepFile,
    WorkbookSheet,
    export_columns,
    export_file,
    exports_markdown,
)
from features.messages import Messages
from features.vocabulary import MetricCol
from models.clusters import FEATURES, ClusterConfig
from models.clv import CLVConfig
from models.evaluation import SUMMARY_COLUMNS
from models.segmentation import SegmentationConfig
from pipelines.config import NightlyConfig
from pipelines.steps.evaluate import EvaluationReport
from pipelines.steps.quality import run_quality
from pipelines.steps.recommend import run_recommend
from pipelines.steps.segment import run_segmentation
from pipelines.steps.validate import load_and_validate
from pipelines.steps.workbooks import run_workbooks
from sources.simulator import SimulationConfig, simulate

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "exports.md"
SETTINGS = SegmentationConfig(
    clv=CLVConfig(enabled=False),
    clusters=ClusterConfig(k_min=2, k_max=3, fit_sample=500, silhouette_sample=200, n_init=1),
)


def test_doc_is_generated_from_the_catalog() -> None:
    assert DOC.read_text(encoding="utf-8") == exports_markdown(), (
        "docs/exports.md is stale: run `python -m features.catalog > docs/exports.md`"
    )


def test_every_step_file_is_described_once() -> None:
    step_files = {value for key, value in vars(StepFile).items() if key.isupper() and isinstance(value, str)}
    names = [entry.name for entry in EXPORTS]
    assert sorted(names) == sorted(step_files)
    assert all(entry.columns and all(c.meaning for c in entry.columns) for entry in EXPORTS)


def test_catalog_and_vocabulary_import_no_heavy_library() -> None:
    code = (
        "import sys, features.catalog, features.vocabulary;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'numpy', 'duckdb', 'pyarrow')))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_placeholders_and_families_expand_in_order() -> None:
    entry = ExportFile(
        name="x.csv",
        audience="a",
        rows="r",
        docs="d",
        columns=(
            ColumnDoc("id", "m"),
            ColumnDoc("spend_{days}d", "m"),
            ColumnDoc("median_{feature}", "m", "feature"),
            ColumnDoc("z_{feature}", "m", "feature"),
            ColumnDoc("total", "m"),
        ),
    )
    assert entry.column_names(days=30, feature=["a", "b"]) == (
        "id",
        "spend_30d",
        "median_a",
        "z_a",
        "median_b",
        "z_b",
        "total",
    )
    assert entry.column_names() == ("id", "spend_{days}d", "median_{feature}", "z_{feature}", "total")


def test_export_columns_hold_fixed_names_only() -> None:
    columns = export_columns()
    assert "consumer_id" in columns and "expected_purchases_90d" not in columns
    assert not any("{" in name for name in columns)


def test_evaluation_json_fields_follow_the_evaluation_table() -> None:
    table = pd.DataFrame(columns=list(SUMMARY_COLUMNS))  # what the nightly writes: the folds' mean
    top = [*EvaluationReport(table, date(2025, 1, 1), date(2025, 1, 31), 10).to_json(), "production"]
    results = [c for c in SUMMARY_COLUMNS if c not in MetricCol.TIMINGS]
    documented = export_file(StepFile.EVALUATION).column_names()
    assert set(documented[: len(top)]) == set(top)  # written with sorted keys: order is not documented
    assert documented[len(top) :] == tuple(results)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every step file the validate, segment, quality and recommend steps write on a small world."""
    root = tmp_path_factory.mktemp("catalog")
    simulate(root / "data", SimulationConfig(consumers=400, distributors=6, products=60, days=90, seed=3))
    config = NightlyConfig()
    validated = load_and_validate(root / "data", None, config, root / "validated")
    out = root / "outputs"
    run_segmentation(validated.clean_paths, validated.as_of, SETTINGS, out, None)
    quality = run_quality(validated.clean_paths, validated.as_of, config, out, None)
    run_recommend(validated.clean_paths, validated.as_of, config, out, 5, None, quality.alerts_path)
    files = run_workbooks({path.name: path for path in out.iterdir()}, out)  # + workbooks, share kit
    files[StepFile.VALIDATION_REPORT] = root / "validated" / StepFile.VALIDATION_REPORT
    return files


def _header(path: Path) -> tuple[str, ...]:
    if path.suffix == ".csv":
        return tuple(pd.read_csv(path, encoding="utf-8-sig", nrows=0).columns)
    if path.suffix == ".parquet":
        return tuple(pq.read_schema(path).names)
    if path.suffix == ".xlsx":  # a workbook's "columns" are its sheets, by code
        en = Messages.load("en")
        codes = {en.text(f"workbook.{code}"): code for code in WorkbookSheet.ALL}
        return tuple(codes[title] for title in openpyxl.load_workbook(path, read_only=True).sheetnames)
    document = json.loads(path.read_text(encoding="utf-8"))
    return (*document, *document["tables"][0])


@pytest.mark.parametrize(
    "entry", [e for e in EXPORTS if e.name != StepFile.EVALUATION], ids=lambda entry: entry.name
)
def test_columns_are_in_the_order_the_writers_produce(entry: ExportFile, written: dict[str, Path]) -> None:
    assert entry.name in written, f"{entry.name} was not written"
    expected = entry.column_names(
        horizon_days=SETTINGS.clv.horizon_days,
        member_tier=SETTINGS.member_tiers.names,
        feature=list(FEATURES),
    )
    assert _header(written[entry.name]) == expected
