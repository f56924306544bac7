"""Orders, complaints and events of one chunk: what the platform records about the baskets.

The order book numbers baskets as orders (by time), prices each line (list price, discount,
coupons, festival prices) and gives it a status (a few cancelled orders, returned lines by
category, more for defective products). Complaints follow a line a few days later with its
product's complaint probability at the time of the order (a product with a defect onset turns
defective that day) and a reason (defective products mostly "quality_issue").
Events are the browsing before each line (view, click, cart, favourite; candidates viewed but
not chosen), shares by community members, and browse-only sessions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sources.simulator.baskets import Baskets, Lines
from sources.simulator.market import (
    CATEGORIES,
    COMPLAINT_REASONS,
    DAY,
    HOUR,
    REASON_SHARES_DEFECTIVE,
    REASON_SHARES_HEALTHY,
)
from sources.simulator.people import People
from sources.simulator.sampling import pick, sort_order
from sources.simulator.world import World

_VIEW, _CLICK, _CART, _FAVORITE, _SHARE = range(5)  # indices into market.EVENT_TYPES


@dataclass(frozen=True)
class OrderBook:
    """Order lines sorted by order, with every contract column as a numpy array."""

    order: np.ndarray  # global order numbers
    owner: np.ndarray  # index into the chunk's people
    distributor: np.ndarray
    product: np.ndarray
    quantity: np.ndarray
    unit_price: np.ndarray
    time: np.ndarray
    status: np.ndarray  # index into STATUSES
    alternative: np.ndarray  # (n, 2) products the buyer considered instead (-1: none)
    orders: int


def order_book(
    world: World, baskets: Baskets, lines: Lines, offset: int, rng: np.random.Generator
) -> OrderBook:
    catalogue, count = world.catalogue, len(baskets.owner)
    rank = np.empty(count, dtype=np.int64)
    rank[sort_order(baskets.time, baskets.owner)] = np.arange(count)
    order = sort_order(rank[lines.basket], lines.product)
    basket, product = lines.basket[order], lines.product[order]
    n, moment = len(basket), baskets.time[basket]
    consumable = np.array([c.repeat_days > 0 for c in CATEGORIES])[catalogue.category[product]]
    quantity = 1 + rng.poisson(np.where(consumable, 0.35, 0.08))
    coupon = np.where(rng.random(n) < 0.2, rng.uniform(0.9, 0.98, n), 1.0)
    price = catalogue.list_price[product] * catalogue.discount[product] * coupon
    price = np.maximum(np.round(price * world.calendar.price_factor[moment // DAY], 2), 0.01)
    status = _statuses(world, basket, product, moment, count, rng)
    return OrderBook(
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
    world: World,
    basket: np.ndarray,
    product: np.ndarray,
    moment: np.ndarray,
    baskets: int,
    rng: np.random.Generator,
) -> np.ndarray:
    catalogue = world.catalogue
    cancelled = rng.random(baskets) < world.config.cancel_rate
    return_rate = np.array([c.return_rate for c in CATEGORIES])[catalogue.category[product]]
    defective = catalogue.defective_at(product, moment)
    return_rate = return_rate * world.config.return_scale * np.where(defective, 2.5, 1.0)
    returned = rng.random(len(basket)) < return_rate
    return np.where(cancelled[basket], 1, np.where(returned, 2, 0))


@dataclass(frozen=True)
class Complaints:
    number: np.ndarray
    line: np.ndarray  # index into the order book
    time: np.ndarray
    reason: np.ndarray  # index into COMPLAINT_REASONS; len = no reason given


def draw_complaints(world: World, book: OrderBook, offset: int, rng: np.random.Generator) -> Complaints:
    catalogue = world.catalogue
    chance = np.where(book.status == 1, 0.0, catalogue.complaint_chance(book.product, book.time))
    line = np.flatnonzero(rng.random(len(book.product)) < chance)
    delay = (0.3 + rng.lognormal(np.log(2.5), 0.6, len(line))) * DAY
    moment = book.time[line] + delay.astype(np.int64)
    kept = moment < world.end
    line, moment = line[kept], moment[kept]
    shares = np.where(
        catalogue.defective_at(book.product[line], book.time[line])[:, None],
        REASON_SHARES_DEFECTIVE,
        REASON_SHARES_HEALTHY,
    )
    reason = pick(rng, shares) if len(line) else np.zeros(0, dtype=np.int64)
    reason[rng.random(len(line)) < 0.05] = len(COMPLAINT_REASONS)
    order = np.argsort(moment, kind="stable")
    return Complaints(offset + np.arange(len(line)), line[order], moment[order], reason[order])


@dataclass(frozen=True)
class Events:
    owner: np.ndarray
    product: np.ndarray
    distributor: np.ndarray  # -1: no distributor (organic browsing)
    kind: np.ndarray  # index into EVENT_TYPES
    time: np.ndarray

    @classmethod
    def concat(cls, parts: list[Events]) -> Events:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))

    def take(self, index: np.ndarray) -> Events:
        return Events(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


def draw_events(world: World, people: People, book: OrderBook, rng: np.random.Generator) -> Events:
    """Browsing before each line, shares by community members, and browse-only sessions."""
    parts = [
        _funnel_events(world, people, book, rng),
        _share_events(world, people, book, rng),
        _browse_sessions(world, people, rng),
    ]
    events = Events.concat(parts)
    order = sort_order(events.time, events.owner, events.kind, events.product, events.distributor + 1)
    events = events.take(order)
    repeated = np.ones(max(len(order) - 1, 0), dtype=bool)
    for field in Events.__dataclass_fields__:
        values = getattr(events, field)
        repeated &= values[1:] == values[:-1]
    return events.take(np.flatnonzero(~np.concatenate([[False], repeated])[: len(order)]))


def _not_before(
    world: World, people: People, owner: np.ndarray, product: np.ndarray, moment: np.ndarray
) -> np.ndarray:
    lower = np.maximum(people.life.registered[owner], world.catalogue.sale_start[product])
    return np.maximum(moment, np.maximum(lower, 0))


def _funnel_events(world: World, people: People, book: OrderBook, rng: np.random.Generator) -> Events:
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
    return Events.concat(parts)


def _line_events(
    world: World,
    people: People,
    book: OrderBook,
    line: np.ndarray,
    product: np.ndarray,
    kind: int,
    moment: np.ndarray,
) -> Events:
    """Events of the buyer of ``line``; dropped where they cannot come before the order."""
    owner = book.owner[line]
    moment = _not_before(world, people, owner, product, moment)
    ok = moment <= book.time[line]
    return Events(
        owner[ok],
        product[ok],
        book.distributor[line][ok],
        np.full(ok.sum(), kind),
        np.minimum(moment[ok], world.end - 1),
    )


def _share_events(world: World, people: People, book: OrderBook, rng: np.random.Generator) -> Events:
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
    return Events(sharer[ok], product[ok], book.distributor[line][ok], np.full(ok.sum(), _SHARE), when[ok])


def _browse_sessions(world: World, people: People, rng: np.random.Generator) -> Events:
    """Sessions of a view (sometimes a click) that lead to no order, also by consumers who never buy."""
    life = people.life
    sessions = rng.poisson((life.active_until - life.active_from) / DAY * 0.012)
    owner = np.repeat(np.arange(len(people)), sessions)
    moment = world.calendar.sample(life.active_from[owner], life.active_until[owner], rng)
    category = pick(rng, people.taste[owner]) if len(owner) else np.zeros(0, dtype=np.int64)
    product = world.offers.sample(moment // DAY * len(CATEGORIES) + category, rng.random(len(owner)))
    moment = np.minimum(_not_before(world, people, owner, product, moment), world.end - 1)
    distributor = np.where(rng.random(len(owner)) < 0.95, life.home[owner], -1)
    clicked = rng.random(len(owner)) < 0.3
    view = Events(owner, product, distributor, np.full(len(owner), _VIEW), moment)
    click = Events(
        owner[clicked],
        product[clicked],
        distributor[clicked],
        np.full(clicked.sum(), _CLICK),
        np.minimum(moment[clicked] + 20, world.end - 1),
    )
    return Events.concat([view, click])
