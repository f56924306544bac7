"""The report's sections: each reads a run's files and returns a small data object for its template.

One builder per section, in page order: segment sizes, member-tier migration, the RFM heat
map, the CLV distribution, distributor tiers, recommender metrics against the baselines and
quality alerts. A builder only computes; the wording and markup live in
``templates/sections/<anchor>.html.j2``. ``build_sections`` runs them all; a section whose
files the run did not produce comes back with ``missing`` set instead of failing.

Tables shared by several sections are built here too (``BarTable``, ``HeatCell``,
``Table``) and drawn by the macros in ``templates/blocks.html.j2``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np
import pandas as pd
from markupsafe import Markup

from features.catalog import StepFile
from features.columns import Col
from features.distributor_features import DistributorCol
from features.vocabulary import EvaluationKey, ExportCol, Movement
from models.distributor_tiers import TIERS as DISTRIBUTOR_TIERS
from models.distributor_tiers import DistributorTierCol
from models.evaluation import MetricCol
from models.member_tiers import TierCol
from models.quality import LEVELS, QualityCol
from models.rfm import RFMCol
from reporting import charts
from reporting import formatting as fmt
from reporting import trends as trend
from reporting.run_files import MissingFile, RunFiles

# Models counted as baselines when the evaluation compares the production model with them.
BASELINE_MODELS = ("repeat", "popularity_global", "popularity_category", "popularity_community")
NOT_PRODUCED = "not produced in this run"
TOP_ALERTS = 15
TOP_DISTRIBUTORS = 10
METRICS = (
    MetricCol.NDCG, MetricCol.RECALL, MetricCol.PRECISION, MetricCol.MAP, MetricCol.HIT_RATE,
    MetricCol.COVERAGE, MetricCol.NOVELTY,
)  # fmt: skip
NEW_TIER = Movement.NEW_ROW  # the migration row of consumers who had no tier in the previous run
# Summary columns of rfm_segments.csv / rfm_grid.csv (written by models.rfm).
CONSUMERS, SHARE = RFMCol.CONSUMERS, RFMCol.SHARE
MEAN_RECENCY, MEAN_ORDERS, MEAN_SPEND = RFMCol.MEAN_RECENCY_DAYS, RFMCol.MEAN_ORDERS, RFMCol.MEAN_MONETARY
# consumer_tiers.csv: the CLV column is expected_value_<horizon>; frequency is the BTYD one.
EXPECTED_VALUE_PREFIX, FREQUENCY = "expected_value_", ExportCol.FREQUENCY
# What the recommender section shows for k (NDCG@k) when evaluation.json does not say.
UNKNOWN_K = "k"  # vocabulary: a value, not a column
_SEVERITY = {level: order for order, level in enumerate(LEVELS)}


# --- shared tables ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BarRow:
    """One row of a bar table: a label, its count and share, the bar width (% of the widest)."""

    name: str
    count: int
    share: float
    width: float
    cells: tuple[str, ...] = ()


@dataclass(frozen=True)
class BarTable:
    """Counts with a share and a horizontal bar each, plus extra (already formatted) columns."""

    label: str
    rows: tuple[BarRow, ...]
    extra: tuple[str, ...] = ()
    levels: bool = False  # draw the labels as quality-level badges
    # what the share and the bar are a share of (the count, unless a weight is given)
    share_label: str = "share"  # vocabulary: a value, not a column


def bar_table(
    label: str,
    rows: Iterable[tuple[str, int, Iterable[str]]],
    total: int,
    extra: Iterable[str] = (),
    levels: bool = False,
) -> BarTable:
    """A ``BarTable`` from ``(name, count, extra cells)`` rows; shares are of ``total``."""
    rows = list(rows)
    widest = max((count for _, count, _ in rows), default=0) or 1
    return BarTable(
        label,
        tuple(
            BarRow(name, count, count / total if total else 0.0, 100 * count / widest, tuple(cells))
            for name, count, cells in rows
        ),
        tuple(extra),
        levels,
    )


@dataclass(frozen=True)
class HeatCell:
    """A count shaded by its intensity (0..1): ``shade`` is the background, ``ink`` the text colour."""

    count: float
    shade: str
    ink: str
    bold: bool = False
    note: tuple[str, ...] = ()  # small lines under the count


def heat_cell(count: float, intensity: float, bold: bool = False, note: tuple[str, ...] = ()) -> HeatCell:
    """A cell shaded by ``intensity`` (clipped to 0..1), with white text on dark shades."""
    intensity = 0.0 if not np.isfinite(intensity) else min(max(intensity, 0.0), 1.0)
    shade = f"rgba(37, 99, 235, {0.06 + 0.84 * intensity:.2f})"
    return HeatCell(count, shade, "#fff" if intensity > 0.62 else "#111", bold, note)


@dataclass(frozen=True)
class Cell:
    """A formatted table cell: ``kind`` is ``"num"`` (right-aligned), ``"level"`` (a badge) or ``"text"``."""

    text: str
    kind: Literal["text", "num", "level"] = "text"  # vocabulary: a value, not a column


@dataclass(frozen=True)
class Table:
    """A plain table: headers and rows of formatted cells."""

    head: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


def frame_table(frame: pd.DataFrame, percent: Iterable[str] = (), levels: bool = False) -> Table:
    """A ``Table`` of ``frame``: ``percent`` columns as shares, booleans as "yes", numbers formatted."""
    percent = set(percent)
    head = tuple(str(c).replace("_", " ") for c in frame.columns)
    rows = tuple(
        tuple(_cell(column, value, percent, levels) for column, value in row.items())
        for _, row in frame.iterrows()
    )
    return Table(head, rows)


def _cell(column: object, value: object, percent: set[str], levels: bool) -> Cell:
    """One value of ``frame_table``, formatted by its column and type."""
    if levels and column == QualityCol.LEVEL:
        return Cell(str(value), "level")  # vocabulary: a value, not a column
    if column in percent:
        return Cell(fmt.percent(value), "num")
    if isinstance(value, bool | np.bool_) or str(value) in ("True", "False"):
        return Cell("yes" if str(value) == "True" else "")
    if isinstance(value, int | float | np.number):
        return Cell(fmt.number(value), "num")
    return Cell("" if pd.isna(value) else str(value))  # type: ignore[arg-type]


# --- the section frame ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One part of the page: its anchor (also its template's name), title, and data or what is missing."""

    anchor: str
    title: str
    needs: str  # the step that writes its files, named when they are missing
    data: object | None = None
    missing: str | None = None

    @property
    def produced(self) -> bool:
        return self.missing is None

    @property
    def template(self) -> str:
        return f"sections/{self.anchor}.html.j2"


