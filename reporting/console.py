"""What the command line shows a person: plain-text tables of a run's small files.

The CLI prints these lines; nothing here prints or reads beyond the file it is given.
``rank_evaluation`` orders an evaluation table the way a person reads it: per protocol, the
production metric (NDCG@k, the one the champion gate compares) best first, the production
model and the best baseline marked, every model's NDCG against the best baseline's.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

import numpy as np
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


# Columns the ranked evaluation table adds (the console's own, in no exported file).
MARK = "mark"
VS_BEST_BASELINE = "vs_best_baseline"
PRODUCTION_MARK = "production"  # vocabulary: a value, not a column
BEST_BASELINE_MARK = "best baseline"
BASELINE_MARK = "baseline"
PRODUCTION_METRIC = MetricCol.NDCG


def rank_evaluation(table: pd.DataFrame, production: str | None, baselines: Collection[str]) -> pd.DataFrame:
    """Per protocol (in the table's order), rows by NDCG best first, with two more columns:
    ``mark`` (production / best baseline / baseline / empty) and ``vs_best_baseline``, a model's
    NDCG over the best baseline's under the same protocol minus 1 (NaN without a baseline)."""
    parts = [
        _rank_protocol(part, production, baselines)
        for _, part in table.groupby(MetricCol.PROTOCOL, sort=False)
    ]
    if not parts:
        return table.assign(**{MARK: pd.Series(dtype=str), VS_BEST_BASELINE: pd.Series(dtype=float)})
    return pd.concat(parts, ignore_index=True)


def _rank_protocol(part: pd.DataFrame, production: str | None, baselines: Collection[str]) -> pd.DataFrame:
    """One protocol's rows of ``rank_evaluation``."""
    ranked = part.sort_values(PRODUCTION_METRIC, ascending=False, kind="stable")
    is_baseline = ranked[MetricCol.MODEL].isin(list(baselines))
    scores = ranked[PRODUCTION_METRIC]
    measured = scores[is_baseline].dropna()
    best = measured.max() if len(measured) else np.nan
    best_model = ranked.loc[measured.idxmax(), MetricCol.MODEL] if len(measured) else None
    marks = np.where(is_baseline, BASELINE_MARK, "")
    marks = np.where(ranked[MetricCol.MODEL] == best_model, BEST_BASELINE_MARK, marks)
    marks = np.where(ranked[MetricCol.MODEL] == production, PRODUCTION_MARK, marks)
    lift = scores / best - 1 if best and np.isfinite(best) else pd.Series(np.nan, index=ranked.index)
    return ranked.assign(**{MARK: marks, VS_BEST_BASELINE: lift})


def evaluation_verdicts(ranked: pd.DataFrame, production: str | None) -> list[str]:
    """One line per protocol of a ``rank_evaluation`` table: which model leads on NDCG, and how
    the production model stands against the best baseline (and the leader, when it is not it)."""
    lines = []
    for protocol, part in ranked.groupby(MetricCol.PROTOCOL, sort=False):
        leader = part.iloc[0]
        mine = part[part[MetricCol.MODEL] == production]
        text = f"{protocol}: best {leader[MetricCol.MODEL]} (ndcg {leader[PRODUCTION_METRIC]:.4f})"
        if len(mine) and leader[MetricCol.MODEL] != production:
            row = mine.iloc[0]
            text += (
                f"; it beats the production model {production} ({row[PRODUCTION_METRIC]:.4f}, "
                f"{leader[PRODUCTION_METRIC] / row[PRODUCTION_METRIC] - 1:+.1%})"
                if row[PRODUCTION_METRIC]
                else f"; the production model {production} scores 0"
            )
        if len(mine) and np.isfinite(mine.iloc[0][VS_BEST_BASELINE]):
            text += f"; production vs best baseline {mine.iloc[0][VS_BEST_BASELINE]:+.1%}"
        lines.append(text)
    return lines


def evaluation_table(table: pd.DataFrame, columns: tuple[str, ...]) -> str:
    """The evaluation table as aligned text, one row per model and protocol; a ``rank_evaluation``
    table also shows its mark (first) and its NDCG against the best baseline (last)."""
    extra_front = [MARK] if MARK in table else []
    extra_back = [VS_BEST_BASELINE] if VS_BEST_BASELINE in table else []
    shown = table[extra_front + list(columns) + extra_back].copy()
    for column in (MetricCol.FIT_SECONDS, MetricCol.RECOMMEND_SECONDS):
        if column in shown:
            shown[column] = shown[column].map(lambda value: f"{value:.1f}")
    if extra_back:
        shown[VS_BEST_BASELINE] = shown[VS_BEST_BASELINE].map(
            lambda value: f"{value:+.1%}" if np.isfinite(value) else "-"
        )
    if extra_front:  # left-aligned, so that the marks read as labels
        width = max(len(MARK), *(len(mark) for mark in shown[MARK]))
        shown[MARK] = shown[MARK].str.ljust(width)
        shown = shown.rename(columns={MARK: MARK.ljust(width)})
    return shown.to_string(index=False, float_format=lambda value: f"{value:.4f}")
