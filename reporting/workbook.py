"""Excel workbooks (.xlsx) for people: typed cells, number formats, frozen header, filters, a
data dictionary, and the same bytes on every rerun.

Written with XlsxWriter in constant-memory mode: each row goes to disk as it is written, so
a 100,000-row sheet costs one row of Python objects, and it writes several times faster than
openpyxl (the tests and people's tools read the files back with openpyxl). Every cell is
typed from its column's *unit* (``ColumnDoc.unit`` in ``features.catalog``): numbers carry a
number format (``#,##0`` counts, ``"¥"#,##0.00`` amounts, ``0.0%`` shares, ``yyyy-mm-dd``
dates), text is stored as text. A text that looks like a formula (``=…``, ``+…``, ``-…``,
``@…``) is an inline string with Excel's quote prefix, never a formula: it shows as written
and stays text when a person edits the cell.

Reruns are byte-identical: the document's created/modified time is fixed
(``set_properties``) and XlsxWriter stamps every zip entry with the same fixed 1980 date.
"""

from __future__ import annotations

import logging
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd
import xlsxwriter
from pydantic import BaseModel, ConfigDict, Field
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from features.catalog import Unit
from features.errors import SiyuError
from features.files import atomic_path
from features.progress import progress

logger = logging.getLogger(__name__)

EXCEL_MAX_ROWS = 1_048_576  # rows of a sheet, the header row included
SHEET_NAME_MAX = 31
_FORBIDDEN_IN_SHEET_NAMES = str.maketrans({ch: "_" for ch in "[]:*?/\\"})

# The fixed document time: the same inputs write the same bytes.
FIXED_TIME = datetime(2000, 1, 1)
CREATOR = "siyu"
# Cells are written with the typed write_* calls; these keep XlsxWriter from guessing anyway.
_BOOK_OPTIONS = {
    "constant_memory": True,
    "strings_to_formulas": False,
    "strings_to_urls": False,
    "strings_to_numbers": False,
}

_FORMULA_PREFIXES = ("=", "+", "-", "@")
_WIDTH_SAMPLE = 2_000  # rows looked at to size a column
_BLOCK_ROWS = 20_000  # rows turned into Python objects at once
_ROWS = "rows"  # the progress unit
_MIN_WIDTH, _MAX_WIDTH = 6, 60


# How each unit of ``features.catalog.Unit`` is shown; the units not named here are text.
NUMBER_FORMATS: dict[str, str] = {
    Unit.COUNT: "#,##0",
    Unit.YUAN: '"¥"#,##0.00',
    Unit.PERCENT: "0.0%",
    Unit.RATIO: "0.00",
    Unit.SCORE: "0.000",
    Unit.PROBABILITY: "0.0%",
    Unit.DAYS: "#,##0",
    Unit.DATE: "yyyy-mm-dd",
    Unit.MONTH: "yyyy-mm",
    Unit.DATETIME: "yyyy-mm-dd hh:mm:ss",
}
WHOLE_NUMBER_FORMAT = "#,##0"  # a ratio or score column whose values are all whole (RFM scores 1-5)
FRACTIONAL_DAYS_FORMAT = "#,##0.0"  # mean days
TEXT_UNITS: frozenset[str] = frozenset({Unit.ID, Unit.TEXT, Unit.CODE, Unit.LABEL, Unit.FLAG})
DATE_UNITS: frozenset[str] = frozenset({Unit.DATE, Unit.MONTH, Unit.DATETIME})  # written as Excel dates


class WorkbookConfig(BaseModel):
    """``workbooks:`` in the nightly config: how large the workbooks may grow."""

    model_config = ConfigDict(extra="forbid")

    consumer_rows: int = Field(
        100_000,
        ge=1,
        le=EXCEL_MAX_ROWS - 1,
        description="Rows of the consumers sheet: the first rows of consumer_tiers.csv (its order: "
        "segment priority, then value); the CSV keeps every consumer.",
    )
    share_kit_rows: int = Field(
        100_000,
        ge=1,
        le=EXCEL_MAX_ROWS - 1,
        description="Rows of the share kit sheet: the first rows of share_kit.csv (by distributor, "
        "rank); the CSV keeps every row.",
    )


@dataclass(frozen=True)
class Sheet:
    """One sheet: its tab name, the frame (headers as shown) and one unit per column."""

    name: str
    frame: pd.DataFrame
    units: Sequence[str] = field(default_factory=tuple)

    def unit_of(self, index: int) -> str:
        """The unit of column ``index`` (a missing or unknown unit: guessed from the dtype)."""
        unit = self.units[index] if index < len(self.units) else ""
        return unit if unit in Unit.ALL else guess_unit(self.frame.iloc[:, index])


