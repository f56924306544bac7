"""Baskets and their lines for the consumers of one chunk.

Baskets come at Poisson times on a clock that runs with the calendar's demand, until the
consumer goes dormant (only those inside the period are drawn, so the work is proportional to
what is written); first baskets right at registration; a share through other distributors.
Each line picks a category by the consumer's taste, draws candidates on sale by popularity and
lets brand taste and price sensitivity choose one. Re-buys of the same product are dropped,
baskets move after the sale start of their products, and consumables are bought again at
their category's interval while on sale and the consumer is active.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from sources.simulator.market import CATEGORIES, DAY, FAVOURITE_BOOST, HOUR
from sources.simulator.people import Lifecycle, People, sample_homes
from sources.simulator.sampling import GroupSampler, sample_cdf, sort_order
from sources.simulator.world import World

_EXTRA_LINES_PER_BASKET = 0.8  # extra lines drawn per basket (Poisson), before de-duplication
_CANDIDATES = 4  # products drawn by popularity per line, then chosen among by the consumer
_ALTERNATIVES = 2  # candidates not chosen that the consumer may have viewed
_REPEAT_START, _REPEAT_AGAIN = 0.25, 0.55  # chance a consumable line is bought again, and again


@dataclass(frozen=True)
class Lines:
    """Order lines; ``basket`` indexes the basket arrays (owner, time, distributor)."""

    basket: np.ndarray
    product: np.ndarray
    alternative: np.ndarray  # (n, 2) candidates considered but not chosen (-1: none)


@dataclass(frozen=True)
class Baskets:
    owner: np.ndarray  # index into the chunk's people
    time: np.ndarray
    distributor: np.ndarray


def draw_baskets(world: World, people: People, rng: np.random.Generator) -> tuple[Baskets, People]:
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
    return Baskets(owner, moment, _basket_distributors(world, life.home[owner], rng)), people


def _welcome_baskets(world: World, life: Lifecycle, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Consumers who registered in the period buying right away, and when."""
    welcomed = np.flatnonzero(life.welcomed & (life.registered >= 0))
    welcome = life.registered[welcomed] + 60 + rng.exponential(20 * 60, len(welcomed)).astype(np.int64)
    return welcomed, np.minimum(welcome, world.end - 1)


def _share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """part / whole clipped to [0, 1], and 0 where whole is 0."""
    return np.clip(part / np.where(whole > 0, whole, 1.0), 0.0, 1.0) * (whole > 0)


def _dormancy(
    world: World,
    life: Lifecycle,
    dormant: np.ndarray,
    before: np.ndarray,
    last: np.ndarray,
    owner: np.ndarray,
    moment: np.ndarray,
) -> Lifecycle:
    """Dormant consumers stop right after their last basket (before the period: at its clock time)."""
    stop = np.where(dormant, life.registered + (np.minimum(last, before) * DAY).astype(np.int64), life.churn)
    latest = np.full(len(stop), np.iinfo(np.int64).min)
    np.maximum.at(latest, owner, moment)
    in_period = dormant & (last >= before) & (latest > np.iinfo(np.int64).min)
    stop[in_period] = latest[in_period] + 1
    return life.dormant_after(stop, np.flatnonzero(dormant), world.end)


