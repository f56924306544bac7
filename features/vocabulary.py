"""The column vocabulary of every frame siyu builds and every file it exports, in one light module.

``features.columns`` spells the data contract (the input tables); this module spells what siyu
makes from them: feature frames, model outputs, recommendation lists and the columns of the
exported files, plus the small sets of values those files carry (quality levels, member-tier
movements, distributor tiers, list sources). Builders, models, steps, the report and the catalog
(``features.catalog``, which documents every exported column) refer to these names instead of
spelling them, so that a rename happens here and nowhere else.

Only the standard library and ``features.columns`` are imported: the backend tooling, the docs
generator and the vocabulary test read this module without pandas, numpy or DuckDB.
"""

from __future__ import annotations

from features.columns import Col

# --- feature frames (features/) -------------------------------------------------------------------


class ConsumerCol:
    """Column names of the consumer feature frame (contract columns come from ``Col``)."""

    HOME_DISTRIBUTOR_ID = "home_distributor_id"
    AGE_BAND = Col.AGE_BAND
    TENURE_DAYS = "tenure_days"
    FIRST_ORDER_DATE = "first_order_date"
    LAST_ORDER_DATE = "last_order_date"
    RECENCY_DAYS = "recency_days"
    ORDERS = "orders"
    MONETARY = "monetary"
    AVG_ORDER_VALUE = "avg_order_value"
    ACTIVE_DAYS = "active_days"
    ROLLING_ORDERS = "rolling_orders"
    ROLLING_SPEND = "rolling_spend"
    ORDERS_30D = "orders_30d"
    RETURN_RATE = "return_rate"
    COMPLAINTS = "complaints"
    TOP_CATEGORY = "top_category"
    TOP_CATEGORY_SHARE = "top_category_share"
    SECOND_CATEGORY = "second_category"
    CATEGORIES = "categories"
    BRANDS = "brands"
    PRICE_INDEX = "price_index"
    EVENTS_30D = "events_30d"
    SHARES_30D = "shares_30d"


class DistributorFeatureCol:
    """Column names of the distributor monthly and feature frames (contract columns come from ``Col``)."""

    MONTH = "month"
    GMV = "gmv"
    ORDERS = "orders"
    ACTIVE_CUSTOMERS = "active_customers"
    NEW_CUSTOMERS = "new_customers"
    REPEAT_CUSTOMERS = "repeat_customers"
    SHARES = "shares"

    COMMUNITY_SIZE = "community_size"
    GMV_MONTH = "gmv_month"
    GMV_PREV_MONTH = "gmv_prev_month"
    GROWTH = "growth"
    ORDERS_MONTH = "orders_month"
    ACTIVE_CUSTOMERS_PREV = "active_customers_prev"
    REPEAT_RATE = "repeat_rate"
    SHARES_MONTH = "shares_month"
    ORDERS_PER_SHARE = "orders_per_share"
    ORDERS_PER_SHARE_PREV = "orders_per_share_prev"


class InteractionCol:
    """Column names of the interaction, consumer-profile and product-profile frames."""

    WEIGHT = "weight"
    PURCHASES = "purchases"
    FIRST_PURCHASE_AT = "first_purchase_at"
    LAST_PURCHASE_AT = "last_purchase_at"
    LAST_INTERACTION_AT = "last_interaction_at"
    HOME_DISTRIBUTOR_ID = "home_distributor_id"
    PRICE_BAND = "price_band"


class BTYDCol:
    """Column names of the BTYD summary (the names pymc-marketing expects, plus ``consumer_id``)."""

    FREQUENCY = "frequency"
    RECENCY = "recency"
    T = "T"
    MONETARY_VALUE = "monetary_value"


# --- segmentation (models/) -----------------------------------------------------------------------


class RFMCol:
    """Column names added by RFM scoring, and those of the segment summary and the R x F grid."""

    R_SCORE = "r_score"
    F_SCORE = "f_score"
    M_SCORE = "m_score"
    RFM_CELL = "rfm_cell"
    SEGMENT = "rfm_segment"

    # rfm_segments.csv and rfm_grid.csv
    CONSUMERS = "consumers"
    SHARE = "share"
    MEAN_RECENCY_DAYS = "mean_recency_days"
    MEAN_ORDERS = "mean_orders"
    MEAN_MONETARY = "mean_monetary"


class TierCol:
    """Column names added by member tiering, and those of the migration and level tables."""

    MEMBER_TIER = "member_tier"
    PREVIOUS_TIER = "previous_tier"
    MOVEMENT = "movement"
    PREVIOUS = "previous"
    TOTAL = "total"

    # member_tiers.csv (the configured levels)
    MIN_SPEND = "min_spend"
    MIN_ORDERS = "min_orders"
    WINDOW_DAYS = "window_days"
    BENEFITS = "benefits"


