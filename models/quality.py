"""The product quality gate: complaint evidence graded into four levels (四级商品质量动态拉闸).

For every product as of a date the gate takes two counts from ``features.quality_counts``:
the order lines of a matured 30-day window with the complaints about them (shown, and the
``watch`` level), and a daily history of ``history_days`` days (lines, their exposure to
complaints by their age, complaints). From the history it sets each category's base rate
(robust to outliers), threshold and reference rate (an upper confidence bound of the base
rate), and per product a CUSUM of the daily log likelihood ratio of "rate = ``defect_multiple``
x the reference rate" against "rate = the reference rate": the evidence. ``warning`` and
``pulled`` are evidence thresholds (a product at its reference rate reaches ``h`` on a given
night with chance at most e^-h), ``pulled`` also needs ``min_pull_orders`` lines behind the
evidence. The previous run's alerts carry each product's level history forward, and a
supplier roll-up names the brands with several flagged products.

Recommenders use ``pulled_products`` (ids to exclude from every list) and
``demoted_products`` (the warning products, whose scores they multiply by
``QualityConfig.warning_demotion``). The rules are documented in ``docs/quality_gate.md``;
this module does no file I/O and no SQL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import beta, gamma, norm

from features.asof import AsOf
from features.columns import Col
from features.quality_counts import COUNT_COLUMNS, DAILY_COLUMNS
from features.vocabulary import LevelChange, QualityCol, QualityLevel

logger = logging.getLogger(__name__)

NORMAL, WATCH, WARNING, PULLED = QualityLevel.ALL
LEVELS: tuple[str, ...] = (NORMAL, WATCH, WARNING, PULLED)
SEVERITY: dict[str, int] = {level: rank for rank, level in enumerate(LEVELS)}

NEW, ESCALATED, DE_ESCALATED, UNCHANGED = LevelChange.ALL
CHANGES: tuple[str, ...] = (NEW, ESCALATED, DE_ESCALATED, UNCHANGED)

# Values of the thresholds' ``source``: where a category's threshold came from.
CONFIGURED, CATEGORY, GLOBAL = "configured", "category", "global"  # vocabulary: a value, not a column

# Absolute slack on every "bound >= threshold" comparison, so that a threshold typed equal
# to a bound (or computed with a different order of floating-point operations) counts as met.
TOLERANCE = 1e-9

# Decimals of the shown interval: a prior's 5 % point can be 1e-7, which a CSV writes as "1e-07".
SHOWN_DECIMALS = 6

# Highest centre of the prior (a derived threshold can exceed 1 when complaints outnumber lines).
MAX_PRIOR_RATE = 0.999

# Rounds of leaving out outliers before a base rate is taken as it stands (it settles in 2-4).
MAX_ROUNDS = 20


ALERT_COLUMNS: tuple[str, ...] = (
    Col.PRODUCT_ID,
    Col.SUPPLIER_ID,
    Col.CATEGORY,
    QualityCol.ORDERS_30D,
    QualityCol.COMPLAINTS_30D,
    QualityCol.COMPLAINT_RATE,
    QualityCol.RATE_LOWER_BOUND,
    QualityCol.RATE_UPPER_BOUND,
    QualityCol.THRESHOLD,
    QualityCol.EVIDENCE,
    QualityCol.LEVEL,
    QualityCol.PREVIOUS_LEVEL,
    QualityCol.CHANGE,
    QualityCol.SINCE,
)
THRESHOLD_COLUMNS: tuple[str, ...] = (
    Col.CATEGORY,
    QualityCol.REFERENCE_PRODUCTS,
    QualityCol.LEFT_OUT,
    QualityCol.BASE_RATE,
    QualityCol.REFERENCE_RATE,
    QualityCol.THRESHOLD,
    QualityCol.SOURCE,
)
SUPPLIER_COLUMNS: tuple[str, ...] = (
    Col.SUPPLIER_ID,
    QualityCol.PRODUCTS,
    *LEVELS,
    QualityCol.FLAGGED,
    QualityCol.FLAGGED_SHARE,
)

Rate = Annotated[float, Field(gt=0, le=1)]


class QualityConfig(BaseModel):
    """Settings of the quality gate; see ``docs/quality_gate.md`` for how each one is used.

    The defaults were calibrated on simulated data (tuning seeds 101-103), see the doc's section 8.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_days: int = Field(30, gt=0, description="Length of the order window in days.")
    maturity_days: int = Field(
        7, ge=0, description="The order window ends this many days before the as-of date."
    )
    prior_lines: float = Field(
        50.0, gt=0, description="Weight of the category prior of the shown interval, in order lines."
    )
    history_days: int = Field(
        90, gt=0, description="Days of daily counts the sequential evidence and the base rates look back."
    )
    defect_multiple: float = Field(
        8.0, gt=1, description="The evidence weighs rate = reference rate x this against the reference rate."
    )
    warning_evidence: float = Field(
        5.0, gt=0, description="Warning when the evidence (log likelihood ratio) reaches this."
    )
    pull_evidence: float = Field(
        8.0, gt=0, description="Pulled when the evidence reaches this (and min_pull_orders lines)."
    )
    min_pull_orders: int = Field(
        30, ge=1, description="Order lines behind its evidence a product needs to be pulled."
    )
    confidence: float = Field(0.90, gt=0, lt=1, description="Two-sided level of the shown rate interval.")
    default_multiplier: float = Field(2.0, gt=0, description="Derived threshold = base rate x this.")
    floor: Rate = Field(0.01, description="Lowest derived threshold.")
    reference_min_orders: int = Field(
        20, ge=1, description="Exposed order lines over history_days a reference product needs."
    )
    min_reference_products: int = Field(5, ge=1, description="Reference products a category needs.")
    outlier_confidence: float = Field(
        0.99, gt=0, lt=1, description="Two-sided Wilson level that leaves a reference product out."
    )
    base_confidence: float = Field(
        0.90, gt=0, lt=1, description="The evidence tests against this upper bound of the base rate."
    )
    warning_demotion: float = Field(0.5, ge=0, le=1, description="Score factor recommenders apply.")
    category_thresholds: dict[str, Rate] = Field(default_factory=dict, description="Fixed thresholds.")
    supplier_min_flagged: int = Field(2, ge=1, description="Flagged products a supplier roll-up row needs.")


