"""The consumer × product interaction table that every recommender is fitted on, as of a date.

``build_interactions(con, as_of, config)`` reads the engine's views (``orders`` and, when
present, ``events`` and ``complaints``) up to ``upper_bound(as_of)`` (the end of the as-of
date, ``AsOf.end``; or an exact instant for the benchmark protocols) and from ``start`` when
given, and returns one row per (consumer, product) pair:

- every **paid order** containing the product adds ``purchase_weight`` (an order with two
  lines of the same product counts once: weights count baskets, not lines);
- every **returned line** adds ``return_weight`` (negative by default: it counts against);
- every **event** adds ``event_weights[event_type]`` (views, clicks, carts, favourites, shares);
- every **complaint** by the consumer about the product adds ``complaint_weight`` (negative);
- each contribution is multiplied by ``0.5 ** (age_days / half_life_days)``, its age being
  measured from the end of the as-of date (no decay when ``half_life_days`` is empty).

Cancelled lines count for nothing. Pairs whose summed weight is ≤ 0 stay in the table
(the recommenders never recommend them: see ``models.recommenders.base``). Besides
``weight`` the table carries ``purchases`` (distinct paid orders), ``first_purchase_at``,
``last_purchase_at`` and ``last_interaction_at`` for models that use frequency, recency and
repurchase intervals directly.

``consumer_profiles`` and ``product_profiles`` give the side features the feature-aware
models read: home distributor and age band / city tier; category, supplier (brand) and
price band.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
import weakref
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from features.asof import AsOf
from features.columns import Col, EventType, Table
from features.contract import UNKNOWN_CATEGORY
from features.engine import counted_query, has_table
from features.sql import ident, literal, render
from features.vocabulary import InteractionCol

INTERACTION_COLUMNS: tuple[str, ...] = (
    Col.CONSUMER_ID,
    Col.PRODUCT_ID,
    InteractionCol.WEIGHT,
    InteractionCol.PURCHASES,
    InteractionCol.FIRST_PURCHASE_AT,
    InteractionCol.LAST_PURCHASE_AT,
    InteractionCol.LAST_INTERACTION_AT,
)
CONSUMER_PROFILE_COLUMNS: tuple[str, ...] = (
    Col.CONSUMER_ID,
    InteractionCol.HOME_DISTRIBUTOR_ID,
    Col.AGE_BAND,
    Col.CITY_TIER,
)
PRODUCT_PROFILE_COLUMNS: tuple[str, ...] = (
    Col.PRODUCT_ID,
    Col.CATEGORY,
    Col.SUPPLIER_ID,
    InteractionCol.PRICE_BAND,
)

Cutoff = AsOf | datetime
"""Where a history ends: an ``AsOf`` (the end of its day) or an exact instant (the Online Retail
protocol of the benchmarks cuts at the latest order line's time)."""

DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    EventType.VIEW: 0.05,
    EventType.CLICK: 0.1,
    EventType.CART: 0.3,
    EventType.FAVORITE: 0.3,
    EventType.SHARE: 0.2,
}


class InteractionConfig(BaseModel):
    """How orders, events, returns and complaints turn into one interaction weight per pair."""

    model_config = ConfigDict(extra="forbid")

    purchase_weight: float = Field(1.0, gt=0, description="Weight of one paid order with the product.")
    half_life_days: float | None = Field(
        90.0, gt=0, description="Recency half-life in days; empty = no decay (plain counts)."
    )
    return_weight: float = Field(-1.0, le=0, description="Weight of one returned line (counts against).")
    complaint_weight: float = Field(-2.0, le=0, description="Weight of one complaint (counts against).")
    use_events: bool = Field(True, description="Add browse/share events when the events table exists.")
    event_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS),
        description="Weight per event type (view, click, cart, favorite, share); missing types count 0.",
    )
    window_days: int | None = Field(
        None, gt=0, description="Only the trailing window of this many days; empty = all history."
    )


