"""The quality-gate step: grade every product from the clean tables, write the alerts and suppliers CSVs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from features.catalog import StepFile
from features.engine import connect
from features.errors import SiyuError
from models.quality import LEVELS, assess
from pipelines.config import NightlyConfig
from reporting.excel import write_excel_csv


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
        previous_file = previous_dir / StepFile.QUALITY_ALERTS
        if not previous_file.is_file():
            raise SiyuError(
                f"{previous_file}: previous quality alerts not found\n"
                "  fix: pass --previous with the output directory of an earlier run"
            )
        previous = pd.read_csv(previous_file, encoding="utf-8-sig", dtype=str)
    report = assess(connect(clean_paths), as_of, config.quality, previous)
    alerts_path = write_excel_csv(report.alerts, out_dir / StepFile.QUALITY_ALERTS)
    suppliers_path = write_excel_csv(report.suppliers, out_dir / StepFile.QUALITY_SUPPLIERS)
    counts = report.alerts["level"].value_counts()
    return QualityOutcome(alerts_path, suppliers_path, {level: int(counts.get(level, 0)) for level in LEVELS})
