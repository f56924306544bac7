"""The catalog: the name of every file a run writes and the columns of every exported file.

Steps, the flow, the artifact writer, the report and the CLI take file names from here and
nowhere else. The folders of a work directory and of an export are named here too, so that
a path is spelled once. ``EXPORTS`` describes each step file: who reads it, what one row is,
and its columns in order with a one-line meaning, the names drawn from ``features.vocabulary``
and ``features.columns``. ``python -m features.catalog > docs/exports.md`` writes the export
reference from it (a test keeps the two equal). No heavy imports: this module is read by the
backend tooling and the docs generator as well.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

from features.columns import Col, Table
from features.vocabulary import (
    ClusterCol,
    ConsumerCol,
    DistributorFeatureCol,
    DistributorListCol,
    DistributorTier,
    DistributorTierCol,
    EvaluationKey,
    ExportCol,
    FallbackCol,
    LevelChange,
    MetricCol,
    Movement,
    QualityCol,
    QualityLevel,
    ReasonCode,
    RecCol,
    RFMCol,
    SampleKey,
    TagCol,
    TagType,
    TierCol,
    ValidationKey,
)


class Folder:
    """Folders under a work directory (``--out`` or ``work_dir``) and inside an export."""

    VALIDATED = "validated"
    CLEAN = "clean"
    QUARANTINE = "quarantine"
    OUTPUTS = "outputs"
    EXPORTS = "exports"
    PREFECT = "prefect"
    CHAMPION = "champion"
    ARTIFACT = "artifact"
    CHAMPION_MODEL = "model"
    CHAMPION_LISTS = "lists"
    CHAMPION_STORED = "stored_model"  # the champion version's stored production model, downloaded
    VALIDATION_CACHE = "cache"
    PRODUCTION_MODEL = "production_model"  # the stored production model (recommend.refit_every_days)


class StepFile:
    """Files the steps write into the outputs folder; every one of them is exported."""

    # validation (under validated/)
    VALIDATION_REPORT = "validation.json"
    # segmentation
    CONSUMER_TIERS = "consumer_tiers.csv"
    DISTRIBUTOR_TIERS = "distributor_tiers.csv"
    DISTRIBUTOR_COACHING = "distributor_coaching.csv"
    TIER_MIGRATION = "tier_migration.csv"
    MEMBER_TIERS = "member_tiers.csv"
    RFM_SEGMENTS = "rfm_segments.csv"
    RFM_GRID = "rfm_grid.csv"
    CLUSTER_PROFILES = "cluster_profiles.csv"
    PROFILE_TAGS = "profile_tags.parquet"
    DISTRIBUTOR_MONTHLY = "distributor_monthly.parquet"
    # quality gate
    QUALITY_ALERTS = "quality_alerts.csv"
    QUALITY_SUPPLIERS = "quality_suppliers.csv"
    # recommenders
    EVALUATION = "evaluation.json"
    CONSUMER_LISTS = "consumer_recommendations.parquet"
    DISTRIBUTOR_LISTS = "distributor_recommendations.parquet"
    OUTREACH = "distributor_outreach.parquet"
    SIMILAR_ITEMS = "similar_items.parquet"
    FALLBACK_COMMUNITY = "fallback_community.parquet"
    FALLBACK_GLOBAL = "fallback_global.parquet"

    LISTS: tuple[str, ...] = (CONSUMER_LISTS, DISTRIBUTOR_LISTS)

    # workbooks and the distributor share kit (reporting/workbook.py, pipelines/steps/workbooks.py)
    MARKETING_WORKBOOK = "marketing.xlsx"
    QUALITY_WORKBOOK = "quality.xlsx"
    SHARE_KIT = "share_kit.csv"
    SHARE_KIT_WORKBOOK = "share_kit.xlsx"

    # machine twins: the exact frames behind the Excel CSVs that later runs read back (previous
    # tiers, quality history, communities); the CSVs quote formula-like ids, these keep them exactly
    CONSUMER_TIERS_TWIN = "consumer_tiers.parquet"
    QUALITY_ALERTS_TWIN = "quality_alerts.parquet"

    TWINS: ClassVar[dict[str, str]] = {
        CONSUMER_TIERS: CONSUMER_TIERS_TWIN,
        QUALITY_ALERTS: QUALITY_ALERTS_TWIN,
    }


def output_names() -> frozenset[str]:
    """Every name a run writes into ``outputs/`` (the step files and the artifact folder): what
    siyu may clear there and what it exports. Anything else in the folder is someone else's."""
    step_files = {v for k, v in vars(StepFile).items() if k.isupper() and isinstance(v, str)}
    return frozenset(step_files - {StepFile.VALIDATION_REPORT} | {Folder.ARTIFACT})


class RunFile:
    """Files about a run rather than its results."""

    MANIFEST = "manifest.json"
    REPORT_HTML = "report.html"
    MLFLOW_DB = "mlflow.db"
    RUN_TIMINGS = "run_timings.json"  # seconds per task, wall, peak RSS, orders scans (work dir)


# --- the columns of every exported file --------------------------------------------------------------


@dataclass(frozen=True)
class ColumnDoc:
    """One column (or JSON field) of an exported file and what it means.

    ``name`` may hold a ``{placeholder}`` filled from configuration (``expected_purchases_
    {horizon_days}d``). With ``per`` set, the column is a family: one column for every value of
    ``per`` (every member tier, every clustering feature), the name's ``{<per>}`` being that value;
    consecutive columns with the same ``per`` repeat together, value by value.
    """

    name: str
    meaning: str
    per: str = ""
    unit: str = ""  # one of ``Unit.ALL``: how a person reads the value (number formats, id or label)