def build_interactions(
    con: duckdb.DuckDBPyConnection,
    as_of: Cutoff,
    config: InteractionConfig | None = None,
    start: date | None = None,
    ordered: bool = True,
    consumers: pd.Index | None = None,
) -> pd.DataFrame:
    """One row per (consumer, product) pair seen before ``upper_bound(as_of)``; ``INTERACTION_COLUMNS``.

    ``start`` (inclusive, a date) or ``config.window_days`` bound the history from below;
    the later of the two wins. Sorted by consumer id then product id; ``ordered=False`` leaves
    the rows in DuckDB's order, for callers that do not depend on it (``InteractionData.from_frames``
    gives the same data either way): the sort is about a quarter of the query at 1M lines.
    ``consumers``: only these consumers' rows (the engine reads their ids from a Parquet file
    written for the query, under the spill folder, removed after it).
    """
    sql, params = interactions_query(con, as_of, config, start, ordered and consumers is None)
    with ExitStack() as stack:
        if consumers is not None:
            folder = Path(tempfile.mkdtemp(prefix="siyu-consumers-", dir=_spill_folder(con)))
            stack.callback(shutil.rmtree, folder, True)
            path = folder / "consumers.parquet"
            pd.DataFrame({Col.CONSUMER_ID: pd.Index(consumers).astype(str)}).to_parquet(path, index=False)
            sql = render(
                "SELECT * FROM ({sql}) "
                "WHERE {consumer_id} IN (SELECT {consumer_id} FROM read_parquet({path})) {order}",
                sql=sql,
                path=literal(str(path)),
                order=render("ORDER BY {consumer_id}, {product_id}") if ordered else "",
            )
        result = con.execute(sql, params)
        with warnings.catch_warnings():
            # con.sql() would avoid one copy of the Arrow buffers, but refuses to run while another
            # builder left a result open on the shared connection; the copy is compact Arrow data.
            warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning)
            frame = result.to_arrow_table().to_pandas(types_mapper=_arrow_strings)
    frame[InteractionCol.WEIGHT] = frame[InteractionCol.WEIGHT].astype("float64")
    frame[InteractionCol.PURCHASES] = frame[InteractionCol.PURCHASES].astype("int64")
    return frame[list(INTERACTION_COLUMNS)]


def interaction_ids(
    con: duckdb.DuckDBPyConnection, as_of: Cutoff, config: InteractionConfig | None = None
) -> tuple[pd.Index, pd.Index]:
    """The consumers and the products of ``build_interactions``' rows (pairs of weight ≤ 0
    included), each sorted: ``InteractionData``'s rows and columns of those rows."""
    sql, params = interactions_query(con, as_of, config, ordered=False)
    ids = []
    for column in (Col.CONSUMER_ID, Col.PRODUCT_ID):
        found = con.execute(
            render("SELECT DISTINCT {column} FROM ({sql})", column=ident(column), sql=sql), params
        )
        values = found.df().iloc[:, 0].dropna().astype(str).to_numpy(dtype=object)
        ids.append(pd.Index(np.sort(values), name=column))
    return ids[0], ids[1]


def buyer_ids(
    con: duckdb.DuckDBPyConnection, as_of: Cutoff, config: InteractionConfig | None = None
) -> pd.Index:
    """The consumers (sorted) with a bought pair among ``build_interactions``' rows: positive
    weight and at least one paid order (``InteractionData.bought``'s consumers)."""
    sql, params = interactions_query(con, as_of, config, ordered=False)
    found = con.execute(
        render(
            "SELECT DISTINCT {consumer_id} FROM ({sql}) WHERE {weight} > 0 AND {purchases} > 0",
            sql=sql,
            weight=ident(InteractionCol.WEIGHT),
            purchases=ident(InteractionCol.PURCHASES),
        ),
        params,
    )
    values = found.df().iloc[:, 0].dropna().astype(str).to_numpy(dtype=object)
    return pd.Index(np.sort(values), name=Col.CONSUMER_ID)


def interactions_query(
    con: duckdb.DuckDBPyConnection,
    as_of: Cutoff,
    config: InteractionConfig | None = None,
    start: date | None = None,
    ordered: bool = True,
) -> tuple[str, dict[str, object]]:
    """The query of ``build_interactions``' rows and its parameters (for the engine to run without
    collecting the rows: a Spark scoring part reads its own consumers' rows of it)."""
    config = config or InteractionConfig()
    end = upper_bound(as_of)
    lower = _lower_bound(end, start, config.window_days)
    kept = _KEPT.get(con, {}).get((end, lower, config.model_dump_json()))
    if kept is not None:
        order = render("ORDER BY {consumer_id}, {product_id}") if ordered else ""
        return f"SELECT {', '.join(INTERACTION_COLUMNS)} FROM {kept} {order}", {}
    shared = _SHARED.get(con)
    slot = shared.slot(config, end, lower) if shared is not None else None
    if shared is not None and slot is not None:
        return shared.select(slot, ordered), {}
    sql, params = _aggregation(con, config, end, lower, ordered)
    return sql, {key: value for key, value in params.items() if f"${key}" in sql}


