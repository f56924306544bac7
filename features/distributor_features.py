"""Per-distributor monthly features as of a date, computed by DuckDB SQL over the engine's views.

The reference month is the last **full** calendar month that ends by the end of the as-of
date: as of 2025-12-31 it is December 2025, as of 2025-12-30 it is November 2025. Only rows
before the end of that month are read (plus the distributors and consumers known by the end
of the as-of date), so appending later rows changes nothing.

Definitions (see docs/segmentation.md): GMV is ``quantity x unit_price`` of paid lines in
the month, summed in whole cents; an order counts when it has a paid line; active customers
bought (paid) through the distributor in the month; new customers did so for the first time
ever through this distributor; repeat customers placed two or more orders in the month;
shares are ``share`` events carrying the distributor's id.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from features.asof import AsOf
from features.columns import Col, Table
from features.engine import has_table
from features.sql import render
from features.vocabulary import DistributorFeatureCol as DistributorCol

MONTHLY_COLUMNS: tuple[str, ...] = (
    Col.DISTRIBUTOR_ID,
    DistributorCol.MONTH,
    DistributorCol.GMV,
    DistributorCol.ORDERS,
    DistributorCol.ACTIVE_CUSTOMERS,
    DistributorCol.NEW_CUSTOMERS,
    DistributorCol.REPEAT_CUSTOMERS,
    DistributorCol.SHARES,
)

FEATURE_COLUMNS: tuple[str, ...] = (
    Col.DISTRIBUTOR_ID,
    DistributorCol.MONTH,
    DistributorCol.COMMUNITY_SIZE,
    DistributorCol.GMV_MONTH,
    DistributorCol.GMV_PREV_MONTH,
    DistributorCol.GROWTH,
    DistributorCol.ORDERS_MONTH,
    DistributorCol.ACTIVE_CUSTOMERS,
    DistributorCol.ACTIVE_CUSTOMERS_PREV,
    DistributorCol.NEW_CUSTOMERS,
    DistributorCol.REPEAT_RATE,
    DistributorCol.SHARES_MONTH,
    DistributorCol.ORDERS_PER_SHARE,
    DistributorCol.ORDERS_PER_SHARE_PREV,
)


def reference_month(as_of: AsOf) -> date:
    """First day of the last full calendar month ending by the end of ``as_of``."""
    month_end = as_of.end.date().replace(day=1)
    return _shift(month_end, -1)


def _shift(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def distributor_monthly(con: duckdb.DuckDBPyConnection, as_of: AsOf, months: int = 3) -> pd.DataFrame:
    """Monthly figures of every known distributor for the ``months`` months up to the reference month.

    Long frame, columns ``MONTHLY_COLUMNS``, one row per distributor and month (zeros where
    nothing happened), sorted by distributor id then month. ``shares`` is 0 without events.
    """
    month = reference_month(as_of)
    params = {"start": _shift(month, 1 - months), "month_end": _shift(month, 1), "end": as_of.end}
    sql = render(_MONTHLY_SQL, known=_known_sql(con), shares_cte=_shares_sql(con))
    monthly = con.execute(sql, params).df()
    monthly[DistributorCol.MONTH] = pd.to_datetime(monthly[DistributorCol.MONTH]).astype("datetime64[ns]")
    monthly[Col.DISTRIBUTOR_ID] = monthly[Col.DISTRIBUTOR_ID].astype(pd.StringDtype("pyarrow"))
    return monthly.astype({column: "int64" for column in MONTHLY_COLUMNS[3:]}).astype(
        {DistributorCol.GMV: "float64"}
    )[list(MONTHLY_COLUMNS)]


def distributor_features(
    con: duckdb.DuckDBPyConnection, as_of: AsOf, monthly: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per known distributor for the reference month; columns ``FEATURE_COLUMNS``.

    ``growth`` is GMV over the previous month's minus 1 (empty when that was 0);
    ``repeat_rate`` is repeat over active customers; ``orders_per_share`` is orders over share
    events in the month (empty without shares). ``community_size`` counts consumers whose home
    it is (0 without a consumers table). Sorted by distributor id. ``monthly``, the
    ``distributor_monthly`` frame of the same as-of date with two or more months, saves its
    query when the caller has it already.
    """
    if monthly is None:
        monthly = distributor_monthly(con, as_of, months=2)
    month = reference_month(as_of)
    current = monthly[monthly[DistributorCol.MONTH] == pd.Timestamp(month)].set_index(Col.DISTRIBUTOR_ID)
    previous = monthly[monthly[DistributorCol.MONTH] == pd.Timestamp(_shift(month, -1))]
    previous = previous.set_index(Col.DISTRIBUTOR_ID)
    previous = previous.reindex(current.index)
    features = pd.DataFrame(index=current.index)
    features[DistributorCol.MONTH] = pd.Series(
        pd.Timestamp(month), index=features.index, dtype="datetime64[ns]"
    )
    features[DistributorCol.COMMUNITY_SIZE] = _community_sizes(con, as_of).reindex(
        current.index, fill_value=0
    )
    features[DistributorCol.GMV_MONTH] = current[DistributorCol.GMV]
    features[DistributorCol.GMV_PREV_MONTH] = previous[DistributorCol.GMV].fillna(0.0)
    prior_gmv = features[DistributorCol.GMV_PREV_MONTH]
    features[DistributorCol.GROWTH] = (
        features[DistributorCol.GMV_MONTH] / prior_gmv.where(prior_gmv > 0) - 1
    ).round(4)
    features[DistributorCol.ORDERS_MONTH] = current[DistributorCol.ORDERS]
    features[DistributorCol.ACTIVE_CUSTOMERS] = current[DistributorCol.ACTIVE_CUSTOMERS]
    features[DistributorCol.ACTIVE_CUSTOMERS_PREV] = previous[DistributorCol.ACTIVE_CUSTOMERS].fillna(0)
    features[DistributorCol.NEW_CUSTOMERS] = current[DistributorCol.NEW_CUSTOMERS]
    active = current[DistributorCol.ACTIVE_CUSTOMERS]
    features[DistributorCol.REPEAT_RATE] = (
        current[DistributorCol.REPEAT_CUSTOMERS] / active.where(active > 0)
    ).round(4)
    features[DistributorCol.SHARES_MONTH] = current[DistributorCol.SHARES]
    features[DistributorCol.ORDERS_PER_SHARE] = _per_share(current)
    features[DistributorCol.ORDERS_PER_SHARE_PREV] = _per_share(previous)
    features = features.astype(
        {DistributorCol.ACTIVE_CUSTOMERS_PREV: "int64", DistributorCol.COMMUNITY_SIZE: "int64"}
    )
    return features.reset_index()[list(FEATURE_COLUMNS)]