@dataclass(frozen=True)
class ExportFile:
    """An exported file: its name, who reads it, what one row is, and its columns in order."""

    name: str
    audience: str
    rows: str
    columns: tuple[ColumnDoc, ...]
    docs: str
    folder: str = Folder.OUTPUTS

    def column_names(self, **values: object) -> tuple[str, ...]:
        """The column names in order, placeholders filled from ``values``.

        A family (``per``) expands over the sequence ``values[per]``; without it, and for any
        placeholder missing from ``values``, the name is returned as written (a template).
        """
        names: list[str] = []
        index = 0
        while index < len(self.columns):
            column = self.columns[index]
            if not column.per or column.per not in values:
                names.append(_fill(column.name, values))
                index += 1
                continue
            group = list(self.columns[index : index + _run_length(self.columns, index)])
            for value in _as_sequence(values[column.per]):
                names.extend(_fill(c.name, {**values, c.per: value}) for c in group)
            index += len(group)
        return tuple(names)

    def doc(self, column: str) -> ColumnDoc:
        """The ColumnDoc of the concrete ``column`` (a family member such as ``median_orders`` or
        ``expected_value_90d`` included): its meaning and unit. KeyError when not a column here."""
        for doc in self.columns:
            if doc.name == column:
                return doc
        for doc in self.columns:
            if "{" in doc.name and not doc.name.startswith("{") and _family(doc.name).fullmatch(column):
                return doc
        for doc in self.columns:  # a family named by a value alone (tier_migration's member tiers)
            if doc.name.startswith("{") and doc.name.endswith("}"):
                return doc
        raise KeyError(f"{self.name}: no column {column!r} in the catalog")


def _family(name: str) -> re.Pattern[str]:
    """A family's name (``median_{feature}``) as a pattern its members match."""
    return re.compile(re.sub(r"\\\{\w+\\\}", ".+", re.escape(name)))


def _run_length(columns: Sequence[ColumnDoc], start: int) -> int:
    """How many consecutive columns from ``start`` share its ``per``."""
    length = 0
    while start + length < len(columns) and columns[start + length].per == columns[start].per:
        length += 1
    return length


def _as_sequence(value: object) -> Sequence[object]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError(f"a column family needs a sequence of values, got {value!r}")
    return list(value)


def _fill(name: str, values: Mapping[str, object]) -> str:
    try:
        return name.format(**values)
    except KeyError:
        return name


class Unit:
    """What a column's values are, for number formats and for telling ids and codes from labels.

    ``id`` and ``code`` stay as they are in every locale (identifiers, stable English codes, data
    categories); ``label`` and ``text`` are what a person reads and are localized.
    """

    ID = "id"
    TEXT = "text"
    CODE = "code"
    LABEL = "label"
    COUNT = "count"
    YUAN = "yuan"
    PERCENT = "percent"
    RATIO = "ratio"
    SCORE = "score"
    PROBABILITY = "probability"
    DAYS = "days"
    DATE = "date"
    MONTH = "month"  # a calendar month: `YYYY-MM` in CSVs, the first day in Parquet
    DATETIME = "datetime"
    FLAG = "flag"

    ALL: tuple[str, ...] = (
        ID,
        TEXT,
        CODE,
        LABEL,
        COUNT,
        YUAN,
        PERCENT,
        RATIO,
        SCORE,
        PROBABILITY,
        DAYS,
        DATE,
        MONTH,
        DATETIME,
        FLAG,
    )
    UNTRANSLATED: tuple[str, ...] = (ID, CODE)


def _units(unit: str, *names: str) -> dict[str, str]:
    return dict.fromkeys(names, unit)