def _aggregation(
    con: duckdb.DuckDBPyConnection, config: InteractionConfig, end: datetime, lower: datetime, ordered: bool
) -> tuple[str, dict[str, object]]:
    """The one-cutoff aggregation query of ``build_interactions`` and its parameters."""
    parts = [render(_ORDERS_SQL)]
    if config.use_events and has_table(con, Table.EVENTS) and any(config.event_weights.values()):
        parts.append(render(_EVENTS_SQL, event_weight=_event_weight_sql(config.event_weights)))
    if config.complaint_weight != 0 and has_table(con, Table.COMPLAINTS):
        parts.append(render(_COMPLAINTS_SQL))
    sql = render(
        _INTERACTIONS_SQL,
        contributions=" UNION ALL ".join(parts),
        decay=_decay_sql(config),
        order=render("ORDER BY {consumer_id}, {product_id}") if ordered else "",
    )
    return sql, {"end": end, "lower": lower, **_weights(config)}


def _weights(config: InteractionConfig) -> dict[str, object]:
    return {
        "purchase_weight": config.purchase_weight,
        "return_weight": config.return_weight,
        "complaint_weight": config.complaint_weight,
    }


@contextmanager
def shared_interactions(
    con: duckdb.DuckDBPyConnection, cutoffs: Sequence[Cutoff], config: InteractionConfig | None = None
) -> Iterator[None]:
    """Inside the block, ``build_interactions(con, c, config)`` for each ``c`` in ``cutoffs`` reads
    its pairs from ONE aggregation over orders, events and complaints made on entry instead of
    aggregating the history again per cutoff.

    The nightly builds the interaction data at three cutoffs (evaluation, its tuning window, the
    as-of date); each is an aggregation of the whole history. The shared aggregation groups the
    contributions once and keeps, per pair, each cutoff's own sums (the contributions within that
    cutoff's bounds, decayed from its end): the same rows, contributions and formulas as the
    separate query, so the same values. Other cutoffs, a ``start`` or another config aggregate as
    before. The aggregation is written to a Parquet file in a temporary folder (under DuckDB's
    spill folder when one is set), so that it holds no memory while the steps in the block run;
    the folder is removed on exit.
    """
    config = config or InteractionConfig()
    bounds = list(dict.fromkeys(_bounds(upper_bound(cutoff), config) for cutoff in cutoffs))
    if len(bounds) < 2 or _SHARED.get(con) is not None:
        yield
        return
    folder = Path(tempfile.mkdtemp(prefix="siyu-shared-interactions-", dir=_spill_folder(con)))
    try:
        path = folder / "pairs.parquet"
        sql, params = _shared_aggregation(con, config, bounds)
        _write_counted(con, f"COPY ({sql}) TO {literal(str(path))} (FORMAT parquet)", params, config)
        _SHARED[con] = _Shared(
            f"read_parquet({literal(str(path))})",
            config.model_dump_json(),
            {bound: slot for slot, bound in enumerate(bounds)},
        )
        yield
    finally:
        _SHARED.pop(con, None)
        shutil.rmtree(folder, ignore_errors=True)


def keep_interactions(
    con: duckdb.DuckDBPyConnection, as_of: Cutoff, config: InteractionConfig | None = None
) -> None:
    """Write the interaction rows as of ``as_of`` once, as Parquet under the spill folder, and have
    every later ``interactions_query`` / ``build_interactions`` of that cutoff and config on
    ``con`` read them: tonight's interaction data, the engine's popularity counts
    (``features.popularity``) and, on Spark, the scoring parts' rows
    (``models.recommenders.spark_scoring``) are then one aggregation of the history, not three.
    The folder goes with the connection."""
    config = config or InteractionConfig()
    end = upper_bound(as_of)
    key = (end, _lower_bound(end, None, config.window_days), config.model_dump_json())
    kept = _KEPT.setdefault(con, {})
    if key in kept:
        return
    sql, params = interactions_query(con, as_of, config, ordered=False)
    folder = Path(tempfile.mkdtemp(prefix="siyu-night-interactions-", dir=_spill_folder(con)))
    weakref.finalize(con, shutil.rmtree, folder, True)
    path = folder / "pairs.parquet"
    con.execute(f"COPY ({sql}) TO {literal(str(path))} (FORMAT parquet)", params)
    kept[key] = f"read_parquet({literal(str(path))})"


