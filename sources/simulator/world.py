"""The world: calendar, catalogue and communities, small and built once from the seed.

The calendar weighs each day's demand (weekly rhythm, shopping festivals and their pre-sales,
the Spring Festival lull) and the hour of day; the catalogue lists products with category,
supplier, price, appeal, flash-sale window and complaint probability (a few planted
defective); communities are the distributors with their size, joining time, occupation, city
tier, category taste and pushed brands. ``offers`` samples the products on sale on a day in a
category, by appeal and launch freshness.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from features.columns import Col
from sources.simulator.config import SimulationConfig
from sources.simulator.market import CATEGORIES, CITY_TIER_SHARES, CITY_TIERS, DAY, HOUR, OCCUPATIONS
from sources.simulator.sampling import GroupSampler, boost_matrix, dirichlet, pick, sample_cdf

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


@dataclass(frozen=True)
class Calendar:
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
        hour = sample_cdf(self.hour_cdf, rng.random(len(mass)))
        seconds = day * DAY + hour * HOUR + rng.integers(0, HOUR, len(mass))
        return np.clip(seconds, lower, np.maximum(upper - 1, lower)).astype(np.int64)

    def nudge(self, day: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A day of the period within three days of ``day``, chosen by demand (days outside stay)."""
        options = day[:, None] + np.arange(-3, 4)
        inside = (options >= 0) & (options < self.days)
        weight = np.where(inside, self.weight[np.clip(options, 0, self.days - 1)], 0.0)
        weight[:, 3] = np.where(inside.any(axis=1), weight[:, 3], 1.0)
        return options[np.arange(len(day)), pick(rng, weight)] if len(day) else day

    def mass_at(self, seconds: np.ndarray) -> np.ndarray:
        """Demand-weighted days from the period start to ``seconds`` (0 before the period)."""
        day = np.asarray(seconds) / DAY
        whole = np.clip(np.floor(day).astype(np.int64), 0, self.days - 1)
        return self.cumulative[whole] + self.weight[whole] * np.clip(day - whole, 0, 1)


def _calendar(config: SimulationConfig) -> Calendar:
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
    return Calendar(config.days, weight, cumulative, price_factor, hour_cdf)


@dataclass(frozen=True)
class Catalogue:
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
    complaint_probability: np.ndarray  # once defective (the only one for a healthy product)
    healthy_probability: np.ndarray  # before a defective product's onset
    defective: np.ndarray
    defect_onset: np.ndarray  # seconds; a lifelong defect starts at LIFELONG

    def defective_at(self, product: np.ndarray, moment: np.ndarray) -> np.ndarray:
        """Whether ``product`` is defective at ``moment`` (seconds): planted and past its onset."""
        return self.defective[product] & (moment >= self.defect_onset[product])

    def complaint_chance(self, product: np.ndarray, moment: np.ndarray) -> np.ndarray:
        """The complaint probability of a line of ``product`` ordered at ``moment``."""
        defective = self.defective_at(product, moment)
        return np.where(defective, self.complaint_probability[product], self.healthy_probability[product])

    def __len__(self) -> int:
        return len(self.category)


def _catalogue(config: SimulationConfig, rng: np.random.Generator) -> Catalogue:
    n, categories = config.products, len(CATEGORIES)
    shares = np.array([c.share for c in CATEGORIES])
    category = np.concatenate([np.arange(categories), rng.choice(categories, n - categories, p=shares)])
    suppliers = max(categories, config.suppliers or n // 20)
    main = np.concatenate([np.arange(categories), rng.choice(categories, suppliers - categories, p=shares)])
    strength = rng.lognormal(0.0, 0.8, suppliers)
    by_category = GroupSampler.build(main, np.arange(suppliers), strength, categories)
    supplier = by_category.sample(category, rng.random(n))
    anywhere = rng.random(n) < 0.15
    supplier[anywhere] = sample_cdf(np.cumsum(strength) / strength.sum(), rng.random(anywhere.sum()))
    evergreen = rng.random(n) < config.evergreen_share
    evergreen[:categories] = True
    window = _sale_windows(config, evergreen, rng)
    prices = _prices(category, evergreen, rng)
    quality = _defects(config, category, supplier, suppliers, rng)
    quality["defect_onset"] = _onsets(config, quality["defective"], window["first_day"], window["last_day"])
    appeal = rng.lognormal(0.0, 1.1, n) * np.sqrt(strength[supplier])
    return Catalogue(
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
    return dict(
        sale_start=launch * DAY + hour * HOUR,
        sale_end=last_day * DAY + DAY - 1,
        open_end=open_end,
        first_day=launch,
        last_day=last_day,
    )


def _prices(category: np.ndarray, evergreen: np.ndarray, rng: np.random.Generator) -> dict:
    median = np.array([c.median_price for c in CATEGORIES])[category]
    sigma = np.array([c.price_sigma for c in CATEGORIES])[category]
    list_price = np.maximum(np.floor(rng.lognormal(np.log(median), sigma)), 1.0) + 0.9
    discount = np.where(
        evergreen, rng.uniform(0.85, 1.0, len(category)), rng.uniform(0.55, 0.9, len(category))
    )
    log_relative = np.log(list_price * discount / median)
    return dict(list_price=list_price, discount=discount, log_relative_price=log_relative)


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
    healthy = probability.copy()
    probability[defective] = baseline[defective] * rng.uniform(low, high, planted)
    return dict(
        complaint_probability=np.minimum(probability, 0.5), healthy_probability=healthy, defective=defective
    )


LIFELONG = np.iinfo(np.int64).min  # the onset of a product defective from its launch


def _onsets(
    config: SimulationConfig, defective: np.ndarray, first_day: np.ndarray, last_day: np.ndarray
) -> np.ndarray:
    """The second each defective product turns defective: ``LIFELONG`` for most, or, for a share
    ``onset_share`` of them, the start of a day drawn uniformly from its sale days inside the period
    (a product whose sale ended before the period stays lifelong: it sells nothing in it).

    Drawn from a stream of their own, so that a config without onsets simulates exactly as before.
    """
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(2,)))
    n = len(defective)
    turns = defective & (rng.random(n) < config.onset_share) & (last_day >= 0)
    first = np.clip(first_day, 0, config.days - 1)
    day = first + np.floor(rng.random(n) * (np.maximum(last_day, first) - first + 1)).astype(np.int64)
    return np.where(turns, day * DAY, LIFELONG).astype(np.int64)