# the unit of every exported column, by name (a name means the same kind of value in every file)
UNITS: dict[str, str] = {
    **_units(
        Unit.ID,
        Col.CONSUMER_ID,
        Col.DISTRIBUTOR_ID,
        Col.PRODUCT_ID,
        Col.SUPPLIER_ID,
        ConsumerCol.HOME_DISTRIBUTOR_ID,
        RecCol.SIMILAR_PRODUCT_ID,
    ),
    **_units(
        Unit.CODE,
        Col.CATEGORY,
        ConsumerCol.TOP_CATEGORY,
        RFMCol.RFM_CELL,
        ClusterCol.CLUSTER,
        TagCol.TAG_TYPE,
        TagCol.TAG_VALUE,
        ValidationKey.TABLE,
        EvaluationKey.PRODUCTION,
        MetricCol.MODEL,
        MetricCol.PROTOCOL,
        RecCol.REASON_CODE,
    ),
    **_units(
        Unit.LABEL,
        RFMCol.SEGMENT,
        TierCol.MEMBER_TIER,
        TierCol.PREVIOUS_TIER,
        TierCol.MOVEMENT,
        TierCol.PREVIOUS,
        ClusterCol.LABEL,
        ExportCol.CHURN_BAND,
        TagCol.TAG_LABEL,
        DistributorTierCol.TIER,
        DistributorTierCol.COACHING_REASON,
        QualityCol.LEVEL,
        QualityCol.PREVIOUS_LEVEL,
        QualityCol.CHANGE,
        RecCol.REASON,
    ),
    **_units(
        Unit.TEXT,
        TierCol.BENEFITS,
        ValidationKey.TABLES,
        ValidationKey.SOURCE,
        EvaluationKey.SAMPLE,
        EvaluationKey.RESULTS,
    ),
    **_units(
        Unit.COUNT,
        ExportCol.FREQUENCY,
        ConsumerCol.ROLLING_ORDERS,
        TierCol.MIN_ORDERS,
        TierCol.TOTAL,
        "{member_tier}",
        RFMCol.CONSUMERS,
        MetricCol.FOLDS,
        DistributorTierCol.RANK,
        DistributorFeatureCol.ORDERS,
        DistributorFeatureCol.ORDERS_MONTH,
        DistributorFeatureCol.ACTIVE_CUSTOMERS,
        DistributorFeatureCol.ACTIVE_CUSTOMERS_PREV,
        DistributorFeatureCol.NEW_CUSTOMERS,
        DistributorFeatureCol.REPEAT_CUSTOMERS,
        DistributorFeatureCol.SHARES,
        DistributorFeatureCol.SHARES_MONTH,
        DistributorFeatureCol.COMMUNITY_SIZE,
        QualityCol.ORDERS_30D,
        QualityCol.COMPLAINTS_30D,
        QualityCol.PRODUCTS,
        QualityCol.FLAGGED,
        *QualityLevel.ALL,
        ValidationKey.ROWS_READ,
        ValidationKey.ROWS_KEPT,
        ValidationKey.ROWS_QUARANTINED,
        ValidationKey.ROWS_OUT_OF_WINDOW,
        ValidationKey.REASONS,
        EvaluationKey.K,
        RecCol.RANK,
        FallbackCol.BUYERS,
    ),
    **_units(
        Unit.YUAN,
        ConsumerCol.MONETARY,
        ConsumerCol.ROLLING_SPEND,
        ExportCol.EXPECTED_VALUE,
        TierCol.MIN_SPEND,
        RFMCol.MEAN_MONETARY,
        DistributorFeatureCol.GMV,
        DistributorFeatureCol.GMV_MONTH,
        DistributorFeatureCol.GMV_PREV_MONTH,
    ),
    **_units(
        Unit.PERCENT,
        RFMCol.SHARE,
        DistributorTierCol.GMV_SHARE,
        DistributorFeatureCol.GROWTH,
        DistributorFeatureCol.REPEAT_RATE,
        QualityCol.COMPLAINT_RATE,
        QualityCol.RATE_LOWER_BOUND,
        QualityCol.RATE_UPPER_BOUND,
        QualityCol.THRESHOLD,
        QualityCol.FLAGGED_SHARE,
    ),
    **_units(
        Unit.RATIO,
        ExportCol.EXPECTED_PURCHASES,
        RFMCol.MEAN_ORDERS,
        ClusterCol.MEDIAN,
        DistributorFeatureCol.ORDERS_PER_SHARE,
        DistributorFeatureCol.ORDERS_PER_SHARE_PREV,
        MetricCol.NDCG,
        MetricCol.RECALL,
        MetricCol.PRECISION,
        MetricCol.MAP,
        MetricCol.HIT_RATE,
        MetricCol.COVERAGE,
        MetricCol.NOVELTY,
        *(bound for _, *bounds in MetricCol.INTERVALS for bound in bounds),
    ),
    **_units(Unit.SCORE, RFMCol.R_SCORE, RFMCol.F_SCORE, RFMCol.M_SCORE, ClusterCol.Z_SCORE, RecCol.SCORE),
    **_units(Unit.SCORE, QualityCol.EVIDENCE),
    **_units(Unit.PROBABILITY, ExportCol.PROB_ALIVE, ExportCol.CHURN_RISK),
    **_units(Unit.MONTH, DistributorFeatureCol.MONTH),
    **_units(Unit.DAYS, ConsumerCol.RECENCY_DAYS, TierCol.WINDOW_DAYS, RFMCol.MEAN_RECENCY_DAYS),
    **_units(
        Unit.DATE,
        ValidationKey.AS_OF,
        QualityCol.SINCE,
        EvaluationKey.CUTOFF,
        EvaluationKey.TEST_END,
    ),
    **_units(Unit.FLAG, DistributorTierCol.COACHING),
}


def _doc(name: str, meaning: str, per: str = "") -> ColumnDoc:
    return ColumnDoc(name, meaning, per, UNITS.get(name, ""))


def _one_of(values: Sequence[str]) -> str:
    return " / ".join(values)


_SEGMENTATION_DOCS = "docs/segmentation.md"
_QUALITY_DOCS = "docs/quality_gate.md"
_LISTS_DOCS = "docs/recommendation_lists.md"

_DISTRIBUTOR_TIER_COLUMNS: tuple[ColumnDoc, ...] = (
    # identity, tier and coaching first, then the month's main numbers, technical ones after (issue #13)
    _doc(Col.DISTRIBUTOR_ID, "the distributor"),
    _doc(DistributorTierCol.TIER, _one_of(DistributorTier.ALL) + " (first matching rule wins)"),
    _doc(DistributorTierCol.COACHING, "True when on the coaching list"),
    _doc(DistributorTierCol.COACHING_REASON, "why it is coached, with the numbers (empty when not coached)"),
    _doc(DistributorTierCol.RANK, "rank by `gmv_month`, 1 = highest (ties: id)"),
    _doc(DistributorFeatureCol.MONTH, "the reference month (last full month by the as-of date), `YYYY-MM`"),
    _doc(DistributorFeatureCol.GMV_MONTH, "GMV of the month: spend of paid lines through the distributor"),
    _doc(
        DistributorFeatureCol.GROWTH,
        "month-on-month GMV growth, 4 decimals (empty when the month before had none)",
    ),
    _doc(DistributorFeatureCol.ACTIVE_CUSTOMERS, "consumers with a purchase through it in the month"),
    _doc(
        DistributorFeatureCol.NEW_CUSTOMERS,
        "consumers whose first-ever purchase through it fell in the month",
    ),
    _doc(
        DistributorFeatureCol.REPEAT_RATE,
        "share of the month's active customers with 2+ purchases in the month",
    ),
    _doc(
        DistributorFeatureCol.COMMUNITY_SIZE,
        "consumers whose home distributor it is (0 without a consumers table)",
    ),
    _doc(DistributorTierCol.GMV_SHARE, "share of all distributors' GMV in the month, 4 decimals"),
    _doc(DistributorFeatureCol.GMV_PREV_MONTH, "GMV of the month before"),
    _doc(DistributorFeatureCol.ORDERS_MONTH, "purchases (orders with a paid line) through it in the month"),
    _doc(
        DistributorFeatureCol.ACTIVE_CUSTOMERS_PREV,
        "consumers with a purchase through it in the month before",
    ),
    _doc(
        DistributorFeatureCol.SHARES_MONTH, "`share` events carrying its id in the month (0 without events)"
    ),
    _doc(
        DistributorFeatureCol.ORDERS_PER_SHARE,
        "`orders_month / shares_month`: share-to-order conversion (empty without shares)",
    ),
    _doc(DistributorFeatureCol.ORDERS_PER_SHARE_PREV, "the same conversion in the month before"),
)