@dataclass(frozen=True)
class SectionSpec:
    """How to build one section: ``build(files)`` returns its data or raises ``MissingFile``."""

    anchor: str
    title: str
    needs: str
    build: Callable[[RunFiles], object]

    def __call__(self, files: RunFiles) -> Section:
        try:
            return Section(self.anchor, self.title, self.needs, data=self.build(files))
        except MissingFile as missing:
            return Section(self.anchor, self.title, self.needs, missing=str(missing.args[0]))


# --- segment sizes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segments:
    """The segment-sizes section: RFM segments and, when the run has them, member tiers."""

    consumers: int
    segments: BarTable
    member_tiers: BarTable | None


def segments(files: RunFiles) -> Segments:
    """RFM segments (rfm_segments.csv) and member tiers (consumer_tiers.csv), as bars."""
    frame = files.csv(StepFile.RFM_SEGMENTS)
    rows = [
        (s[RFMCol.SEGMENT], s[CONSUMERS],
         [fmt.fixed(s[MEAN_RECENCY], 0), fmt.fixed(s[MEAN_ORDERS], 1), fmt.money(s[MEAN_SPEND])])
        for _, s in frame.iterrows()
    ]  # fmt: skip
    total = int(frame[CONSUMERS].sum())
    table = bar_table("RFM segment", rows, total, ["mean recency (days)", "mean orders", "mean spend"])
    tiers_table = None
    if files.has(StepFile.CONSUMER_TIERS):
        tiers = files.csv(StepFile.CONSUMER_TIERS, [TierCol.MEMBER_TIER])[TierCol.MEMBER_TIER]
        counts = tiers.value_counts()
        tier_rows = [(tier, int(counts.get(tier, 0)), []) for tier in tier_order(files, tiers)]
        tiers_table = bar_table("member tier", tier_rows, len(tiers))
    return Segments(total, table, tiers_table)


