"""RFM scoring: rank-based quintile scores 1-5 and named segments that partition all 125 cells.

Only consumers with at least one purchase are scored. Each of recency, frequency and
monetary value is ranked over them and cut into five equal-sized groups (sizes differ by at
most one), so the bins never collapse when most customers have one or two orders. Equal
values are ordered by a fixed hash of ``consumer_id`` (pandas' ``hash_pandas_object`` with
its default key): the same data always gives the same scores, and tied consumers are spread
over the bins without favouring old or new ids. Score 5 is best: most recent, most orders,
highest spend.

Segments are rules over score ranges in config (``RFMConfig.segments``); a validator proves
at load time that every one of the 5 x 5 x 5 cells falls under exactly one rule. The default
is the common 10-segment R x F map, where M does not change the segment (see
docs/segmentation.md). Consumers without a purchase get ``no_purchase_segment``.
"""

from __future__ import annotations

from itertools import product

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features.columns import Col
from features.consumer_features import ConsumerCol
from features.vocabulary import RFMCol

SCORES = 5
ScoreRange = tuple[int, int]


RFM_COLUMNS: tuple[str, ...] = (
    Col.CONSUMER_ID,
    ConsumerCol.RECENCY_DAYS,
    ConsumerCol.ORDERS,
    ConsumerCol.MONETARY,
    RFMCol.R_SCORE,
    RFMCol.F_SCORE,
    RFMCol.M_SCORE,
    RFMCol.RFM_CELL,
    RFMCol.SEGMENT,
)


class SegmentRule(BaseModel):
    """One named block of cells: every (R, F, M) with each score inside its inclusive range."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    r: ScoreRange = (1, SCORES)
    f: ScoreRange = (1, SCORES)
    m: ScoreRange = (1, SCORES)

    @field_validator("r", "f", "m")
    @classmethod
    def _valid_range(cls, value: ScoreRange) -> ScoreRange:
        low, high = value
        if not 1 <= low <= high <= SCORES:
            raise ValueError(
                f"a score range is [low, high] with 1 <= low <= high <= {SCORES}, got {list(value)}"
            )
        return value

    def cells(self) -> list[tuple[int, int, int]]:
        """The (R, F, M) cells this rule covers."""
        return list(
            product(
                range(self.r[0], self.r[1] + 1),
                range(self.f[0], self.f[1] + 1),
                range(self.m[0], self.m[1] + 1),
            )
        )


def _rule(name: str, r: ScoreRange, f: ScoreRange) -> SegmentRule:
    return SegmentRule(name=name, r=r, f=f)


# The common 10-segment R x F map (R rows, F columns); M never changes the segment.
DEFAULT_SEGMENTS: tuple[SegmentRule, ...] = (
    _rule("Champions", (5, 5), (4, 5)),
    _rule("Loyal", (3, 4), (4, 5)),
    _rule("Potential loyalist", (4, 5), (2, 3)),
    _rule("New", (5, 5), (1, 1)),
    _rule("Promising", (4, 4), (1, 1)),
    _rule("Need attention", (3, 3), (3, 3)),
    _rule("About to sleep", (3, 3), (1, 2)),
    _rule("At risk", (1, 2), (3, 4)),
    _rule("Cannot lose them", (1, 2), (5, 5)),
    _rule("Hibernating/Lost", (1, 2), (1, 2)),
)


class RFMConfig(BaseModel):
    """Named RFM segments as rules over score ranges; they must cover each of 125 cells exactly once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segments: tuple[SegmentRule, ...] = Field(DEFAULT_SEGMENTS, min_length=1)
    no_purchase_segment: str = Field("No purchase yet", min_length=1)

    @model_validator(mode="after")
    def _segments_partition_cells(self) -> RFMConfig:
        problems = partition_problems(self.segments)
        if problems:
            raise ValueError("segments must cover every (R, F, M) cell exactly once: " + "; ".join(problems))
        if self.no_purchase_segment in {rule.name for rule in self.segments}:
            raise ValueError(
                f"no_purchase_segment {self.no_purchase_segment!r} is also a scored segment's name"
            )
        return self


def partition_problems(segments: tuple[SegmentRule, ...] | list[SegmentRule]) -> list[str]:
    """Why ``segments`` do not partition the 125 cells: overlapping and missing cells, named."""
    owners: dict[tuple[int, int, int], list[str]] = {}
    for index, rule in enumerate(segments):
        for cell in rule.cells():
            owners.setdefault(cell, []).append(f"segments[{index}] {rule.name!r}")
    all_cells = list(product(range(1, SCORES + 1), repeat=3))
    missing = [cell for cell in all_cells if cell not in owners]
    overlapping = {cell: names for cell, names in owners.items() if len(names) > 1}
    problems = []
    if overlapping:
        shown = [f"{_cell(cell)} in {' and '.join(names)}" for cell, names in sorted(overlapping.items())[:5]]
        problems.append(f"{len(overlapping)} cell(s) overlap (R,F,M): " + ", ".join(shown))
    if missing:
        problems.append(
            f"{len(missing)} cell(s) missing (R,F,M): " + ", ".join(_cell(c) for c in missing[:10])
        )
    return problems


def _cell(cell: tuple[int, int, int]) -> str:
    return "".join(str(score) for score in cell)


def segment_lookup(config: RFMConfig) -> np.ndarray:
    """A 5 x 5 x 5 array of segment names indexed by (R-1, F-1, M-1)."""
    lookup = np.empty((SCORES, SCORES, SCORES), dtype=object)
    for rule in config.segments:
        for r, f, m in rule.cells():
            lookup[r - 1, f - 1, m - 1] = rule.name
    return lookup