EXPORTS: tuple[ExportFile, ...] = (
    ExportFile(
        name=StepFile.VALIDATION_REPORT,
        audience="data engineers",
        rows="a JSON object: the as-of date and one object per validated table",
        folder=Folder.VALIDATED,
        docs="README.md",
        columns=(
            _doc(ValidationKey.AS_OF, "the as-of date validated against (`YYYY-MM-DD`)"),
            _doc(ValidationKey.TABLES, "one object per table, in validation order, with the fields below"),
            _doc(ValidationKey.TABLE, "the contract table (" + ", ".join(Table.ALL) + ")"),
            _doc(ValidationKey.SOURCE, "the file it was read from"),
            _doc(ValidationKey.ROWS_READ, "data rows read"),
            _doc(ValidationKey.ROWS_KEPT, "rows that passed (in `clean/<table>.parquet`)"),
            _doc(ValidationKey.ROWS_QUARANTINED, "rows set aside (in `quarantine/<table>.csv`)"),
            _doc(
                ValidationKey.ROWS_OUT_OF_WINDOW, "rows dated after the as-of date: not used, not quarantined"
            ),
            _doc(ValidationKey.REASONS, "quarantined rows per reason"),
            _doc(ValidationKey.FLAGGED, "kept rows per flagged reference (`validation.references: flag`)"),
        ),
    ),
    ExportFile(
        name=StepFile.CONSUMER_TIERS,
        audience="marketing",
        rows="one row per consumer (registered or seen in orders): segments in the configured order "
        "(the no-purchase segment last), then expected value, then spend (highest first), then `consumer_id`",
        docs=_SEGMENTATION_DOCS,
        columns=(
            # identity and campaign columns first, technical scores after (issue #13)
            _doc(Col.CONSUMER_ID, "the consumer"),
            _doc(ConsumerCol.HOME_DISTRIBUTOR_ID, "home distributor (community)"),
            _doc(RFMCol.SEGMENT, "named segment of the R x F map, or `No purchase yet`"),
            _doc(TierCol.MEMBER_TIER, "member level (configured; default regular / silver / gold / diamond)"),
            _doc(TierCol.MOVEMENT, _one_of(Movement.ALL)),
            _doc(
                ExportCol.CHURN_BAND,
                "`low` / `medium` / `high` churn risk (`segmentation.churn.medium_from` / `high_from`; "
                "default 0.5 / 0.7); empty for non-buyers",
            ),
            _doc(
                ExportCol.EXPECTED_VALUE,
                "expected net spend in the next `segmentation.clv.horizon_days` days (BG/NBD x "
                "Gamma-Gamma or gradient boosting, chosen as for the expected purchases; docs/clv.md)",
            ),
            _doc(ConsumerCol.TOP_CATEGORY, "category with the most spend"),
            _doc(TierCol.PREVIOUS_TIER, "the level in the previous run's file (empty: not there, or none)"),
            _doc(ClusterCol.LABEL, "the cluster's readable label"),
            _doc(ClusterCol.CLUSTER, "behaviour cluster 1..k (1 = highest spend; empty without a purchase)"),
            _doc(ConsumerCol.RECENCY_DAYS, "days since the latest purchase (empty: none)"),
            _doc(ExportCol.FREQUENCY, "purchases (orders with a paid line) up to the as-of date"),
            _doc(ConsumerCol.MONETARY, "spend net of returns up to the as-of date"),
            _doc(RFMCol.R_SCORE, "recency score 1-5, 5 best (empty without a purchase)"),
            _doc(RFMCol.F_SCORE, "frequency score 1-5, 5 best (empty without a purchase)"),
            _doc(RFMCol.M_SCORE, "monetary score 1-5, 5 best (empty without a purchase)"),
            _doc(RFMCol.RFM_CELL, "the three scores as text, e.g. `545`"),
            _doc(ConsumerCol.ROLLING_SPEND, "spend in the tier window (365 days)"),
            _doc(ConsumerCol.ROLLING_ORDERS, "purchases in the tier window (365 days)"),
            _doc(
                ExportCol.EXPECTED_PURCHASES,
                "expected purchase days over the same horizon (BG/NBD or "
                "gradient boosting, whichever had the smaller error on the window before; docs/clv.md; "
                "empty for non-buyers and when CLV is off)",
            ),
            _doc(
                ExportCol.PROB_ALIVE,
                "probability the consumer has not silently dropped out (BG/NBD; 1 without a repeat: "
                "not a churn score, use `churn_risk`)",
            ),
            _doc(
                ExportCol.CHURN_RISK,
                "probability of **no** paid purchase in the next `horizon_days` days, for every buyer "
                "(one-time buyers included); the model with the best Brier score on the window before "
                "the as-of date (docs/clv.md)",
            ),
        ),
    ),
    ExportFile(
        name=StepFile.DISTRIBUTOR_TIERS,
        audience="marketing",
        rows="one row per distributor, sorted by `gmv_rank`",
        docs=_SEGMENTATION_DOCS,
        columns=_DISTRIBUTOR_TIER_COLUMNS,
    ),
    ExportFile(
        name=StepFile.DISTRIBUTOR_COACHING,
        audience="marketing",
        rows="the coached rows of `distributor_tiers.csv`, most active customers first (ties: id)",
        docs=_SEGMENTATION_DOCS,
        columns=_DISTRIBUTOR_TIER_COLUMNS,
    ),
    ExportFile(
        name=StepFile.TIER_MIGRATION,
        audience="marketing",
        rows="one row per previous member tier, in level order, then `(new)`",
        docs=_SEGMENTATION_DOCS,
        columns=(
            _doc(TierCol.PREVIOUS, f"the previous tier, or `{Movement.NEW_ROW}` for consumers without one"),
            _doc("{member_tier}", "consumers of the row now at this tier", "member_tier"),
            _doc(TierCol.TOTAL, "all consumers of the row"),
        ),
    ),
    ExportFile(
        name=StepFile.MEMBER_TIERS,
        audience="marketing",
        rows="one row per configured member level, lowest first",
        docs=_SEGMENTATION_DOCS,
        columns=(
            _doc(TierCol.MEMBER_TIER, "the level"),
            _doc(TierCol.MIN_SPEND, "rolling spend the level needs"),
            _doc(TierCol.MIN_ORDERS, "rolling purchases the level needs"),
            _doc(TierCol.WINDOW_DAYS, "the rolling window in days"),
            _doc(TierCol.BENEFITS, "the level's benefits (configured text)"),
        ),
    ),
    ExportFile(
        name=StepFile.RFM_SEGMENTS,
        audience="marketing",
        rows="one row per RFM segment, biggest first",
        docs=_SEGMENTATION_DOCS,
        columns=(
            _doc(RFMCol.SEGMENT, "the segment"),
            _doc(RFMCol.CONSUMERS, "consumers in it"),
            _doc(RFMCol.SHARE, "share of all consumers"),
            _doc(RFMCol.MEAN_RECENCY_DAYS, "mean days since the latest purchase"),
            _doc(RFMCol.MEAN_ORDERS, "mean purchases"),
            _doc(RFMCol.MEAN_MONETARY, "mean spend net of returns"),
        ),
    ),
    ExportFile(
        name=StepFile.RFM_GRID,
        audience="marketing",
        rows="one row per (R, F) cell, all 25, R then F descending (heat-map layout)",
        docs=_SEGMENTATION_DOCS,
        columns=(
            _doc(RFMCol.R_SCORE, "recency score 1-5"),
            _doc(RFMCol.F_SCORE, "frequency score 1-5"),
            _doc(RFMCol.SEGMENT, "the cell's segment at M = 1"),
            _doc(RFMCol.CONSUMERS, "buyers in the cell (0 when empty)"),
            _doc(RFMCol.SHARE, "share of buyers"),
            _doc(RFMCol.MEAN_MONETARY, "mean spend of the cell's buyers"),
        ),
    ),
    ExportFile(
        name=StepFile.CLUSTER_PROFILES,
        audience="marketing, data scientists",
        rows="one row per behaviour cluster, by cluster number (absent when clustering is off)",
        docs=_SEGMENTATION_DOCS,
        columns=(
            _doc(ClusterCol.CLUSTER, "cluster number 1..k, 1 = highest mean spend"),
            _doc(ClusterCol.LABEL, "readable label from the features where the cluster stands out"),
            _doc(ClusterCol.CONSUMERS, "buyers in the cluster"),
            _doc(ClusterCol.SHARE, "share of buyers"),
            _doc(
                ClusterCol.MEDIAN,
                "the cluster's median of the feature (one per clustering feature, each followed by"
                " its `z_<feature>`)",
                "feature",
            ),
            _doc(ClusterCol.Z_SCORE, "the cluster's mean z-score of the feature", "feature"),
        ),
    ),
    ExportFile(
        name=StepFile.PROFILE_TAGS,
        audience="community operations",
        rows="one row per (consumer, tag type, tag value) that applies, consumers by id",
        docs=_SEGMENTATION_DOCS,
        columns=(
            _doc(Col.CONSUMER_ID, "the consumer"),
            _doc(
                TagCol.TAG_TYPE,
                _one_of(TagType.ALL) + " (a consumer gets a row only where the tag applies)",
            ),
            _doc(TagCol.TAG_VALUE, "the tag as a stable code, e.g. `high`, `premium`, `at risk`"),
            _doc(
                TagCol.TAG_LABEL,
                "the tag in the config's `locale` (zh-CN: `高`, `高端`, `有流失风险`); age bands and "
                "categories as they are",
            ),
        ),
    ),
    ExportFile(
        name=StepFile.DISTRIBUTOR_MONTHLY,
        audience="marketing, data scientists",
        rows="one row per distributor and month, for the last `history_months` full months",
        docs=_SEGMENTATION_DOCS,
        columns=(
            _doc(Col.DISTRIBUTOR_ID, "the distributor"),
            _doc(DistributorFeatureCol.MONTH, "the month (its first day)"),
            _doc(DistributorFeatureCol.GMV, "spend of paid lines through it in the month"),
            _doc(DistributorFeatureCol.ORDERS, "purchases (orders with a paid line) through it"),
            _doc(DistributorFeatureCol.ACTIVE_CUSTOMERS, "consumers with a purchase through it"),
            _doc(DistributorFeatureCol.NEW_CUSTOMERS, "consumers buying through it for the first time ever"),
            _doc(DistributorFeatureCol.REPEAT_CUSTOMERS, "consumers with 2+ purchases through it"),
            _doc(DistributorFeatureCol.SHARES, "`share` events carrying its id"),
        ),
    ),
    ExportFile(
        name=StepFile.QUALITY_ALERTS,
        audience="category managers",
        rows="one row per product, most severe level first, then `product_id`",
        docs=_QUALITY_DOCS,
        columns=(
            _doc(Col.PRODUCT_ID, "the product"),
            _doc(Col.SUPPLIER_ID, "its supplier (brand)"),
            _doc(Col.CATEGORY, "its category (`unknown` when empty)"),
            _doc(
                QualityCol.ORDERS_30D,
                "paid or returned order lines in the 30 days ending 7 days before the as-of date",
            ),
            _doc(QualityCol.COMPLAINTS_30D, "complaints about those lines filed by the as-of date"),
            _doc(QualityCol.COMPLAINT_RATE, "`complaints_30d / orders_30d`; empty without orders"),
            _doc(
                QualityCol.RATE_LOWER_BOUND,
                "lower end of the 90% interval of the window's complaint rate, shrunk towards the"
                " category's rate (a Beta posterior with `prior_lines` lines of the category prior, so"
                " a product with few lines can show `complaint_rate` outside it); for display: the"
                " level follows the 90-day complaint evidence (docs/quality_gate.md)",
            ),
            _doc(QualityCol.RATE_UPPER_BOUND, "upper end of that interval"),
            _doc(QualityCol.THRESHOLD, "the category's alarm rate"),
            _doc(
                QualityCol.EVIDENCE,
                "the complaint evidence the level follows: log likelihood ratio of a defective rate"
                " against the category's reference rate over the product's last 90 days"
                " (warning from 5, pulled from 8)",
            ),
            _doc(QualityCol.LEVEL, _one_of(QualityLevel.ALL) + " (pulled needs min_pull_orders lines)"),
            _doc(QualityCol.PREVIOUS_LEVEL, "level in the previous run; empty when new"),
            _doc(QualityCol.CHANGE, _one_of(LevelChange.ALL)),
            _doc(QualityCol.SINCE, "date (`YYYY-MM-DD`) the current level began"),
        ),
    ),
    ExportFile(
        name=StepFile.QUALITY_SUPPLIERS,
        audience="category managers",
        rows="suppliers with at least `supplier_min_flagged` flagged products, most flagged first",
        docs=_QUALITY_DOCS,
        columns=(
            _doc(Col.SUPPLIER_ID, "the supplier (brand)"),
            _doc(QualityCol.PRODUCTS, "all its products"),
            *(_doc(level, f"its products at level {level}") for level in QualityLevel.ALL),
            _doc(QualityCol.FLAGGED, "products at warning or pulled"),
            _doc(QualityCol.FLAGGED_SHARE, "`flagged / products`"),
        ),
    ),
    ExportFile(
        name=StepFile.EVALUATION,
        audience="data scientists",
        rows="a JSON object: the split, `k`, the production model and one result per model and protocol",
        docs="docs/recommenders.md",
        columns=(
            _doc(EvaluationKey.CUTOFF, "last day of training (`YYYY-MM-DD`)"),
            _doc(EvaluationKey.TEST_END, "last day of the test window"),
            _doc(EvaluationKey.K, "list length the metrics are computed at"),
            _doc(EvaluationKey.PRODUCTION, "the model that wrote this export's lists"),
            _doc(
                EvaluationKey.SAMPLE,
                f"the test consumers measured: `{SampleKey.TEST_CONSUMERS}` in the window, "
                f"`{SampleKey.SAMPLED}` of them drawn with `{SampleKey.SEED}`, "
                f"`{SampleKey.CONFIDENCE}` how the intervals are computed",
            ),
            _doc(
                EvaluationKey.RESULTS,
                "one object per model and protocol with the fields below (timings left out); with"
                " more than one rolling fold a top-level `folds` list also holds each fold's objects"
                " (the same fields and `fold`)",
            ),
            _doc(
                MetricCol.MODEL,
                "the model's name in `recommend.models`, or `champion_recipe`: the champion's stored"
                " settings, measured on this sample for the champion gate (docs/nightly.md)",
            ),
            _doc(MetricCol.PROTOCOL, "`all_items` or `new_items`"),
            _doc(MetricCol.CONSUMERS, "test consumers the metrics average over"),
            _doc(MetricCol.NDCG, "NDCG at k (binary gain), averaged over the test consumers (no list = 0)"),
            _doc(MetricCol.RECALL, "hits / |truth|"),
            _doc(MetricCol.PRECISION, "hits / k"),
            _doc(MetricCol.MAP, "MAP at k, normalised by min(|truth|, k)"),
            _doc(MetricCol.HIT_RATE, "share of consumers with at least one hit in the top k"),
            _doc(MetricCol.COVERAGE, "share of the catalogue recommended to anyone"),
            _doc(MetricCol.NOVELTY, "mean -log2 of a recommended product's share of training consumers"),
            *(
                _doc(column, f"{side} end of the 95% confidence interval of `{metric}`")
                for metric, *bounds in MetricCol.INTERVALS
                for column, side in zip(bounds, ("low", "high"), strict=True)
            ),
            _doc(MetricCol.FOLDS, "rolling folds the metrics are the mean of (1: the single window)"),
        ),
    ),
    ExportFile(
        name=StepFile.CONSUMER_LISTS,
        audience="backend",
        rows="k rows for every known consumer (consumers table and buyers), by home distributor, "
        "`consumer_id`, `rank`",
        docs=_LISTS_DOCS,
        columns=(
            _doc(RecCol.CONSUMER_ID, "the consumer"),
            _doc(RecCol.PRODUCT_ID, "recommended product"),
            _doc(RecCol.RANK, "1 = show first"),
            _doc(RecCol.SCORE, "model score for model rows; popularity share in [0, 1] for fallback rows"),
            _doc(RecCol.REASON_CODE, "why, as a stable code: " + _one_of(ReasonCode.CONSUMER)),
            _doc(
                RecCol.REASON,
                "why, in the config's `locale` (features/messages), e.g. `you bought it 3 times`, "
                "`matches your taste in <category>`, "
                "`customers like you buy it`, `popular in your group`, `popular on the platform now`",
            ),
        ),
    ),
    ExportFile(
        name=StepFile.DISTRIBUTOR_LISTS,
        audience="backend, distributors",
        rows="`distributor_top_n` products per distributor, by `distributor_id`, `rank`",
        docs=_LISTS_DOCS,
        columns=(
            _doc(DistributorListCol.DISTRIBUTOR_ID, "the distributor (community)"),
            _doc(DistributorListCol.PRODUCT_ID, "product to push this week"),
            _doc(DistributorListCol.RANK, "1 = push first"),
            _doc(
                DistributorListCol.SCORE,
                "members' model scores weighted by recency, blended with community buyers and "
                "platform trend, after demotion",
            ),
            _doc(DistributorListCol.REASON_CODE, "why, as a stable code: " + _one_of(ReasonCode.DISTRIBUTOR)),
            _doc(
                DistributorListCol.REASON,
                "why, in the config's `locale`, e.g. `12 of your customers are likely to buy`, "
                "`trending in <category>` (zh-CN: `你的 12 位顾客可能会买`)",
            ),
        ),
    ),
    ExportFile(
        name=StepFile.OUTREACH,
        audience="backend, distributors",
        rows="at most `outreach_size` members per distributor, one message each, by `distributor_id`, `rank`",
        docs=_LISTS_DOCS,
        columns=(
            _doc(DistributorListCol.DISTRIBUTOR_ID, "distributor who sends the message"),
            _doc(DistributorListCol.CONSUMER_ID, "member to message (once)"),
            _doc(
                DistributorListCol.PRODUCT_ID,
                "the product to mention, one of the distributor's pushed products",
            ),
            _doc(DistributorListCol.RANK, "1 = message first"),
            _doc(DistributorListCol.SCORE, "member's model score for the product x member weight"),
            _doc(DistributorListCol.REASON_CODE, "why, as a stable code: " + _one_of(ReasonCode.OUTREACH)),
            _doc(
                DistributorListCol.REASON,
                "why, in the config's `locale`, e.g. `bought it N times before`, "
                "`buys <category> (N products)`",
            ),
        ),
    ),
    ExportFile(
        name=StepFile.SIMILAR_ITEMS,
        audience="backend",
        rows="20 products per product of the fitted catalogue",
        docs=_LISTS_DOCS,
        columns=(
            _doc(RecCol.PRODUCT_ID, "the product"),
            _doc(RecCol.SIMILAR_PRODUCT_ID, "a similar product"),
            _doc(RecCol.SCORE, "the model's item similarity"),
            _doc(RecCol.RANK, "1 = most similar"),
        ),
    ),
    ExportFile(
        name=StepFile.FALLBACK_COMMUNITY,
        audience="backend",
        rows="at most `3 x k` filtered products per community, by `distributor_id`, `rank`",
        docs=_LISTS_DOCS,
        columns=(
            _doc(FallbackCol.DISTRIBUTOR_ID, "the community's distributor"),
            _doc(RecCol.PRODUCT_ID, "a product a member interacted with recently"),
            _doc(RecCol.RANK, "1 = show first"),
            _doc(RecCol.SCORE, "the community's distinct recent members / its top product's"),
            _doc(FallbackCol.BUYERS, "distinct members in `fallback_window_days`"),
        ),
    ),
    ExportFile(
        name=StepFile.FALLBACK_GLOBAL,
        audience="backend",
        rows="`3 x k` filtered products, by `rank`",
        docs=_LISTS_DOCS,
        columns=(
            _doc(RecCol.PRODUCT_ID, "the product"),
            _doc(RecCol.RANK, "1 = show first"),
            _doc(RecCol.SCORE, "share of the top product's recent buyers"),
            _doc(FallbackCol.BUYERS, "distinct consumers in `fallback_window_days`"),
        ),
    ),
)


