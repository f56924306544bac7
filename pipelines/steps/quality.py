"""The quality-gate step: grade every product from the clean tables, write the alerts and suppliers CSVs.

The alerts also go to their Parquet twin (``quality_alerts.parquet``): the next run reads each
product's level history from there, ids exactly as written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from features.asof import AsOf
from features.catalog import StepFile
from features.columns import Col
from features.engine import connect
from features.errors import SiyuError
from features.files import write_parquet_atomically
from features.messages import Messages
from features.quality_counts import daily_counts, quality_counts
from models.quality import LEVELS, QualityCol, QualityConfig, QualityReport, assess, previous_levels
from pipelines.config import NightlyConfig
from reporting.excel import read_history, twin_path, write_excel_csv
from reporting.localize import localize_frame

_PREVIOUS_FIX = "pass --previous with the output directory of an earlier `siyu quality` run"


@dataclass(frozen=True)
class QualityOutcome:
    """Where the quality gate wrote its files, and how many products sit at each level."""

    alerts_path: Path
    suppliers_path: Path
    level_counts: dict[str, int]


def run_quality(
    clean_paths: dict[str, Path],
    as_of: AsOf | date,
    config: NightlyConfig,
    out_dir: Path,
    previous_dir: Path | None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> QualityOutcome:
    """Grade every product, carry the previous run's levels forward, write the Excel CSVs.

    ``con`` is an open connection over the clean tables (the nightly's run context); without
    it the step opens its own over ``clean_paths``. The CSVs are in ``config.locale``; the
    Parquet twin keeps the English level codes that the next run reads back.
    """
    as_of = AsOf.of(as_of)
    previous = read_previous_alerts(previous_dir)
    settings = config.quality
    con = con if con is not None else connect(clean_paths)
    report = grade_products(con, as_of, settings, previous)
    messages = Messages.load(config.locale)
    alerts_csv = out_dir / StepFile.QUALITY_ALERTS
    alerts_path = write_excel_csv(localize_frame(report.alerts, messages), alerts_csv)
    write_parquet_atomically(report.alerts, twin_path(alerts_csv))  # codes, for the next run's history
    suppliers_path = write_excel_csv(
        localize_frame(report.suppliers, messages), out_dir / StepFile.QUALITY_SUPPLIERS
    )
    counts = report.alerts[QualityCol.LEVEL].value_counts()
    return QualityOutcome(alerts_path, suppliers_path, {level: int(counts.get(level, 0)) for level in LEVELS})


def grade_products(
    con: duckdb.DuckDBPyConnection,
    as_of: AsOf,
    settings: QualityConfig,
    previous: pd.DataFrame | None = None,
) -> QualityReport:
    """The gate as of ``as_of`` on ``con``: the window's and the daily counts, then ``assess``."""
    counts = quality_counts(con, as_of, settings.window_days, settings.maturity_days)
    daily = daily_counts(con, as_of, settings.history_days, settings.maturity_days)
    return assess(counts, daily, as_of, settings, previous)


def read_previous_alerts(previous_dir: Path | None) -> pd.DataFrame | None:
    """The previous run's product ids, levels and since dates, exactly as it wrote them.

    Read from the Parquet twin ``quality_alerts.parquet`` (an export made before twins
    existed: from its quality_alerts.csv, with a logged note); None without ``previous_dir``.
    """
    if previous_dir is None:
        return None
    path = previous_dir / StepFile.QUALITY_ALERTS
    if not path.is_file() and not twin_path(path).is_file():
        raise SiyuError(f"{path}: previous quality alerts not found\n  fix: {_PREVIOUS_FIX}")
    previous = read_history(path, [Col.PRODUCT_ID, QualityCol.LEVEL, QualityCol.SINCE], _PREVIOUS_FIX)
    try:
        previous_levels(previous)
    except ValueError as error:
        raise SiyuError(f"{path}: {error}\n  fix: {_PREVIOUS_FIX}") from None
    return previous


def read_levels(out_dir: Path) -> pd.DataFrame:
    """``product_id, level`` of the quality run in ``out_dir``, ids exactly as written (from the
    Parquet twin); for the flow's champion lists and anything else that filters on levels."""
    path = out_dir / StepFile.QUALITY_ALERTS
    if not path.is_file() and not twin_path(path).is_file():
        raise SiyuError(f"{path}: quality alerts not found\n  fix: run the quality gate into {out_dir} first")
    return read_history(path, [Col.PRODUCT_ID, QualityCol.LEVEL], "rerun `siyu quality` into this directory")