def guess_unit(series: pd.Series) -> str:
    """A unit for a column the catalog does not describe: counts, ratios, dates or text."""
    if pd.api.types.is_bool_dtype(series):
        return Unit.FLAG
    if pd.api.types.is_integer_dtype(series):
        return Unit.COUNT
    if pd.api.types.is_float_dtype(series):
        whole = series.dropna()
        return Unit.COUNT if len(whole) and (whole == whole.round()).all() else Unit.RATIO
    if pd.api.types.is_datetime64_any_dtype(series):
        return Unit.DATETIME
    return Unit.TEXT


def sheet_name(name: str) -> str:
    """``name`` as a valid tab name: at most 31 characters, none of ``[]:*?/\\``."""
    return name.translate(_FORBIDDEN_IN_SHEET_NAMES)[:SHEET_NAME_MAX]


def display_width(text: str) -> int:
    """Columns ``text`` takes on screen: a wide (CJK) character counts double."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


# --- writing ----------------------------------------------------------------------------------------


def write_workbook(sheets: Sequence[Sheet], path: Path) -> Path:
    """Write ``sheets`` to ``path`` (.xlsx), whole or not at all; the same sheets give the same bytes.

    A sheet with more rows than Excel holds raises a ``SiyuError`` (the caller caps it).
    """
    names = [sheet_name(sheet.name) for sheet in sheets]
    if len(set(names)) != len(names):
        raise SiyuError(f"{path}: two sheets share a name in {names}\n  fix: give every sheet its own name")
    for sheet in sheets:
        _check_size(sheet, path)
    with atomic_path(path) as partial:
        book = xlsxwriter.Workbook(str(partial), _BOOK_OPTIONS)
        try:
            book.set_properties({"author": CREATOR, "created": FIXED_TIME})
            styles = _Styles(book)
            for sheet, name in zip(sheets, names, strict=True):
                _write_sheet(book.add_worksheet(name), sheet, styles)
        finally:
            book.close()
    rows = ", ".join(f"{name}: {len(sheet.frame)} rows" for name, sheet in zip(names, sheets, strict=True))
    logger.info("wrote %s (%s)", path, rows)
    return path


def _check_size(sheet: Sheet, path: Path) -> None:
    if len(sheet.frame) + 1 > EXCEL_MAX_ROWS:
        raise SiyuError(
            f"{path}: sheet {sheet.name!r} has {len(sheet.frame):,} rows, Excel holds "
            f"{EXCEL_MAX_ROWS - 1:,} below the header\n  fix: cap the rows (workbooks.consumer_rows)"
        )


class _Styles:
    """The workbook's cell formats: bold headers, the quote prefix, one per number format."""

    def __init__(self, book: xlsxwriter.Workbook) -> None:
        self.book = book
        self.bold = book.add_format({"bold": True})
        self.quoted = book.add_format({"quote_prefix": True})
        self._numbers: dict[str, Format] = {}

    def column(self, fmt: str, unit: str) -> Format | None:
        """The format of a column of ``unit`` whose numbers show as ``fmt`` (None: text, General)."""
        if unit in TEXT_UNITS or fmt == "General":
            return None
        if fmt not in self._numbers:
            self._numbers[fmt] = self.book.add_format({"num_format": fmt})
        return self._numbers[fmt]


def _write_sheet(worksheet: Worksheet, sheet: Sheet, styles: _Styles) -> None:
    """Header row (frozen, with a filter), then one typed row per frame row, a block of rows at a
    time (the Python objects of one block only are alive at once).

    Each column carries its number format as the column's format, which a cell without its own
    takes, so a row is written with one ``write_row`` call; a formula-like text is written again
    over its cell with the quote prefix.
    """
    units = [sheet.unit_of(i) for i in range(sheet.frame.shape[1])]
    frame = _with_dates(sheet.frame, units)
    headers = [str(column) for column in frame.columns]
    head = [_cell_values(frame.iloc[:_WIDTH_SAMPLE, i], unit) for i, unit in enumerate(units)]
    widths = _widths(head, headers, units)
    for index, (width, unit) in enumerate(zip(widths, units, strict=True)):
        worksheet.set_column(
            index, index, width, styles.column(number_format(frame.iloc[:, index], unit), unit)
        )
    worksheet.freeze_panes(1, 0)
    if not headers:
        return
    worksheet.autofilter(0, 0, len(frame), len(headers) - 1)
    worksheet.write_row(0, 0, headers, styles.bold)
    with progress(f"writing sheet {sheet.name}", total=len(frame), unit=_ROWS) as bar:
        for start in range(0, len(frame), _BLOCK_ROWS):
            block = frame.iloc[start : start + _BLOCK_ROWS]
            columns = [_cell_values(block.iloc[:, i], unit) for i, unit in enumerate(units)]
            quoted = _formula_like(columns)
            for offset, values in enumerate(zip(*columns, strict=True)):
                worksheet.write_row(start + offset + 1, 0, values)
                for col, text in quoted.get(offset, ()):
                    worksheet.write_string(start + offset + 1, col, text, styles.quoted)
            bar.advance(len(block))