def _twin(csv: ExportFile) -> ExportFile:
    """The Parquet twin of an Excel CSV: the same rows and columns, ids and text exactly as they are
    (no formula quoting), for what the next night reads back and for machines."""
    return replace(
        csv,
        name=StepFile.TWINS[csv.name],
        audience="the pipeline (next night's history) and machines",
        rows=f"the rows of `{csv.name}`, values exact (no Excel formula quoting)",
    )


EXPORTS += tuple(_twin(entry) for entry in EXPORTS if entry.name in StepFile.TWINS)


# --- workbooks and the distributor share kit (reporting/workbook.py, pipelines/steps/workbooks.py) ----


class ShareKitCol:
    """Columns of the distributor share kit (ids come from the distributor lists)."""

    DISTRIBUTOR_ID = DistributorListCol.DISTRIBUTOR_ID
    RANK = DistributorListCol.RANK
    PRODUCT_ID = DistributorListCol.PRODUCT_ID
    CATEGORY = Col.CATEGORY
    LIKELY_BUYERS = "likely_buyers"
    REASON = DistributorListCol.REASON
    SHARE_TEXT = "share_text"


class WorkbookSheet:
    """The sheets of the workbooks, by code (tab names are localized: ``text.workbook.<code>``)."""

    CONSUMERS = "consumers_sheet"
    SEGMENTS = "segments_sheet"
    MEMBER_TIERS = "member_tiers_sheet"
    TIER_MIGRATION = "tier_migration_sheet"
    DISTRIBUTORS = "distributors_sheet"
    COACHING = "coaching_sheet"
    ALERTS = "alerts_sheet"
    SUPPLIERS = "suppliers_sheet"
    SHARE_KIT = "share_kit_sheet"
    DICTIONARY = "dictionary_sheet"

    ALL: tuple[str, ...] = (
        CONSUMERS,
        SEGMENTS,
        MEMBER_TIERS,
        TIER_MIGRATION,
        DISTRIBUTORS,
        COACHING,
        ALERTS,
        SUPPLIERS,
        SHARE_KIT,
        DICTIONARY,
    )