def _write_counted(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, object], config: InteractionConfig
) -> None:
    """Run the shared aggregation's ``COPY`` with progress counts (``features.engine.counted_query``:
    DuckDB's share done of the contribution rows it scans; at 10M lines the query runs for half a
    minute). Another engine (Spark) runs it as it is."""
    if not isinstance(con, duckdb.DuckDBPyConnection):
        con.execute(sql, params)
        return
    tables = [Table.ORDERS]
    if config.use_events and has_table(con, Table.EVENTS):
        tables.append(Table.EVENTS)
    if config.complaint_weight != 0 and has_table(con, Table.COMPLAINTS):
        tables.append(Table.COMPLAINTS)
    rows = sum(int(con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]) for table in tables)
    counted_query(con, sql, params, "shared interaction data: aggregating history", rows)


def _spill_folder(con: duckdb.DuckDBPyConnection) -> Path | None:
    """DuckDB's spill folder when the connection set one that exists (else the system's temp)."""
    found = con.execute("SELECT current_setting('temp_directory')").fetchone()
    folder = Path(found[0]) if found and found[0] else None
    return folder if folder is not None and folder.is_dir() else None


@dataclass(frozen=True)
class _Shared:
    """The shared aggregation of ``shared_interactions``: where it is (a table expression), its
    config and its cutoffs' slots."""

    table: str
    config: str
    slots: dict[tuple[datetime, datetime], int]

    def slot(self, config: InteractionConfig, end: datetime, lower: datetime) -> int | None:
        """The slot of the cutoff bounded by (``end``, ``lower``) under ``config``; None: not shared."""
        return self.slots.get((end, lower)) if config.model_dump_json() == self.config else None

    def select(self, slot: int, ordered: bool) -> str:
        """The query of one slot's pairs with ``build_interactions``' columns."""
        return render(
            _SHARED_SELECT_SQL,
            table=self.table,
            i=slot,
            order=render("ORDER BY {consumer_id}, {product_id}") if ordered else "",
        )


_SHARED: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, _Shared] = weakref.WeakKeyDictionary()
# keep_interactions' rows: (end, lower bound, config) → the table expression of their Parquet
_KEPT: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, dict[tuple[datetime, datetime, str], str]] = (
    weakref.WeakKeyDictionary()
)


def _bounds(end: datetime, config: InteractionConfig) -> tuple[datetime, datetime]:
    return end, _lower_bound(end, None, config.window_days)


def _shared_aggregation(
    con: duckdb.DuckDBPyConnection, config: InteractionConfig, bounds: list[tuple[datetime, datetime]]
) -> tuple[str, dict[str, object]]:
    """One aggregation with every slot's pair columns (``weight<i>`` .. ``seen<i>``)."""
    slots = range(len(bounds))

    def within(time: str, i: int) -> str:
        return f"{time} < $end{i} AND {time} >= $lower{i}"

    parts = [
        render(
            _SHARED_ORDERS_SQL,
            columns=", ".join(
                render(_SHARED_ORDER_COLUMNS, i=i, within=within(render("{ordered_at}"), i)) for i in slots
            ),
        )
    ]
    row_columns = ", ".join(
        f"CASE WHEN {within('t', i)} THEN t END AS h{i}, w AS r{i}, FALSE AS p{i}" for i in slots
    )
    if config.use_events and has_table(con, Table.EVENTS) and any(config.event_weights.values()):
        parts.append(
            render(
                _SHARED_EVENTS_SQL, columns=row_columns, event_weight=_event_weight_sql(config.event_weights)
            )
        )
    if config.complaint_weight != 0 and has_table(con, Table.COMPLAINTS):
        parts.append(render(_SHARED_COMPLAINTS_SQL, columns=row_columns))
    decayed = ", ".join(
        render(_SHARED_DECAYED_COLUMNS, i=i, decay=_decay_sql(config, f"$end{i}", f"h{i}")) for i in slots
    )
    sums = ", ".join(render(_SHARED_PAIR_COLUMNS, i=i) for i in slots)
    sql = render(_SHARED_PAIRS_SQL, contributions=" UNION ALL ".join(parts), decayed=decayed, sums=sums)
    params: dict[str, object] = {
        "end": max(end for end, _ in bounds),
        "lower": min(lower for _, lower in bounds),
        **_weights(config),
    }
    for i, (end, lower) in enumerate(bounds):
        params[f"end{i}"], params[f"lower{i}"] = end, lower
    return sql, {key: value for key, value in params.items() if f"${key}" in sql}


