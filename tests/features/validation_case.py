"""Validating small hand-made tables as files and reading back what validation wrote.

``run`` writes the tables as CSV or Parquet, validates them with ``write_validated`` as of
``AS_OF`` with the clock at ``NOW``, and returns an ``Outcome`` that reads the clean and
quarantine files; ``Outcome.report`` also asserts read = kept + quarantined + out of window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from features.reader import read_dataset
from features.store import write_validated
from features.validate import TableReport, ValidationConfig, ValidationResult
from tests.data import products_frame, write_tables

AS_OF = date(2025, 3, 31)
NOW = datetime(2025, 4, 10, 12, 0)  # the run's wall-clock time: ten days after the as-of date


@dataclass(frozen=True)
class Outcome:
    result: ValidationResult
    out: Path

    def quarantine(self, table: str = "orders") -> pd.DataFrame:
        return pd.read_csv(self.out / "quarantine" / f"{table}.csv", dtype=str, keep_default_na=False)

    def quarantined(self, table: str = "orders") -> dict[int, str]:
        """source_row -> reasons of the quarantined rows."""
        frame = self.quarantine(table)
        return dict(zip(frame["source_row"].astype(int), frame["quarantine_reason"], strict=True))

    def clean(self, table: str = "orders") -> pd.DataFrame:
        return pd.read_parquet(self.out / "clean" / f"{table}.parquet")

    def report(self, table: str = "orders") -> TableReport:
        report = next(r for r in self.result.reports if r.table == table)
        assert report.rows_read == report.rows_kept + report.rows_quarantined + report.rows_out_of_window
        assert report.rows_kept == len(self.clean(table))
        assert report.rows_quarantined == len(self.quarantine(table))
        return report


def run(
    tmp_path: Path,
    orders: pd.DataFrame,
    products: pd.DataFrame | None = None,
    fmt: str = "csv",
    chunk_rows: int = 1000,
    config: ValidationConfig | None = None,
    as_of: date = AS_OF,
    **extra: pd.DataFrame,
) -> Outcome:
    tables = {"products": products if products is not None else products_frame(), "orders": orders, **extra}
    data = write_tables(tmp_path / f"data_{fmt}", tables, fmt=fmt)
    out = tmp_path / f"out_{fmt}_{chunk_rows}"
    return Outcome(write_validated(read_dataset(data), as_of, out, chunk_rows, config, now=NOW), out)