_WORKBOOK_DOCS = "README.md"


def _sheet(code: str, meaning: str) -> ColumnDoc:
    """A workbook's sheet, listed as the workbook's 'column' (its tab name is localized)."""
    return ColumnDoc(code, meaning, unit=Unit.TEXT)


_DICTIONARY_SHEET = _sheet(
    WorkbookSheet.DICTIONARY,
    "data dictionary: one row per sheet, then one per column: sheet, column, meaning, unit, how computed"
    " (the source file and the doc of its rules)",
)

EXPORTS += (
    ExportFile(
        name=StepFile.MARKETING_WORKBOOK,
        audience="marketing",
        rows="an Excel workbook: the consumer, segment, member-tier, tier-migration, distributor and "
        "coaching CSVs as sheets (typed cells, frozen header, filters) and a data dictionary; sheet "
        "names and headers in the run's locale",
        docs=_WORKBOOK_DOCS,
        columns=(
            _sheet(
                WorkbookSheet.CONSUMERS,
                f"`{StepFile.CONSUMER_TIERS}`: its first `workbooks.consumer_rows` rows (default "
                "100,000; the CSV has every consumer)",
            ),
            _sheet(WorkbookSheet.SEGMENTS, f"`{StepFile.RFM_SEGMENTS}`: the segment summary"),
            _sheet(WorkbookSheet.MEMBER_TIERS, f"`{StepFile.MEMBER_TIERS}`: the member levels"),
            _sheet(WorkbookSheet.TIER_MIGRATION, f"`{StepFile.TIER_MIGRATION}`: previous x current tier"),
            _sheet(WorkbookSheet.DISTRIBUTORS, f"`{StepFile.DISTRIBUTOR_TIERS}`: every distributor"),
            _sheet(WorkbookSheet.COACHING, f"`{StepFile.DISTRIBUTOR_COACHING}`: the coaching list"),
            _DICTIONARY_SHEET,
        ),
    ),
    ExportFile(
        name=StepFile.QUALITY_WORKBOOK,
        audience="category managers",
        rows="an Excel workbook of the quality gate's CSVs and a data dictionary",
        docs=_WORKBOOK_DOCS,
        columns=(
            _sheet(WorkbookSheet.ALERTS, f"`{StepFile.QUALITY_ALERTS}`: every product's level"),
            _sheet(WorkbookSheet.SUPPLIERS, f"`{StepFile.QUALITY_SUPPLIERS}`: flagged suppliers"),
            _DICTIONARY_SHEET,
        ),
    ),
    ExportFile(
        name=StepFile.SHARE_KIT,
        audience="distributors",
        rows="one row per product of a distributor's list (the published distributor lists), by "
        "`distributor_id`, `rank`",
        docs=_WORKBOOK_DOCS,
        columns=(
            _doc(ShareKitCol.DISTRIBUTOR_ID, "the distributor who shares"),
            _doc(ShareKitCol.RANK, "1 = share first"),
            _doc(ShareKitCol.PRODUCT_ID, "the product (products have no name column in the data contract)"),
            _doc(ShareKitCol.CATEGORY, "its category (`unknown` when the quality gate did not grade it)"),
            ColumnDoc(
                ShareKitCol.LIKELY_BUYERS,
                "members of the distributor's community whose own recommendation list holds the product",
                unit=Unit.COUNT,
            ),
            _doc(ShareKitCol.REASON, "why it is pushed (the distributor list's reason)"),
            ColumnDoc(
                ShareKitCol.SHARE_TEXT,
                "a ready-to-paste sentence for the group: product, category, a group-facing reason "
                "and the likely buyers",
                unit=Unit.TEXT,
            ),
        ),
    ),
    ExportFile(
        name=StepFile.SHARE_KIT_WORKBOOK,
        audience="distributors",
        rows="an Excel workbook of the share kit and a data dictionary",
        docs=_WORKBOOK_DOCS,
        columns=(
            _sheet(WorkbookSheet.SHARE_KIT, f"`{StepFile.SHARE_KIT}`, typed"),
            _DICTIONARY_SHEET,
        ),
    ),
)