# --- member-tier migration --------------------------------------------------------------------------


@dataclass(frozen=True)
class MigrationRow:
    """Consumers who had one tier in the previous run, by their tier now."""

    previous: str
    cells: tuple[HeatCell, ...]
    total: float


@dataclass(frozen=True)
class Migration:
    """The member-tier migration matrix."""

    first_run: bool  # nobody moved: every consumer is new
    tiers: tuple[str, ...]  # the current tiers (columns)
    rows: tuple[MigrationRow, ...]


def migration(files: RunFiles) -> Migration:
    """Consumers from each previous tier (rows) to each current tier (columns), shaded by row share."""
    matrix = files.csv(StepFile.TIER_MIGRATION).set_index(TierCol.PREVIOUS)
    current = [c for c in matrix.columns if c != TierCol.TOTAL]
    moved = matrix.drop(index=NEW_TIER, errors="ignore")[current].to_numpy().sum()
    rows = []
    for previous, row in matrix.iterrows():
        total = row[TierCol.TOTAL] if TierCol.TOTAL in row else row[current].sum()
        cells = tuple(
            heat_cell(row[c], row[c] / total if total else 0.0, bold=(c == previous)) for c in current
        )
        rows.append(MigrationRow(str(previous), cells, total))
    return Migration(bool(moved == 0), tuple(current), tuple(rows))


# --- RFM heat map -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RFMGrid:
    """The R × F heat map of buyers."""

    buyers: int
    f_scores: tuple[int, ...]
    rows: tuple[tuple[int, tuple[HeatCell, ...]], ...]  # (R score, cells by F), R = 5 first


def rfm(files: RunFiles) -> RFMGrid:
    """Buyers per (R, F) cell, R = 5 (most recent) on top, F = 5 (most frequent) on the right."""
    grid = files.csv(StepFile.RFM_GRID)
    counts = grid.pivot_table(index=RFMCol.R_SCORE, columns=RFMCol.F_SCORE, values=CONSUMERS, aggfunc="sum")
    by_cell = grid.set_index([RFMCol.R_SCORE, RFMCol.F_SCORE])
    names, spend = by_cell[RFMCol.SEGMENT], by_cell[MEAN_SPEND]
    top = max(float(np.nanmax(counts.to_numpy())), 1.0)
    f_scores = sorted(counts.columns)
    rows = tuple(
        (
            int(r),
            tuple(
                heat_cell(
                    counts.loc[r, f],
                    counts.loc[r, f] / top,
                    note=(str(names.get((r, f), "")), f"mean spend {fmt.money(spend.get((r, f), np.nan))}"),
                )
                for f in f_scores
            ),
        )
        for r in sorted(counts.index, reverse=True)
    )
    return RFMGrid(int(grid[CONSUMERS].sum()), tuple(int(f) for f in f_scores), rows)


# --- customer lifetime value ------------------------------------------------------------------------


@dataclass(frozen=True)
class TierValue:
    """Expected spend of one member tier's consumers."""

    tier: str
    consumers: int
    median: float
    mean: float
    total: float


@dataclass(frozen=True)
class ChurnBand:
    """The buyers of one churn band (consumer_tiers.csv ``churn_band``)."""

    band: str
    buyers: int
    mean_risk: float
    expected_value: float  # their summed expected spend over the horizon


@dataclass(frozen=True)
class CLV:
    """The CLV section: the distribution of expected spend, its split by member tier, churn bands."""

    value_column: str
    horizon: str
    estimated: bool  # False: the column is there but empty
    chart: Markup = charts.NO_CHART
    stats: tuple[tuple[str, str], ...] = ()  # (label, formatted value)
    tiers: tuple[TierValue, ...] = ()  # highest mean first
    bands: tuple[ChurnBand, ...] = ()  # low, medium, high; empty when the export has no churn_band
    tier_risk: tuple[tuple[str, float], ...] = ()  # (member tier, mean churn risk of its buyers)
    value_bands: Table | None = None  # consumers and expected spend per band of expected spend


