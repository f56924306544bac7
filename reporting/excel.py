"""CSV files that marketing opens in Excel: UTF-8 with BOM, injection-safe, deterministic."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

# A cell starting with one of these is run as a formula by Excel (CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy where text cells that Excel would run as a formula are prefixed with a quote.

    Only text columns are touched: a negative number stays a number.
    """
    safe = frame.copy()
    for column in safe.columns:
        series = safe[column]
        if pd.api.types.is_string_dtype(series) or series.dtype == object:
            text = series.astype("string")
            risky = text.str.startswith(_FORMULA_PREFIXES).fillna(False)
            if risky.any():
                safe[column] = text.mask(risky, "'" + text)
    return safe


def write_excel_csv(frame: pd.DataFrame, path: Path, sort_by: list[str] | None = None) -> Path:
    """Write ``frame`` for Excel: UTF-8 with BOM, formulas neutralised, rows in a fixed order.

    The file appears whole or not at all: it is written beside ``path`` and renamed.
    """
    ordered = frame.sort_values(sort_by, kind="mergesort") if sort_by else frame
    safe = neutralise_formulas(ordered.reset_index(drop=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    safe.to_csv(partial, index=False, encoding="utf-8-sig", lineterminator="\n")
    os.replace(partial, path)
    return path
