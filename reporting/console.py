"""What the command line shows a person: plain-text tables of a run's small files.

The CLI prints these lines; nothing here prints or reads beyond the file it is given.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from features.vocabulary import MetricCol
from features.vocabulary import ValidationKey as Key


def validation_table(report_path: Path) -> list[str]:
    """validation.json as aligned lines: rows read, kept, quarantined and after the as-of date
    per table, the reasons, and the flagged references; no lines when the file is missing."""
    if not report_path.exists():
        return []
    report = json.loads(report_path.read_text(encoding="utf-8"))
    heading = "table"  # vocabulary: a value, not a column
    lines = [f"{heading:<13}{'read':>12}{'kept':>12}{'quarantined':>13}{'after as-of':>13}  reasons"]
    for table in report[Key.TABLES]:
        reasons = ", ".join(f"{k}={v:,}" for k, v in table[Key.REASONS].items()) or "-"
        flagged = ", ".join(f"{k}={v:,}" for k, v in table.get(Key.FLAGGED, {}).items())
        lines.append(
            f"{table[Key.TABLE]:<13}{table[Key.ROWS_READ]:>12,}{table[Key.ROWS_KEPT]:>12,}"
            f"{table[Key.ROWS_QUARANTINED]:>13,}{table.get(Key.ROWS_OUT_OF_WINDOW, 0):>13,}  {reasons}"
            + (f"; kept, flagged: {flagged}" if flagged else "")
        )
    return lines


def evaluation_table(table: pd.DataFrame, columns: tuple[str, ...]) -> str:
    """The evaluation table as aligned text, one row per model and protocol."""
    shown = table[list(columns)].copy()
    for column in (MetricCol.FIT_SECONDS, MetricCol.RECOMMEND_SECONDS):
        shown[column] = shown[column].map(lambda value: f"{value:.1f}")
    return shown.to_string(index=False, float_format=lambda value: f"{value:.4f}")