# Bands of expected spend (powers of ten: CLV is heavy-tailed, a linear histogram is one spike at 0).
CLV_BAND_EDGES: tuple[float, ...] = (0.0, 1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0, np.inf)
BAND, VALUE, VALUE_SHARE = "expected_spend", "total_expected_spend", "share_of_expected_spend"


def clv_bands(values: pd.Series) -> pd.DataFrame:
    """Consumers and their summed expected spend per band of ``CLV_BAND_EDGES`` (left-closed;
    negative values count in the first band), from the first band to the last that is not empty:
    ``expected_spend`` (the band's label), ``consumers``, ``share``, the total and its share."""
    edges = CLV_BAND_EDGES
    labels = [_band_label(low, high) for low, high in pairwise(edges)]
    band = pd.cut(values.clip(lower=0.0), list(edges), right=False, labels=labels)
    grouped = values.groupby(band, observed=False)
    frame = pd.DataFrame({CONSUMERS: grouped.size(), VALUE: grouped.sum()})
    last = int(np.flatnonzero(frame[CONSUMERS].to_numpy())[-1]) + 1 if len(values) else 0
    frame = frame.iloc[:last]
    total_value = float(values.sum())
    frame[SHARE] = frame[CONSUMERS] / max(len(values), 1)
    frame[VALUE_SHARE] = frame[VALUE] / total_value if total_value else np.nan
    return frame.rename_axis(BAND).reset_index()[[BAND, CONSUMERS, SHARE, VALUE, VALUE_SHARE]]


def _band_label(low: float, high: float) -> str:
    if low == 0:
        return f"under {high:,.0f}"
    return f"{low:,.0f} and more" if not np.isfinite(high) else f"{low:,.0f} to {high:,.0f}"


