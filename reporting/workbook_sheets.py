"""Workbook sheets from exported files: headers matched to the catalog, typed values, and the
data-dictionary sheet generated from the catalog through the message catalog.

An exported CSV is what a person already reads (headers and labels in the run's locale, the
formula guard's quote on risky text). A sheet holds the same rows with the quote taken off
(the workbook stores text as text, which Excel never runs) and numbers as numbers; each
column's unit comes from its ``ColumnDoc`` in ``features.catalog``, found by its header.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

from features.catalog import ColumnDoc, ExportFile, Unit, WorkbookSheet
from features.errors import SiyuError
from features.messages import Messages
from reporting.excel import unguard_formulas
from reporting.workbook import DATE_UNITS, TEXT_UNITS, Sheet, guess_unit

UNIT_LABEL = "unit"  # the label kind of unit names (``label.unit.<unit>``, workbook.yaml)


@dataclass(frozen=True)
class SheetPart:
    """A data sheet before it is written: its code, the file it shows and that file's rows.

    ``workbook``: the catalog name of the workbook it goes into; ``total_rows``: rows of the
    file when the sheet shows only the first of them (None: all).
    """

    code: str
    workbook: str
    source: ExportFile
    frame: pd.DataFrame
    docs: tuple[ColumnDoc | None, ...]
    total_rows: int | None = None


def sheet_title(code: str, messages: Messages) -> str:
    """The tab name of sheet ``code`` in the run's locale."""
    return messages.text(f"workbook.{code}")


def read_export_csv(
    path: Path, source: ExportFile, messages: Messages, max_rows: int | None = None
) -> tuple[pd.DataFrame, tuple[ColumnDoc | None, ...]]:
    """The rows of an exported CSV (at most ``max_rows``) typed by unit, and each column's doc."""
    try:
        text = pd.read_csv(
            path, encoding="utf-8-sig", dtype=str, keep_default_na=False, na_values=[""], nrows=max_rows
        )
    except (ValueError, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SiyuError(
            f"{path}: cannot be read for the workbook ({reason[:200]})\n"
            "  fix: rerun the step that writes it (or the nightly)"
        ) from None
    docs = match_columns(source, list(text.columns), messages)
    typed = {
        column: _typed(text[column], doc.unit if doc else "")
        for column, doc in zip(text.columns, docs, strict=True)
    }
    frame = pd.DataFrame(typed, index=text.index)
    textual = [column for column in frame.columns if frame[column].dtype == object]
    if textual:
        frame[textual] = unguard_formulas(frame[textual])
    return frame, docs


def _typed(text: pd.Series, unit: str) -> pd.Series:
    """Numbers for a numeric unit when every cell parses (else the text as it is)."""
    if unit in TEXT_UNITS or unit in DATE_UNITS:
        return text
    numbers = pd.to_numeric(text, errors="coerce")
    return numbers if numbers.notna().sum() == text.notna().sum() else text


def match_columns(
    source: ExportFile, headers: Sequence[str], messages: Messages
) -> tuple[ColumnDoc | None, ...]:
    """The catalog doc of each header of ``source`` as written in the run's locale (None: unknown).

    A header is matched exactly to a column's localized header first, then to the template of a
    column family or a configured name (``expected_value_{horizon_days}d``, one per member tier).
    """
    exact: dict[str, ColumnDoc] = {}
    templates: list[tuple[re.Pattern[str], ColumnDoc]] = []
    for doc in source.columns:
        shown = _shown_header(doc.name, messages)
        if "{" in shown:
            templates.append((_template_pattern(shown), doc))
        else:
            exact.setdefault(shown, doc)
    return tuple(exact.get(h) or next((d for p, d in templates if p.fullmatch(h)), None) for h in headers)


def _shown_header(name: str, messages: Messages) -> str:
    try:
        return messages.header(name)
    except SiyuError:  # a family named by a value only (one column per member tier)
        return name


@cache
def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{[^}]*\}", template)
    return re.compile(".+?".join(re.escape(part) for part in parts))


def data_sheet(part: SheetPart, messages: Messages) -> Sheet:
    """The sheet of ``part``: its localized tab name, its frame and one unit per column."""
    units = tuple(
        doc.unit if doc else guess_unit(part.frame[c])
        for c, doc in zip(part.frame.columns, part.docs, strict=True)
    )
    return Sheet(sheet_title(part.code, messages), part.frame, units)


def dictionary_sheet(parts: Sequence[SheetPart], messages: Messages) -> Sheet:
    """The data dictionary of ``parts``: per sheet a row about the sheet, then a row per column
    (sheet, column as shown, meaning, unit, where it comes from), in the run's locale."""
    rows: list[tuple[str, str, str, str, str]] = []
    whole = messages.text("workbook.dictionary.whole_sheet")
    for part in parts:
        title = sheet_title(part.code, messages)
        source = messages.text("workbook.dictionary.source", file=part.source.name, docs=part.source.docs)
        about = _meaning(messages, part.workbook, part.code, "")
        if part.total_rows is not None and part.total_rows > len(part.frame):
            capped = messages.text(
                "workbook.dictionary.capped",
                shown=len(part.frame),
                total=part.total_rows,
                file=part.source.name,
            )
            about = f"{about} {capped}" if about else capped
        rows.append((title, whole, about, "", source))
        for column, doc in zip(part.frame.columns, part.docs, strict=True):
            unit = doc.unit if doc else guess_unit(part.frame[column])
            meaning = _meaning(messages, part.source.name, doc.name, doc.meaning) if doc else ""
            rows.append((title, str(column), meaning, messages.label(UNIT_LABEL, unit), source))
    keys = ("sheet", "column", "meaning", "unit", "computed")
    headers = [messages.text(f"workbook.dictionary.{key}") for key in keys]
    frame = pd.DataFrame(rows, columns=headers)
    return Sheet(sheet_title(WorkbookSheet.DICTIONARY, messages), frame, (Unit.LABEL,) * len(headers))


def _meaning(messages: Messages, file: str, column: str, fallback: str) -> str:
    try:
        return messages.meaning(file, column)
    except SiyuError:
        return fallback


def workbook_sheets(parts: Sequence[SheetPart], messages: Messages) -> list[Sheet]:
    """The data sheets of ``parts`` in order, then the data dictionary."""
    return [*(data_sheet(part, messages) for part in parts), dictionary_sheet(parts, messages)]
