"""The consumers of one chunk: who they are, when they arrive, how often they buy and when they stop.

A consumer registers through a home distributor (a growing platform: arrivals all through
the period and up to a year before it), buys at a Gamma-distributed personal rate scaled by
the community's engagement, and goes dormant after each basket with a personal chance (as in
BG/NBD; a quarter after the first). Demographics (age band, gender, city tier, some unknown)
follow the community's occupation; category taste mixes the community's (``homophily``)
with an individual one shaped by age and gender; favourite brands come mostly from the
community. ``calibrated_base_rate`` solves for the purchase rate that gives the configured
order lines per consumer and year.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from sources.simulator.market import (
    AGE_BANDS,
    AGE_BY_OCCUPATION,
    AGE_SHARES,
    AGE_TASTE,
    CATEGORIES,
    CITY_TIER_SHARES,
    CITY_TIERS,
    DAY,
    FAVOURITE_BRANDS,
    FEMALE_SHARE,
    GENDER_TASTE,
    GENDERS,
    HOUR,
    OCCUPATIONS,
)
from sources.simulator.sampling import boost_matrix, dirichlet, pick, sample_cdf
from sources.simulator.world import World

# Calibration: lines per basket left after de-duplication and the net lift of repeat purchases
# over dropped re-buys (both measured on the default config), used by ``calibrated_base_rate``.
_LINES_PER_BASKET = 1.78
_REPEAT_LIFT = 1.02
_RATE_SHAPE = 0.22  # Gamma shape of purchase rates: small = heavy tail of frequent buyers
_MAX_RATE = 0.7  # baskets per active day
_WELCOME_SHARE = 0.8  # consumers who buy right when they register
_DROPOUT_BETA = (0.7, 3.5)  # chance of going dormant after a basket ~ Beta (as BG/NBD fits find)
_HISTORY_DAYS = 365  # consumers registered up to this many days before the period
_ONE_OFF_SHARE = 0.25  # consumers who try the platform once and never come back


@dataclass(frozen=True)
class Lifecycle:
    home: np.ndarray
    registered: np.ndarray  # seconds from the period start
    churn: np.ndarray  # seconds; the consumer stops buying then (may be after the period)
    active_from: np.ndarray
    active_until: np.ndarray
    activity: np.ndarray  # purchase rate relative to the average consumer
    dropout: np.ndarray  # chance of going dormant after each basket
    welcomed: np.ndarray  # made a first basket right at registration

    def dormant_after(self, moment: np.ndarray, who: np.ndarray, end: int) -> Lifecycle:
        """The lifecycle with consumers ``who`` going dormant at their ``moment`` (one per consumer)."""
        churn = self.churn.copy()
        churn[who] = np.minimum(churn[who], moment[who])
        until = np.maximum(np.minimum(churn, end), self.active_from)
        return replace(self, churn=churn, active_until=until)


@dataclass(frozen=True)
class People:
    number: np.ndarray  # global consumer numbers
    life: Lifecycle
    rate: np.ndarray  # baskets per active day
    price_sensitivity: np.ndarray
    age: np.ndarray  # indices; len(names) = unknown
    gender: np.ndarray
    city_tier: np.ndarray
    taste: np.ndarray  # (n, categories)
    brands: np.ndarray  # (n, FAVOURITE_BRANDS) favourite suppliers

    def __len__(self) -> int:
        return len(self.number)


def sample_homes(world: World, rng: np.random.Generator, n: int) -> np.ndarray:
    return sample_cdf(world.communities.cdf, rng.random(n))


def lifecycle(world: World, home: np.ndarray, rng: np.random.Generator) -> Lifecycle:
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
    return Lifecycle(home, registered, churn, active_from, active_until, activity, dropout, welcomed)


def draw_people(world: World, first: int, n: int, rng: np.random.Generator) -> People:
    life = lifecycle(world, sample_homes(world, rng, n), rng)
    age, gender, city_tier = _demographics(world, life.home, rng)
    return People(
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


def _demographics(world: World, home: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    n, occupations = len(home), tuple(OCCUPATIONS)
    age_shares = np.array([AGE_SHARES * AGE_BY_OCCUPATION.get(o, 1.0) for o in occupations])
    age = pick(rng, age_shares[world.communities.occupation[home]])
    female = np.array([FEMALE_SHARE.get(o, 0.7) for o in occupations])[world.communities.occupation[home]]
    gender = (rng.random(n) >= female).astype(np.int64)
    city_tier = np.where(
        rng.random(n) < 0.8,
        world.communities.city_tier[home],
        rng.choice(len(CITY_TIERS), n, p=CITY_TIER_SHARES),
    )
    age[rng.random(n) < 0.08] = len(AGE_BANDS)  # unknown: not every profile is filled in
    gender[rng.random(n) < 0.04] = len(GENDERS)
    city_tier[rng.random(n) < 0.06] = len(CITY_TIERS)
    return age, gender, city_tier


def _consumer_taste(
    world: World, home: np.ndarray, age: np.ndarray, gender: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    shares = np.array([c.share for c in CATEGORIES])
    prior = shares * boost_matrix(AGE_TASTE, AGE_BANDS)[age] * boost_matrix(GENDER_TASTE, GENDERS)[gender]
    individual = dirichlet(rng, 3.0 * prior / prior.sum(axis=1, keepdims=True))
    mix = world.config.homophily
    return mix * world.communities.taste[home] + (1 - mix) * individual


def _favourite_brands(world: World, home: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(home)
    strength = world.catalogue.supplier_strength
    shape = (n, FAVOURITE_BRANDS)
    anywhere = sample_cdf(np.cumsum(strength) / strength.sum(), rng.random(shape))
    pushed = world.communities.brands[
        home[:, None], rng.integers(0, world.communities.brands.shape[1], shape)
    ]
    return np.where(rng.random(shape) < world.config.homophily, pushed, anywhere)


def calibrated_base_rate(world: World, rng: np.random.Generator) -> float:
    """Baskets per active day of an average consumer that give ``lines_per_consumer_year`` lines.

    A consumer buying at rate r who goes dormant after each basket with chance p is still active
    t days after registering with probability exp(-r p t), so the period [a, b] holds on average
    (exp(-r p a) - exp(-r p b)) / p of their baskets (times 1 - p after a welcome basket). The rate
    is solved for on a sample of consumers by bisection.
    """
    life = lifecycle(world, sample_homes(world, rng, 20_000), rng)
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
