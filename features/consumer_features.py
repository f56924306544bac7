"""Per-consumer behaviour features as of a date, computed by DuckDB SQL over the engine's views.

``consumer_features`` returns one row per consumer known by the end of the as-of date
(registered in ``consumers``, or seen in ``orders``), sorted by consumer id. Only rows up
to the end of the as-of date are read, so appending later rows changes nothing.

Definitions (see docs/segmentation.md):

- a *purchase* is an order (``order_id``) with at least one **paid** line; ``orders`` counts
  them, ``recency_days`` is the as-of date minus the date of the latest one;
- spend is ``quantity x unit_price`` of paid lines, summed in whole cents so that totals are
  exact and identical on every run. A returned line is a delivered line whose money went
  back, so spend is net of returns; cancelled lines never count;
- ``price_index`` is the consumer's paid spend over what the same units would cost at their
  categories' median paid unit price (all paid lines up to the as-of date): above 1 buys
  pricier products than the category's typical line, below 1 cheaper ones;
- ``rolling_*`` columns use the trailing ``window_days`` (default 365), ``*_30d`` the trailing
  ``recent_days`` (default 30), both ending with the as-of date.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from features.asof import AsOf
from features.columns import Col, Table
from features.contract import UNKNOWN_CATEGORY
from features.engine import counted_query, has_table, quiet_progress_bar
from features.sql import literal, render
from features.vocabulary import ConsumerCol

FEATURE_COLUMNS: tuple[str, ...] = (
    Col.CONSUMER_ID,
    *(value for key, value in vars(ConsumerCol).items() if key.isupper()),
)


def consumer_features(
    con: duckdb.DuckDBPyConnection, as_of: AsOf, window_days: int = 365, recent_days: int = 30
) -> pd.DataFrame:
    """One row per consumer known by the end of ``as_of``; columns ``FEATURE_COLUMNS``.

    Consumers without a purchase have ``orders`` 0, spend 0 and empty recency, dates,
    categories and price index. Optional tables that are missing leave their columns empty
    (``age_band``) or 0 (``complaints``, ``events_30d``, ``shares_30d``).
    """
    params = _params(as_of, window_days, recent_days)
    sql = render(
        _FEATURES_SQL,
        known=_known_sql(con),
        complaints_cte=_complaints_sql(con),
        events_cte=_events_sql(con),
        profile_cte=_profile_sql(con),
        unknown=literal(UNKNOWN_CATEGORY),
    )
    return _typed(_counted(con, sql, params))[list(FEATURE_COLUMNS)]


def _counted(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, object]) -> pd.DataFrame:
    """The features query's result, with progress counts over the order lines while DuckDB runs it
    (seconds per million lines: no silent stretch); the Spark engine's session, which has no
    query progress, and a Jupyter kernel's DuckDB, which keeps its own bar, run it as it is."""
    if not isinstance(con, duckdb.DuckDBPyConnection) or not quiet_progress_bar(con):
        return con.execute(sql, params).df()
    lines = con.execute(render("SELECT count(*) FROM {orders}")).fetchone()[0]  # type: ignore[index]
    return counted_query(con, sql, params, "consumer features", rows=int(lines))  # type: ignore[arg-type]


def _params(as_of: AsOf, window_days: int, recent_days: int) -> dict[str, object]:
    return {
        "end": as_of.end,
        "as_of": as_of.date,
        "window_start": as_of.days_before(window_days).end,
        "recent_start": as_of.days_before(recent_days).end,
    }


def _known_sql(con: duckdb.DuckDBPyConnection) -> str:
    registered = ""
    if has_table(con, Table.CONSUMERS):
        registered = render(
            "SELECT {consumer_id}, {registered_at} AS first_seen FROM {consumers} "
            "WHERE {registered_at} < $end UNION ALL "
        )
    return registered + render("SELECT {consumer_id}, placed_at AS first_seen FROM baskets")


def _profile_sql(con: duckdb.DuckDBPyConnection) -> str:
    if not has_table(con, Table.CONSUMERS):
        return render(
            "SELECT NULL::VARCHAR AS {consumer_id}, NULL::VARCHAR AS home, NULL::VARCHAR AS age_band "
            "WHERE false"
        )
    columns = set(con.execute(render("SELECT * FROM {consumers} LIMIT 0")).df().columns)
    age = "{age_band}" if Col.AGE_BAND in columns else "NULL"
    return render(
        "SELECT {consumer_id}, any_value({distributor_id}) AS home, "
        f"any_value({age})::VARCHAR AS age_band FROM {{consumers}} WHERE {{registered_at}} < $end GROUP BY 1"
    )


