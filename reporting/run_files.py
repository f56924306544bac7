"""Read-only access to the files of one run folder (outputs or ``exports/<as_of>/``) for the report.

A file the run did not produce raises ``MissingFile``; the report turns that into a
"not produced" line for the section instead of failing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

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
        if is_localized(self._header(name)):  # a zh-CN run: back to English names and codes
            frame = delocalize_frame(pd.read_csv(path, encoding="utf-8-sig", keep_default_na=True))
            return frame if columns is None else frame[[c for c in frame.columns if c in columns]]
        wanted = None if columns is None else (lambda column: column in columns)
        # low_memory=False: each column's type from all its rows, not per chunk (a 10M run's
        # consumer file otherwise gave a column mixed types and a DtypeWarning)
        return pd.read_csv(path, encoding="utf-8-sig", usecols=wanted, keep_default_na=True, low_memory=False)

    def columns(self, name: str) -> list[str]:
        """The header of a CSV (English column names, whatever the run's locale)."""
        return delocalize_frame(pd.DataFrame(columns=self._header(name))).columns.tolist()

    def _header(self, name: str) -> list[str]:
        return pd.read_csv(self._path(name), encoding="utf-8-sig", nrows=0).columns.tolist()

    def json(self, name: str) -> Any:
        """A JSON file, parsed."""
        return json.loads(self._path(name).read_text(encoding="utf-8"))

    def parquet_rows(self, name: str) -> int:
        """The number of rows of a Parquet file (from its footer; no data is read)."""
        return pq.ParquetFile(self._path(name)).metadata.num_rows

    def _path(self, name: str) -> Path:
        path = self.run_dir / name
        if not path.is_file():
            raise MissingFile(name)
        return path
