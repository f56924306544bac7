"""The pipeline's steps as plain functions over paths: what the CLI commands and the flow call.

Each step reads its inputs from disk, calls the pure core in ``features``/``models`` and
writes its outputs, returning paths and small summaries (never large frames).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from features.columns import Table
from features.engine import connect
from features.errors import SiyuError
from features.reader import read_dataset
from features.store import clean_path, write_validated
from features.validate import ValidationResult, check_quarantine_limits, latest_order_date
from models.quality import LEVELS, assess
from pipelines.config import NightlyConfig
from pipelines.excel import write_excel_csv
from pipelines.simulator import simulate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Validated:
    """The outcome of load + validate: where the clean tables are and what was set aside."""

    as_of: date
    out_dir: Path
    clean_paths: dict[str, Path]
    result: ValidationResult


def resolve_data_dir(config: NightlyConfig, data_dir: Path | None) -> Path:
    """The data directory to read: the one given, the configured one, or the demo set.

    The demo set is simulated into ``config.data.demo_dir`` the first time it is needed.
    """
    chosen = data_dir or config.data.dir
    if chosen is not None:
        return chosen
    demo_dir = config.data.demo_dir
    if not (demo_dir / f"{Table.ORDERS}.parquet").exists():
        logger.info("no data directory given: simulating the demo data set into %s", demo_dir)
        simulate(demo_dir, config.demo)
    return demo_dir


def load_and_validate(data_dir: Path, as_of: date | None, config: NightlyConfig, out_dir: Path) -> Validated:
    """Read ``data_dir``, quarantine bad rows, write clean tables under ``out_dir``.

    Tables are read and validated ``config.validation.chunk_rows`` rows at a time. Raises
    ``QuarantineLimitExceeded`` after writing, so the quarantine files can be read.
    """
    raw = read_dataset(data_dir, config.data)
    chunk_rows = config.validation.chunk_rows
    as_of = as_of or latest_order_date(raw, chunk_rows=chunk_rows)
    result = write_validated(raw, as_of, out_dir, chunk_rows)
    clean_paths = {report.table: clean_path(out_dir, report.table) for report in result.reports}
    check_quarantine_limits(result, config.validation)
    return Validated(as_of, out_dir, clean_paths, result)


QUALITY_ALERTS_FILE = "quality_alerts.csv"
QUALITY_SUPPLIERS_FILE = "quality_suppliers.csv"


@dataclass(frozen=True)
class QualityOutcome:
    """Where the quality gate wrote its files, and how many products sit at each level."""

    alerts_path: Path
    suppliers_path: Path
    level_counts: dict[str, int]


def run_quality(
    clean_paths: dict[str, Path], as_of: date, config: NightlyConfig, out_dir: Path, previous_dir: Path | None
) -> QualityOutcome:
    """Grade every product, carry the previous run's levels forward, write the Excel CSVs."""
    previous = None
    if previous_dir is not None:
        previous_file = previous_dir / QUALITY_ALERTS_FILE
        if not previous_file.is_file():
            raise SiyuError(
                f"{previous_file}: previous quality alerts not found\n"
                "  fix: pass --previous with the output directory of an earlier run"
            )
        previous = pd.read_csv(previous_file, encoding="utf-8-sig", dtype=str)
    report = assess(connect(clean_paths), as_of, config.quality, previous)
    alerts_path = write_excel_csv(report.alerts, out_dir / QUALITY_ALERTS_FILE)
    suppliers_path = write_excel_csv(report.suppliers, out_dir / QUALITY_SUPPLIERS_FILE)
    counts = report.alerts["level"].value_counts()
    return QualityOutcome(alerts_path, suppliers_path, {level: int(counts.get(level, 0)) for level in LEVELS})