def purchased_pairs(con: duckdb.DuckDBPyConnection, after: Cutoff, until: Cutoff) -> pd.DataFrame:
    """Distinct (consumer, product) pairs with a paid line from ``upper_bound(after)`` up to
    ``upper_bound(until)``: the truth of an evaluation window. Columns consumer_id, product_id; sorted."""
    sql = render(
        "SELECT DISTINCT {consumer_id}, {product_id} FROM paid_lines "
        "WHERE {ordered_at} >= $start AND {ordered_at} < $end "
        "ORDER BY {consumer_id}, {product_id}"
    )
    return con.execute(sql, {"start": upper_bound(after), "end": upper_bound(until)}).df()


def history_fingerprint(con: duckdb.DuckDBPyConnection, as_of: Cutoff) -> str:
    """A digest of the order lines before ``upper_bound(as_of)`` (consumer, product, order, time;
    not the status, which a later return may change): equal on two nights when the later night's
    history up to that date is the earlier one's, whatever was appended after it."""
    sql = render(
        "SELECT count(*), coalesce(sum(hash({consumer_id}, {product_id}, {order_id}, {ordered_at})"
        "::HUGEINT), 0) FROM {orders} WHERE {ordered_at} < $end"
    )
    lines, digest = con.execute(sql, {"end": upper_bound(as_of)}).fetchone() or (0, 0)
    return f"{int(lines)}:{int(digest):x}"


def latest_activity(con: duckdb.DuckDBPyConnection) -> datetime:
    """Timestamp of the latest order line (any status)."""
    found = con.execute(render("SELECT max({ordered_at}) FROM {orders}")).fetchone()
    if not found or found[0] is None:
        from features.errors import SiyuError

        raise SiyuError("orders: no order lines\n  fix: check the data directory")
    return pd.Timestamp(found[0]).to_pydatetime()


def consumer_profiles(con: duckdb.DuckDBPyConnection, as_of: Cutoff) -> pd.DataFrame:
    """One row per consumer known by the end of ``as_of``; ``CONSUMER_PROFILE_COLUMNS``.

    The home distributor is the one in ``consumers`` when that table exists, else the
    distributor of most of the consumer's order lines (ties: smallest id). Age band and
    city tier are empty when the table or the column is missing.
    """
    sql, params = consumer_profiles_query(con, as_of)
    return con.execute(sql, params).df()[list(CONSUMER_PROFILE_COLUMNS)]


def consumer_profiles_query(con: duckdb.DuckDBPyConnection, as_of: Cutoff) -> tuple[str, dict[str, object]]:
    """The query of ``consumer_profiles``' rows (ordered by consumer id) and its parameters."""
    end = upper_bound(as_of)
    by_orders = render(_HOME_FROM_ORDERS_SQL)
    if not has_table(con, Table.CONSUMERS):
        sql = render(
            "SELECT {consumer_id}, home AS {home}, NULL::VARCHAR AS {age_band}, NULL::VARCHAR AS {city_tier} "
            "FROM ({by_orders}) ORDER BY {consumer_id}",
            by_orders=by_orders,
            home=InteractionCol.HOME_DISTRIBUTOR_ID,
        )
        return sql, {"end": end}
    present = set(con.execute(f'SELECT * FROM "{Table.CONSUMERS}" LIMIT 0').df().columns)
    optional = {
        column: (f'c."{column}"::VARCHAR' if column in present else "NULL::VARCHAR")
        for column in (Col.AGE_BAND, Col.CITY_TIER)
    }
    sql = render(
        _PROFILES_WITH_CONSUMERS_SQL,
        by_orders=by_orders,
        home=InteractionCol.HOME_DISTRIBUTOR_ID,
        age_sql=optional[Col.AGE_BAND],
        tier_sql=optional[Col.CITY_TIER],
    )
    return sql, {"end": end}