class Movement:
    """Values of ``movement``: how a consumer's member tier moved since the previous run."""

    UP = "up"
    DOWN = "down"
    SAME = "same"
    NEW = "new"

    ALL: tuple[str, ...] = (UP, DOWN, SAME, NEW)
    NEW_ROW = "(new)"  # the row of tier_migration.csv for consumers without a previous tier


class CLVCol:
    """Column names of the CLV predictions besides ``consumer_id``."""

    EXPECTED_PURCHASES = "expected_purchases"
    EXPECTED_VALUE = "expected_value"
    PROB_ALIVE = "prob_alive"


class ClusterCol:
    """Column names of cluster assignments and profiles."""

    CLUSTER = "cluster"
    LABEL = "cluster_label"
    CONSUMERS = "consumers"
    SHARE = "share"

    MEDIAN = "median_{feature}"
    Z_SCORE = "z_{feature}"

    @staticmethod
    def median(feature: str) -> str:
        """The profile column with the cluster's median of ``feature``."""
        return ClusterCol.MEDIAN.format(feature=feature)

    @staticmethod
    def z_score(feature: str) -> str:
        """The profile column with the cluster's mean z-score of ``feature``."""
        return ClusterCol.Z_SCORE.format(feature=feature)


class TagCol:
    """Columns of the tag table."""

    TAG_TYPE = "tag_type"
    TAG_VALUE = "tag_value"
    TAG_LABEL = "tag_label"


class TagType:
    """Values of ``tag_type`` in the tag table, in the order each consumer's tags are listed."""

    AGE_BAND = Col.AGE_BAND
    SPENDING_POWER = "spending_power"
    FAVOURITE_CATEGORY = "favourite_category"
    PRICE_SENSITIVITY = "price_sensitivity"
    ACTIVITY_LEVEL = "activity_level"
    LIFECYCLE_STAGE = "lifecycle_stage"

    ALL: tuple[str, ...] = (
        AGE_BAND,
        SPENDING_POWER,
        FAVOURITE_CATEGORY,
        PRICE_SENSITIVITY,
        ACTIVITY_LEVEL,
        LIFECYCLE_STAGE,
    )


class TagValue:
    """Values of ``tag_value`` that siyu computes (age bands and categories are the data's own)."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    PRICE_SENSITIVE = "price sensitive"
    MAINSTREAM = "mainstream"
    PREMIUM = "premium"
    ACTIVE = "active"
    BROWSING = "browsing"
    QUIET = "quiet"
    PROSPECT = "prospect"
    NEW = "new"
    AT_RISK = "at risk"
    LAPSED = "lapsed"

    ALL: tuple[str, ...] = (
        HIGH,
        MEDIUM,
        LOW,
        PRICE_SENSITIVE,
        MAINSTREAM,
        PREMIUM,
        ACTIVE,
        BROWSING,
        QUIET,
        PROSPECT,
        NEW,
        AT_RISK,
        LAPSED,
    )
    # tag types whose values are the data's own (age bands, category codes): shown as they are
    DATA_TYPES: tuple[str, ...] = (TagType.AGE_BAND, TagType.FAVOURITE_CATEGORY)


class DistributorTierCol:
    """Columns added by distributor tiering."""

    RANK = "gmv_rank"
    GMV_SHARE = "gmv_share"
    TIER = "distributor_tier"
    COACHING = "coaching"
    COACHING_REASON = "coaching_reason"


class DistributorTier:
    """Values of ``distributor_tier``, in the order the rules are tried."""

    PILLAR = "pillar"
    GROWTH = "growth"
    STEADY = "steady"
    LONG_TAIL = "long tail"
    DORMANT = "dormant"

    ALL: tuple[str, ...] = (PILLAR, GROWTH, STEADY, LONG_TAIL, DORMANT)


class ChurnBand:
    """Values of ``churn_band``, least risk first."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    ALL: tuple[str, ...] = (LOW, MEDIUM, HIGH)


class ExportCol:
    """Columns of consumer_tiers.csv that are not feature, RFM, tier or cluster columns.

    The CLV columns carry the configured horizon (``segmentation.clv.horizon_days``) in their
    name: ``expected_purchases_90d`` for 90 days.
    """

    FREQUENCY = "frequency"
    PROB_ALIVE = CLVCol.PROB_ALIVE
    CHURN_RISK = "churn_risk"
    CHURN_BAND = "churn_band"
    EXPECTED_PURCHASES = CLVCol.EXPECTED_PURCHASES + "_{horizon_days}d"
    EXPECTED_VALUE = CLVCol.EXPECTED_VALUE + "_{horizon_days}d"

    @staticmethod
    def expected_purchases(horizon_days: int) -> str:
        """``expected_purchases_<horizon_days>d``."""
        return ExportCol.EXPECTED_PURCHASES.format(horizon_days=horizon_days)

    @staticmethod
    def expected_value(horizon_days: int) -> str:
        """``expected_value_<horizon_days>d``."""
        return ExportCol.EXPECTED_VALUE.format(horizon_days=horizon_days)