@dataclass(frozen=True)
class Communities:
    cdf: np.ndarray  # cumulative share of consumers by community
    engagement: np.ndarray  # community multiplier on purchase rates
    joined: np.ndarray  # seconds from the period start
    occupation: np.ndarray
    city_tier: np.ndarray
    taste: np.ndarray  # (distributors, categories), rows sum to 1
    brands: np.ndarray  # (distributors, 3) suppliers the distributor pushes


def _communities(config: SimulationConfig, catalogue: Catalogue, rng: np.random.Generator) -> Communities:
    n = config.distributors
    rank = rng.permutation(n) + 1
    weight = rank**-1.05 * rng.lognormal(0.0, 0.3, n)
    joined_day = -1_095 + (1_095 + 0.8 * config.days) * ((rank - 1) / n) ** 1.5 * rng.uniform(0.6, 1.0, n)
    joined = np.floor(joined_day).astype(np.int64) * DAY + rng.integers(8 * HOUR, 20 * HOUR, n)
    occupation_shares = np.array([share for share, _ in OCCUPATIONS.values()])
    occupation = rng.choice(len(OCCUPATIONS), n, p=occupation_shares / occupation_shares.sum())
    boosts = boost_matrix({k: b for k, (_, b) in OCCUPATIONS.items()}, tuple(OCCUPATIONS))[occupation]
    shares = np.array([c.share for c in CATEGORIES])
    prior = boosts * shares
    taste = dirichlet(rng, 4.0 * prior / prior.sum(axis=1, keepdims=True))
    strength_cdf = np.cumsum(catalogue.supplier_strength) / catalogue.supplier_strength.sum()
    brands = sample_cdf(strength_cdf, rng.random(n * 3)).reshape(n, 3)
    return Communities(
        cdf=np.cumsum(weight) / weight.sum(),
        engagement=rng.lognormal(-0.045, 0.3, n),
        joined=joined,
        occupation=occupation,
        city_tier=rng.choice(len(CITY_TIERS), n, p=CITY_TIER_SHARES),
        taste=taste,
        brands=brands,
    )


@dataclass(frozen=True)
class World:
    config: SimulationConfig
    calendar: Calendar
    catalogue: Catalogue
    communities: Communities
    offers: GroupSampler  # products on sale by (day, category), weighted by appeal
    id_widths: dict[str, int]
    base_rate: float = 1.0  # baskets per active day of an average consumer (people.calibrated_base_rate)

    @property
    def end(self) -> int:
        return self.config.days * DAY


def build_world(config: SimulationConfig, rng: np.random.Generator) -> World:
    """The world of ``config`` with a base rate of 1.0 (``people.calibrated_base_rate`` sets it)."""
    catalogue = _catalogue(config, rng)
    communities = _communities(config, catalogue, rng)
    return World(
        config,
        _calendar(config),
        catalogue,
        communities,
        _offers(catalogue, config.days),
        id_widths=_id_widths(config, catalogue),
    )


def _offers(catalogue: Catalogue, days: int) -> GroupSampler:
    first = np.clip(catalogue.first_day, 0, None)
    length = np.clip(catalogue.last_day - first + 1, 0, None)
    product = np.repeat(np.arange(len(catalogue)), length)
    day = first[product] + np.arange(len(product)) - np.repeat(np.cumsum(length) - length, length)
    age = day - catalogue.first_day[product]
    launch_boost = np.where(catalogue.evergreen[product], 1.0, 0.4 + 2.0 * np.exp(-age / 2.5))
    weight = catalogue.appeal[product] * launch_boost
    group = day * len(CATEGORIES) + catalogue.category[product]
    return GroupSampler.build(group, product, weight, days * len(CATEGORIES))


def _id_widths(config: SimulationConfig, catalogue: Catalogue) -> dict[str, int]:
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