@dataclass(frozen=True)
class QualityReport:
    """One run of the gate: per-product alerts, flagged suppliers and the thresholds used."""

    alerts: pd.DataFrame
    suppliers: pd.DataFrame
    thresholds: pd.DataFrame


def wilson_interval(
    complaints: np.ndarray | pd.Series, orders: np.ndarray | pd.Series, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Wilson score interval of ``complaints / orders`` at ``confidence``.

    Complaints beyond the order count are capped at it (a rate above 1 is read as 1); a
    product without orders gets the uninformative interval [0, 1].
    """
    n = np.asarray(orders, dtype=float)
    k = np.minimum(np.asarray(complaints, dtype=float), n)
    z = float(norm.ppf(1 - (1 - confidence) / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denominator = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denominator
        half = z / denominator * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lower = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), 0.0)
    upper = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), 1.0)
    return lower, upper


def prior_rate(threshold: np.ndarray | pd.Series, config: QualityConfig) -> np.ndarray:
    """The rate a category's threshold was set for: ``threshold / default_multiplier`` (at most the
    threshold itself), the centre of the prior every product of the category starts from."""
    return np.minimum(
        np.asarray(threshold, dtype=float) / max(config.default_multiplier, 1.0), MAX_PRIOR_RATE
    )


def evidence_interval(
    complaints: np.ndarray | pd.Series,
    orders: np.ndarray | pd.Series,
    threshold: np.ndarray | pd.Series,
    config: QualityConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed ``confidence`` interval of the Beta posterior of each product's complaint rate.

    Prior: ``Beta(s r, s (1 - r))`` with ``s = prior_lines`` and ``r = prior_rate(threshold)``,
    as if the product had already sold ``s`` lines at its category's rate; posterior:
    ``Beta(s r + k, s (1 - r) + n - k)`` with ``n`` order lines and ``k`` complaints (capped at
    ``n``). A product without orders keeps the prior's interval, whose lower end lies below the
    threshold, so it cannot be flagged.
    """
    n = np.asarray(orders, dtype=float)
    k = np.minimum(np.asarray(complaints, dtype=float), n)
    rate = prior_rate(threshold, config)
    a, b = config.prior_lines * rate + k, config.prior_lines * (1 - rate) + n - k
    tail = (1 - config.confidence) / 2
    return beta.ppf(tail, a, b), beta.ppf(1 - tail, a, b)


