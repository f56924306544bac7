"""The workbook writer: typed cells with the unit's number format, frozen header, filter, widths,
formula-like text kept as text, and the same bytes on a rerun."""

from __future__ import annotations

import time
import zipfile
from datetime import datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from features.catalog import Unit
from features.errors import SiyuError
from reporting.workbook import (
    EXCEL_MAX_ROWS,
    Sheet,
    display_width,
    number_format,
    sheet_name,
    write_workbook,
)

RISKY = ['=HYPERLINK("http://x","y")', "+8613800000000", "-2", "@SUM(A1)"]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["C1", *RISKY[:2]],
            "orders": [3, 12_345, None],
            "spend": [1234.5, 0.0, 99.99],
            "share": [0.25, 0.125, None],
            "since": ["2025-01-31", None, "2024-12-01"],
            "r_score": [5.0, 1.0, 3.0],
            "risk": [0.3333, 0.5, 1.0],
            "note": [RISKY[2], RISKY[3], "普通文字"],
        }
    )


UNITS = (Unit.ID, Unit.COUNT, Unit.YUAN, Unit.PERCENT, Unit.DATE, Unit.SCORE, Unit.SCORE, Unit.TEXT)


@pytest.fixture
def book(tmp_path: Path) -> openpyxl.Workbook:
    path = write_workbook([Sheet("顾客", _frame(), UNITS)], tmp_path / "b.xlsx")
    return openpyxl.load_workbook(path)


def test_cells_are_typed_with_the_units_number_format(book: openpyxl.Workbook) -> None:
    sheet = book["顾客"]
    assert [c.value for c in sheet[1]] == list(_frame().columns)
    assert all(c.font.bold for c in sheet[1])
    c2 = {c.column_letter: c for c in sheet[2]}
    assert (c2["A"].value, c2["A"].data_type) == ("C1", "s")
    assert (c2["B"].value, c2["B"].number_format) == (3, "#,##0")
    assert (c2["C"].value, c2["C"].number_format) == (1234.5, '"¥"#,##0.00')
    assert (c2["D"].value, c2["D"].number_format) == (0.25, "0.0%")
    assert (c2["E"].value, c2["E"].number_format) == (datetime(2025, 1, 31), "yyyy-mm-dd")
    assert (c2["F"].value, c2["F"].number_format) == (5, "#,##0")  # whole scores: no decimals
    assert (c2["G"].value, c2["G"].number_format) == (0.3333, "0.000")
    assert sheet["B4"].value is None and sheet["D4"].value is None and sheet["E3"].value is None


def test_formula_like_text_is_stored_as_text_with_the_quote_prefix(book: openpyxl.Workbook) -> None:
    sheet = book["顾客"]
    cells = [sheet["A3"], sheet["A4"], sheet["H2"], sheet["H3"]]
    assert [c.value for c in cells] == RISKY
    assert all(c.data_type == "s" and c.quotePrefix for c in cells)
    assert sheet["H4"].value == "普通文字" and not sheet["H4"].quotePrefix


def test_no_formula_anywhere_in_the_file(tmp_path: Path) -> None:
    path = write_workbook([Sheet("s", _frame(), UNITS)], tmp_path / "b.xlsx")
    with zipfile.ZipFile(path) as archive:
        xml = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in xml and "<f " not in xml


def test_header_frozen_filter_over_the_data_and_widths(book: openpyxl.Workbook) -> None:
    sheet = book["顾客"]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:H4"
    widths = {letter: dim.width for letter, dim in sheet.column_dimensions.items()}
    assert widths["A"] > len(RISKY[0])  # the longest id fits
    assert min(widths.values()) >= 6 and max(widths.values()) <= 60


def test_cjk_characters_count_double() -> None:
    assert display_width("顾客编号") == 8
    assert display_width("id 编号") == 7


def test_a_rerun_writes_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = write_workbook([Sheet("s", _frame(), UNITS)], tmp_path / "a.xlsx").read_bytes()
    later = time.time() + 3 * 86_400
    monkeypatch.setattr(time, "time", lambda: later)  # zip entries would carry the clock
    second = write_workbook([Sheet("s", _frame(), UNITS)], tmp_path / "b.xlsx").read_bytes()
    assert first == second
    with zipfile.ZipFile(tmp_path / "a.xlsx") as archive:
        core = archive.read("docProps/core.xml").decode()
        assert len({info.date_time for info in archive.infolist()}) == 1  # one fixed stamp, not the clock
    assert "2000-01-01T00:00:00Z</dcterms:created>" in core
    assert "2000-01-01T00:00:00Z</dcterms:modified>" in core


def test_unknown_units_are_guessed_from_the_dtype(tmp_path: Path) -> None:
    frame = pd.DataFrame({"n": [1, 2], "x": [0.5, 1.25], "t": ["a", "b"]})
    book = openpyxl.load_workbook(write_workbook([Sheet("s", frame)], tmp_path / "b.xlsx"))
    assert [c.number_format for c in book["s"][2]] == ["#,##0", "0.00", "General"]


def test_number_format_by_unit() -> None:
    assert number_format([1.5, 2.0], Unit.DAYS) == "#,##0.0"
    assert number_format([1.0, 2.0], Unit.DAYS) == "#,##0"
    assert number_format([0.2], Unit.PROBABILITY) == "0.0%"
    assert number_format([1.0, 2.5], Unit.RATIO) == "0.00"


def test_sheet_names_are_made_valid_and_must_differ(tmp_path: Path) -> None:
    assert sheet_name("a/b:c[1]?" + "x" * 40) == ("a_b_c_1__" + "x" * 40)[:31]
    frame = pd.DataFrame({"a": [1]})
    with pytest.raises(SiyuError, match="two sheets share a name.*\n  fix:"):
        write_workbook([Sheet("s", frame), Sheet("s", frame)], tmp_path / "b.xlsx")
    assert not (tmp_path / "b.xlsx").exists()


def test_a_sheet_over_excels_row_limit_is_refused(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": range(EXCEL_MAX_ROWS)})  # + the header row: one too many
    with pytest.raises(SiyuError, match=r"1,048,576 rows.*\n  fix: cap the rows"):
        write_workbook([Sheet("big", frame)], tmp_path / "b.xlsx")
    assert not list(tmp_path.iterdir())


def test_booleans_stay_booleans_and_infinite_ratios_do_not_fail(tmp_path: Path) -> None:
    frame = pd.DataFrame({"flag": [True, False], "x": [float("inf"), 0.5]})
    path = write_workbook([Sheet("s", frame, (Unit.COUNT, Unit.RATIO))], tmp_path / "b.xlsx")
    sheet = openpyxl.load_workbook(path)["s"]
    assert (sheet["A2"].value, sheet["A3"].value) == (True, False)
    assert (sheet["B2"].value, sheet["B2"].data_type, sheet["B3"].value) == ("inf", "s", 0.5)