def _basket_distributors(world: World, home: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    elsewhere = sample_homes(world, rng, len(home))
    return np.where(rng.random(len(home)) < world.config.home_share, home, elsewhere)


def fill_baskets(world: World, people: People, baskets: Baskets, rng: np.random.Generator) -> Lines:
    sizes = 1 + np.minimum(rng.poisson(_EXTRA_LINES_PER_BASKET, len(baskets.owner)), 7)
    basket = np.repeat(np.arange(len(baskets.owner)), sizes)
    owner = baskets.owner[basket]
    tastes = GroupSampler.build(
        np.repeat(np.arange(len(people)), len(CATEGORIES)),
        np.tile(np.arange(len(CATEGORIES)), len(people)),
        people.taste.ravel(),
        len(people),
    )
    category = tastes.sample(owner, rng.random(len(basket)))
    day = baskets.time[basket] // DAY
    product, alternative = _choose_products(world, people, owner, day * len(CATEGORIES) + category, rng)
    keep = _first_of_each(basket, product)
    return Lines(basket[keep], product[keep], alternative[keep])


def _choose_products(
    world: World, people: People, owner: np.ndarray, group: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw candidates by popularity, then let brand taste and price sensitivity choose one."""
    n, catalogue = len(owner), world.catalogue
    candidates = world.offers.sample(np.repeat(group, _CANDIDATES), rng.random(n * _CANDIDATES))
    candidates = candidates.reshape(n, _CANDIDATES)
    supplier = catalogue.supplier[candidates]
    favourite = (supplier[:, :, None] == people.brands[owner, None, :]).any(axis=2)
    utility = (
        np.log(np.where(favourite, FAVOURITE_BOOST, 1.0))
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
    order = sort_order(basket, product)
    duplicate = np.zeros(len(order), dtype=bool)
    duplicate[1:] = (basket[order][1:] == basket[order][:-1]) & (product[order][1:] == product[order][:-1])
    return order[~duplicate]


def without_rebuys(world: World, baskets: Baskets, lines: Lines) -> tuple[Baskets, Lines]:
    """Drop lines re-buying a product the consumer bought before: a durable one at all, a
    consumable one within half its repeat interval (re-buying is left to ``repeat_purchases``)."""
    interval = np.array([c.repeat_days for c in CATEGORIES])[world.catalogue.category[lines.product]] * DAY
    owner, moment = baskets.owner[lines.basket], baskets.time[lines.basket]
    order = sort_order(owner, lines.product, moment)
    owner, product, moment = owner[order], lines.product[order], moment[order]
    again = np.zeros(len(order), dtype=bool)
    again[1:] = (owner[1:] == owner[:-1]) & (product[1:] == product[:-1])
    too_soon = np.zeros(len(order), dtype=bool)
    too_soon[1:] = moment[1:] - moment[:-1] < interval[order][1:] / 2
    dropped = np.zeros(len(order), dtype=bool)
    dropped[order] = again & ((interval[order] == 0) | too_soon)
    kept = Lines(lines.basket[~dropped], lines.product[~dropped], lines.alternative[~dropped])
    used = np.unique(kept.basket)
    compact = Baskets(baskets.owner[used], baskets.time[used], baskets.distributor[used])
    return compact, replace(kept, basket=np.searchsorted(used, kept.basket))


def settle_times(world: World, baskets: Baskets, lines: Lines, rng: np.random.Generator) -> Baskets:
    """Move a basket to after the sale start of its latest-launching product (same day)."""
    opens = np.full(len(baskets.time), np.iinfo(np.int64).min)
    np.maximum.at(opens, lines.basket, world.catalogue.sale_start[lines.product])
    late = opens > baskets.time
    moved = opens + rng.exponential(10 * 60, len(opens)).astype(np.int64)
    day_end = (baskets.time // DAY + 1) * DAY - 1
    settled = np.where(late, np.minimum(moved, np.minimum(day_end, world.end - 1)), baskets.time)
    return Baskets(baskets.owner, settled, baskets.distributor)


def after_last_basket(world: World, life: Lifecycle, baskets: Baskets) -> Lifecycle:
    """Dormancy moved to just after a basket that settling pushed past it."""
    latest = np.full(len(life.churn), np.iinfo(np.int64).min)
    np.maximum.at(latest, baskets.owner, baskets.time)
    late = np.flatnonzero((latest >= life.churn) & (life.churn < world.end))
    churn = life.churn.copy()
    churn[late] = latest[late] + 1
    return replace(life, churn=churn, active_until=np.maximum(np.minimum(churn, world.end), life.active_from))


def repeat_purchases(
    world: World, people: People, baskets: Baskets, lines: Lines, rng: np.random.Generator
) -> tuple[Baskets, Lines]:
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
        moment = day * DAY + sample_cdf(world.calendar.hour_cdf, rng.random(len(owner))) * HOUR
        moment += rng.integers(0, HOUR, len(owner))
        alive = (moment < people.life.active_until[owner]) & (day <= catalogue.last_day[product])
        owner, moment, distributor, product = owner[alive], moment[alive], distributor[alive], product[alive]
        found.append((owner, moment, distributor, product))
        again = rng.random(len(owner)) < _REPEAT_AGAIN
        owner, moment, distributor, product = owner[again], moment[again], distributor[again], product[again]
    return _append_single_lines(baskets, lines, found)


def _append_single_lines(
    baskets: Baskets, lines: Lines, found: list[tuple[np.ndarray, ...]]
) -> tuple[Baskets, Lines]:
    if not found:
        return baskets, lines
    owner, moment, distributor, product = (np.concatenate(parts) for parts in zip(*found, strict=True))
    first = len(baskets.owner)
    merged = Baskets(
        np.concatenate([baskets.owner, owner]),
        np.concatenate([baskets.time, moment]),
        np.concatenate([baskets.distributor, distributor]),
    )
    new_baskets = np.arange(first, first + len(owner))
    merged_lines = Lines(
        np.concatenate([lines.basket, new_baskets]),
        np.concatenate([lines.product, product]),
        np.concatenate([lines.alternative, np.full((len(owner), _ALTERNATIVES), -1)]),
    )
    return merged, merged_lines
