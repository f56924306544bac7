"""Reading a run folder's CSVs for the report (``reporting.run_files``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from features.catalog import StepFile
from reporting.excel import write_excel_csv
from reporting.run_files import MissingFile, RunFiles


def test_a_column_typed_from_all_its_rows_without_a_dtype_warning(tmp_path: Path) -> None:
    # numbers for longer than pandas' low-memory chunk, then a text value: per chunk the column
    # would be int in one chunk and str in the next (DtypeWarning, mixed types)
    rows = ["code,amount"] + [f"{i},1" for i in range(300_000)] + ["300000,n/a text"]
    (tmp_path / "wide.csv").write_text("\n".join(rows) + "\n", encoding="utf-8-sig")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = RunFiles(tmp_path).csv("wide.csv", columns=["amount"])
    assert frame.columns.tolist() == ["amount"]
    assert {type(value) for value in frame["amount"]} == {str}
    assert frame["amount"].iloc[-1] == "n/a text"


def test_a_file_the_run_did_not_write_is_missing(tmp_path: Path) -> None:
    with pytest.raises(MissingFile, match="absent.csv"):
        RunFiles(tmp_path).csv("absent.csv")


TIERS = pd.DataFrame(
    {
        "consumer_id": ["=C1", "C2", "C3"],  # the CSV guards a formula-like id; the twin keeps it
        "member_tier": ["gold", "regular", None],
        "frequency": [3, 1, 0],
        "cluster": pd.array([1, None, 2], dtype="Int64"),  # the twin keeps Int64; the CSV floats
        "churn_risk": [0.25, None, 0.125],
    }
)


def test_a_csv_with_a_parquet_twin_is_read_from_the_twin_as_the_csv_reads(tmp_path: Path) -> None:
    csv_only, with_twin = tmp_path / "csv", tmp_path / "twin"
    for run, twin in ((csv_only, False), (with_twin, True)):
        run.mkdir()
        write_excel_csv(TIERS, run / StepFile.CONSUMER_TIERS, twin=twin)
    assert (with_twin / StepFile.CONSUMER_TIERS_TWIN).is_file()
    wanted = ["member_tier", "frequency", "cluster", "churn_risk"]
    from_csv = RunFiles(csv_only).csv(StepFile.CONSUMER_TIERS, wanted)
    from_twin = RunFiles(with_twin).csv(StepFile.CONSUMER_TIERS, wanted)
    pd.testing.assert_frame_equal(from_twin, from_csv)
    assert from_twin["cluster"].dtype == "float64" and from_twin["member_tier"].dtype == object
    assert RunFiles(with_twin).columns(StepFile.CONSUMER_TIERS) == TIERS.columns.tolist()
    assert RunFiles(with_twin).csv(StepFile.CONSUMER_TIERS)["consumer_id"].tolist() == ["=C1", "C2", "C3"]


def test_the_twin_is_read_only_beside_its_csv(tmp_path: Path) -> None:
    TIERS.to_parquet(tmp_path / StepFile.CONSUMER_TIERS_TWIN)  # a twin without its CSV
    with pytest.raises(MissingFile, match=StepFile.CONSUMER_TIERS):
        RunFiles(tmp_path).csv(StepFile.CONSUMER_TIERS)
    with pytest.raises(MissingFile, match=StepFile.CONSUMER_TIERS):
        RunFiles(tmp_path).columns(StepFile.CONSUMER_TIERS)


def test_the_report_is_the_same_from_the_twin(tmp_path: Path) -> None:
    from reporting.report import write_report
    from tests.reporting.test_report import write_run

    run = write_run(tmp_path / "run")
    csv_page = write_report(run, tmp_path / "csv.html").read_bytes()
    tiers = pd.read_csv(run / StepFile.CONSUMER_TIERS, encoding="utf-8-sig")
    write_excel_csv(tiers, run / StepFile.CONSUMER_TIERS, twin=True)
    assert (run / StepFile.CONSUMER_TIERS_TWIN).is_file()
    assert write_report(run, tmp_path / "twin.html").read_bytes() == csv_page