def _complaints_sql(con: duckdb.DuckDBPyConnection) -> str:
    if not has_table(con, Table.COMPLAINTS):
        return render("SELECT NULL::VARCHAR AS {consumer_id}, 0::BIGINT AS complaints WHERE false")
    return render(
        "SELECT {consumer_id}, count(*) AS complaints FROM {complaints} "
        "WHERE {complained_at} < $end GROUP BY 1"
    )


def _events_sql(con: duckdb.DuckDBPyConnection) -> str:
    if not has_table(con, Table.EVENTS):
        return render(
            "SELECT NULL::VARCHAR AS {consumer_id}, 0::BIGINT AS events, 0::BIGINT AS shares WHERE false"
        )
    return render(
        "SELECT {consumer_id}, count(*) AS events, count(*) FILTER (WHERE {event_type} = {share}) AS shares "
        "FROM {events} WHERE {event_at} >= $recent_start AND {event_at} < $end GROUP BY 1"
    )


# ``order_baskets`` and ``paid_lines`` are the engine's shared definitions (features.engine).
_BASKETS_CTE = """
baskets AS (SELECT * FROM order_baskets($end))"""

_PAID_LINES_CTE = """
category_lines AS (
    SELECT o.{consumer_id}, coalesce(p.{category}, {unknown}) AS category, p.{supplier_id} AS brand,
        o.{quantity} AS quantity, o.{unit_price} AS unit_price, o.cents
    FROM paid_lines o JOIN {products} p ON p.{product_id} = o.{product_id}
    WHERE o.{ordered_at} < $end
),
category_price AS (
    SELECT category, round(median(unit_price) * 100)::BIGINT AS median_cents FROM category_lines GROUP BY 1
),
by_category AS (
    SELECT l.{consumer_id}, l.category, sum(l.cents) AS cents,
        sum(l.quantity * c.median_cents) AS reference_cents
    FROM category_lines l JOIN category_price c ON c.category = l.category GROUP BY 1, 2
),
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY {consumer_id} ORDER BY cents DESC, category) AS rank,
        sum(cents) OVER (PARTITION BY {consumer_id}) AS total_cents
    FROM by_category
)"""