def product_profiles(con: duckdb.DuckDBPyConnection, price_bands: int = 5) -> pd.DataFrame:
    """One row per product: category, supplier (brand) and price band; ``PRODUCT_PROFILE_COLUMNS``.

    The price band is the list price's quantile within its category, ``p1`` (cheapest) to
    ``p<price_bands>``; an empty category reads as ``unknown``.
    """
    sql = render(
        _PRODUCT_PROFILES_SQL,
        unknown=literal(UNKNOWN_CATEGORY),
        bands=int(price_bands),
        band=InteractionCol.PRICE_BAND,
    )
    return con.execute(sql).df()[list(PRODUCT_PROFILE_COLUMNS)]


def _arrow_strings(arrow_type: pa.DataType) -> pd.StringDtype | None:
    """Keep ids as Arrow-backed strings: a tenth of the memory of Python string objects."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow")
    return None


def upper_bound(cutoff: Cutoff | date) -> datetime:
    """The exclusive upper time bound of ``cutoff``: an ``AsOf`` (or a plain date) ends with
    its day (``AsOf.end``); a ``datetime`` is taken as it is (an exact instant)."""
    if isinstance(cutoff, datetime):
        return pd.Timestamp(cutoff).to_pydatetime()
    return AsOf.of(cutoff).end


def cutoff_before(cutoff: Cutoff | date, days: int) -> Cutoff:
    """The cutoff ``days`` earlier: ``AsOf.days_before`` for an as-of (or a plain date), the
    same clock time for an exact instant."""
    if isinstance(cutoff, datetime):
        return cutoff - timedelta(days=days)
    return AsOf.of(cutoff).days_before(days)


def _lower_bound(end: datetime, start: date | None, window_days: int | None) -> datetime:
    bounds = [datetime(1900, 1, 1)]
    if start is not None:
        bounds.append(datetime.combine(start, datetime.min.time()))
    if window_days is not None:
        bounds.append(end - timedelta(days=window_days))
    return max(bounds)


def _decay_sql(config: InteractionConfig, end: str = "$end", happened: str = "happened_at") -> str:
    if config.half_life_days is None:
        return "1.0"
    return f"pow(0.5, epoch({end} - {happened}) / 86400.0 / {float(config.half_life_days)!r})"


def _event_weight_sql(weights: dict[str, float]) -> str:
    cases = " ".join(
        f"WHEN {literal(event_type)} THEN {float(weight)!r}" for event_type, weight in sorted(weights.items())
    )
    return render("CASE {event_type} ") + cases + " ELSE 0.0 END"


# Each contribution: consumer, product, happened_at, weight before decay, is_purchase, order id.
_ORDERS_SQL = """
SELECT {consumer_id} AS consumer, {product_id} AS product, min({ordered_at}) AS happened_at,
       CASE WHEN bool_or({status} = {paid}) THEN $purchase_weight ELSE 0.0 END
         + $return_weight * count(*) FILTER (WHERE {status} = {returned}) AS raw_weight,
       bool_or({status} = {paid}) AS is_purchase
FROM {orders}
WHERE {ordered_at} < $end AND {ordered_at} >= $lower AND {status} <> {cancelled}
GROUP BY {consumer_id}, {product_id}, {order_id}
"""

_EVENTS_SQL = """
SELECT {consumer_id}, {product_id}, {event_at}, {event_weight}, FALSE
FROM {events}
WHERE {event_at} < $end AND {event_at} >= $lower
"""

_COMPLAINTS_SQL = """
SELECT {consumer_id}, {product_id}, {complained_at}, $complaint_weight, FALSE
FROM {complaints}
WHERE {complained_at} < $end AND {complained_at} >= $lower
"""

_INTERACTIONS_SQL = """
WITH contributions AS ({contributions})
SELECT consumer AS {consumer_id}, product AS {product_id},
       sum(raw_weight * {decay}) AS weight,
       count(*) FILTER (WHERE is_purchase) AS purchases,
       min(happened_at) FILTER (WHERE is_purchase) AS first_purchase_at,
       max(happened_at) FILTER (WHERE is_purchase) AS last_purchase_at,
       max(happened_at) AS last_interaction_at