def _per_share(monthly: pd.DataFrame) -> pd.Series:
    shares = monthly[DistributorCol.SHARES]
    return (monthly[DistributorCol.ORDERS] / shares.where(shares > 0)).round(4)


def _community_sizes(con: duckdb.DuckDBPyConnection, as_of: AsOf) -> pd.Series:
    if not has_table(con, Table.CONSUMERS):
        return pd.Series(dtype="int64")
    sql = render(
        "SELECT {distributor_id}, count(*) AS n FROM {consumers} WHERE {registered_at} < $end GROUP BY 1"
    )
    sizes = con.execute(sql, {"end": as_of.end}).df()
    return sizes.set_index(Col.DISTRIBUTOR_ID)["n"].astype("int64")


def _known_sql(con: duckdb.DuckDBPyConnection) -> str:
    registered = ""
    if has_table(con, Table.DISTRIBUTORS):
        registered = render("SELECT {distributor_id} FROM {distributors} WHERE {joined_at} < $end UNION ")
    return registered + render("SELECT DISTINCT {distributor_id} FROM {orders} WHERE {ordered_at} < $end")


def _shares_sql(con: duckdb.DuckDBPyConnection) -> str:
    if not has_table(con, Table.EVENTS):
        return render(
            "SELECT NULL::VARCHAR AS {distributor_id}, NULL::TIMESTAMP AS month, 0 AS shares WHERE false"
        )
    return render(
        "SELECT {distributor_id}, date_trunc('month', {event_at}) AS month, count(*) AS shares FROM {events} "
        "WHERE {event_type} = {share} AND {distributor_id} IS NOT NULL "
        "AND {event_at} >= $start AND {event_at} < $month_end GROUP BY 1, 2"
    )


_MONTHLY_SQL = """
WITH paid AS (
    SELECT {distributor_id}, {consumer_id}, {order_id}, {ordered_at}, cents
    FROM paid_lines WHERE {ordered_at} < $month_end
),
baskets AS (
    SELECT {distributor_id}, date_trunc('month', min({ordered_at})) AS month, {consumer_id}, {order_id},
        sum(cents) AS cents
    FROM paid WHERE {ordered_at} >= $start GROUP BY {distributor_id}, {consumer_id}, {order_id}
),
customers AS (
    SELECT {distributor_id}, month, {consumer_id}, count(*) AS orders, sum(cents) AS cents
    FROM baskets GROUP BY 1, 2, 3
),
per_month AS (
    SELECT {distributor_id}, month, sum(cents) AS cents, sum(orders) AS orders,
        count(*) AS active_customers, count(*) FILTER (WHERE orders >= 2) AS repeat_customers
    FROM customers GROUP BY 1, 2
),
first_purchase AS (
    SELECT {distributor_id}, date_trunc('month', min({ordered_at})) AS month
    FROM paid GROUP BY {distributor_id}, {consumer_id}
),
newcomers AS (
    SELECT {distributor_id}, month, count(*) AS new_customers
    FROM first_purchase WHERE month >= $start GROUP BY 1, 2
),
shared AS ({shares_cte}),
known AS ({known}),
months AS (SELECT unnest(generate_series($start::TIMESTAMP, $month_end::TIMESTAMP - INTERVAL 1 MONTH,
    INTERVAL 1 MONTH)) AS month)
SELECT k.{distributor_id}, m.month, coalesce(p.cents, 0) / 100 AS gmv, coalesce(p.orders, 0) AS orders,
    coalesce(p.active_customers, 0) AS active_customers, coalesce(n.new_customers, 0) AS new_customers,
    coalesce(p.repeat_customers, 0) AS repeat_customers, coalesce(s.shares, 0) AS shares
FROM known k CROSS JOIN months m
LEFT JOIN per_month p ON p.{distributor_id} = k.{distributor_id} AND p.month = m.month
LEFT JOIN newcomers n ON n.{distributor_id} = k.{distributor_id} AND n.month = m.month
LEFT JOIN shared s ON s.{distributor_id} = k.{distributor_id} AND s.month = m.month
WHERE k.{distributor_id} IS NOT NULL
ORDER BY k.{distributor_id}, m.month
"""