def export_file(name: str) -> ExportFile:
    """The catalog entry of the step file ``name`` (a ``StepFile`` value)."""
    for entry in EXPORTS:
        if entry.name == name:
            return entry
    raise KeyError(f"{name}: not in the catalog; known: {[entry.name for entry in EXPORTS]}")


def export_columns() -> frozenset[str]:
    """Every fixed column and JSON field name of every exported file (what the vocabulary test guards)."""
    return frozenset(column.name for entry in EXPORTS for column in entry.columns if "{" not in column.name)


# --- the generated reference: python -m features.catalog > docs/exports.md ---------------------------


def exports_markdown() -> str:
    """docs/exports.md: every exported file, who reads it, what a row is, its columns in order."""
    lines = [
        "# Exported files and their columns",
        "",
        "<!-- generated by `python -m features.catalog > docs/exports.md`; edit features/catalog.py -->",
        "",
        "Every file below but validation.json (which stays in `validated/`) is written by a step into",
        "`outputs/` and published in `exports/<as_of>/`, beside the export's `manifest.json`",
        "([nightly.md](nightly.md)) and the backend artifact `artifact/` ([artifact.md](artifact.md)).",
        "A name in `<angle brackets>` is filled from configuration;",
        "a column marked *one per …* repeats for each value, in order. CSVs are UTF-8 with BOM for",
        "Excel, with a fixed row order. `unit` says what a column holds: `id` and `code` values stay",
        "as they are in every locale; with `locale: zh-CN` a CSV's headers and its `label` and `text`",
        "values are Chinese (the message catalog, `features/messages/`), while the Parquet files keep",
        "the English column names and codes shown here (only their `reason` and `tag_label` follow",
        "the locale).",
        "",
        "| file | audience | rows |",
        "|---|---|---|",
        *(f"| [`{e.name}`](#{_anchor(e.name)}) | {e.audience} | {e.rows} |" for e in EXPORTS),
    ]
    for entry in EXPORTS:
        lines += ["", f"## {entry.name}", ""]
        where = f"`{entry.folder}/`" + ("" if entry.folder == Folder.VALIDATED else " and the export")
        lines += [
            f"For {entry.audience}; in {where}. Rows: {entry.rows}. "
            f"Rules: [{entry.docs}]({_link(entry.docs)}).",
            "",
        ]
        lines += ["| column | unit | meaning |", "|---|---|---|"]
        for column in entry.columns:
            name = column.name.replace("{", "<").replace("}", ">")
            each = f" (*one per {column.per.replace('_', ' ')}*)" if column.per else ""
            lines.append(f"| `{name}` | {column.unit} | {column.meaning}{each} |")
    return "\n".join(lines) + "\n"


def _link(path: str) -> str:
    """``path`` (from the repository root) as a link from docs/exports.md."""
    return path.removeprefix("docs/") if path.startswith("docs/") else f"../{path}"


def _anchor(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum() or ch in "-_ ").replace(" ", "-")


if __name__ == "__main__":
    sys.stdout.write(exports_markdown())