FROM contributions
GROUP BY consumer, product
{order}
"""

_HOME_FROM_ORDERS_SQL = """
SELECT {consumer_id}, arg_min({distributor_id}, sort_key) AS home
FROM (
    SELECT {consumer_id}, {distributor_id}, (-count(*), {distributor_id}) AS sort_key
    FROM {orders} WHERE {ordered_at} < $end
    GROUP BY {consumer_id}, {distributor_id}
)
GROUP BY {consumer_id}
"""

_PROFILES_WITH_CONSUMERS_SQL = """
WITH by_orders AS ({by_orders}),
registered AS (
    SELECT c.{consumer_id}, c.{distributor_id} AS home, {age_sql} AS {age_band}, {tier_sql} AS {city_tier}
    FROM {consumers} c WHERE c.{registered_at} < $end
)
SELECT coalesce(r.{consumer_id}, o.{consumer_id}) AS {consumer_id},
       coalesce(r.home, o.home) AS {home}, r.{age_band}, r.{city_tier}
FROM registered r FULL OUTER JOIN by_orders o ON r.{consumer_id} = o.{consumer_id}
ORDER BY {consumer_id}
"""

_PRODUCT_PROFILES_SQL = """
SELECT {product_id}, coalesce({category}, {unknown}) AS {category}, {supplier_id},
       'p' || ntile({bands}) OVER (
           PARTITION BY coalesce({category}, {unknown}) ORDER BY {list_price}, {product_id}
       ) AS {band}
FROM {products}
ORDER BY {product_id}
"""

# The shared aggregation (``shared_interactions``): the same contributions with one set of columns
# per cutoff slot i: h<i> when it happened (NULL: not within slot i's bounds), r<i> its weight
# before decay, p<i> whether it is a purchase; an order's columns over its lines within the slot.
_SHARED_ORDER_COLUMNS = """
min({ordered_at}) FILTER (WHERE {within}) AS h{i},
CASE WHEN bool_or({status} = {paid}) FILTER (WHERE {within}) THEN $purchase_weight ELSE 0.0 END
  + $return_weight * count(*) FILTER (WHERE {status} = {returned} AND {within}) AS r{i},
coalesce(bool_or({status} = {paid}) FILTER (WHERE {within}), FALSE) AS p{i}
"""

_SHARED_ORDERS_SQL = """
SELECT {consumer_id} AS consumer, {product_id} AS product, {columns}
FROM {orders}
WHERE {ordered_at} < $end AND {ordered_at} >= $lower AND {status} <> {cancelled}
GROUP BY {consumer_id}, {product_id}, {order_id}
"""

_SHARED_EVENTS_SQL = """
SELECT consumer, product, {columns}
FROM (SELECT {consumer_id} AS consumer, {product_id} AS product, {event_at} AS t, {event_weight} AS w
      FROM {events} WHERE {event_at} < $end AND {event_at} >= $lower)
"""

_SHARED_COMPLAINTS_SQL = """
SELECT consumer, product, {columns}
FROM (SELECT {consumer_id} AS consumer, {product_id} AS product, {complained_at} AS t,
             $complaint_weight AS w
      FROM {complaints} WHERE {complained_at} < $end AND {complained_at} >= $lower)
"""

# Each slot's decayed weight and purchase time, NULL outside the slot: the pair sums below then
# need no FILTER (NULLs are skipped, the other rows summed in the same order as the slot's own query).
_SHARED_DECAYED_COLUMNS = """
CASE WHEN h{i} IS NOT NULL THEN r{i} * {decay} END AS w{i},
CASE WHEN p{i} THEN h{i} END AS hp{i},
h{i}
"""

_SHARED_PAIR_COLUMNS = """
sum(w{i}) AS weight{i}, count(hp{i}) AS purchases{i}, min(hp{i}) AS first{i}, max(hp{i}) AS last{i},
max(h{i}) AS seen{i}
"""

_SHARED_PAIRS_SQL = """
WITH contributions AS ({contributions}),
decayed AS (SELECT consumer, product, {decayed} FROM contributions)
SELECT consumer, product, {sums}
FROM decayed
GROUP BY consumer, product
"""

_SHARED_SELECT_SQL = """
SELECT consumer AS {consumer_id}, product AS {product_id}, weight{i} AS weight, purchases{i} AS purchases,
       first{i} AS first_purchase_at, last{i} AS last_purchase_at, seen{i} AS last_interaction_at
FROM {table}
WHERE seen{i} IS NOT NULL
{order}
"""