_FEATURES_SQL = (
    "WITH"
    + _BASKETS_CTE
    + ","
    + _PAID_LINES_CTE
    + """,
known AS (SELECT {consumer_id}, min(first_seen) AS first_seen FROM ({known}) GROUP BY 1),
purchases AS (
    SELECT {consumer_id}, count(*) AS orders, sum(paid_cents) AS spend_cents,
        min(placed_at) AS first_at, max(placed_at) AS last_at, count(DISTINCT placed_at::DATE) AS active_days,
        count(*) FILTER (WHERE placed_at >= $window_start) AS rolling_orders,
        coalesce(sum(paid_cents) FILTER (WHERE placed_at >= $window_start), 0) AS rolling_cents,
        count(*) FILTER (WHERE placed_at >= $recent_start) AS orders_30d
    FROM baskets WHERE paid_lines > 0 GROUP BY 1
),
line_counts AS (
    SELECT {consumer_id}, sum(paid_lines) AS paid_lines, sum(returned_lines) AS returned_lines
    FROM baskets GROUP BY 1
),
home_by_orders AS (
    SELECT {consumer_id}, distributor FROM (
        SELECT {consumer_id}, distributor,
            row_number() OVER (PARTITION BY {consumer_id} ORDER BY count(*) DESC, distributor) AS pick
        FROM baskets GROUP BY 1, 2
    ) WHERE pick = 1
),
categories AS (
    SELECT {consumer_id},
        max(category) FILTER (WHERE rank = 1) AS top_category,
        max(cents) FILTER (WHERE rank = 1) / max(total_cents) AS top_category_share,
        max(category) FILTER (WHERE rank = 2) AS second_category,
        count(*) AS categories,
        sum(cents) / nullif(sum(reference_cents), 0) AS price_index
    FROM ranked GROUP BY 1
),
brands AS (SELECT {consumer_id}, count(DISTINCT brand) AS brands FROM category_lines GROUP BY 1),
profile AS ({profile_cte}),
complained AS ({complaints_cte}),
recent_events AS ({events_cte})
SELECT k.{consumer_id},
    coalesce(pr.home, h.distributor) AS home_distributor_id,
    pr.age_band,
    date_diff('day', k.first_seen::DATE, $as_of) AS tenure_days,
    p.first_at::DATE AS first_order_date,
    p.last_at::DATE AS last_order_date,
    date_diff('day', p.last_at::DATE, $as_of) AS recency_days,
    coalesce(p.orders, 0) AS orders,
    coalesce(p.spend_cents, 0) / 100 AS monetary,
    round(p.spend_cents / p.orders / 100, 2) AS avg_order_value,
    coalesce(p.active_days, 0) AS active_days,
    coalesce(p.rolling_orders, 0) AS rolling_orders,
    coalesce(p.rolling_cents, 0) / 100 AS rolling_spend,
    coalesce(p.orders_30d, 0) AS orders_30d,
    round(lc.returned_lines / nullif(lc.paid_lines + lc.returned_lines, 0), 4) AS return_rate,
    coalesce(c.complaints, 0) AS complaints,
    cat.top_category,
    round(cat.top_category_share, 4) AS top_category_share,
    cat.second_category,
    coalesce(cat.categories, 0) AS categories,
    coalesce(b.brands, 0) AS brands,
    round(cat.price_index, 4) AS price_index,
    coalesce(e.events, 0) AS events_30d,
    coalesce(e.shares, 0) AS shares_30d
FROM known k
LEFT JOIN purchases p ON p.{consumer_id} = k.{consumer_id}
LEFT JOIN line_counts lc ON lc.{consumer_id} = k.{consumer_id}
LEFT JOIN home_by_orders h ON h.{consumer_id} = k.{consumer_id}
LEFT JOIN categories cat ON cat.{consumer_id} = k.{consumer_id}
LEFT JOIN brands b ON b.{consumer_id} = k.{consumer_id}
LEFT JOIN profile pr ON pr.{consumer_id} = k.{consumer_id}
LEFT JOIN complained c ON c.{consumer_id} = k.{consumer_id}
LEFT JOIN recent_events e ON e.{consumer_id} = k.{consumer_id}
ORDER BY k.{consumer_id}
"""
)

_INTEGER_COLUMNS = (
    ConsumerCol.ORDERS,
    ConsumerCol.ACTIVE_DAYS,
    ConsumerCol.ROLLING_ORDERS,
    ConsumerCol.ORDERS_30D,
    ConsumerCol.COMPLAINTS,
    ConsumerCol.CATEGORIES,
    ConsumerCol.BRANDS,
    ConsumerCol.EVENTS_30D,
    ConsumerCol.SHARES_30D,
    ConsumerCol.TENURE_DAYS,
)
_TEXT_COLUMNS = (
    Col.CONSUMER_ID,
    ConsumerCol.HOME_DISTRIBUTOR_ID,
    ConsumerCol.AGE_BAND,
    ConsumerCol.TOP_CATEGORY,
    ConsumerCol.SECOND_CATEGORY,
)


def _typed(features: pd.DataFrame) -> pd.DataFrame:
    typed = features.astype({column: "int64" for column in _INTEGER_COLUMNS})
    typed = typed.astype({column: pd.StringDtype("pyarrow") for column in _TEXT_COLUMNS})
    typed[ConsumerCol.RECENCY_DAYS] = typed[ConsumerCol.RECENCY_DAYS].astype("Int64")
    for column in (ConsumerCol.FIRST_ORDER_DATE, ConsumerCol.LAST_ORDER_DATE):
        typed[column] = pd.to_datetime(typed[column]).astype("datetime64[ns]")
    floats = (
        ConsumerCol.MONETARY,
        ConsumerCol.AVG_ORDER_VALUE,
        ConsumerCol.ROLLING_SPEND,
        ConsumerCol.RETURN_RATE,
        ConsumerCol.TOP_CATEGORY_SHARE,
        ConsumerCol.PRICE_INDEX,
    )
    return typed.astype({column: "float64" for column in floats})