def clv(files: RunFiles) -> CLV:
    """Distribution of expected spend over the CLV horizon (consumer_tiers.csv), by member tier."""
    columns = files.columns(StepFile.CONSUMER_TIERS)
    value_column = next((c for c in columns if c.startswith(EXPECTED_VALUE_PREFIX)), None)
    if value_column is None:
        raise MissingFile(f"{StepFile.CONSUMER_TIERS} column {EXPECTED_VALUE_PREFIX}<days>d")
    frame = files.csv(StepFile.CONSUMER_TIERS, [value_column, TierCol.MEMBER_TIER, FREQUENCY])
    values = frame[value_column].dropna()
    horizon = value_column.removeprefix(EXPECTED_VALUE_PREFIX)
    if values.empty:
        return CLV(value_column, horizon, estimated=False)
    quantiles = values.quantile([0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
    stats = (
        ("consumers with a value", fmt.integer(len(values))),
        ("without (no purchase or set aside)", fmt.integer(len(frame) - len(values))),
        ("total expected spend", fmt.money(values.sum())),
        *((f"p{int(q * 100)}", fmt.money(v)) for q, v in quantiles.items()),
        ("max", fmt.money(values.max())),
    )
    by_tier = frame.dropna(subset=[value_column]).groupby(TierCol.MEMBER_TIER)[value_column]
    tiers = tuple(
        TierValue(str(tier), group.size, group.median(), group.mean(), group.sum())
        for tier, group in sorted(by_tier, key=lambda item: -item[1].mean())
    )
    bands, tier_risk = _churn(files, value_column, columns)
    value_bands = clv_bands(values)
    chart = charts.clv_bands_chart(value_bands[BAND], value_bands[SHARE], value_bands[VALUE_SHARE], horizon)
    money = value_bands.assign(**{VALUE: value_bands[VALUE].map(fmt.money)})
    table = frame_table(money, (SHARE, VALUE_SHARE))
    return CLV(value_column, horizon, True, chart, stats, tiers, bands, tier_risk, table)


def _churn(
    files: RunFiles, value_column: str, columns: list[str]
) -> tuple[tuple[ChurnBand, ...], tuple[tuple[str, float], ...]]:
    """Buyers, mean risk and expected spend per churn band; mean churn risk per member tier."""
    if ExportCol.CHURN_BAND not in columns:
        return (), ()
    wanted = [ExportCol.CHURN_BAND, ExportCol.CHURN_RISK, value_column, TierCol.MEMBER_TIER]
    frame = files.csv(StepFile.CONSUMER_TIERS, wanted).dropna(subset=[ExportCol.CHURN_RISK])
    bands = tuple(
        ChurnBand(band, len(group), group[ExportCol.CHURN_RISK].mean(), group[value_column].sum())
        for band in ("low", "medium", "high")
        if len(group := frame[frame[ExportCol.CHURN_BAND] == band])
    )
    by_tier = frame.groupby(TierCol.MEMBER_TIER)[ExportCol.CHURN_RISK].mean().sort_values()
    return bands, tuple((str(tier), float(risk)) for tier, risk in by_tier.items())


# --- distributor tiers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Distributors:
    """The distributor-tiers section: the month's tiers and the top distributors."""

    month: str
    distributors: int
    gmv: float
    coached: int
    tiers: BarTable
    top: Table  # the first ``top_n`` by GMV rank
    top_n: int = TOP_DISTRIBUTORS


def distributors(files: RunFiles) -> Distributors:
    """Distributors per tier with their GMV, and the top distributors of the month; the bars and
    shares are of GMV (a tier of many small distributors gets a short bar), counts beside them."""
    frame = files.csv(StepFile.DISTRIBUTOR_TIERS)
    tier, gmv = DistributorTierCol.TIER, DistributorCol.GMV_MONTH
    month = str(frame[DistributorCol.MONTH].iloc[0]) if len(frame) else "?"
    by_tier = frame.groupby(tier)
    members, tier_gmv = by_tier[Col.DISTRIBUTOR_ID].size(), by_tier[gmv].sum()
    customers = by_tier[DistributorCol.ACTIVE_CUSTOMERS].sum()
    coached = by_tier[DistributorTierCol.COACHING].agg(true_count)
    total_gmv = float(frame[gmv].sum())
    order = [t for t in DISTRIBUTOR_TIERS if t in members.index] + sorted(
        set(members.index) - set(DISTRIBUTOR_TIERS)
    )
    rows = [
        (t, int(members[t]), float(tier_gmv[t]),
         [fmt.money(tier_gmv[t]), fmt.percent(members[t] / len(frame)),
          fmt.integer(customers[t]), fmt.integer(coached[t])])
        for t in order
    ]  # fmt: skip
    top = frame.sort_values(DistributorTierCol.RANK).head(TOP_DISTRIBUTORS)
    top_columns = [
        Col.DISTRIBUTOR_ID, tier, gmv, DistributorTierCol.GMV_SHARE, DistributorCol.GROWTH,
        DistributorCol.ACTIVE_CUSTOMERS, DistributorCol.REPEAT_RATE, DistributorTierCol.COACHING,
    ]  # fmt: skip
    percent = {DistributorTierCol.GMV_SHARE, DistributorCol.GROWTH, DistributorCol.REPEAT_RATE}
    extra = ["GMV", "share of distributors", "active customers", "coached"]
    return Distributors(
        month,
        len(frame),
        total_gmv,
        int(coached.sum()),
        weighted_bar_table("tier", rows, "GMV share", extra),
        frame_table(top[[c for c in top_columns if c in top.columns]], percent=percent),
    )


def weighted_bar_table(
    label: str,
    rows: Iterable[tuple[str, int, float, Iterable[str]]],
    share_label: str,
    extra: Iterable[str] = (),
) -> BarTable:
    """A ``BarTable`` from ``(name, count, weight, extra cells)`` rows whose share and bar are of the
    weight (e.g. GMV), not of the count; negative weights count as 0."""
    rows = list(rows)
    weights = [max(weight, 0.0) if np.isfinite(weight) else 0.0 for _, _, weight, _ in rows]
    total, widest = sum(weights), max(weights, default=0.0) or 1.0
    return BarTable(
        label,
        tuple(
            BarRow(name, count, weight / total if total else 0.0, 100 * weight / widest, tuple(cells))
            for (name, count, _, cells), weight in zip(rows, weights, strict=True)
        ),
        tuple(extra),
        share_label=share_label,
    )


# --- recommenders against the baselines -------------------------------------------------------------


@dataclass(frozen=True)
class ModelRow:
    """One model's metrics under one protocol."""

    model: str
    baseline: bool
    production: bool
    consumers: float
    values: tuple[float, ...]  # one per ``MetricsTable.metrics``
    lift: str  # NDCG against the best baseline, "+20%"; "–" for baselines or without one


@dataclass(frozen=True)
class MetricsTable:
    """The models evaluated under one protocol."""

    protocol: str
    metrics: tuple[str, ...]
    rows: tuple[ModelRow, ...]  # best NDCG first


@dataclass(frozen=True)
class PublishedList:
    """A published list file and its row count."""

    rows: int
    who: str  # "consumer" or "distributor"
    file: str


@dataclass(frozen=True)
class Recommenders:
    """The recommenders section: NDCG chart, one metrics table per protocol, the published lists."""

    k: object
    cutoff: str | None  # the training window, when the evaluation says
    test_end: str | None
    chart: Markup
    protocols: tuple[MetricsTable, ...]
    lists: tuple[PublishedList, ...]


def recommenders(files: RunFiles) -> Recommenders:
    """Every model × protocol from the evaluation JSON; baselines marked, lift over the best baseline."""
    report = files.json(StepFile.EVALUATION)
    details = report if isinstance(report, dict) else {}
    results = pd.DataFrame(report[EvaluationKey.RESULTS] if isinstance(report, dict) else report)
    k = details.get(EvaluationKey.K, UNKNOWN_K)
    windowed = EvaluationKey.CUTOFF in details
    tables = tuple(
        metrics_table(str(protocol), table, details.get(EvaluationKey.PRODUCTION))
        for protocol, table in results.groupby(MetricCol.PROTOCOL, sort=False)
    )
    return Recommenders(
        k,
        str(details[EvaluationKey.CUTOFF]) if windowed else None,
        str(details[EvaluationKey.TEST_END]) if windowed else None,
        charts.metrics_chart(results, k, BASELINE_MODELS),
        tables,
        published_lists(files),
    )


def metrics_table(protocol: str, table: pd.DataFrame, production: str | None) -> MetricsTable:
    """One protocol's models, best NDCG first, with the lift of each over the best baseline."""
    ndcg = MetricCol.NDCG
    ordered = table.sort_values(ndcg, ascending=False)
    baselines = ordered[ordered[MetricCol.MODEL].isin(BASELINE_MODELS)]
    best_baseline = float(baselines[ndcg].max()) if len(baselines) else np.nan
    metrics = tuple(m for m in METRICS if m in ordered.columns)
    rows = []
    for _, row in ordered.iterrows():
        model = row[MetricCol.MODEL]
        baseline = model in BASELINE_MODELS
        lift = row[ndcg] / best_baseline - 1 if best_baseline and np.isfinite(best_baseline) else np.nan
        lift_text = fmt.MISSING if not np.isfinite(lift) or baseline else f"{lift:+.0%}"
        rows.append(
            ModelRow(
                str(model),
                baseline,
                production is not None and model == production,
                row.get(MetricCol.CONSUMERS, np.nan),
                tuple(row[m] for m in metrics),
                lift_text,
            )
        )
    return MetricsTable(protocol, metrics, tuple(rows))


def published_lists(files: RunFiles) -> tuple[PublishedList, ...]:
    """Row counts of the published consumer and distributor lists that the run has."""
    return tuple(
        PublishedList(files.parquet_rows(name), who, name)
        for name, who in ((StepFile.CONSUMER_LISTS, "consumer"), (StepFile.DISTRIBUTOR_LISTS, "distributor"))
        if files.has(name)
    )


# --- quality alerts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quality:
    """The quality section: products per level, changes since the last run, the worst products,
    and each category's complaint rate against its threshold."""

    products: int
    changes: tuple[tuple[str, int], ...]  # (change, products), most frequent first
    suppliers: int | None  # suppliers with two or more flagged products; None: file absent
    levels: BarTable
    worst: Table | None  # None: no product above normal
    categories: Table | None = None  # None: the alerts lack the threshold column
    top_n: int = TOP_ALERTS
    category_chart: Markup = charts.NO_CHART  # each category's rate against its threshold


_RATE_VS_THRESHOLD = "rate_vs_threshold"  # the report's own column, in no exported file


def category_rate_frame(alerts: pd.DataFrame) -> pd.DataFrame | None:
    """Per category (the index): products, order lines and complaints of the window, the pooled
    complaint rate, the threshold, their ratio and the products at warning and pulled; highest
    ratio first. None when the alerts lack the threshold or category column."""
    if QualityCol.THRESHOLD not in alerts or Col.CATEGORY not in alerts:
        return None
    rate, threshold = QualityCol.COMPLAINT_RATE, QualityCol.THRESHOLD
    level = alerts[QualityCol.LEVEL].astype(str)
    grouped = alerts.assign(_warning=level == LEVELS[2], _pulled=level == LEVELS[3]).groupby(Col.CATEGORY)
    table = pd.DataFrame(
        {
            QualityCol.PRODUCTS: grouped.size(),
            QualityCol.ORDERS_30D: grouped[QualityCol.ORDERS_30D].sum(),
            QualityCol.COMPLAINTS_30D: grouped[QualityCol.COMPLAINTS_30D].sum(),
            threshold: grouped[threshold].max(),
            LEVELS[2]: grouped["_warning"].sum().astype(int),
            LEVELS[3]: grouped["_pulled"].sum().astype(int),
        }
    )
    lines = table[QualityCol.ORDERS_30D]
    table[rate] = table[QualityCol.COMPLAINTS_30D] / lines.where(lines > 0)
    table[_RATE_VS_THRESHOLD] = (table[rate] / table[threshold]).round(2)
    return table.sort_values([_RATE_VS_THRESHOLD, rate], ascending=False, na_position="last")


def category_rates(alerts: pd.DataFrame) -> Table | None:
    """``category_rate_frame`` as a table of formatted cells (None without thresholds)."""
    table = category_rate_frame(alerts)
    if table is None:
        return None
    rate, threshold = QualityCol.COMPLAINT_RATE, QualityCol.THRESHOLD
    columns = [
        Col.CATEGORY, QualityCol.PRODUCTS, QualityCol.ORDERS_30D, QualityCol.COMPLAINTS_30D, rate, threshold,
        _RATE_VS_THRESHOLD, LEVELS[2], LEVELS[3],
    ]  # fmt: skip
    return frame_table(table.reset_index()[columns], {rate, threshold})


def quality(files: RunFiles) -> Quality:
    """Products per level, what changed since the last run, and the worst products now."""
    alerts = files.csv(StepFile.QUALITY_ALERTS)
    level = QualityCol.LEVEL
    counts = alerts[level].value_counts()
    rows = [(name, int(counts.get(name, 0)), []) for name in reversed(LEVELS)]
    changes = tuple((str(c), int(n)) for c, n in alerts[QualityCol.CHANGE].value_counts().items())
    flagged = alerts[alerts[level] != LEVELS[0]].assign(_severity=lambda f: f[level].map(_SEVERITY))
    # Within a level, the lower bound of the rate first: 2 complaints on 3 orders is less sure than 9 on 60.
    rank_by = (
        QualityCol.RATE_LOWER_BOUND if QualityCol.RATE_LOWER_BOUND in flagged else QualityCol.COMPLAINT_RATE
    )
    worst = flagged.sort_values(["_severity", rank_by], ascending=[False, False]).head(TOP_ALERTS)
    columns = [
        Col.PRODUCT_ID, Col.SUPPLIER_ID, Col.CATEGORY, QualityCol.ORDERS_30D, QualityCol.COMPLAINTS_30D,
        QualityCol.COMPLAINT_RATE, QualityCol.RATE_LOWER_BOUND, QualityCol.THRESHOLD, level,
        QualityCol.CHANGE, QualityCol.SINCE,
    ]  # fmt: skip
    suppliers = len(files.csv(StepFile.QUALITY_SUPPLIERS)) if files.has(StepFile.QUALITY_SUPPLIERS) else None
    percent = {QualityCol.COMPLAINT_RATE, QualityCol.RATE_LOWER_BOUND, QualityCol.THRESHOLD}
    worst_table = (
        frame_table(worst[[c for c in columns if c in worst]], percent, levels=True) if len(worst) else None
    )
    levels = bar_table(level, rows, len(alerts), levels=True)
    by_category = category_rate_frame(alerts)
    chart = (
        charts.category_rates_chart(by_category[QualityCol.COMPLAINT_RATE], by_category[QualityCol.THRESHOLD])
        if by_category is not None
        else charts.NO_CHART
    )
    return Quality(
        len(alerts), changes, suppliers, levels, worst_table, category_rates(alerts), category_chart=chart
    )


# --- trends across nights ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Trends:
    """The trend section: tonight and the earlier nights' exports, oldest first."""

    nights: int
    first_night: bool  # no earlier export: the trends start with the next night
    measures: Table  # one row per night: consumers, tier movement, production NDCG, GMV
    segments: Table  # consumers per segment (rows) and night (columns)
    chart: Markup = charts.NO_CHART


def trends(files: RunFiles) -> Trends:
    """Segment sizes, member-tier movement, production NDCG and platform GMV over the last nights
    (``reporting.trends``): the earlier nights' exports, then this run's own files."""
    if not files.has(StepFile.RFM_SEGMENTS):  # the segment sizes are the trend's backbone
        raise MissingFile(StepFile.RFM_SEGMENTS)
    tonight = files.as_of or "this run"
    nights = [(as_of, RunFiles(folder)) for as_of, folder in files.earlier] + [(tonight, files)]
    measures = trend.trend_frame(nights)
    segment_counts = trend.segment_frame(nights)
    chart = charts.trends_chart(measures, segment_counts) if len(nights) > 1 else charts.NO_CHART
    shown = measures.reset_index().dropna(axis=1, how="all")
    for column, style in ((trend.PRODUCTION_NDCG, lambda v: fmt.fixed(v, 4)), (trend.GMV_MONTH, fmt.money)):
        if column in shown:
            shown[column] = shown[column].map(style)
    return Trends(
        len(nights),
        len(nights) == 1,
        frame_table(shown),
        frame_table(segment_counts.rename_axis(RFMCol.SEGMENT).reset_index()),
        chart,
    )


# --- all sections -----------------------------------------------------------------------------------

SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec("segments", "Segment sizes", "the segmentation step", segments),
    SectionSpec("migration", "Member-tier migration", "the segmentation step", migration),
    SectionSpec("rfm", "RFM heat map (recency × frequency)", "the segmentation step", rfm),
    SectionSpec("clv", "Customer lifetime value", "the segmentation step (CLV on)", clv),
    SectionSpec(
        "distributors",  # vocabulary: a value, not a column
        "Distributor tiers",
        "the segmentation step",
        distributors,
    ),
    SectionSpec("recommenders", "Recommenders against the baselines", "the evaluation step", recommenders),
    SectionSpec("quality", "Product quality alerts", "the quality gate", quality),
    SectionSpec("trends", "Trends across the last nights", "the segmentation step", trends),
)


def build_sections(files: RunFiles) -> list[Section]:
    """Every section of the page, in order."""
    return [spec(files) for spec in SECTIONS]


# --- helpers shared with the summaries --------------------------------------------------------------


def true_count(values: pd.Series) -> int:
    """How many values read as true (CSV booleans come back as bools or strings)."""
    return int(values.astype(str).str.lower().eq("true").sum())


def tier_order(files: RunFiles, tiers: pd.Series) -> list[str]:
    """Member tiers lowest first as configured (member_tiers.csv), else by count."""
    if files.has(StepFile.MEMBER_TIERS):
        configured = files.csv(StepFile.MEMBER_TIERS, [TierCol.MEMBER_TIER])[TierCol.MEMBER_TIER].tolist()
        return configured + sorted(set(tiers.dropna()) - set(configured))
    return tiers.value_counts().index.tolist()