def quintile_scores(values: pd.Series, tie_break: pd.Series, higher_is_better: bool = True) -> pd.Series:
    """Rank-based scores 1-5: five groups of equal size (differing by at most one row).

    Rows are ordered by value (descending when ``higher_is_better`` is False), then by
    ``tie_break``; the first fifth scores 1 and the last fifth 5. Missing values are not allowed.
    """
    if values.isna().any():
        raise ValueError(f"quintile_scores: {int(values.isna().sum())} missing values in {values.name!r}")
    key = values.to_numpy(dtype="float64")
    order = np.lexsort((tie_break.to_numpy(), key if higher_is_better else -key))
    scores = np.empty(len(values), dtype="int64")
    scores[order] = np.arange(len(values)) * SCORES // max(len(values), 1) + 1
    return pd.Series(scores, index=values.index, name=values.name)


def consumer_hash(consumer_ids: pd.Series) -> pd.Series:
    """A fixed 64-bit hash of each id: the tie-break order of RFM ranks."""
    return pd.util.hash_pandas_object(consumer_ids.astype(str), index=False)


def score_rfm(features: pd.DataFrame, config: RFMConfig) -> pd.DataFrame:
    """R, F and M scores, cell and segment of every consumer in ``features``; columns ``RFM_COLUMNS``.

    ``features`` needs consumer_id, recency_days, orders and monetary (one row per
    consumer). Consumers with no orders keep empty scores and get ``no_purchase_segment``.
    Row order is that of ``features``.
    """
    buyers = features[features[ConsumerCol.ORDERS] > 0]
    tie_break = consumer_hash(buyers[Col.CONSUMER_ID])
    r = quintile_scores(buyers[ConsumerCol.RECENCY_DAYS].astype("float64"), tie_break, higher_is_better=False)
    f = quintile_scores(buyers[ConsumerCol.ORDERS], tie_break)
    m = quintile_scores(buyers[ConsumerCol.MONETARY], tie_break)
    lookup = segment_lookup(config)
    segment = pd.Series(config.no_purchase_segment, index=features.index, dtype="string")
    segment[buyers.index] = lookup[r.to_numpy() - 1, f.to_numpy() - 1, m.to_numpy() - 1]
    scored = features[list(RFM_COLUMNS[:4])].copy()
    for column, score in ((RFMCol.R_SCORE, r), (RFMCol.F_SCORE, f), (RFMCol.M_SCORE, m)):
        scored[column] = score.reindex(features.index).astype("Int64")
    cell = r.astype(str) + f.astype(str) + m.astype(str)
    scored[RFMCol.RFM_CELL] = cell.reindex(features.index).astype("string")
    scored[RFMCol.SEGMENT] = segment
    return scored


def segment_summary(scored: pd.DataFrame) -> pd.DataFrame:
    """Consumers, share and mean recency / orders / spend per segment; biggest segment first."""
    summary = scored.groupby(RFMCol.SEGMENT, observed=True).agg(
        **{
            RFMCol.CONSUMERS: (Col.CONSUMER_ID, "size"),
            RFMCol.MEAN_RECENCY_DAYS: (ConsumerCol.RECENCY_DAYS, "mean"),
            RFMCol.MEAN_ORDERS: (ConsumerCol.ORDERS, "mean"),
            RFMCol.MEAN_MONETARY: (ConsumerCol.MONETARY, "mean"),
        }
    )
    summary.insert(1, RFMCol.SHARE, summary[RFMCol.CONSUMERS] / max(len(scored), 1))
    summary = summary.reset_index().sort_values([RFMCol.CONSUMERS, RFMCol.SEGMENT], ascending=[False, True])
    return summary.round(4).reset_index(drop=True)


def rf_grid(scored: pd.DataFrame, config: RFMConfig) -> pd.DataFrame:
    """Buyers per (R, F) cell, all 25 of them, for a heat map of the R x F map.

    Columns: r_score, f_score, rfm_segment (at M = 1), consumers, share of buyers,
    mean_monetary. Sorted by R then F, both descending; empty cells count 0.
    """
    buyers = scored.dropna(subset=[RFMCol.R_SCORE, RFMCol.F_SCORE])
    grouped = buyers.groupby([RFMCol.R_SCORE, RFMCol.F_SCORE])[ConsumerCol.MONETARY].agg(["size", "mean"])
    cells = pd.MultiIndex.from_product(
        [range(SCORES, 0, -1), range(SCORES, 0, -1)], names=[RFMCol.R_SCORE, RFMCol.F_SCORE]
    )
    grid = grouped.reindex(cells).reset_index()
    lookup = segment_lookup(config)
    grid.insert(2, RFMCol.SEGMENT, [lookup[r - 1, f - 1, 0] for r, f in cells])
    grid[RFMCol.CONSUMERS] = grid.pop("size").fillna(0).astype("int64")
    grid[RFMCol.SHARE] = (grid[RFMCol.CONSUMERS] / max(len(buyers), 1)).round(4)
    grid[RFMCol.MEAN_MONETARY] = grid.pop("mean").round(2)
    return grid


def cell_table_markdown(config: RFMConfig) -> str:
    """All 125 cells as a Markdown table: one row per (R, F), one column per M score.

    docs/segmentation.md holds this table for the default config (a test keeps them equal).
    """
    lookup = segment_lookup(config)
    header = "| R | F | " + " | ".join(f"M={m}" for m in range(1, SCORES + 1)) + " |"
    lines = [header, "|---|---|" + "---|" * SCORES]
    for r in range(SCORES, 0, -1):
        for f in range(SCORES, 0, -1):
            names = " | ".join(str(lookup[r - 1, f - 1, m - 1]) for m in range(1, SCORES + 1))
            lines.append(f"| {r} | {f} | {names} |")
    return "\n".join(lines)
