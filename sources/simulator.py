"""A simulated S2b2C social-retail platform: the six contract tables plus the truth planted in them.

Suppliers list products in categories; products sell in flash-sale windows (a few evergreen
staples sell all period); distributors share them into their communities; consumers buy
through their home distributor. ``simulate`` writes into ``out_dir``::

    orders.parquet products.parquet consumers.parquet distributors.parquet
    events.parquet complaints.parquet
    truth/defective_products.csv        product_id, category, complaint_probability, category_baseline
    truth/consumer_tastes.parquet       consumer_id, category, weight  (category shares, sum 1)
    truth/consumer_brand_tastes.parquet consumer_id, supplier_id, weight  (choice boost of a favourite)
    truth/community_tastes.parquet      distributor_id, category, weight  (category shares, sum 1)
    truth/consumer_traits.parquet       consumer_id, purchase_rate, price_sensitivity, churned_at

What is planted, so that models can be checked against it:

- heavy-tailed community sizes (Zipf-like: a few pillar distributors, a long tail of small ones);
- homophily: a consumer's category taste mixes the community's taste (share ``homophily``) with
  an individual one shaped by age and gender; favourite brands come mostly from the community;
- flash-sale windows: a product sells only inside [sale_start, sale_end] (open end = still on
  sale), demand peaks right after launch, and products launch all through the period;
- repeat purchases of consumables at category-specific intervals while the product is on sale;
- weekly seasonality, shopping festivals (3.8, 618, Double 11, Double 12) and a Spring Festival lull;
- price sensitivity (consumers differ; cheaper candidates win more often for sensitive ones);
- arrivals all through the period (registered_at, a growing platform) and dormancy: as in BG/NBD,
  a consumer goes dormant after each basket with a personal chance, a quarter of them after the
  first; purchase rates are Gamma-distributed, so most buyers order once or twice (median 1-2)
  while a heavy tail orders weekly or more;
- views/clicks/carts shortly before each order line, shares by community members, views of the
  candidates not chosen and browse-only sessions (about 2.5 events per order line);
- about 4% returned lines (more for apparel and defective products) and 1.5% cancelled orders;
- defective products (``defective_share``) whose complaint probability is 6-10 times their
  category's baseline (0.5-2% of lines, by category); complaints come a few days after the order.

Ids are compact and fixed-width: C0000001 (consumer), D00001, P000001, S0001 (supplier),
O000000001 (order), K0000001 (complaint).

Rule of thumb for sizing: about ``lines_per_consumer_year`` (10) order lines per consumer per 365
days, so ``consumers=1_000_000, days=365`` gives about 10M order lines, 6.5M orders and 27M events
(about 1 minute on 2 cores, under 1 GB of memory, 620 MB of Parquet). The calibration holds for
periods of a few months to about two years; over longer ones dormancy leaves fewer lines per year.

Consumers are simulated in fixed chunks of ``CHUNK_CONSUMERS``, each with its own random stream
derived from the seed (``numpy.random.SeedSequence``), and every table is written row group by row
group. The same config gives byte-identical files. Each file is written as ``<name>.partial`` and
renamed when the whole simulation has succeeded.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.columns import Col, EventType, OrderStatus, Table
from features.contract import CONTRACT

logger = logging.getLogger(__name__)

CHUNK_CONSUMERS = 50_000
TRUTH_DIR = "truth"
DAY = 86_400
HOUR = 3_600


class Truth:
    """File stems and column names of the ground-truth files (not part of the data contract)."""

    DEFECTIVE_PRODUCTS = "defective_products"
    CONSUMER_TASTES = "consumer_tastes"
    CONSUMER_BRAND_TASTES = "consumer_brand_tastes"
    COMMUNITY_TASTES = "community_tastes"
    CONSUMER_TRAITS = "consumer_traits"

    WEIGHT = "weight"
    COMPLAINT_PROBABILITY = "complaint_probability"
    CATEGORY_BASELINE = "category_baseline"
    PURCHASE_RATE = "purchase_rate"
    PRICE_SENSITIVITY = "price_sensitivity"
    CHURNED_AT = "churned_at"


@dataclass(frozen=True)
class _Category:
    name: str
    share: float  # share of demand
    median_price: float
    price_sigma: float
    repeat_days: float  # typical days between repeat purchases; 0 = not a consumable
    complaint_rate: float  # baseline complaint probability of a line
    return_rate: float


CATEGORIES: tuple[_Category, ...] = (
    _Category("fresh_produce", 0.14, 39, 0.5, 10, 0.020, 0.033),
    _Category("snacks", 0.12, 29, 0.5, 21, 0.008, 0.026),
    _Category("beverages", 0.07, 45, 0.5, 18, 0.006, 0.026),
    _Category("grain_oil", 0.06, 59, 0.4, 35, 0.005, 0.020),
    _Category("personal_care", 0.10, 49, 0.6, 45, 0.008, 0.040),
    _Category("household", 0.09, 39, 0.6, 40, 0.007, 0.040),
    _Category("baby_maternal", 0.08, 89, 0.7, 25, 0.012, 0.040),
    _Category("beauty", 0.10, 129, 0.8, 60, 0.010, 0.050),
    _Category("health_supplements", 0.07, 159, 0.6, 30, 0.010, 0.026),
    _Category("apparel", 0.08, 99, 0.6, 0, 0.015, 0.140),
    _Category("home_kitchen", 0.06, 79, 0.8, 0, 0.010, 0.050),
    _Category("small_appliances", 0.03, 199, 0.7, 0, 0.018, 0.065),
)
_CATEGORY_INDEX = {c.name: i for i, c in enumerate(CATEGORIES)}

OCCUPATIONS: dict[str, tuple[float, dict[str, float]]] = {  # share of distributors, taste boosts
    "parent": (0.30, {"baby_maternal": 4.0, "snacks": 1.5}),
    "office_worker": (0.20, {"beauty": 2.0, "beverages": 1.5}),
    "retiree": (0.12, {"health_supplements": 3.0, "grain_oil": 2.0, "fresh_produce": 1.5}),
    "student": (0.08, {"snacks": 2.5, "apparel": 1.5}),
    "shop_owner": (0.12, {"household": 2.0, "home_kitchen": 1.5}),
    "fitness_coach": (0.08, {"health_supplements": 2.5, "fresh_produce": 1.5}),
    "beauty_advisor": (0.10, {"beauty": 4.0, "personal_care": 1.5}),
}
CITY_TIERS = ("tier1", "new_tier1", "tier2", "tier3", "tier4", "tier5")
_CITY_TIER_SHARES = (0.12, 0.18, 0.22, 0.22, 0.16, 0.10)
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
_AGE_SHARES = np.array([0.10, 0.32, 0.28, 0.17, 0.13])
_AGE_BY_OCCUPATION = {
    "parent": (0.3, 2.0, 1.8, 0.5, 0.2),
    "retiree": (0.1, 0.3, 0.5, 1.2, 5.0),
    "student": (5.0, 1.0, 0.3, 0.2, 0.1),
}
_AGE_TASTE = {
    "18-24": {"snacks": 1.8, "beauty": 1.3},
    "25-34": {"baby_maternal": 1.5},
    "35-44": {"baby_maternal": 1.5},
    "55+": {"health_supplements": 2.0, "grain_oil": 1.5},
}
GENDERS = ("female", "male")
_FEMALE_SHARE = {"beauty_advisor": 0.85, "parent": 0.8, "fitness_coach": 0.5}
_GENDER_TASTE = {
    "female": {"beauty": 1.8, "apparel": 1.3},
    "male": {"small_appliances": 2.0, "beverages": 1.3},
}
COMPLAINT_REASONS = (
    "quality_issue",
    "not_as_described",
    "damaged_in_transit",
    "wrong_item",
    "late_delivery",
    "expired",
    "size_mismatch",
)
_REASON_SHARES_HEALTHY = (0.20, 0.15, 0.25, 0.10, 0.20, 0.05, 0.05)
_REASON_SHARES_DEFECTIVE = (0.50, 0.25, 0.08, 0.03, 0.06, 0.05, 0.03)
_STATUSES = (OrderStatus.PAID, OrderStatus.CANCELLED, OrderStatus.RETURNED)
_EVENT_TYPES = (EventType.VIEW, EventType.CLICK, EventType.CART, EventType.FAVORITE, EventType.SHARE)
_VIEW, _CLICK, _CART, _FAVORITE, _SHARE = range(5)

# Hourly and weekly rhythm of orders (Monday first), shopping festivals and Spring Festival dates.
# fmt: off
_HOUR_WEIGHTS = np.array([0.3, 0.15, 0.1, 0.08, 0.08, 0.15, 0.4, 0.8, 1.0, 1.1, 1.3, 1.4,
                          1.6, 1.3, 1.0, 0.9, 0.9, 1.0, 1.2, 1.6, 2.0, 2.2, 1.8, 0.9])
# fmt: on
_WEEKDAY_WEIGHTS = np.array([0.92, 0.95, 0.97, 0.98, 1.03, 1.12, 1.10])
_FESTIVALS = {(3, 8): 1.6, (6, 18): 2.5, (11, 11): 3.5, (12, 12): 1.8}  # (month, day) -> demand
_FESTIVAL_RUNUPS = {(6, 18): 17, (11, 11): 11}  # days of pre-sale before the festival, demand x1.3
_SPRING_FESTIVAL = {
    2023: date(2023, 1, 22),
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
}

# Calibration: extra lines drawn per basket (Poisson), lines per basket left after de-duplication
# and the net lift of repeat purchases over dropped re-buys (both measured on the default config).
_EXTRA_LINES_PER_BASKET = 0.8
_LINES_PER_BASKET = 1.78
_REPEAT_LIFT = 1.02
_RATE_SHAPE = 0.22  # Gamma shape of purchase rates: small = heavy tail of frequent buyers
_MAX_RATE = 0.7  # baskets per active day
_CANDIDATES = 4  # products drawn by popularity per line, then chosen among by the consumer
_ALTERNATIVES = 2  # candidates not chosen that the consumer may have viewed
_FAVOURITE_BRANDS, _FAVOURITE_BOOST = 2, 4.0  # a consumer's favourite suppliers, choice weight boost
_WELCOME_SHARE = 0.8  # consumers who buy right when they register
_DROPOUT_BETA = (0.7, 3.5)  # chance of going dormant after a basket ~ Beta (as BG/NBD fits find)
_HISTORY_DAYS = 365  # consumers registered up to this many days before the period
_ONE_OFF_SHARE = 0.25  # consumers who try the platform once and never come back
_REPEAT_START, _REPEAT_AGAIN = 0.25, 0.55  # chance a consumable line is bought again, and again


class SimulationConfig(BaseModel):
    """Size and realism knobs of the simulated platform.

    Order lines come to about ``lines_per_consumer_year * consumers * days / 365``: with the
    defaults 10 lines per consumer and year, so 1M consumers over 365 days give ~10M lines.
    """

    model_config = ConfigDict(extra="forbid")

    consumers: int = Field(10_000, ge=1, description="Consumers; ~10 order lines each per 365 days.")
    distributors: int = Field(300, ge=1, description="Distributors, one community each.")
    products: int = Field(2_000, ge=2 * len(CATEGORIES), description="Products listed over the period.")
    days: int = Field(365, ge=7, le=3_660, description="Days simulated; the last one is the as-of date.")
    seed: int = Field(42, ge=0, description="The same seed (and config) writes byte-identical files.")
    start: date = Field(date(2025, 1, 1), description="First day simulated.")
    suppliers: int | None = Field(None, ge=1, description="Suppliers (brands); default products / 20.")
    lines_per_consumer_year: float = Field(
        10.0,
        gt=0,
        le=200,
        description="Calibration: order lines per consumer per 365 days (10 -> 1M consumers ~ 10M lines).",
    )
    homophily: float = Field(0.6, ge=0, le=1, description="Share of a consumer's taste from the community.")
    home_share: float = Field(0.92, ge=0, le=1, description="Share of orders through the home distributor.")
    evergreen_share: float = Field(0.12, ge=0, le=1, description="Share of products on sale all period.")
    defective_share: float = Field(0.02, ge=0, le=0.5, description="Share of products planted defective.")
    defect_multiplier: tuple[float, float] = Field(
        (6.0, 10.0), description="Range of a defective product's complaint probability / category baseline."
    )
    cancel_rate: float = Field(0.015, ge=0, le=1, description="Probability an order is cancelled.")
    return_scale: float = Field(1.0, ge=0, le=5, description="Multiplier on category return rates (~4%).")
    mean_lifetime_days: float = Field(
        700.0,
        gt=0,
        description="Mean days from registration to churn, "
        "unless the consumer goes dormant after a basket earlier.",
    )
    events: bool = Field(True, description="Write browse/share events (about 2.5 per order line).")

    @model_validator(mode="after")
    def _check_ranges(self) -> SimulationConfig:
        low, high = self.defect_multiplier
        if not 1.0 <= low <= high:
            raise ValueError(f"defect_multiplier must be (low, high) with 1 <= low <= high, got {low, high}")
        return self

    @property
    def last_day(self) -> date:
        return self.start + timedelta(days=self.days - 1)


@dataclass(frozen=True)
class SimulationSummary:
    """What ``simulate`` wrote: rows per table, sizes, the last day simulated and where."""

    path: Path
    rows: dict[str, int]
    order_lines: int
    orders: int
    as_of: date
    seconds: float


def simulate(out_dir: Path, config: SimulationConfig) -> SimulationSummary:
    """Simulate the platform described by ``config`` into ``out_dir`` (see the module docstring)."""
    began = time.perf_counter()
    out_dir = Path(out_dir)
    (out_dir / TRUTH_DIR).mkdir(parents=True, exist_ok=True)
    world = _build_world(config)
    with _Sinks(out_dir) as sinks:
        sinks.write_world(world)
        order_offset = complaint_offset = 0
        chunks = range(0, config.consumers, CHUNK_CONSUMERS)
        for number, first in enumerate(chunks):
            rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(1, number)))
            count = min(CHUNK_CONSUMERS, config.consumers - first)
            chunk = _simulate_chunk(world, first, count, order_offset, complaint_offset, rng)
            sinks.write_chunk(chunk)
            order_offset += chunk.orders
            complaint_offset += chunk.complaints
            logger.info(
                "chunk %d/%d: %d consumers, %d order lines, %d events",
                number + 1,
                len(chunks),
                count,
                chunk.tables[Table.ORDERS].num_rows,
                chunk.tables[Table.EVENTS].num_rows if Table.EVENTS in chunk.tables else 0,
            )
        rows = sinks.commit()
    seconds = time.perf_counter() - began
    summary = SimulationSummary(out_dir, rows, rows[Table.ORDERS], order_offset, config.last_day, seconds)
    logger.info("simulated %s in %.1fs: %s", out_dir, seconds, rows)
    return summary


# --------------------------------------------------------------------------------------------
# Sampling helpers


@dataclass(frozen=True)
class _GroupSampler:
    """Draws one item per query from a weighted group of items, vectorised over all queries."""

    items: np.ndarray  # item ids, sorted by group
    cum: np.ndarray  # group number + cumulative weight share within the group
    start: np.ndarray  # index of each group's first item
    end: np.ndarray  # index one past each group's last item

    @classmethod
    def build(cls, group: np.ndarray, item: np.ndarray, weight: np.ndarray, groups: int) -> _GroupSampler:
        order = _sort_order(group, item)
        group, item, weight = group[order], item[order], weight[order].astype(np.float64)
        end = np.searchsorted(group, np.arange(groups), side="right")
        start = np.concatenate([[0], end[:-1]])
        if np.any(end == start):
            raise ValueError("every group needs at least one item")
        cumulative = np.cumsum(weight)
        before = cumulative[start] - weight[start]
        total = cumulative[end - 1] - before
        share = (cumulative - np.repeat(before, end - start)) / np.repeat(total, end - start)
        share[end - 1] = 1.0
        return cls(item, group + share, start, end)

    def sample(self, groups: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        position = np.searchsorted(self.cum, groups + uniform, side="right")
        position = np.clip(position, self.start[groups], self.end[groups] - 1)
        return self.items[position]


def _dirichlet(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    draws = rng.gamma(alpha) + 1e-12
    return draws / draws.sum(axis=1, keepdims=True)


def _boost_matrix(boosts: dict[str, dict[str, float]], keys: tuple[str, ...]) -> np.ndarray:
    """One row per key (plus a last row of ones for unknown): category taste multipliers."""
    matrix = np.ones((len(keys) + 1, len(CATEGORIES)))
    for row, key in enumerate(keys):
        for category, factor in boosts.get(key, {}).items():
            matrix[row, _CATEGORY_INDEX[category]] = factor
    return matrix


def _pick(rng: np.random.Generator, shares: np.ndarray) -> np.ndarray:
    """One index per row of ``shares`` (rows need not be normalised)."""
    cumulative = np.cumsum(shares, axis=1)
    uniform = rng.random(len(shares)) * cumulative[:, -1]
    return np.minimum((uniform[:, None] >= cumulative).sum(axis=1), shares.shape[1] - 1)


def _sort_order(*keys: np.ndarray) -> np.ndarray:
    """Indices that sort by ``keys`` (first key first), all non-negative integers.

    Neighbouring keys are packed into as few int64 words as their ranges allow, which sorts
    several times faster than ``np.lexsort`` over the separate keys.
    """
    words: list[np.ndarray] = []
    word, used = np.zeros(len(keys[0]), dtype=np.int64), 0
    for key in keys:
        bits = max(int(key.max(initial=0)).bit_length(), 1)
        if used + bits > 63:
            words.append(word)
            word, used = np.zeros(len(key), dtype=np.int64), 0
        word = (word << bits) | key.astype(np.int64)
        used += bits
    words.append(word)
    return np.argsort(words[0], kind="stable") if len(words) == 1 else np.lexsort(words[::-1])


def _sample_cdf(cdf: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, uniform, side="right"), len(cdf) - 1)


# --------------------------------------------------------------------------------------------
# The world: calendar, catalogue, communities (small, built once from the seed)


@dataclass(frozen=True)
class _Calendar:
    days: int
    weight: np.ndarray  # demand of each day
    cumulative: np.ndarray  # days + 1 values, 0 first
    price_factor: np.ndarray  # extra festival discount of each day
    hour_cdf: np.ndarray

    def sample(self, lower: np.ndarray, upper: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Times (seconds) in [lower, upper) following the day weights and the hourly rhythm."""
        low, high = self.mass_at(lower), self.mass_at(upper)
        return self.at_mass(low + rng.random(len(lower)) * (high - low), lower, upper, rng)

    def at_mass(
        self, mass: np.ndarray, lower: np.ndarray, upper: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """A time on the day holding ``mass``, at an hour of the daily rhythm, kept in [lower, upper)."""
        day = np.clip(np.searchsorted(self.cumulative, mass, side="right") - 1, 0, self.days - 1)
        hour = _sample_cdf(self.hour_cdf, rng.random(len(mass)))
        seconds = day * DAY + hour * HOUR + rng.integers(0, HOUR, len(mass))
        return np.clip(seconds, lower, np.maximum(upper - 1, lower)).astype(np.int64)

    def nudge(self, day: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A day of the period within three days of ``day``, chosen by demand (days outside stay)."""
        options = day[:, None] + np.arange(-3, 4)
        inside = (options >= 0) & (options < self.days)
        weight = np.where(inside, self.weight[np.clip(options, 0, self.days - 1)], 0.0)
        weight[:, 3] = np.where(inside.any(axis=1), weight[:, 3], 1.0)
        return options[np.arange(len(day)), _pick(rng, weight)] if len(day) else day

    def mass_at(self, seconds: np.ndarray) -> np.ndarray:
        """Demand-weighted days from the period start to ``seconds`` (0 before the period)."""
        day = np.asarray(seconds) / DAY
        whole = np.clip(np.floor(day).astype(np.int64), 0, self.days - 1)
        return self.cumulative[whole] + self.weight[whole] * np.clip(day - whole, 0, 1)


def _calendar(config: SimulationConfig) -> _Calendar:
    dates = pd.date_range(config.start, periods=config.days, freq="D")
    weight = _WEEKDAY_WEIGHTS[dates.dayofweek.to_numpy()].copy()
    price_factor = np.ones(config.days)
    years = range(dates.year.min() - 1, dates.year.max() + 2)
    for (month, day), demand in _FESTIVALS.items():
        for year in years:
            offset = (dates - pd.Timestamp(year, month, day)).days.to_numpy()
            weight[offset == 0] *= demand
            price_factor[offset == 0] = 0.9
            weight[(offset < 0) & (offset >= -_FESTIVAL_RUNUPS.get((month, day), 0))] *= 1.3
    for spring in _SPRING_FESTIVAL.values():
        offset = (dates - pd.Timestamp(spring)).days.to_numpy()
        weight[(offset >= -20) & (offset < -7)] *= 1.25
        weight[(offset >= -7) & (offset <= 7)] *= 0.55
    cumulative = np.concatenate([[0.0], np.cumsum(weight)])
    hour_cdf = np.cumsum(_HOUR_WEIGHTS) / _HOUR_WEIGHTS.sum()
    return _Calendar(config.days, weight, cumulative, price_factor, hour_cdf)


@dataclass(frozen=True)
class _Catalogue:
    category: np.ndarray
    supplier: np.ndarray
    suppliers: int
    supplier_strength: np.ndarray
    list_price: np.ndarray
    discount: np.ndarray
    log_relative_price: np.ndarray  # log(sale price / category median price)
    appeal: np.ndarray
    evergreen: np.ndarray
    sale_start: np.ndarray  # seconds from the period start
    sale_end: np.ndarray  # seconds; meaningless where open_end
    open_end: np.ndarray
    first_day: np.ndarray  # first and last day index on sale (may lie outside the period)
    last_day: np.ndarray
    complaint_probability: np.ndarray
    defective: np.ndarray

    def __len__(self) -> int:
        return len(self.category)


def _catalogue(config: SimulationConfig, rng: np.random.Generator) -> _Catalogue:
    n, categories = config.products, len(CATEGORIES)
    shares = np.array([c.share for c in CATEGORIES])
    category = np.concatenate([np.arange(categories), rng.choice(categories, n - categories, p=shares)])
    suppliers = max(categories, config.suppliers or n // 20)
    main = np.concatenate([np.arange(categories), rng.choice(categories, suppliers - categories, p=shares)])
    strength = rng.lognormal(0.0, 0.8, suppliers)
    by_category = _GroupSampler.build(main, np.arange(suppliers), strength, categories)
    supplier = by_category.sample(category, rng.random(n))
    anywhere = rng.random(n) < 0.15
    supplier[anywhere] = _sample_cdf(np.cumsum(strength) / strength.sum(), rng.random(anywhere.sum()))
    evergreen = rng.random(n) < config.evergreen_share
    evergreen[:categories] = True
    window = _sale_windows(config, evergreen, rng)
    prices = _prices(category, evergreen, rng)
    quality = _defects(config, category, supplier, suppliers, rng)
    appeal = rng.lognormal(0.0, 1.1, n) * np.sqrt(strength[supplier])
    return _Catalogue(
        category=category,
        supplier=supplier,
        suppliers=suppliers,
        supplier_strength=strength,
        appeal=appeal,
        evergreen=evergreen,
        **window,
        **prices,
        **quality,
    )


def _sale_windows(config: SimulationConfig, evergreen: np.ndarray, rng: np.random.Generator) -> dict:
    n = len(evergreen)
    launch = np.where(evergreen, -rng.integers(30, 366, n), rng.integers(-20, config.days, n))
    duration = np.where(rng.random(n) < 0.6, rng.integers(3, 11, n), rng.integers(20, 91, n))
    last_day = launch + duration - 1
    open_end = evergreen | (last_day >= config.days - 1)
    last_day = np.where(open_end, config.days - 1, last_day)
    hour = np.where(rng.random(n) < 0.6, 10, 20)
    return {
        "sale_start": launch * DAY + hour * HOUR,
        "sale_end": last_day * DAY + DAY - 1,
        "open_end": open_end,
        "first_day": launch,
        "last_day": last_day,
    }


def _prices(category: np.ndarray, evergreen: np.ndarray, rng: np.random.Generator) -> dict:
    median = np.array([c.median_price for c in CATEGORIES])[category]
    sigma = np.array([c.price_sigma for c in CATEGORIES])[category]
    list_price = np.maximum(np.floor(rng.lognormal(np.log(median), sigma)), 1.0) + 0.9
    discount = np.where(
        evergreen, rng.uniform(0.85, 1.0, len(category)), rng.uniform(0.55, 0.9, len(category))
    )
    log_relative = np.log(list_price * discount / median)
    return {"list_price": list_price, "discount": discount, "log_relative_price": log_relative}


def _defects(
    config: SimulationConfig,
    category: np.ndarray,
    supplier: np.ndarray,
    suppliers: int,
    rng: np.random.Generator,
) -> dict:
    n = len(category)
    baseline = np.array([c.complaint_rate for c in CATEGORIES])[category]
    probability = baseline * rng.lognormal(-0.045, 0.3, n)  # mean-one product noise
    sloppiness = rng.lognormal(0.0, 1.0, suppliers)[supplier]
    planted = round(config.defective_share * n)
    if config.defective_share > 0:
        planted = max(planted, 1)
    chosen = rng.choice(n, planted, replace=False, p=sloppiness / sloppiness.sum())
    defective = np.zeros(n, dtype=bool)
    defective[chosen] = True
    low, high = config.defect_multiplier
    probability[defective] = baseline[defective] * rng.uniform(low, high, planted)
    return {"complaint_probability": np.minimum(probability, 0.5), "defective": defective}


@dataclass(frozen=True)
class _Communities:
    cdf: np.ndarray  # cumulative share of consumers by community
    engagement: np.ndarray  # community multiplier on purchase rates
    joined: np.ndarray  # seconds from the period start
    occupation: np.ndarray
    city_tier: np.ndarray
    taste: np.ndarray  # (distributors, categories), rows sum to 1
    brands: np.ndarray  # (distributors, 3) suppliers the distributor pushes


def _communities(config: SimulationConfig, catalogue: _Catalogue, rng: np.random.Generator) -> _Communities:
    n = config.distributors
    rank = rng.permutation(n) + 1
    weight = rank**-1.05 * rng.lognormal(0.0, 0.3, n)
    joined_day = -1_095 + (1_095 + 0.8 * config.days) * ((rank - 1) / n) ** 1.5 * rng.uniform(0.6, 1.0, n)
    joined = np.floor(joined_day).astype(np.int64) * DAY + rng.integers(8 * HOUR, 20 * HOUR, n)
    occupation_shares = np.array([share for share, _ in OCCUPATIONS.values()])
    occupation = rng.choice(len(OCCUPATIONS), n, p=occupation_shares / occupation_shares.sum())
    boosts = _boost_matrix({k: b for k, (_, b) in OCCUPATIONS.items()}, tuple(OCCUPATIONS))[occupation]
    shares = np.array([c.share for c in CATEGORIES])
    prior = boosts * shares
    taste = _dirichlet(rng, 4.0 * prior / prior.sum(axis=1, keepdims=True))
    strength_cdf = np.cumsum(catalogue.supplier_strength) / catalogue.supplier_strength.sum()
    brands = _sample_cdf(strength_cdf, rng.random(n * 3)).reshape(n, 3)
    return _Communities(
        cdf=np.cumsum(weight) / weight.sum(),
        engagement=rng.lognormal(-0.045, 0.3, n),
        joined=joined,
        occupation=occupation,
        city_tier=rng.choice(len(CITY_TIERS), n, p=_CITY_TIER_SHARES),
        taste=taste,
        brands=brands,
    )


@dataclass(frozen=True)
class _World:
    config: SimulationConfig
    calendar: _Calendar
    catalogue: _Catalogue
    communities: _Communities
    offers: _GroupSampler  # products on sale by (day, category), weighted by appeal
    base_rate: float  # baskets per active day of an average consumer
    id_widths: dict[str, int]

    @property
    def end(self) -> int:
        return self.config.days * DAY


def _build_world(config: SimulationConfig) -> _World:
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(0,)))
    catalogue = _catalogue(config, rng)
    communities = _communities(config, catalogue, rng)
    world = _World(
        config,
        _calendar(config),
        catalogue,
        communities,
        _offers(catalogue, config.days),
        base_rate=1.0,
        id_widths=_id_widths(config, catalogue),
    )
    return replace(world, base_rate=_base_rate(world, rng))


def _offers(catalogue: _Catalogue, days: int) -> _GroupSampler:
    first = np.clip(catalogue.first_day, 0, None)
    length = np.clip(catalogue.last_day - first + 1, 0, None)
    product = np.repeat(np.arange(len(catalogue)), length)
    day = first[product] + np.arange(len(product)) - np.repeat(np.cumsum(length) - length, length)
    age = day - catalogue.first_day[product]
    launch_boost = np.where(catalogue.evergreen[product], 1.0, 0.4 + 2.0 * np.exp(-age / 2.5))
    weight = catalogue.appeal[product] * launch_boost
    group = day * len(CATEGORIES) + catalogue.category[product]
    return _GroupSampler.build(group, product, weight, days * len(CATEGORIES))


def _base_rate(world: _World, rng: np.random.Generator) -> float:
    """Baskets per active day of an average consumer that give ``lines_per_consumer_year`` lines.

    A consumer buying at rate r who goes dormant after each basket with chance p is still active
    t days after registering with probability exp(-r p t), so the period [a, b] holds on average
    (exp(-r p a) - exp(-r p b)) / p of their baskets (times 1 - p after a welcome basket). The rate
    is solved for on a sample of consumers by bisection.
    """
    life = _lifecycle(world, _sample_homes(world, rng, 20_000), rng)
    since = (life.active_from - life.registered) / DAY
    until = (life.active_until - life.registered) / DAY
    keep = np.where(life.welcomed, 1 - life.dropout, 1.0)
    welcome = life.welcomed & (life.registered >= 0)
    target = world.config.lines_per_consumer_year * world.config.days / 365
    target /= _LINES_PER_BASKET * _REPEAT_LIFT

    def baskets(rate: float) -> float:
        hazard = np.minimum(rate * life.activity, _MAX_RATE) * life.dropout
        inside = (np.exp(-hazard * since) - np.exp(-hazard * until)) / life.dropout
        return float(np.mean(welcome + keep * inside))

    low, high = 1e-7, 10.0
    for _ in range(60):
        middle = np.sqrt(low * high)
        low, high = (middle, high) if baskets(middle) < target else (low, middle)
    return float(np.sqrt(low * high))


def _id_widths(config: SimulationConfig, catalogue: _Catalogue) -> dict[str, int]:
    def digits(count: float, least: int) -> int:
        return max(least, len(str(int(count))))

    return {
        Col.CONSUMER_ID: digits(config.consumers, 7),
        Col.DISTRIBUTOR_ID: digits(config.distributors, 5),
        Col.PRODUCT_ID: digits(config.products, 6),
        Col.SUPPLIER_ID: digits(catalogue.suppliers, 4),
        Col.ORDER_ID: digits(config.consumers * config.lines_per_consumer_year * 20, 9),
        Col.COMPLAINT_ID: digits(config.consumers * config.lines_per_consumer_year, 7),
    }


# --------------------------------------------------------------------------------------------
# Consumers of one chunk


@dataclass(frozen=True)
class _Lifecycle:
    home: np.ndarray
    registered: np.ndarray  # seconds from the period start
    churn: np.ndarray  # seconds; the consumer stops buying then (may be after the period)
    active_from: np.ndarray
    active_until: np.ndarray
    activity: np.ndarray  # purchase rate relative to the average consumer
    dropout: np.ndarray  # chance of going dormant after each basket
    welcomed: np.ndarray  # made a first basket right at registration

    def dormant_after(self, moment: np.ndarray, who: np.ndarray, end: int) -> _Lifecycle:
        """The lifecycle with consumers ``who`` going dormant at their ``moment`` (one per consumer)."""
        churn = self.churn.copy()
        churn[who] = np.minimum(churn[who], moment[who])
        until = np.maximum(np.minimum(churn, end), self.active_from)
        return replace(self, churn=churn, active_until=until)


@dataclass(frozen=True)
class _People:
    number: np.ndarray  # global consumer numbers
    life: _Lifecycle
    rate: np.ndarray  # baskets per active day
    price_sensitivity: np.ndarray
    age: np.ndarray  # indices; len(names) = unknown
    gender: np.ndarray
    city_tier: np.ndarray
    taste: np.ndarray  # (n, categories)
    brands: np.ndarray  # (n, _FAVOURITE_BRANDS) favourite suppliers

    def __len__(self) -> int:
        return len(self.number)


def _sample_homes(world: _World, rng: np.random.Generator, n: int) -> np.ndarray:
    return _sample_cdf(world.communities.cdf, rng.random(n))


def _lifecycle(world: _World, home: np.ndarray, rng: np.random.Generator) -> _Lifecycle:
    n, days = len(home), world.config.days
    day = np.floor(-_HISTORY_DAYS + (_HISTORY_DAYS + days) * rng.random(n) ** 0.8).astype(np.int64)
    day = np.where(day >= 0, world.calendar.nudge(day, rng), day)  # a growing platform, busy days
    registered = day * DAY + rng.integers(7 * HOUR, 23 * HOUR, n)
    after_join = world.communities.joined[home] + rng.exponential(5 * DAY, n).astype(np.int64)
    registered = np.minimum(np.maximum(registered, after_join), world.end - HOUR)
    churn = registered + rng.exponential(world.config.mean_lifetime_days * DAY, n).astype(np.int64)
    active_from = np.maximum(registered, 0)
    active_until = np.maximum(np.minimum(churn, world.end), active_from)
    activity = rng.gamma(_RATE_SHAPE, 1 / _RATE_SHAPE, n) * world.communities.engagement[home]
    dropout = np.clip(rng.beta(*_DROPOUT_BETA, n), 1e-3, 1.0)
    dropout[rng.random(n) < _ONE_OFF_SHARE] = 1.0
    welcomed = rng.random(n) < _WELCOME_SHARE
    return _Lifecycle(home, registered, churn, active_from, active_until, activity, dropout, welcomed)


def _draw_people(world: _World, first: int, n: int, rng: np.random.Generator) -> _People:
    life = _lifecycle(world, _sample_homes(world, rng, n), rng)
    age, gender, city_tier = _demographics(world, life.home, rng)
    return _People(
        number=np.arange(first, first + n),
        life=life,
        rate=np.minimum(world.base_rate * life.activity, _MAX_RATE),
        price_sensitivity=rng.lognormal(0.0, 0.6, n),
        age=age,
        gender=gender,
        city_tier=city_tier,
        taste=_consumer_taste(world, life.home, age, gender, rng),
        brands=_favourite_brands(world, life.home, rng),
    )


def _demographics(world: _World, home: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    n, occupations = len(home), tuple(OCCUPATIONS)
    age_shares = np.array([_AGE_SHARES * _AGE_BY_OCCUPATION.get(o, 1.0) for o in occupations])
    age = _pick(rng, age_shares[world.communities.occupation[home]])
    female = np.array([_FEMALE_SHARE.get(o, 0.7) for o in occupations])[world.communities.occupation[home]]
    gender = (rng.random(n) >= female).astype(np.int64)
    city_tier = np.where(
        rng.random(n) < 0.8,
        world.communities.city_tier[home],
        rng.choice(len(CITY_TIERS), n, p=_CITY_TIER_SHARES),
    )
    age[rng.random(n) < 0.08] = len(AGE_BANDS)  # unknown: not every profile is filled in
    gender[rng.random(n) < 0.04] = len(GENDERS)
    city_tier[rng.random(n) < 0.06] = len(CITY_TIERS)
    return age, gender, city_tier


def _consumer_taste(
    world: _World, home: np.ndarray, age: np.ndarray, gender: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    shares = np.array([c.share for c in CATEGORIES])
    prior = shares * _boost_matrix(_AGE_TASTE, AGE_BANDS)[age] * _boost_matrix(_GENDER_TASTE, GENDERS)[gender]
    individual = _dirichlet(rng, 3.0 * prior / prior.sum(axis=1, keepdims=True))
    mix = world.config.homophily
    return mix * world.communities.taste[home] + (1 - mix) * individual


def _favourite_brands(world: _World, home: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(home)
    strength = world.catalogue.supplier_strength
    shape = (n, _FAVOURITE_BRANDS)
    anywhere = _sample_cdf(np.cumsum(strength) / strength.sum(), rng.random(shape))
    pushed = world.communities.brands[
        home[:, None], rng.integers(0, world.communities.brands.shape[1], shape)
    ]
    return np.where(rng.random(shape) < world.config.homophily, pushed, anywhere)


# --------------------------------------------------------------------------------------------
# Baskets and lines of one chunk


@dataclass(frozen=True)
class _Lines:
    """Order lines; ``basket`` indexes the basket arrays (owner, time, distributor)."""

    basket: np.ndarray
    product: np.ndarray
    alternative: np.ndarray  # (n, 2) candidates considered but not chosen (-1: none)


@dataclass(frozen=True)
class _Baskets:
    owner: np.ndarray  # index into the chunk's people
    time: np.ndarray
    distributor: np.ndarray


def _draw_baskets(world: _World, people: _People, rng: np.random.Generator) -> tuple[_Baskets, _People]:
    """Each consumer's baskets in the period, and the consumers with dormancy applied.

    A consumer buys at Poisson times from registration on (on a clock that runs with the
    calendar's demand inside the period) and goes dormant after each basket with chance
    ``dropout``, so after a geometric number of baskets. The time of that last basket is a Gamma
    draw, and the baskets before it are uniform on the clock: only those inside the period are
    drawn, so the work is proportional to the baskets written.
    """
    life, calendar = people.life, world.calendar
    before = np.clip(np.minimum(life.churn, 0) - life.registered, 0, None) / DAY
    low, high = calendar.mass_at(life.active_from), calendar.mass_at(life.active_until)
    span = before + high - low
    left = rng.geometric(life.dropout) - life.welcomed  # baskets until dormancy, after any welcome
    last = np.where(left > 0, rng.gamma(np.maximum(left, 1), 1 / np.maximum(people.rate, 1e-12)), 0.0)
    dormant = (left == 0) | (last < span)
    reach = np.where(dormant, last, span)
    earlier = np.maximum(left - 1, 0)  # baskets before the last one, uniform on [0, last]
    earlier = np.where(dormant, earlier, rng.binomial(earlier, _share(span, last)))
    inside = rng.binomial(earlier, _share(reach - before, reach))
    owner = np.repeat(np.arange(len(people)), inside)
    top = low + np.clip(reach - before, 0, None)
    moment = calendar.at_mass(
        low[owner] + rng.random(len(owner)) * (top - low)[owner],
        life.active_from[owner],
        life.active_until[owner],
        rng,
    )
    final = np.flatnonzero(dormant & (left > 0) & (last >= before))
    final_moment = calendar.at_mass(top[final], life.active_from[final], life.active_until[final], rng)
    welcomed, welcome = _welcome_baskets(world, life, rng)
    owner = np.concatenate([owner, final, welcomed])
    moment = np.concatenate([moment, final_moment, welcome])
    people = replace(people, life=_dormancy(world, life, dormant, before, last, owner, moment))
    return _Baskets(owner, moment, _basket_distributors(world, life.home[owner], rng)), people


def _welcome_baskets(world: _World, life: _Lifecycle, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Consumers who registered in the period buying right away, and when."""
    welcomed = np.flatnonzero(life.welcomed & (life.registered >= 0))
    welcome = life.registered[welcomed] + 60 + rng.exponential(20 * 60, len(welcomed)).astype(np.int64)
    return welcomed, np.minimum(welcome, world.end - 1)


def _share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """part / whole clipped to [0, 1], and 0 where whole is 0."""
    return np.clip(part / np.where(whole > 0, whole, 1.0), 0.0, 1.0) * (whole > 0)


def _dormancy(
    world: _World,
    life: _Lifecycle,
    dormant: np.ndarray,
    before: np.ndarray,
    last: np.ndarray,
    owner: np.ndarray,
    moment: np.ndarray,
) -> _Lifecycle:
    """Dormant consumers stop right after their last basket (before the period: at its clock time)."""
    stop = np.where(dormant, life.registered + (np.minimum(last, before) * DAY).astype(np.int64), life.churn)
    latest = np.full(len(stop), np.iinfo(np.int64).min)
    np.maximum.at(latest, owner, moment)
    in_period = dormant & (last >= before) & (latest > np.iinfo(np.int64).min)
    stop[in_period] = latest[in_period] + 1
    return life.dormant_after(stop, np.flatnonzero(dormant), world.end)


def _basket_distributors(world: _World, home: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    elsewhere = _sample_homes(world, rng, len(home))
    return np.where(rng.random(len(home)) < world.config.home_share, home, elsewhere)


def _fill_baskets(world: _World, people: _People, baskets: _Baskets, rng: np.random.Generator) -> _Lines:
    sizes = 1 + np.minimum(rng.poisson(_EXTRA_LINES_PER_BASKET, len(baskets.owner)), 7)
    basket = np.repeat(np.arange(len(baskets.owner)), sizes)
    owner = baskets.owner[basket]
    tastes = _GroupSampler.build(
        np.repeat(np.arange(len(people)), len(CATEGORIES)),
        np.tile(np.arange(len(CATEGORIES)), len(people)),
        people.taste.ravel(),
        len(people),
    )
    category = tastes.sample(owner, rng.random(len(basket)))
    day = baskets.time[basket] // DAY
    product, alternative = _choose_products(world, people, owner, day * len(CATEGORIES) + category, rng)
    keep = _first_of_each(basket, product)
    return _Lines(basket[keep], product[keep], alternative[keep])


def _choose_products(
    world: _World, people: _People, owner: np.ndarray, group: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw candidates by popularity, then let brand taste and price sensitivity choose one."""
    n, catalogue = len(owner), world.catalogue
    candidates = world.offers.sample(np.repeat(group, _CANDIDATES), rng.random(n * _CANDIDATES))
    candidates = candidates.reshape(n, _CANDIDATES)
    supplier = catalogue.supplier[candidates]
    favourite = (supplier[:, :, None] == people.brands[owner, None, :]).any(axis=2)
    utility = (
        np.log(np.where(favourite, _FAVOURITE_BOOST, 1.0))
        - people.price_sensitivity[owner, None] * catalogue.log_relative_price[candidates]
    )
    utility += rng.gumbel(size=utility.shape)
    chosen = np.argmax(utility, axis=1)
    rows = np.arange(n)
    product = candidates[rows, chosen]
    others = (chosen[:, None] + np.arange(1, _ALTERNATIVES + 1)) % _CANDIDATES
    alternative = candidates[rows[:, None], others]
    return product, np.where(alternative == product[:, None], -1, alternative)


def _first_of_each(basket: np.ndarray, product: np.ndarray) -> np.ndarray:
    """Indices keeping one line per (basket, product), sorted by basket then product."""
    order = _sort_order(basket, product)
    duplicate = np.zeros(len(order), dtype=bool)
    duplicate[1:] = (basket[order][1:] == basket[order][:-1]) & (product[order][1:] == product[order][:-1])
    return order[~duplicate]


def _without_rebuys(world: _World, baskets: _Baskets, lines: _Lines) -> tuple[_Baskets, _Lines]:
    """Drop lines re-buying a product the consumer bought before: a durable one at all, a
    consumable one within half its repeat interval (re-buying is left to ``_repeat_purchases``)."""
    interval = np.array([c.repeat_days for c in CATEGORIES])[world.catalogue.category[lines.product]] * DAY
    owner, moment = baskets.owner[lines.basket], baskets.time[lines.basket]
    order = _sort_order(owner, lines.product, moment)
    owner, product, moment = owner[order], lines.product[order], moment[order]
    again = np.zeros(len(order), dtype=bool)
    again[1:] = (owner[1:] == owner[:-1]) & (product[1:] == product[:-1])
    too_soon = np.zeros(len(order), dtype=bool)
    too_soon[1:] = moment[1:] - moment[:-1] < interval[order][1:] / 2
    dropped = np.zeros(len(order), dtype=bool)
    dropped[order] = again & ((interval[order] == 0) | too_soon)
    kept = _Lines(lines.basket[~dropped], lines.product[~dropped], lines.alternative[~dropped])
    used = np.unique(kept.basket)
    compact = _Baskets(baskets.owner[used], baskets.time[used], baskets.distributor[used])
    return compact, replace(kept, basket=np.searchsorted(used, kept.basket))


def _settle_times(world: _World, baskets: _Baskets, lines: _Lines, rng: np.random.Generator) -> _Baskets:
    """Move a basket to after the sale start of its latest-launching product (same day)."""
    opens = np.full(len(baskets.time), np.iinfo(np.int64).min)
    np.maximum.at(opens, lines.basket, world.catalogue.sale_start[lines.product])
    late = opens > baskets.time
    moved = opens + rng.exponential(10 * 60, len(opens)).astype(np.int64)
    day_end = (baskets.time // DAY + 1) * DAY - 1
    settled = np.where(late, np.minimum(moved, np.minimum(day_end, world.end - 1)), baskets.time)
    return _Baskets(baskets.owner, settled, baskets.distributor)


def _after_last_basket(world: _World, life: _Lifecycle, baskets: _Baskets) -> _Lifecycle:
    """Dormancy moved to just after a basket that settling pushed past it."""
    latest = np.full(len(life.churn), np.iinfo(np.int64).min)
    np.maximum.at(latest, baskets.owner, baskets.time)
    late = np.flatnonzero((latest >= life.churn) & (life.churn < world.end))
    churn = life.churn.copy()
    churn[late] = latest[late] + 1
    return replace(life, churn=churn, active_until=np.maximum(np.minimum(churn, world.end), life.active_from))


def _repeat_purchases(
    world: _World, people: _People, baskets: _Baskets, lines: _Lines, rng: np.random.Generator
) -> tuple[_Baskets, _Lines]:
    """Consumables are bought again every few weeks while on sale and the consumer is active."""
    catalogue = world.catalogue
    interval = np.array([c.repeat_days for c in CATEGORIES])[catalogue.category] * DAY
    pick = (interval[lines.product] > 0) & (rng.random(len(lines.basket)) < _REPEAT_START)
    owner, moment = baskets.owner[lines.basket[pick]], baskets.time[lines.basket[pick]]
    distributor, product = baskets.distributor[lines.basket[pick]], lines.product[pick]
    found: list[tuple[np.ndarray, ...]] = []
    while len(owner):
        gap = np.maximum(interval[product] * rng.gamma(4.0, 0.25, len(owner)), 5 * DAY).astype(np.int64)
        day = world.calendar.nudge((moment + gap) // DAY, rng)
        moment = day * DAY + _sample_cdf(world.calendar.hour_cdf, rng.random(len(owner))) * HOUR
        moment += rng.integers(0, HOUR, len(owner))
        alive = (moment < people.life.active_until[owner]) & (day <= catalogue.last_day[product])
        owner, moment, distributor, product = owner[alive], moment[alive], distributor[alive], product[alive]
        found.append((owner, moment, distributor, product))
        again = rng.random(len(owner)) < _REPEAT_AGAIN
        owner, moment, distributor, product = owner[again], moment[again], distributor[again], product[again]
    return _append_single_lines(baskets, lines, found)


def _append_single_lines(
    baskets: _Baskets, lines: _Lines, found: list[tuple[np.ndarray, ...]]
) -> tuple[_Baskets, _Lines]:
    if not found:
        return baskets, lines
    owner, moment, distributor, product = (np.concatenate(parts) for parts in zip(*found, strict=True))
    first = len(baskets.owner)
    merged = _Baskets(
        np.concatenate([baskets.owner, owner]),
        np.concatenate([baskets.time, moment]),
        np.concatenate([baskets.distributor, distributor]),
    )
    new_baskets = np.arange(first, first + len(owner))
    merged_lines = _Lines(
        np.concatenate([lines.basket, new_baskets]),
        np.concatenate([lines.product, product]),
        np.concatenate([lines.alternative, np.full((len(owner), _ALTERNATIVES), -1)]),
    )
    return merged, merged_lines


# --------------------------------------------------------------------------------------------
# Orders, complaints and events of one chunk


@dataclass(frozen=True)
class _OrderBook:
    """Order lines sorted by order, with every contract column as a numpy array."""

    order: np.ndarray  # global order numbers
    owner: np.ndarray  # index into the chunk's people
    distributor: np.ndarray
    product: np.ndarray
    quantity: np.ndarray
    unit_price: np.ndarray
    time: np.ndarray
    status: np.ndarray  # index into _STATUSES
    alternative: np.ndarray  # (n, 2) products the buyer considered instead (-1: none)
    orders: int


def _order_book(
    world: _World, baskets: _Baskets, lines: _Lines, offset: int, rng: np.random.Generator
) -> _OrderBook:
    catalogue, count = world.catalogue, len(baskets.owner)
    rank = np.empty(count, dtype=np.int64)
    rank[_sort_order(baskets.time, baskets.owner)] = np.arange(count)
    order = _sort_order(rank[lines.basket], lines.product)
    basket, product = lines.basket[order], lines.product[order]
    n, moment = len(basket), baskets.time[basket]
    consumable = np.array([c.repeat_days > 0 for c in CATEGORIES])[catalogue.category[product]]
    quantity = 1 + rng.poisson(np.where(consumable, 0.35, 0.08))
    coupon = np.where(rng.random(n) < 0.2, rng.uniform(0.9, 0.98, n), 1.0)
    price = catalogue.list_price[product] * catalogue.discount[product] * coupon
    price = np.maximum(np.round(price * world.calendar.price_factor[moment // DAY], 2), 0.01)
    status = _statuses(world, basket, product, count, rng)
    return _OrderBook(
        offset + rank[basket],
        baskets.owner[basket],
        baskets.distributor[basket],
        product,
        quantity.astype(np.int64),
        price,
        moment,
        status,
        lines.alternative[order],
        count,
    )


def _statuses(
    world: _World, basket: np.ndarray, product: np.ndarray, baskets: int, rng: np.random.Generator
) -> np.ndarray:
    catalogue = world.catalogue
    cancelled = rng.random(baskets) < world.config.cancel_rate
    return_rate = np.array([c.return_rate for c in CATEGORIES])[catalogue.category[product]]
    return_rate = return_rate * world.config.return_scale * np.where(catalogue.defective[product], 2.5, 1.0)
    returned = rng.random(len(basket)) < return_rate
    return np.where(cancelled[basket], 1, np.where(returned, 2, 0))


@dataclass(frozen=True)
class _Complaints:
    number: np.ndarray
    line: np.ndarray  # index into the order book
    time: np.ndarray
    reason: np.ndarray  # index into COMPLAINT_REASONS; len = no reason given


def _complaints(world: _World, book: _OrderBook, offset: int, rng: np.random.Generator) -> _Complaints:
    catalogue = world.catalogue
    chance = np.where(book.status == 1, 0.0, catalogue.complaint_probability[book.product])
    line = np.flatnonzero(rng.random(len(book.product)) < chance)
    delay = (0.3 + rng.lognormal(np.log(2.5), 0.6, len(line))) * DAY
    moment = book.time[line] + delay.astype(np.int64)
    kept = moment < world.end
    line, moment = line[kept], moment[kept]
    shares = np.where(
        catalogue.defective[book.product[line], None], _REASON_SHARES_DEFECTIVE, _REASON_SHARES_HEALTHY
    )
    reason = _pick(rng, shares) if len(line) else np.zeros(0, dtype=np.int64)
    reason[rng.random(len(line)) < 0.05] = len(COMPLAINT_REASONS)
    order = np.argsort(moment, kind="stable")
    return _Complaints(offset + np.arange(len(line)), line[order], moment[order], reason[order])


@dataclass(frozen=True)
class _Events:
    owner: np.ndarray
    product: np.ndarray
    distributor: np.ndarray  # -1: no distributor (organic browsing)
    kind: np.ndarray  # index into _EVENT_TYPES
    time: np.ndarray

    @classmethod
    def concat(cls, parts: list[_Events]) -> _Events:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))

    def take(self, index: np.ndarray) -> _Events:
        return _Events(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


def _events(world: _World, people: _People, book: _OrderBook, rng: np.random.Generator) -> _Events:
    """Browsing before each line, shares by community members, and browse-only sessions."""
    parts = [
        _funnel_events(world, people, book, rng),
        _share_events(world, people, book, rng),
        _browse_sessions(world, people, rng),
    ]
    events = _Events.concat(parts)
    order = _sort_order(events.time, events.owner, events.kind, events.product, events.distributor + 1)
    events = events.take(order)
    repeated = np.ones(max(len(order) - 1, 0), dtype=bool)
    for field in _Events.__dataclass_fields__:
        values = getattr(events, field)
        repeated &= values[1:] == values[:-1]
    return events.take(np.flatnonzero(~np.concatenate([[False], repeated])[: len(order)]))


def _not_before(
    world: _World, people: _People, owner: np.ndarray, product: np.ndarray, moment: np.ndarray
) -> np.ndarray:
    lower = np.maximum(people.life.registered[owner], world.catalogue.sale_start[product])
    return np.maximum(moment, np.maximum(lower, 0))


def _funnel_events(world: _World, people: _People, book: _OrderBook, rng: np.random.Generator) -> _Events:
    """View, click, cart (sometimes favourite) shortly before the order; alternatives viewed too."""
    n, moment = len(book.product), book.time
    cart = moment - rng.exponential(5 * 60, n).astype(np.int64) - 5
    click = cart - rng.exponential(4 * 60, n).astype(np.int64) - 5
    view = click - rng.exponential(10 * 60, n).astype(np.int64) - 5
    favourite = view + rng.exponential(2 * 60, n).astype(np.int64)
    parts = []
    for kind, chance, when in (
        (_VIEW, 0.8, view),
        (_CLICK, 0.45, click),
        (_CART, 0.3, cart),
        (_FAVORITE, 0.04, favourite),
    ):
        hit = np.flatnonzero(rng.random(n) < chance)
        parts.append(_line_events(world, people, book, hit, book.product[hit], kind, when[hit]))
    for alternative in book.alternative.T:
        browsed = np.flatnonzero((alternative >= 0) & (rng.random(n) < 0.5))
        glance = moment[browsed] - rng.exponential(15 * 60, len(browsed)).astype(np.int64)
        parts.append(_line_events(world, people, book, browsed, alternative[browsed], _VIEW, glance))
        clicked = browsed[rng.random(len(browsed)) < 0.2]
        glance = glance[np.isin(browsed, clicked)] + 30
        parts.append(_line_events(world, people, book, clicked, alternative[clicked], _CLICK, glance))
    return _Events.concat(parts)


def _line_events(
    world: _World,
    people: _People,
    book: _OrderBook,
    line: np.ndarray,
    product: np.ndarray,
    kind: int,
    moment: np.ndarray,
) -> _Events:
    """Events of the buyer of ``line``; dropped where they cannot come before the order."""
    owner = book.owner[line]
    moment = _not_before(world, people, owner, product, moment)
    ok = moment <= book.time[line]
    return _Events(
        owner[ok],
        product[ok],
        book.distributor[line][ok],
        np.full(ok.sum(), kind),
        np.minimum(moment[ok], world.end - 1),
    )


def _share_events(world: _World, people: _People, book: _OrderBook, rng: np.random.Generator) -> _Events:
    """A member of the buyer's community shared the product some hours before the order."""
    line = np.flatnonzero(rng.random(len(book.product)) < 0.1)
    home = people.life.home
    members = np.argsort(home, kind="stable")
    first = np.searchsorted(home[members], home[book.owner[line]], side="left")
    last = np.searchsorted(home[members], home[book.owner[line]], side="right")
    sharer = members[first + (rng.random(len(line)) * (last - first)).astype(np.int64)]
    product, moment = book.product[line], book.time[line]
    when = _not_before(
        world, people, sharer, product, moment - rng.exponential(6 * HOUR, len(line)).astype(np.int64) - 60
    )
    ok = when <= moment
    return _Events(sharer[ok], product[ok], book.distributor[line][ok], np.full(ok.sum(), _SHARE), when[ok])


def _browse_sessions(world: _World, people: _People, rng: np.random.Generator) -> _Events:
    """Sessions of a view (sometimes a click) that lead to no order, also by consumers who never buy."""
    life = people.life
    sessions = rng.poisson((life.active_until - life.active_from) / DAY * 0.012)
    owner = np.repeat(np.arange(len(people)), sessions)
    moment = world.calendar.sample(life.active_from[owner], life.active_until[owner], rng)
    category = _pick(rng, people.taste[owner]) if len(owner) else np.zeros(0, dtype=np.int64)
    product = world.offers.sample(moment // DAY * len(CATEGORIES) + category, rng.random(len(owner)))
    moment = np.minimum(_not_before(world, people, owner, product, moment), world.end - 1)
    distributor = np.where(rng.random(len(owner)) < 0.95, life.home[owner], -1)
    clicked = rng.random(len(owner)) < 0.3
    view = _Events(owner, product, distributor, np.full(len(owner), _VIEW), moment)
    click = _Events(
        owner[clicked],
        product[clicked],
        distributor[clicked],
        np.full(clicked.sum(), _CLICK),
        np.minimum(moment[clicked] + 20, world.end - 1),
    )
    return _Events.concat([view, click])


# --------------------------------------------------------------------------------------------
# One chunk end to end, as Arrow tables


@dataclass(frozen=True)
class _Chunk:
    tables: dict[str, pa.Table]  # contract tables and truth files, by file stem
    orders: int
    complaints: int


def _simulate_chunk(
    world: _World, first: int, n: int, order_offset: int, complaint_offset: int, rng: np.random.Generator
) -> _Chunk:
    people = _draw_people(world, first, n, rng)
    baskets, people = _draw_baskets(world, people, rng)
    lines = _fill_baskets(world, people, baskets, rng)
    baskets, lines = _without_rebuys(world, baskets, lines)
    baskets = _settle_times(world, baskets, lines, rng)
    people = replace(people, life=_after_last_basket(world, people.life, baskets))
    baskets, lines = _repeat_purchases(world, people, baskets, lines, rng)
    book = _order_book(world, baskets, lines, order_offset, rng)
    complaints = _complaints(world, book, complaint_offset, rng)
    tables = {
        Table.CONSUMERS: _consumers_table(world, people),
        Table.ORDERS: _orders_table(world, people, book),
        Table.COMPLAINTS: _complaints_table(world, people, book, complaints),
        **_people_truth_tables(world, people),
    }
    if world.config.events:
        tables[Table.EVENTS] = _events_table(world, people, _events(world, people, book, rng))
    return _Chunk(tables, book.orders, len(complaints.number))


# --------------------------------------------------------------------------------------------
# Arrow columns and tables

_ARROW_TYPES = {
    "id": pa.string(),
    "choice": pa.string(),
    "category": pa.string(),
    "text": pa.string(),
    "integer": pa.int64(),
    "money": pa.float64(),
    "timestamp": pa.timestamp("ns"),
}
_PANDAS_TYPES = {
    "id": "string[pyarrow]",
    "choice": "string[pyarrow]",
    "category": "string[pyarrow]",
    "text": "string[pyarrow]",
    "integer": "int64",
    "money": "float64",
    "timestamp": "datetime64[ns]",
}


def _schema(columns: list[tuple[str, str]]) -> pa.Schema:
    """Arrow schema whose pandas metadata reads back as the contract's dtypes (string[pyarrow] ...)."""
    described = [
        {
            "name": name,
            "field_name": name,
            "pandas_type": "unicode" if _ARROW_TYPES[kind] == pa.string() else str(_ARROW_TYPES[kind]),
            "numpy_type": _PANDAS_TYPES[kind],
            "metadata": None,
        }
        for name, kind in columns
    ]
    metadata = {"index_columns": [], "column_indexes": [], "columns": described}
    fields = [pa.field(name, _ARROW_TYPES[kind]) for name, kind in columns]
    return pa.schema(fields, metadata={b"pandas": json.dumps(metadata).encode()})


def _contract_schema(table: str) -> pa.Schema:
    return _schema([(c.name, c.kind) for c in CONTRACT[table].columns])


_TRUTH_SCHEMAS = {
    Truth.CONSUMER_TASTES: _schema(
        [(Col.CONSUMER_ID, "id"), (Col.CATEGORY, "category"), (Truth.WEIGHT, "money")]
    ),
    Truth.CONSUMER_BRAND_TASTES: _schema(
        [(Col.CONSUMER_ID, "id"), (Col.SUPPLIER_ID, "id"), (Truth.WEIGHT, "money")]
    ),
    Truth.COMMUNITY_TASTES: _schema(
        [(Col.DISTRIBUTOR_ID, "id"), (Col.CATEGORY, "category"), (Truth.WEIGHT, "money")]
    ),
    Truth.CONSUMER_TRAITS: _schema(
        [
            (Col.CONSUMER_ID, "id"),
            (Truth.PURCHASE_RATE, "money"),
            (Truth.PRICE_SENSITIVITY, "money"),
            (Truth.CHURNED_AT, "timestamp"),
        ]
    ),
}
_PREFIXES = {
    Col.CONSUMER_ID: "C",
    Col.DISTRIBUTOR_ID: "D",
    Col.PRODUCT_ID: "P",
    Col.SUPPLIER_ID: "S",
    Col.ORDER_ID: "O",
    Col.COMPLAINT_ID: "K",
}


def _ids(world: _World, column: str, numbers: np.ndarray) -> pa.Array:
    """Fixed-width ids such as C0000001, built straight into an Arrow string buffer (-1: null)."""
    prefix, width = _PREFIXES[column].encode(), world.id_widths[column]
    size, n = len(prefix) + width, len(numbers)
    text = np.empty((n, size), dtype=np.uint8)
    text[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    rest = np.asarray(numbers, dtype=np.int64) + 1
    for position in range(size - 1, len(prefix) - 1, -1):
        text[:, position] = 48 + rest % 10
        rest //= 10
    offsets = np.arange(0, (n + 1) * size, size, dtype=np.int64)
    ids = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text)).cast(pa.string())
    missing = np.asarray(numbers) < 0
    return pc.if_else(pa.array(missing), pa.nulls(n, pa.string()), ids) if missing.any() else ids


def _timestamps(world: _World, seconds: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    base = np.datetime64(world.config.start, "ns").astype(np.int64)
    nanoseconds = base + np.asarray(seconds, dtype=np.int64) * 1_000_000_000
    return pa.array(nanoseconds.view("datetime64[ns]"), mask=missing)


def _labels(names: tuple[str, ...], index: np.ndarray) -> pa.Array:
    """Names by index; an index equal to len(names) (or -1) is null."""
    index = np.asarray(index, dtype=np.int64)
    missing = (index < 0) | (index >= len(names))
    return pc.take(pa.array(names, pa.string()), pa.array(np.where(missing, 0, index), mask=missing))


def _table(schema: pa.Schema, columns: dict[str, pa.Array]) -> pa.Table:
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


_CATEGORY_NAMES = tuple(c.name for c in CATEGORIES)


def _products_table(world: _World) -> pa.Table:
    catalogue = world.catalogue
    return _table(
        _contract_schema(Table.PRODUCTS),
        {
            Col.PRODUCT_ID: _ids(world, Col.PRODUCT_ID, np.arange(len(catalogue))),
            Col.SUPPLIER_ID: _ids(world, Col.SUPPLIER_ID, catalogue.supplier),
            Col.CATEGORY: _labels(_CATEGORY_NAMES, catalogue.category),
            Col.LIST_PRICE: pa.array(catalogue.list_price),
            Col.SALE_START: _timestamps(world, catalogue.sale_start),
            Col.SALE_END: _timestamps(world, catalogue.sale_end, catalogue.open_end),
        },
    )


def _distributors_table(world: _World) -> pa.Table:
    communities = world.communities
    return _table(
        _contract_schema(Table.DISTRIBUTORS),
        {
            Col.DISTRIBUTOR_ID: _ids(world, Col.DISTRIBUTOR_ID, np.arange(world.config.distributors)),
            Col.JOINED_AT: _timestamps(world, communities.joined),
            Col.OCCUPATION: _labels(tuple(OCCUPATIONS), communities.occupation),
            Col.CITY_TIER: _labels(CITY_TIERS, communities.city_tier),
        },
    )


def _consumers_table(world: _World, people: _People) -> pa.Table:
    return _table(
        _contract_schema(Table.CONSUMERS),
        {
            Col.CONSUMER_ID: _ids(world, Col.CONSUMER_ID, people.number),
            Col.REGISTERED_AT: _timestamps(world, people.life.registered),
            Col.DISTRIBUTOR_ID: _ids(world, Col.DISTRIBUTOR_ID, people.life.home),
            Col.AGE_BAND: _labels(AGE_BANDS, people.age),
            Col.GENDER: _labels(GENDERS, people.gender),
            Col.CITY_TIER: _labels(CITY_TIERS, people.city_tier),
        },
    )


def _orders_table(world: _World, people: _People, book: _OrderBook) -> pa.Table:
    return _table(
        _contract_schema(Table.ORDERS),
        {
            Col.ORDER_ID: _ids(world, Col.ORDER_ID, book.order),
            Col.CONSUMER_ID: _ids(world, Col.CONSUMER_ID, people.number[book.owner]),
            Col.DISTRIBUTOR_ID: _ids(world, Col.DISTRIBUTOR_ID, book.distributor),
            Col.PRODUCT_ID: _ids(world, Col.PRODUCT_ID, book.product),
            Col.QUANTITY: pa.array(book.quantity),
            Col.UNIT_PRICE: pa.array(book.unit_price),
            Col.ORDERED_AT: _timestamps(world, book.time),
            Col.STATUS: _labels(_STATUSES, book.status),
        },
    )


def _complaints_table(world: _World, people: _People, book: _OrderBook, complaints: _Complaints) -> pa.Table:
    line = complaints.line
    return _table(
        _contract_schema(Table.COMPLAINTS),
        {
            Col.COMPLAINT_ID: _ids(world, Col.COMPLAINT_ID, complaints.number),
            Col.ORDER_ID: _ids(world, Col.ORDER_ID, book.order[line]),
            Col.PRODUCT_ID: _ids(world, Col.PRODUCT_ID, book.product[line]),
            Col.CONSUMER_ID: _ids(world, Col.CONSUMER_ID, people.number[book.owner[line]]),
            Col.COMPLAINED_AT: _timestamps(world, complaints.time),
            Col.REASON: _labels(COMPLAINT_REASONS, complaints.reason),
        },
    )


def _events_table(world: _World, people: _People, events: _Events) -> pa.Table:
    return _table(
        _contract_schema(Table.EVENTS),
        {
            Col.CONSUMER_ID: _ids(world, Col.CONSUMER_ID, people.number[events.owner]),
            Col.DISTRIBUTOR_ID: _ids(world, Col.DISTRIBUTOR_ID, events.distributor),
            Col.PRODUCT_ID: _ids(world, Col.PRODUCT_ID, events.product),
            Col.EVENT_TYPE: _labels(_EVENT_TYPES, events.kind),
            Col.EVENT_AT: _timestamps(world, events.time),
        },
    )


def _people_truth_tables(world: _World, people: _People) -> dict[str, pa.Table]:
    return {
        Truth.CONSUMER_TASTES: _consumer_tastes_table(world, people),
        Truth.CONSUMER_BRAND_TASTES: _consumer_brands_table(world, people),
        Truth.CONSUMER_TRAITS: _consumer_traits_table(world, people),
    }


def _consumer_tastes_table(world: _World, people: _People) -> pa.Table:
    n, categories = len(people), len(CATEGORIES)
    columns = {
        Col.CONSUMER_ID: _ids(world, Col.CONSUMER_ID, np.repeat(people.number, categories)),
        Col.CATEGORY: _labels(_CATEGORY_NAMES, np.tile(np.arange(categories), n)),
        Truth.WEIGHT: pa.array(people.taste.ravel()),
    }
    return _table(_TRUTH_SCHEMAS[Truth.CONSUMER_TASTES], columns)


def _consumer_brands_table(world: _World, people: _People) -> pa.Table:
    owner = np.repeat(people.number, _FAVOURITE_BRANDS)
    distinct = np.ones(people.brands.shape, dtype=bool)
    distinct[:, 1:] = people.brands[:, 1:] != people.brands[:, :1]
    columns = {
        Col.CONSUMER_ID: _ids(world, Col.CONSUMER_ID, owner[distinct.ravel()]),
        Col.SUPPLIER_ID: _ids(world, Col.SUPPLIER_ID, people.brands[distinct]),
        Truth.WEIGHT: pa.array(np.full(distinct.sum(), _FAVOURITE_BOOST)),
    }
    return _table(_TRUTH_SCHEMAS[Truth.CONSUMER_BRAND_TASTES], columns)


def _consumer_traits_table(world: _World, people: _People) -> pa.Table:
    churned = people.life.churn
    columns = {
        Col.CONSUMER_ID: _ids(world, Col.CONSUMER_ID, people.number),
        Truth.PURCHASE_RATE: pa.array(people.rate),
        Truth.PRICE_SENSITIVITY: pa.array(people.price_sensitivity),
        Truth.CHURNED_AT: _timestamps(world, churned, churned >= world.end),
    }
    return _table(_TRUTH_SCHEMAS[Truth.CONSUMER_TRAITS], columns)


def _community_tastes_table(world: _World) -> pa.Table:
    distributors, categories = world.config.distributors, len(CATEGORIES)
    return _table(
        _TRUTH_SCHEMAS[Truth.COMMUNITY_TASTES],
        {
            Col.DISTRIBUTOR_ID: _ids(
                world, Col.DISTRIBUTOR_ID, np.repeat(np.arange(distributors), categories)
            ),
            Col.CATEGORY: _labels(_CATEGORY_NAMES, np.tile(np.arange(categories), distributors)),
            Truth.WEIGHT: pa.array(world.communities.taste.ravel()),
        },
    )


def _defective_frame(world: _World) -> pd.DataFrame:
    catalogue = world.catalogue
    planted = np.flatnonzero(catalogue.defective)
    baseline = np.array([c.complaint_rate for c in CATEGORIES])[catalogue.category[planted]]
    return pd.DataFrame(
        {
            Col.PRODUCT_ID: _ids(world, Col.PRODUCT_ID, planted).to_pylist(),
            Col.CATEGORY: [CATEGORIES[i].name for i in catalogue.category[planted]],
            Truth.COMPLAINT_PROBABILITY: np.round(catalogue.complaint_probability[planted], 6),
            Truth.CATEGORY_BASELINE: baseline,
        }
    )


# --------------------------------------------------------------------------------------------
# Writing: every file as <name>.partial, renamed only when the whole simulation succeeded


class _Sinks:
    """Parquet writers of all output files, one row group per write."""

    def __init__(self, out_dir: Path) -> None:
        self._out_dir = out_dir
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._rows: dict[str, int] = {}
        self._partials: dict[str, tuple[Path, Path]] = {}
        self._stack = ExitStack()

    def __enter__(self) -> _Sinks:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        """On failure, close and remove every ``.partial`` file: nothing half-written stays."""
        if kind is not None:
            self._close()
            for partial, _ in self._partials.values():
                partial.unlink(missing_ok=True)

    def write_world(self, world: _World) -> None:
        self.write(Table.PRODUCTS, _products_table(world))
        self.write(Table.DISTRIBUTORS, _distributors_table(world))
        self.write(Truth.COMMUNITY_TASTES, _community_tastes_table(world))
        final = self._out_dir / TRUTH_DIR / f"{Truth.DEFECTIVE_PRODUCTS}.csv"
        partial = final.with_name(final.name + ".partial")
        self._partials[Truth.DEFECTIVE_PRODUCTS] = (partial, final)
        _defective_frame(world).to_csv(partial, index=False, lineterminator="\n")

    def write_chunk(self, chunk: _Chunk) -> None:
        for name, table in chunk.tables.items():
            self.write(name, table)

    def write(self, name: str, table: pa.Table) -> None:
        if name not in self._writers:
            folder = self._out_dir if name in Table.ALL else self._out_dir / TRUTH_DIR
            final = folder / f"{name}.parquet"
            partial = final.with_name(final.name + ".partial")
            self._partials[name] = (partial, final)
            self._writers[name] = self._stack.enter_context(pq.ParquetWriter(partial, table.schema))
            self._rows[name] = 0
        if table.num_rows:
            self._writers[name].write_table(table)
        self._rows[name] += table.num_rows

    def commit(self) -> dict[str, int]:
        """Close every file and move it to its final name; empty optional tables are left out."""
        self._close()
        for name, (partial, final) in self._partials.items():
            if name in Table.OPTIONAL and self._rows[name] == 0:
                logger.warning("%s: no rows simulated, so no file is written", name)
                partial.unlink()
                continue
            os.replace(partial, final)
        return {name: self._rows[name] for name in Table.ALL if name in self._rows}

    def _close(self) -> None:
        self._stack.close()