# --- quality gate (models/quality.py) -------------------------------------------------------------


class QualityCol:
    """Column names of the quality gate's frames (contract columns come from ``Col``)."""

    ORDERS_30D = "orders_30d"
    COMPLAINTS_30D = "complaints_30d"
    # the daily history (models.quality's sequential evidence): per product and order day
    AGE_DAYS = "age_days"
    DAY_LINES = "day_lines"
    DAY_EXPOSURE = "day_exposure"
    DAY_COMPLAINTS = "day_complaints"
    EVIDENCE = "evidence"
    RUN_LINES = "run_lines"
    COMPLAINT_RATE = "complaint_rate"
    RATE_LOWER_BOUND = "rate_lower_bound"
    RATE_UPPER_BOUND = "rate_upper_bound"
    THRESHOLD = "threshold"
    LEVEL = "level"
    PREVIOUS_LEVEL = "previous_level"
    CHANGE = "change"
    SINCE = "since"

    # category thresholds
    REFERENCE_PRODUCTS = "reference_products"
    LEFT_OUT = "left_out"
    BASE_RATE = "base_rate"
    REFERENCE_RATE = "reference_rate"
    SOURCE = "source"

    # supplier roll-up
    PRODUCTS = "products"
    FLAGGED = "flagged"
    FLAGGED_SHARE = "flagged_share"


class QualityLevel:
    """Values of ``level`` (least to most severe); also the per-level columns of quality_suppliers.csv."""

    NORMAL = "normal"
    WATCH = "watch"
    WARNING = "warning"
    PULLED = "pulled"

    ALL: tuple[str, ...] = (NORMAL, WATCH, WARNING, PULLED)


class LevelChange:
    """Values of ``change``: how a product's quality level moved since the previous run."""

    NEW = "new"
    ESCALATED = "escalated"
    DE_ESCALATED = "de-escalated"
    UNCHANGED = "unchanged"

    ALL: tuple[str, ...] = (NEW, ESCALATED, DE_ESCALATED, UNCHANGED)


# --- recommenders (models/recommenders/, models/evaluation.py) -------------------------------------


class RecCol:
    """Column names of recommendation frames (contract ids come from ``Col``)."""

    CONSUMER_ID = Col.CONSUMER_ID
    PRODUCT_ID = Col.PRODUCT_ID
    SIMILAR_PRODUCT_ID = "similar_product_id"
    SCORE = "score"
    RANK = "rank"
    REASON = "reason"
    REASON_CODE = "reason_code"


class FallbackCol:
    """Extra column names of fallback and completed lists."""

    DISTRIBUTOR_ID = Col.DISTRIBUTOR_ID
    SOURCE = "source"
    BUYERS = "recent_buyers"


class ListSource:
    """Values of ``source`` in a completed consumer list: who chose the row."""

    MODEL = "model"
    COMMUNITY = "community"
    GLOBAL = "global"

    ALL: tuple[str, ...] = (MODEL, COMMUNITY, GLOBAL)


class ReasonCode:
    """Values of ``reason_code`` in the lists: why a row is there (``reason`` is its sentence)."""

    # consumer lists
    BOUGHT_BEFORE = "bought_before"
    BOUGHT_TIMES = "bought_times"
    TASTE = "taste"
    SIMILAR = "similar"
    COMMUNITY = "community"
    GLOBAL = "global"
    # distributor lists
    LIKELY_BUYERS = "likely_buyers"
    REPEAT_FAVOURITE = "repeat_favourite"
    TRENDING = "trending"
    RECENT_BUYERS = "recent_buyers"
    PLATFORM_POPULAR = "platform_popular"
    # outreach
    OUTREACH_BOUGHT = "outreach_bought"
    BUYS_CATEGORY = "buys_category"
    SIMILAR_MEMBERS = "similar_members"

    CONSUMER: tuple[str, ...] = (BOUGHT_BEFORE, BOUGHT_TIMES, TASTE, SIMILAR, COMMUNITY, GLOBAL)
    DISTRIBUTOR: tuple[str, ...] = (
        LIKELY_BUYERS,
        REPEAT_FAVOURITE,
        TRENDING,
        RECENT_BUYERS,
        PLATFORM_POPULAR,
    )
    OUTREACH: tuple[str, ...] = (OUTREACH_BOUGHT, BUYS_CATEGORY, SIMILAR_MEMBERS)
    ALL: tuple[str, ...] = CONSUMER + DISTRIBUTOR + OUTREACH


