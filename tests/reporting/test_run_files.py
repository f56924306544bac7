"""Reading a run folder's CSVs for the report (``reporting.run_files``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

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