def sequential_evidence(daily: pd.DataFrame, base_rate: pd.Series, config: QualityConfig) -> pd.DataFrame:
    """The CUSUM of each product's daily complaints: evidence that its rate is ``defect_multiple``
    times its category's base rate rather than the base rate, over its strongest recent run of days.

    ``daily`` is ``features.quality_counts.daily_counts`` (sorted by product and age);
    ``base_rate`` maps product id to the rate ``r`` of its category. A day with ``k`` complaints
    on ``E`` exposed lines adds ``k ln m - (m - 1) r E`` (the Poisson log likelihood ratio of
    ``m r`` against ``r``); the evidence is the largest sum over the days from some day up to
    the as-of date (the CUSUM statistic, floored at 0), and ``run_lines`` the order lines of
    those days. Returns one row per product of ``daily``: product id, ``EVIDENCE``, ``RUN_LINES``.
    """
    if daily.empty:
        return pd.DataFrame({Col.PRODUCT_ID: [], QualityCol.EVIDENCE: [], QualityCol.RUN_LINES: []})
    m = config.defect_multiple
    rate = daily[Col.PRODUCT_ID].map(base_rate).fillna(0.0).to_numpy(dtype=float)
    step = daily[QualityCol.DAY_COMPLAINTS].to_numpy(dtype=float) * np.log(m) - (m - 1) * rate * daily[
        QualityCol.DAY_EXPOSURE
    ].to_numpy(dtype=float)
    product = daily[Col.PRODUCT_ID]
    runs = pd.DataFrame(
        {
            Col.PRODUCT_ID: product.to_numpy(),
            QualityCol.EVIDENCE: pd.Series(step).groupby(product.to_numpy(), sort=False).cumsum().to_numpy(),
            QualityCol.RUN_LINES: daily.groupby(Col.PRODUCT_ID, sort=False)[QualityCol.DAY_LINES]
            .cumsum()
            .to_numpy(),
        }
    )
    strongest = runs.loc[runs.groupby(Col.PRODUCT_ID, sort=False)[QualityCol.EVIDENCE].idxmax()]
    positive = strongest[QualityCol.EVIDENCE] > 0
    return strongest.assign(
        **{
            QualityCol.EVIDENCE: strongest[QualityCol.EVIDENCE].where(positive, 0.0),
            QualityCol.RUN_LINES: strongest[QualityCol.RUN_LINES].where(positive, 0).astype("int64"),
        }
    ).reset_index(drop=True)


