"""Trends across the last nights, read from the dated exports that publishing keeps.

The exports folder holds one complete export per night (``<as_of>`` links or folders with a
``manifest.json``; ``publish.keep_last`` of them). Each night's few small files give its
measures (``night_measures``): consumers per RFM segment (``rfm_segments.csv``), member-tier
movement (``tier_migration.csv``, ordered by ``member_tiers.csv``), the production model's
all-items NDCG (``evaluation.json``) and the platform's GMV of the last full month
(``distributor_tiers.csv``). A file a night lacks leaves its measures empty for that night.

The exports are the simpler and sturdier source than the MLflow store: they sit beside the
report, need no tracking server, and are what the business saw that night. On a first night
there is nothing earlier, and the section says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from features.catalog import Folder, RunFile, StepFile
from features.distributor_features import DistributorCol
from features.vocabulary import EvaluationKey, Movement
from models.evaluation import MetricCol, Protocol
from models.member_tiers import TierCol
from models.rfm import RFMCol
from reporting.run_files import RunFiles

TREND_NIGHTS = 14  # nights the trend section shows, tonight included
CURRENT_FILE = "CURRENT"  # the exports folder's marker: names the current export
EXPORTS = Folder.EXPORTS  # the exports folder beside a work directory's outputs (default layout)
_DATED = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# The measures of one night (the report's own names, in no exported file).
AS_OF = "as_of"  # vocabulary: a value, not a column
CONSUMERS = RFMCol.CONSUMERS
UPGRADED, DOWNGRADED, NEW = "upgraded", "downgraded", "new_members"
PRODUCTION_NDCG = "production_ndcg"
GMV_MONTH, MONTH = "platform_gmv_month", "gmv_month_of"


def exports_beside(run_dir: Path) -> Path | None:
    """The exports folder that holds earlier nights of ``run_dir``: its parent when ``run_dir`` is
    an export, ``<work>/exports`` when it is ``<work>/outputs``; None when neither exists."""
    for candidate in (run_dir.parent, run_dir.parent / EXPORTS):
        if (candidate / CURRENT_FILE).is_file():
            return candidate
    return None


def earlier_nights(
    exports_dir: Path | None, as_of: str, nights: int = TREND_NIGHTS
) -> list[tuple[str, Path]]:
    """(date, folder) of the newest ``nights`` complete exports dated before ``as_of``, oldest first."""
    if exports_dir is None or not exports_dir.is_dir() or nights < 1:
        return []
    dated = sorted(
        (path.name, path)
        for path in exports_dir.iterdir()
        if _DATED.match(path.name) and path.name < as_of and (path / RunFile.MANIFEST).is_file()
    )
    return dated[-nights:]


def night_measures(files: RunFiles) -> dict[str, object]:
    """One night's measures (consumers, tier movement, production NDCG, GMV and its month); a
    measure whose file the night lacks is left out."""
    measures: dict[str, object] = {}
    if files.has(StepFile.RFM_SEGMENTS):
        measures[CONSUMERS] = int(files.csv(StepFile.RFM_SEGMENTS, [CONSUMERS])[CONSUMERS].sum())
    if files.has(StepFile.TIER_MIGRATION):
        measures.update(tier_movement(files.csv(StepFile.TIER_MIGRATION), _tier_order(files)))
    if files.has(StepFile.EVALUATION):
        ndcg = production_ndcg(files.json(StepFile.EVALUATION))
        if ndcg is not None:
            measures[PRODUCTION_NDCG] = ndcg
    if files.has(StepFile.DISTRIBUTOR_TIERS):
        frame = files.csv(StepFile.DISTRIBUTOR_TIERS, [DistributorCol.MONTH, DistributorCol.GMV_MONTH])
        measures[GMV_MONTH] = float(frame[DistributorCol.GMV_MONTH].sum())
        measures[MONTH] = str(frame[DistributorCol.MONTH].iloc[0]) if len(frame) else ""
    return measures


def night_segments(files: RunFiles) -> dict[str, int]:
    """Consumers per RFM segment of one night (empty when the night has no rfm_segments.csv)."""
    if not files.has(StepFile.RFM_SEGMENTS):
        return {}
    segments = files.csv(StepFile.RFM_SEGMENTS, [RFMCol.SEGMENT, CONSUMERS])
    return {str(s): int(n) for s, n in zip(segments[RFMCol.SEGMENT], segments[CONSUMERS], strict=True)}


def tier_movement(migration: pd.DataFrame, order: Sequence[str]) -> dict[str, int]:
    """Consumers who moved up, down, and who are new, from a ``tier_migration.csv`` matrix
    (previous tier per row, tier now per column); ``order`` lists the tiers lowest first."""
    matrix = migration.set_index(TierCol.PREVIOUS)
    current = [c for c in matrix.columns if c != TierCol.TOTAL]
    rank = {tier: position for position, tier in enumerate(order)}
    up = down = 0
    for previous, row in matrix.drop(index=Movement.NEW_ROW, errors="ignore").iterrows():
        for tier in current:
            if previous in rank and tier in rank:
                up += int(row[tier]) if rank[tier] > rank[previous] else 0
                down += int(row[tier]) if rank[tier] < rank[previous] else 0
    new = int(matrix.loc[Movement.NEW_ROW, current].sum()) if Movement.NEW_ROW in matrix.index else 0
    return {UPGRADED: up, DOWNGRADED: down, NEW: new}


def production_ndcg(report: object) -> float | None:
    """The production model's all-items NDCG in an ``evaluation.json``, or None."""
    if not isinstance(report, dict) or EvaluationKey.PRODUCTION not in report:
        return None
    for row in report.get(EvaluationKey.RESULTS, []):
        if (
            row.get(MetricCol.MODEL) == report[EvaluationKey.PRODUCTION]
            and row.get(MetricCol.PROTOCOL) == Protocol.ALL_ITEMS
        ):
            value = row.get(MetricCol.NDCG)
            return float(value) if value is not None and np.isfinite(value) else None
    return None


def trend_frame(nights: Sequence[tuple[str, RunFiles]]) -> pd.DataFrame:
    """One row per night (``as_of`` as index, oldest first), one column per measure."""
    rows = {as_of: night_measures(files) for as_of, files in nights}
    columns = [AS_OF, CONSUMERS, UPGRADED, DOWNGRADED, NEW, PRODUCTION_NDCG, GMV_MONTH, MONTH]
    frame = pd.DataFrame.from_dict(rows, orient="index").rename_axis(AS_OF).sort_index().reset_index()
    return frame.reindex(columns=columns).set_index(AS_OF)


def segment_frame(nights: Sequence[tuple[str, RunFiles]]) -> pd.DataFrame:
    """Consumers per segment (rows, in the last night's order) and night (columns, oldest first);
    0 for a segment a night did not have."""
    by_night = {as_of: night_segments(files) for as_of, files in nights}
    order = list(dict.fromkeys(name for counts in reversed(by_night.values()) for name in counts))
    frame = pd.DataFrame(by_night, index=order, dtype=float).fillna(0).astype(int)
    return frame.reindex(columns=sorted(frame.columns))


def _tier_order(files: RunFiles) -> list[str]:
    if files.has(StepFile.MEMBER_TIERS):
        tiers = files.csv(StepFile.MEMBER_TIERS, [TierCol.MEMBER_TIER])[TierCol.MEMBER_TIER]
        return tiers.astype(str).tolist()
    return []
