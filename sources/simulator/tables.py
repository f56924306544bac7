"""One chunk of consumers end to end, and every output file as an Arrow table.

``simulate_chunk`` runs people, baskets, the order book and events for one chunk and returns
its contract tables and truth files as Arrow tables. Ids are compact and fixed-width
(C0000001, D00001, P000001, S0001, O000000001, K0000001), built straight into Arrow string
buffers; times are seconds from the first simulated day turned into timestamps; the schemas
come from the contract (``sources.table_writer.contract_schema``), so every table reads back
with the contract's dtypes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.columns import Col, Table
from sources.simulator.baskets import (
    after_last_basket,
    draw_baskets,
    fill_baskets,
    repeat_purchases,
    settle_times,
    without_rebuys,
)
from sources.simulator.config import Truth
from sources.simulator.market import (
    AGE_BANDS,
    CATEGORIES,
    CITY_TIERS,
    COMPLAINT_REASONS,
    EVENT_TYPES,
    FAVOURITE_BOOST,
    FAVOURITE_BRANDS,
    GENDERS,
    OCCUPATIONS,
    STATUSES,
)
from sources.simulator.orderbook import (
    Complaints,
    Events,
    OrderBook,
    draw_complaints,
    draw_events,
    order_book,
)
from sources.simulator.people import People, draw_people
from sources.simulator.world import LIFELONG, World
from sources.table_writer import arrow_schema, contract_schema


@dataclass(frozen=True)
class Chunk:
    tables: dict[str, pa.Table]  # contract tables and truth files, by file stem
    orders: int
    complaints: int


def simulate_chunk(
    world: World, first: int, n: int, order_offset: int, complaint_offset: int, rng: np.random.Generator
) -> Chunk:
    people = draw_people(world, first, n, rng)
    baskets, people = draw_baskets(world, people, rng)
    lines = fill_baskets(world, people, baskets, rng)
    baskets, lines = without_rebuys(world, baskets, lines)
    baskets = settle_times(world, baskets, lines, rng)
    people = replace(people, life=after_last_basket(world, people.life, baskets))
    baskets, lines = repeat_purchases(world, people, baskets, lines, rng)
    book = order_book(world, baskets, lines, order_offset, rng)
    complaints = draw_complaints(world, book, complaint_offset, rng)
    tables = {
        Table.CONSUMERS: consumers_table(world, people),
        Table.ORDERS: orders_table(world, people, book),
        Table.COMPLAINTS: complaints_table(world, people, book, complaints),
        **people_truth_tables(world, people),
    }
    if world.config.events:
        tables[Table.EVENTS] = events_table(world, people, draw_events(world, people, book, rng))
    return Chunk(tables, book.orders, len(complaints.number))


_TRUTH_SCHEMAS = {
    Truth.CONSUMER_TASTES: arrow_schema(
        [
            (Col.CONSUMER_ID, "id"),
            (Col.CATEGORY, "category"),  # vocabulary: a value, not a column
            (Truth.WEIGHT, "money"),
        ]
    ),
    Truth.CONSUMER_BRAND_TASTES: arrow_schema(
        [(Col.CONSUMER_ID, "id"), (Col.SUPPLIER_ID, "id"), (Truth.WEIGHT, "money")]
    ),
    Truth.COMMUNITY_TASTES: arrow_schema(
        [
            (Col.DISTRIBUTOR_ID, "id"),
            (Col.CATEGORY, "category"),  # vocabulary: a value, not a column
            (Truth.WEIGHT, "money"),
        ]
    ),
    Truth.CONSUMER_TRAITS: arrow_schema(
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


def _ids(world: World, column: str, numbers: np.ndarray) -> pa.Array:
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


def _timestamps(world: World, seconds: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
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


def products_table(world: World) -> pa.Table:
    catalogue = world.catalogue
    return _table(
        contract_schema(Table.PRODUCTS),
        {
            Col.PRODUCT_ID: _ids(world, Col.PRODUCT_ID, np.arange(len(catalogue))),
            Col.SUPPLIER_ID: _ids(world, Col.SUPPLIER_ID, catalogue.supplier),
            Col.CATEGORY: _labels(_CATEGORY_NAMES, catalogue.category),
            Col.LIST_PRICE: pa.array(catalogue.list_price),
            Col.SALE_START: _timestamps(world, catalogue.sale_start),
            Col.SALE_END: _timestamps(world, catalogue.sale_end, catalogue.open_end),
        },
    )


def distributors_table(world: World) -> pa.Table:
    communities = world.communities
    return _table(
        contract_schema(Table.DISTRIBUTORS),
        {
            Col.DISTRIBUTOR_ID: _ids(world, Col.DISTRIBUTOR_ID, np.arange(world.config.distributors)),
            Col.JOINED_AT: _timestamps(world, communities.joined),
            Col.OCCUPATION: _labels(tuple(OCCUPATIONS), communities.occupation),
            Col.CITY_TIER: _labels(CITY_TIERS, communities.city_tier),
        },
    )


def consumers_table(world: World, people: People) -> pa.Table:
    return _table(
        contract_schema(Table.CONSUMERS),
        {
            Col.CONSUMER_ID: _ids(world, Col.CONSUMER_ID, people.number),
            Col.REGISTERED_AT: _timestamps(world, people.life.registered),
            Col.DISTRIBUTOR_ID: _ids(world, Col.DISTRIBUTOR_ID, people.life.home),
            Col.AGE_BAND: _labels(AGE_BANDS, people.age),
            Col.GENDER: _labels(GENDERS, people.gender),
            Col.CITY_TIER: _labels(CITY_TIERS, people.city_tier),
        },
    )


def orders_table(world: World, people: People, book: OrderBook) -> pa.Table:
    return _table(
        contract_schema(Table.ORDERS),
        {
            Col.ORDER_ID: _ids(world, Col.ORDER_ID, book.order),
            Col.CONSUMER_ID: _ids(world, Col.CONSUMER_ID, people.number[book.owner]),
            Col.DISTRIBUTOR_ID: _ids(world, Col.DISTRIBUTOR_ID, book.distributor),
            Col.PRODUCT_ID: _ids(world, Col.PRODUCT_ID, book.product),
            Col.QUANTITY: pa.array(book.quantity),
            Col.UNIT_PRICE: pa.array(book.unit_price),
            Col.ORDERED_AT: _timestamps(world, book.time),
            Col.STATUS: _labels(STATUSES, book.status),
        },
    )


def complaints_table(world: World, people: People, book: OrderBook, complaints: Complaints) -> pa.Table:
    line = complaints.line
    return _table(
        contract_schema(Table.COMPLAINTS),
        {
            Col.COMPLAINT_ID: _ids(world, Col.COMPLAINT_ID, complaints.number),
            Col.ORDER_ID: _ids(world, Col.ORDER_ID, book.order[line]),
            Col.PRODUCT_ID: _ids(world, Col.PRODUCT_ID, book.product[line]),
            Col.CONSUMER_ID: _ids(world, Col.CONSUMER_ID, people.number[book.owner[line]]),
            Col.COMPLAINED_AT: _timestamps(world, complaints.time),
            Col.REASON: _labels(COMPLAINT_REASONS, complaints.reason),
        },
    )


def events_table(world: World, people: People, events: Events) -> pa.Table:
    return _table(
        contract_schema(Table.EVENTS),
        {
            Col.CONSUMER_ID: _ids(world, Col.CONSUMER_ID, people.number[events.owner]),
            Col.DISTRIBUTOR_ID: _ids(world, Col.DISTRIBUTOR_ID, events.distributor),
            Col.PRODUCT_ID: _ids(world, Col.PRODUCT_ID, events.product),
            Col.EVENT_TYPE: _labels(EVENT_TYPES, events.kind),
            Col.EVENT_AT: _timestamps(world, events.time),
        },
    )


def people_truth_tables(world: World, people: People) -> dict[str, pa.Table]:
    return {
        Truth.CONSUMER_TASTES: _consumer_tastes_table(world, people),
        Truth.CONSUMER_BRAND_TASTES: _consumer_brands_table(world, people),
        Truth.CONSUMER_TRAITS: _consumer_traits_table(world, people),
    }


def _consumer_tastes_table(world: World, people: People) -> pa.Table:
    n, categories = len(people), len(CATEGORIES)
    columns = {
        Col.CONSUMER_ID: _ids(world, Col.CONSUMER_ID, np.repeat(people.number, categories)),
        Col.CATEGORY: _labels(_CATEGORY_NAMES, np.tile(np.arange(categories), n)),
        Truth.WEIGHT: pa.array(people.taste.ravel()),
    }
    return _table(_TRUTH_SCHEMAS[Truth.CONSUMER_TASTES], columns)


def _consumer_brands_table(world: World, people: People) -> pa.Table:
    owner = np.repeat(people.number, FAVOURITE_BRANDS)
    distinct = np.ones(people.brands.shape, dtype=bool)
    distinct[:, 1:] = people.brands[:, 1:] != people.brands[:, :1]
    columns = {
        Col.CONSUMER_ID: _ids(world, Col.CONSUMER_ID, owner[distinct.ravel()]),
        Col.SUPPLIER_ID: _ids(world, Col.SUPPLIER_ID, people.brands[distinct]),
        Truth.WEIGHT: pa.array(np.full(distinct.sum(), FAVOURITE_BOOST)),
    }
    return _table(_TRUTH_SCHEMAS[Truth.CONSUMER_BRAND_TASTES], columns)


def _consumer_traits_table(world: World, people: People) -> pa.Table:
    churned = people.life.churn
    columns = {
        Col.CONSUMER_ID: _ids(world, Col.CONSUMER_ID, people.number),
        Truth.PURCHASE_RATE: pa.array(people.rate),
        Truth.PRICE_SENSITIVITY: pa.array(people.price_sensitivity),
        Truth.CHURNED_AT: _timestamps(world, churned, churned >= world.end),
    }
    return _table(_TRUTH_SCHEMAS[Truth.CONSUMER_TRAITS], columns)


def community_tastes_table(world: World) -> pa.Table:
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


def _onset_dates(world: World, onset: np.ndarray) -> list[str]:
    """Onset seconds as ISO dates; empty for a lifelong defect."""
    start = pd.Timestamp(world.config.start)
    return ["" if s == LIFELONG else (start + pd.Timedelta(seconds=int(s))).date().isoformat() for s in onset]


def defective_frame(world: World) -> pd.DataFrame:
    catalogue = world.catalogue
    planted = np.flatnonzero(catalogue.defective)
    baseline = np.array([c.complaint_rate for c in CATEGORIES])[catalogue.category[planted]]
    return pd.DataFrame(
        {
            Col.PRODUCT_ID: _ids(world, Col.PRODUCT_ID, planted).to_pylist(),
            Col.CATEGORY: [CATEGORIES[i].name for i in catalogue.category[planted]],
            Truth.COMPLAINT_PROBABILITY: np.round(catalogue.complaint_probability[planted], 6),
            Truth.CATEGORY_BASELINE: baseline,
            Truth.DEFECT_ONSET: _onset_dates(world, catalogue.defect_onset[planted]),
        }
    )


def complaint_rates_frame(world: World) -> pd.DataFrame:
    """Every product's complaint probability while healthy and its category's baseline: what
    the quality benchmark needs to tell a healthy product from one whose own rate is above its
    category's alarm value. Not written by ``simulate``."""
    catalogue = world.catalogue
    return pd.DataFrame(
        {
            Col.PRODUCT_ID: _ids(world, Col.PRODUCT_ID, np.arange(len(catalogue.category))).to_pylist(),
            Truth.COMPLAINT_PROBABILITY: catalogue.healthy_probability,
            Truth.CATEGORY_BASELINE: np.array([c.complaint_rate for c in CATEGORIES])[catalogue.category],
        }
    )