def history_totals(counts: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """Every product of ``counts`` with its category and its exposed lines and complaints summed
    over the daily history (0 without lines): the volumes the category base rates are set from."""
    totals = daily.groupby(Col.PRODUCT_ID)[[QualityCol.DAY_EXPOSURE, QualityCol.DAY_COMPLAINTS]].sum()
    merged = counts[[Col.PRODUCT_ID, Col.CATEGORY]].merge(
        totals, left_on=Col.PRODUCT_ID, right_index=True, how="left"
    )
    return merged.fillna({QualityCol.DAY_EXPOSURE: 0.0, QualityCol.DAY_COMPLAINTS: 0})


def derived_threshold(base_rate: float, config: QualityConfig) -> float:
    """The threshold a base rate gives: ``max(floor, base_rate x default_multiplier)``."""
    return max(config.floor, base_rate * config.default_multiplier)


def line_weighted_median_rate(orders: np.ndarray, complaints: np.ndarray) -> float:
    """The complaint rate at or below which products holding half of the order lines lie.

    Products are sorted by rate; the first whose cumulative order lines reach half of all
    lines gives the rate. Weighing by lines keeps small products (rates 0 or large on a
    handful of lines) from deciding it.
    """
    rates = complaints / orders
    order = np.argsort(rates, kind="stable")
    cumulative = np.cumsum(orders[order])
    return float(rates[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def robust_base_rate(reference: pd.DataFrame, config: QualityConfig) -> tuple[float, int, float]:
    """Pooled complaint rate of ``reference`` without its outliers, how many were left out, and
    the upper ``base_confidence`` bound of that rate (``rate_upper_bound``).

    ``reference`` has a product's exposed lines and complaints (``history_totals``' columns).

    Start from the line-weighted median rate; then, until the set no longer changes (at
    most ``MAX_ROUNDS`` rounds), keep the products whose Wilson lower bound stays under the
    threshold the current rate gives and pool their complaints and lines into the next
    rate. The base rate is thus set by the products the gate would not flag against it,
    and starting from the median means a defective product cannot raise its own bar even
    when it holds a large share of the category's lines. An empty reference set gives 0.
    """
    orders = reference[QualityCol.DAY_EXPOSURE].to_numpy(dtype=float)
    complaints = reference[QualityCol.DAY_COMPLAINTS].to_numpy(dtype=float)
    if orders.sum() <= 0:
        return 0.0, 0, 0.0
    lower, _ = wilson_interval(complaints, orders, config.outlier_confidence)
    base = line_weighted_median_rate(orders, complaints)
    kept = np.zeros(len(orders), dtype=bool)
    for _ in range(MAX_ROUNDS):
        now_kept = lower < derived_threshold(base, config) - TOLERANCE
        if (now_kept == kept).all() or not now_kept.any():
            break
        kept = now_kept
        base = float(complaints[kept].sum() / orders[kept].sum())
    pooled = kept if kept.any() else np.ones(len(orders), dtype=bool)
    upper = rate_upper_bound(complaints[pooled].sum(), orders[pooled].sum(), config.base_confidence)
    return base, int((~kept).sum()), max(upper, base)


def rate_upper_bound(complaints: float, exposure: float, confidence: float) -> float:
    """One-sided upper ``confidence`` bound of a Poisson rate: ``k`` complaints on ``E`` exposed lines
    give the ``confidence`` quantile of ``Gamma(k + 1) / E`` (0 without exposure)."""
    return float(gamma.ppf(confidence, complaints + 1) / exposure) if exposure > 0 else 0.0


def category_thresholds(totals: pd.DataFrame, config: QualityConfig) -> pd.DataFrame:
    """The complaint-rate threshold of every category in ``totals`` (``history_totals``), and the
    reference rate its products' evidence is weighed against.

    A category in ``config.category_thresholds`` takes that value, and ``threshold /
    default_multiplier`` as its reference rate. Otherwise the threshold is ``derived_threshold``
    of the robust base rate of the category's reference products (those with
    ``reference_min_orders`` or more exposed lines over the history), or of all reference
    products when the category has fewer than ``min_reference_products`` of them (a *thin*
    category). The reference rate is the upper ``base_confidence`` bound of that base rate
    (``robust_base_rate``), for a thin category at least the upper bound of its own pooled
    lines and complaints (a global rate says little about one category), and never below
    ``threshold / default_multiplier``.
    """
    reference = totals[totals[QualityCol.DAY_EXPOSURE] >= config.reference_min_orders]
    global_rate = robust_base_rate(reference, config)
    by_category = {category: group for category, group in reference.groupby(Col.CATEGORY, sort=False)}
    pooled = totals.groupby(Col.CATEGORY)[[QualityCol.DAY_COMPLAINTS, QualityCol.DAY_EXPOSURE]].sum()
    rows = []
    for category in sorted(totals[Col.CATEGORY].unique()):
        own = by_category.get(category, reference.iloc[:0])
        thin = len(own) < config.min_reference_products
        base, left_out, upper = global_rate if thin else robust_base_rate(own, config)
        if thin:
            complaints, exposure = pooled.loc[category]
            upper = max(upper, rate_upper_bound(complaints, exposure, config.base_confidence))
        threshold, source = derived_threshold(base, config), GLOBAL if thin else CATEGORY
        reference_rate = max(upper, float(prior_rate(threshold, config)))
        if category in config.category_thresholds:
            threshold, source = config.category_thresholds[category], CONFIGURED
            reference_rate = float(prior_rate(threshold, config))
        rows.append((category, len(own), left_out, base, reference_rate, threshold, source))
    return pd.DataFrame(rows, columns=list(THRESHOLD_COLUMNS)).astype(
        {
            QualityCol.REFERENCE_PRODUCTS: "int64",
            QualityCol.LEFT_OUT: "int64",
            QualityCol.BASE_RATE: "float64",
            QualityCol.REFERENCE_RATE: "float64",
        }
    )


def grade(scored: pd.DataFrame, config: QualityConfig) -> pd.Series:
    """The level of each row of ``scored`` (rate, threshold, evidence and its run's lines).

    pulled: evidence >= ``pull_evidence`` on at least ``min_pull_orders`` lines; warning:
    evidence >= ``warning_evidence`` (any volume); watch: point rate of the matured window >=
    threshold; else normal.
    """
    evidence = scored[QualityCol.EVIDENCE]
    enough = scored[QualityCol.RUN_LINES] >= config.min_pull_orders
    watch = (scored[QualityCol.COMPLAINT_RATE] >= scored[QualityCol.THRESHOLD] - TOLERANCE).fillna(False)
    warning = evidence >= config.warning_evidence - TOLERANCE
    pulled = enough & (evidence >= config.pull_evidence - TOLERANCE)
    levels = np.select([pulled, warning, watch], [PULLED, WARNING, WATCH], default=NORMAL)
    return pd.Series(levels, index=scored.index, name=QualityCol.LEVEL, dtype="string")


def _score(
    counts: pd.DataFrame, daily: pd.DataFrame, thresholds: pd.DataFrame, config: QualityConfig
) -> pd.DataFrame:
    orders = counts[QualityCol.ORDERS_30D]
    complaints = counts[QualityCol.COMPLAINTS_30D]
    by_category = thresholds.set_index(Col.CATEGORY)[QualityCol.THRESHOLD]
    threshold = counts[Col.CATEGORY].map(by_category).astype("float64")
    by_reference = thresholds.set_index(Col.CATEGORY)[QualityCol.REFERENCE_RATE]
    reference = counts[Col.CATEGORY].map(by_reference).astype("float64")
    base_rate = pd.Series(reference.to_numpy(), index=counts[Col.PRODUCT_ID].to_numpy())
    evidence = sequential_evidence(daily, base_rate, config).set_index(Col.PRODUCT_ID)
    lower, upper = evidence_interval(complaints, orders, threshold, config)
    scored = counts.assign(
        **{
            QualityCol.COMPLAINT_RATE: (complaints / orders.where(orders > 0)).astype("float64"),
            QualityCol.RATE_LOWER_BOUND: np.round(lower, SHOWN_DECIMALS),
            QualityCol.RATE_UPPER_BOUND: np.round(upper, SHOWN_DECIMALS),
            QualityCol.THRESHOLD: threshold,
            QualityCol.EVIDENCE: counts[Col.PRODUCT_ID].map(evidence[QualityCol.EVIDENCE]).fillna(0.0),
            QualityCol.RUN_LINES: counts[Col.PRODUCT_ID].map(evidence[QualityCol.RUN_LINES]).fillna(0),
        }
    )
    shown = np.round(scored[QualityCol.EVIDENCE].to_numpy(dtype=float), SHOWN_DECIMALS)
    return scored.assign(**{QualityCol.LEVEL: grade(scored, config), QualityCol.EVIDENCE: shown})


def previous_levels(previous: pd.DataFrame) -> pd.DataFrame:
    """The previous run's product_id, level and since, checked and typed (ids as text)."""
    needed = [Col.PRODUCT_ID, QualityCol.LEVEL, QualityCol.SINCE]
    missing = [column for column in needed if column not in previous.columns]
    if missing:
        raise ValueError(f"previous alerts lack columns {missing}; pass the alerts frame of an earlier run")
    prior = previous[needed].copy()
    prior[Col.PRODUCT_ID] = prior[Col.PRODUCT_ID].astype(str)
    unknown = sorted(set(prior[QualityCol.LEVEL].astype(str)) - set(LEVELS))
    if unknown:
        raise ValueError(f"previous alerts, column '{QualityCol.LEVEL}': unknown levels {unknown}")
    duplicated = prior[Col.PRODUCT_ID].duplicated()
    if duplicated.any():
        raise ValueError(f"previous alerts list products twice: {sorted(prior[Col.PRODUCT_ID][duplicated])}")
    prior[QualityCol.SINCE] = pd.to_datetime(prior[QualityCol.SINCE], errors="coerce").dt.normalize()
    return prior.rename(columns={QualityCol.LEVEL: QualityCol.PREVIOUS_LEVEL, QualityCol.SINCE: "_since"})


def apply_history(scored: pd.DataFrame, previous: pd.DataFrame | None, as_of: AsOf) -> pd.DataFrame:
    """Add previous_level, change and since to ``scored`` from the previous run's alerts.

    A product absent from ``previous`` (or every product when it is None) is ``new``; an
    unchanged level keeps its previous ``since`` (as_of when that is missing), any other
    change starts its level on ``as_of``.
    """
    today = pd.Timestamp(as_of.date)
    prior = previous_levels(previous) if previous is not None else previous_levels(_empty_previous())
    current = scored.assign(**{Col.PRODUCT_ID: scored[Col.PRODUCT_ID].astype(str)})
    merged = current.merge(prior, on=Col.PRODUCT_ID, how="left", validate="one_to_one")
    now = merged[QualityCol.LEVEL].map(SEVERITY)
    before = merged[QualityCol.PREVIOUS_LEVEL].map(SEVERITY)
    change = np.select(
        [before.isna(), now > before, now < before], [NEW, ESCALATED, DE_ESCALATED], default=UNCHANGED
    )
    kept = pd.Series(change == UNCHANGED, index=merged.index)
    since = merged["_since"].where(kept).fillna(today).astype("datetime64[ns]")
    return merged.drop(columns="_since").assign(
        **{
            QualityCol.PREVIOUS_LEVEL: merged[QualityCol.PREVIOUS_LEVEL].astype("string"),
            QualityCol.CHANGE: pd.Series(change, index=merged.index, dtype="string"),
            QualityCol.SINCE: since,
        }
    )


def _empty_previous() -> pd.DataFrame:
    return pd.DataFrame({Col.PRODUCT_ID: [], QualityCol.LEVEL: [], QualityCol.SINCE: []}, dtype=object)


def order_alerts(alerts: pd.DataFrame) -> pd.DataFrame:
    """Alerts in the gate's fixed order: most severe level first, then product id."""
    severity = alerts[QualityCol.LEVEL].map(SEVERITY)
    ordered = alerts.assign(_severity=severity).sort_values(
        ["_severity", Col.PRODUCT_ID], ascending=[False, True], kind="mergesort"
    )
    return ordered.drop(columns="_severity").reset_index(drop=True)


def supplier_rollup(alerts: pd.DataFrame, config: QualityConfig) -> pd.DataFrame:
    """Suppliers with at least ``supplier_min_flagged`` products at warning or pulled.

    One row per such supplier: its products, their count per level, the flagged count and
    share; most flagged first, then highest share, then supplier id.
    """
    per_level = pd.crosstab(alerts[Col.SUPPLIER_ID], alerts[QualityCol.LEVEL].astype(str))
    per_level = per_level.reindex(columns=list(LEVELS), fill_value=0).astype("int64")
    per_level.columns.name = None
    rollup = per_level.assign(**{QualityCol.PRODUCTS: per_level.sum(axis=1)})
    rollup[QualityCol.FLAGGED] = rollup[WARNING] + rollup[PULLED]
    rollup[QualityCol.FLAGGED_SHARE] = rollup[QualityCol.FLAGGED] / rollup[QualityCol.PRODUCTS]
    flagged = rollup[rollup[QualityCol.FLAGGED] >= config.supplier_min_flagged].reset_index()
    flagged = flagged.sort_values(
        [QualityCol.FLAGGED, QualityCol.FLAGGED_SHARE, Col.SUPPLIER_ID],
        ascending=[False, False, True],
        kind="mergesort",
    )
    return flagged[list(SUPPLIER_COLUMNS)].reset_index(drop=True)


def assess(
    counts: pd.DataFrame,
    daily: pd.DataFrame,
    as_of: AsOf,
    config: QualityConfig,
    previous: pd.DataFrame | None = None,
) -> QualityReport:
    """Grade every product of ``counts`` as of ``as_of``, carrying history from ``previous`` alerts.

    ``counts`` is ``features.quality_counts.quality_counts`` of the same as-of date and the
    config's window (columns ``COUNT_COLUMNS``), ``daily`` its ``daily_counts`` over
    ``history_days`` (columns ``DAILY_COLUMNS``); ``previous`` is an earlier run's alerts frame
    (ids as text). A product without complaints grades normal.
    """
    missing = [column for column in COUNT_COLUMNS if column not in counts.columns]
    missing += [column for column in DAILY_COLUMNS if column not in daily.columns]
    if missing:
        raise ValueError(f"quality counts lack columns {missing}; pass features.quality_counts' frames")
    thresholds = category_thresholds(history_totals(counts, daily), config)
    scored = _score(counts, daily, thresholds, config)
    alerts = order_alerts(apply_history(scored, previous, as_of))[list(ALERT_COLUMNS)]
    level_counts = alerts[QualityCol.LEVEL].value_counts().reindex(list(LEVELS), fill_value=0)
    logger.info("quality gate as of %s: %s", as_of, level_counts.to_dict())
    return QualityReport(alerts=alerts, suppliers=supplier_rollup(alerts, config), thresholds=thresholds)


def pulled_products(alerts: pd.DataFrame) -> list[str]:
    """Ids (as text, sorted) of the products at level ``pulled``.

    Recommenders drop these products from every list they produce. ``alerts`` is
    ``QualityReport.alerts`` or ``quality_alerts.csv`` read back (only ``product_id`` and
    ``level`` are used).
    """
    return _products_at(alerts, PULLED)


def demoted_products(alerts: pd.DataFrame) -> list[str]:
    """Ids (as text, sorted) of the products at level ``warning``.

    Recommenders keep them but multiply their scores by ``QualityConfig.warning_demotion``.
    """
    return _products_at(alerts, WARNING)


def _products_at(alerts: pd.DataFrame, level: str) -> list[str]:
    at_level = alerts[alerts[QualityCol.LEVEL].astype(str) == level]
    return sorted(at_level[Col.PRODUCT_ID].astype(str))
