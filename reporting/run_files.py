"""Read-only access to the files of one run folder (outputs or ``exports/<as_of>/``) for the report.

A file the run did not produce raises ``MissingFile``; the report turns that into a
"not produced" line for the section instead of failing. A CSV the run also wrote as a Parquet
twin (``StepFile.TWINS``: the consumer file the report reads four times) is read from the twin:
only the wanted columns, in English whatever the locale, typed as the CSV reads them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.catalog import StepFile
from reporting.localize import delocalize_frame, is_localized


class MissingFile(Exception):
    """A section's input file (or column) is not in the run folder; ``args[0]`` names it."""


class RunFiles:
    """The files of the run in ``run_dir``; names come from ``features.catalog``.

    ``as_of`` names the run's night and ``earlier`` the (date, folder) of earlier nights' exports,
    oldest first, for the trend section; both are optional.
    """

    def __init__(
        self, run_dir: Path, as_of: str | None = None, earlier: Sequence[tuple[str, Path]] = ()
    ) -> None:
        self.run_dir = run_dir
        self.as_of = as_of
        self.earlier = tuple(earlier)

    def has(self, name: str) -> bool:
        """Whether the run wrote ``name``."""
        return (self.run_dir / name).is_file()

    def csv(self, name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """A CSV the pipeline wrote for Excel (UTF-8 with BOM), only ``columns`` when given."""
        path = self._path(name)
        twin = self._twin(name)
        if twin is not None:
            return _read_twin(twin, columns)
        if is_localized(self._header(name)):  # a zh-CN run: back to English names and codes
            frame = delocalize_frame(pd.read_csv(path, encoding="utf-8-sig", keep_default_na=True))
            return frame if columns is None else frame[[c for c in frame.columns if c in columns]]
        wanted = None if columns is None else (lambda column: column in columns)
        # low_memory=False: each column's type from all its rows, not per chunk (a 10M run's
        # consumer file otherwise gave a column mixed types and a DtypeWarning)
        return pd.read_csv(path, encoding="utf-8-sig", usecols=wanted, keep_default_na=True, low_memory=False)

    def columns(self, name: str) -> list[str]:
        """The header of a CSV (English column names, whatever the run's locale)."""
        self._path(name)
        twin = self._twin(name)
        if twin is not None:
            return list(pq.read_schema(twin).names)
        return delocalize_frame(pd.DataFrame(columns=self._header(name))).columns.tolist()

    def _header(self, name: str) -> list[str]:
        return pd.read_csv(self._path(name), encoding="utf-8-sig", nrows=0).columns.tolist()

    def json(self, name: str) -> Any:
        """A JSON file, parsed."""
        return json.loads(self._path(name).read_text(encoding="utf-8"))

    def parquet_rows(self, name: str) -> int:
        """The number of rows of a Parquet file (from its footer; no data is read)."""
        return pq.ParquetFile(self._path(name)).metadata.num_rows

    def _twin(self, name: str) -> Path | None:
        """The Parquet twin the run wrote beside CSV ``name``, if any (written after the CSV)."""
        twin_name = StepFile.TWINS.get(name)
        twin = self.run_dir / twin_name if twin_name else None
        return twin if twin is not None and twin.is_file() else None

    def _path(self, name: str) -> Path:
        path = self.run_dir / name
        if not path.is_file():
            raise MissingFile(name)
        return path


def _read_twin(path: Path, columns: Sequence[str] | None) -> pd.DataFrame:
    """A Parquet twin typed as ``RunFiles.csv`` reads its CSV: numpy dtypes (text as objects, an
    integer column with gaps as floats), not the frame's own pandas extension dtypes."""
    wanted = None if columns is None else [c for c in pq.read_schema(path).names if c in columns]
    frame = pq.read_table(path, columns=wanted).to_pandas(ignore_metadata=True)
    for column in frame.select_dtypes(include=object).columns:  # a missing text: NaN, as in the CSV
        frame[column] = frame[column].where(frame[column].notna(), np.nan)
    return frame