def _formula_like(columns: list[list[object]]) -> dict[int, list[tuple[int, str]]]:
    """Row offset -> ``(column, text)`` of every text that Excel would take for a formula."""
    found: dict[int, list[tuple[int, str]]] = {}
    for col, values in enumerate(columns):
        for offset, value in enumerate(values):
            if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
                found.setdefault(offset, []).append((col, value))
    return found


def _with_dates(frame: pd.DataFrame, units: list[str]) -> pd.DataFrame:
    """``frame`` with its date columns parsed, where every present value parses (else as it is)."""
    parsed = {}
    for index, unit in enumerate(units):
        if unit in DATE_UNITS:
            column = frame.iloc[:, index]
            dates = pd.to_datetime(column, errors="coerce")
            if dates.notna().sum() == column.notna().sum():
                parsed[index] = dates
    if not parsed:
        return frame
    dated = frame.copy()
    for index, dates in parsed.items():
        dated.isetitem(index, dates)
    return dated


def number_format(values: pd.Series | Sequence[object], unit: str) -> str:
    """The Excel number format of a column of ``unit``: whole ratios and scores (RFM scores 1-5)
    without decimals, fractional days (a mean) with one."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    numeric = unit in NUMBER_FORMATS and not pd.api.types.is_datetime64_any_dtype(series)
    numbers = pd.to_numeric(series if numeric else series[:0], errors="coerce").astype(float).dropna()
    whole = bool((numbers == numbers.round()).all())
    if unit in (Unit.RATIO, Unit.SCORE) and whole:
        return WHOLE_NUMBER_FORMAT
    if unit == Unit.DAYS and not whole:
        return FRACTIONAL_DAYS_FORMAT
    return NUMBER_FORMATS.get(unit, "General")


def _cell_values(series: pd.Series, unit: str) -> list[object]:
    """The column's values as Python objects: missing -> None, dates -> datetime, ids, codes and
    labels -> text (a numeric id keeps its digits)."""
    present = series.notna().tolist()
    if pd.api.types.is_datetime64_any_dtype(series):
        return [v.to_pydatetime() if ok else None for v, ok in zip(series, present, strict=True)]
    if unit in TEXT_UNITS:
        return [str(v) if ok else None for v, ok in zip(series.tolist(), present, strict=True)]
    return [_plain(v) if ok else None for v, ok in zip(series.tolist(), present, strict=True)]


def _plain(value: object) -> object:
    """numpy scalars as Python ones (bool_ and int64 are not bool and int); an infinite number,
    which Excel cannot hold, as the text ``inf``."""
    plain = value.item() if hasattr(value, "item") else value
    return str(plain) if isinstance(plain, float) and not math.isfinite(plain) else plain


def _widths(columns: list[list[object]], headers: list[str], units: list[str]) -> list[float]:
    """Column widths from the header and the first rows (CJK counted double), within limits."""
    widths = []
    for values, header, unit in zip(columns, headers, units, strict=True):
        longest = display_width(header) + 2  # room for the filter button
        for value in values[:_WIDTH_SAMPLE]:
            if value is not None:
                longest = max(longest, _shown_width(value, unit))
        widths.append(float(min(max(longest + 1, _MIN_WIDTH), _MAX_WIDTH)))
    return widths


def _shown_width(value: object, unit: str) -> int:
    if unit == Unit.DATE:
        return 10
    if unit == Unit.MONTH:
        return 7
    if unit == Unit.DATETIME:
        return 19
    if isinstance(value, float):
        return len(f"{value:,.3f}") + 2
    if isinstance(value, int) and not isinstance(value, bool):
        return len(f"{value:,}") + 1
    return display_width(str(value))