class DistributorListCol:
    """Column names of the distributor and outreach lists (contract ids come from ``Col``)."""

    DISTRIBUTOR_ID = Col.DISTRIBUTOR_ID
    CONSUMER_ID = Col.CONSUMER_ID
    PRODUCT_ID = Col.PRODUCT_ID
    RANK = RecCol.RANK
    SCORE = RecCol.SCORE
    REASON_CODE = RecCol.REASON_CODE
    REASON = RecCol.REASON


class MetricCol:
    """Columns of the evaluation table."""

    MODEL = "model"
    PROTOCOL = "protocol"
    CONSUMERS = "consumers"
    NDCG = "ndcg"
    RECALL = "recall"
    PRECISION = "precision"
    MAP = "map"
    HIT_RATE = "hit_rate"
    COVERAGE = "coverage"
    NOVELTY = "novelty"
    FIT_SECONDS = "fit_seconds"
    RECOMMEND_SECONDS = "recommend_seconds"
    # 95% confidence interval of each per-consumer metric: mean ± 1.96 · sd / √n.
    NDCG_LOW = "ndcg_ci_low"
    NDCG_HIGH = "ndcg_ci_high"
    RECALL_LOW = "recall_ci_low"
    RECALL_HIGH = "recall_ci_high"
    PRECISION_LOW = "precision_ci_low"
    PRECISION_HIGH = "precision_ci_high"
    MAP_LOW = "map_ci_low"
    MAP_HIGH = "map_ci_high"
    HIT_RATE_LOW = "hit_rate_ci_low"
    HIT_RATE_HIGH = "hit_rate_ci_high"
    # Rolling-origin evaluation (models.evaluation.rolling_folds): the fold (1 = the latest test
    # window) and its cutoff, the end of its training data, in the per-fold rows.
    FOLD = "fold"
    FOLD_CUTOFF = "fold_cutoff"
    FOLDS = "folds"

    TIMINGS: tuple[str, ...] = (FIT_SECONDS, RECOMMEND_SECONDS)
    # (metric, low, high): the columns of each metric's confidence interval
    INTERVALS: tuple[tuple[str, str, str], ...] = (
        (NDCG, NDCG_LOW, NDCG_HIGH),
        (RECALL, RECALL_LOW, RECALL_HIGH),
        (PRECISION, PRECISION_LOW, PRECISION_HIGH),
        (MAP, MAP_LOW, MAP_HIGH),
        (HIT_RATE, HIT_RATE_LOW, HIT_RATE_HIGH),
    )


class EvaluationKey:
    """Top-level keys of evaluation.json (``results`` holds one object per model and protocol)."""

    CUTOFF = "cutoff"
    TEST_END = "test_end"
    K = "k"
    PRODUCTION = "production"
    RESULTS = "results"
    SAMPLE = "sample"
    FOLDS = "folds"  # the per-fold rows of a rolling evaluation (results: the mean over folds)


class SampleKey:
    """Keys of evaluation.json's ``sample`` object: which test consumers the metrics average over."""

    TEST_CONSUMERS = "test_consumers"
    SAMPLED = "sampled"
    SEED = "seed"
    CONFIDENCE = "confidence"


# --- validation (features/store.py) -----------------------------------------------------------------


class ValidationKey:
    """Keys of validation.json: ``as_of`` and one object per table under ``tables``."""

    AS_OF = "as_of"
    TABLES = "tables"
    TABLE = "table"
    SOURCE = "source"
    ROWS_READ = "rows_read"
    ROWS_KEPT = "rows_kept"
    ROWS_QUARANTINED = "rows_quarantined"
    ROWS_OUT_OF_WINDOW = "rows_out_of_window"
    REASONS = "reasons"
    FLAGGED = "flagged"


# --- saved recommenders (models/recommenders/base.py) ------------------------------------------------


class ModelFileKey:
    """Keys of ``model.json``, the metadata a saved recommender is restored from."""

    FORMAT = "format"
    MODEL = "model"
    PARAMS = "params"
    ARRAYS = "arrays"


# --- the export's manifest (pipelines/publish.py) -----------------------------------------------------


class ExportManifestKey:
    """Top-level keys of an export's manifest.json (``tables``: the input tables the run read)."""

    MANIFEST_VERSION = "manifest_version"
    AS_OF = "as_of"
    FILES = "files"
    VERSIONS = "versions"
    RUN = "run"
    TABLES = "tables"
