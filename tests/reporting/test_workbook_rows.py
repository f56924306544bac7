"""The workbook writer's data rows are written as XML text (reporting.workbook._CellWriter.xml),
not through openpyxl's per-cell objects: the file must be byte for byte the one openpyxl writes
when every cell goes through it, as the writer did before."""

from __future__ import annotations

import io
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from features.catalog import Unit
from reporting import workbook
from reporting.workbook import Sheet, write_workbook

TEXTS = [
    "C1", '=HYPERLINK("http://x","y")', "+86138", "-2", "@SUM(A1)", "a & b < c > d", " padded ", "   ",
    "", "line\nbreak", "tab\tin", "普通文字", 'quote " and \' apostrophe', "#N/A", "=", "x" * 40_000,
]  # fmt: skip


def _sheets() -> list[Sheet]:
    size = len(TEXTS)
    numbers = pd.DataFrame(
        {
            "id": TEXTS,
            "orders": pd.array([3, 12_345, None, 0, -7, 10**17, *range(size - 6)], dtype="Int64"),
            "spend": [1234.5, 0.0, 99.99, None, 1e-7, 1 / 3, 2.5e20, -0.0, float("inf"), *[0.1] * (size - 9)],
            "share": [0.25, None, *[i / 7 for i in range(size - 2)]],
            "flag": [True, False, None, *[True] * (size - 3)],
            "since": ["2025-01-31", None, *["2024-12-01"] * (size - 2)],
            "at": [datetime(2025, 3, 1, 12, 30), None, *[datetime(2024, 1, 1)] * (size - 2)],
            "score": [5.0, 1.0, *[3.0] * (size - 2)],
            "empty": [None] * size,
            "object": [date(2025, 1, 2), 7, "=raw", *[None] * (size - 3)],
        }
    )
    units = (Unit.ID, Unit.COUNT, Unit.YUAN, Unit.PERCENT, Unit.FLAG, Unit.DATE, Unit.DATETIME, Unit.SCORE,
             Unit.TEXT, "")  # fmt: skip
    wide = pd.DataFrame({"text": TEXTS[:3] * 20_000, "value": [1.5, 2.0, None] * 20_000})
    pair = (Unit.TEXT, Unit.RATIO)
    return [
        Sheet("numbers", numbers, units),
        Sheet("blocks", wide, pair),
        Sheet("no rows", wide.iloc[:0], pair),
        Sheet("no columns", pd.DataFrame()),
    ]


def _openpyxl_sheet(worksheet: object, sheet: Sheet) -> bytes:
    """The writer's rows as it wrote them before: a cell object per value, serialised by openpyxl."""
    units = [sheet.unit_of(i) for i in range(sheet.frame.shape[1])]
    frame = workbook._with_dates(sheet.frame, units)
    headers = [str(column) for column in frame.columns]
    head = [workbook._cell_values(frame.iloc[:2_000, i], unit) for i, unit in enumerate(units)]
    for index, width in enumerate(workbook._widths(head, headers, units), start=1):
        worksheet.column_dimensions[workbook.get_column_letter(index)].width = width
    worksheet.freeze_panes = "A2"
    if headers:
        worksheet.auto_filter.ref = f"A1:{workbook.get_column_letter(len(headers))}{len(frame) + 1}"
    worksheet.append(workbook._header_cells(worksheet, headers))
    if not headers:
        return b""
    cells = [
        _Cells(worksheet, workbook.number_format(frame.iloc[:, i], unit)) for i, unit in enumerate(units)
    ]
    columns = [workbook._cell_values(frame.iloc[:, i], unit) for i, unit in enumerate(units)]
    for row in zip(*columns, strict=True):
        worksheet.append([column.cell(value) for column, value in zip(cells, row, strict=True)])
    return b""


class _Cells:
    """The writer's cells before the XML rows (reporting/workbook.py at 6288eaf)."""

    def __init__(self, worksheet: object, fmt: str) -> None:
        self.plain = WriteOnlyCell(worksheet)
        self.number = WriteOnlyCell(worksheet)
        self.number.number_format = fmt
        self.quoted = WriteOnlyCell(worksheet)
        self.quoted.quotePrefix = True

    def cell(self, value: object) -> WriteOnlyCell | None:
        if value is None:
            return None
        if isinstance(value, str):
            cell = self.quoted if value.startswith(("=", "+", "-", "@")) else self.plain
            cell.value = value
            cell.data_type = "s"
            return cell
        if isinstance(value, bool):
            self.plain.value = value
            return self.plain
        if isinstance(value, int | float | date):
            self.number.value = value
            return self.number
        self.plain.value = str(value)
        self.plain.data_type = "s"
        return self.plain


def _reference(sheets: list[Sheet], path: Path) -> bytes:
    book = Workbook(write_only=True)
    for sheet in sheets:
        _openpyxl_sheet(book.create_sheet(workbook.sheet_name(sheet.name)), sheet)
    buffer = io.BytesIO()
    book.save(buffer)
    workbook._write_fixed_times(buffer.getvalue(), path)
    return path.read_bytes()


def test_the_rows_xml_is_byte_for_byte_openpyxls(tmp_path: Path) -> None:
    sheets = _sheets()
    fast = write_workbook(sheets, tmp_path / "fast.xlsx").read_bytes()
    assert fast == _reference(sheets, tmp_path / "openpyxl.xlsx")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the unsaved book
def test_illegal_characters_are_refused_as_openpyxl_refuses_them(tmp_path: Path) -> None:
    from openpyxl.utils.exceptions import IllegalCharacterError

    frame = pd.DataFrame({"text": ["fine", "bell\x07"]})
    with pytest.raises(IllegalCharacterError):
        write_workbook([Sheet("s", frame, (Unit.TEXT,))], tmp_path / "bad.xlsx")
