"""The evidence of the quality gate: order lines of a window and the complaints about them, per product.

DuckDB SQL over the feature engine's views, rendered through ``features.sql.render`` like
every other builder. The gate's rules (thresholds, levels, history) live in
``models.quality`` and take the frame ``complaint_counts`` returns.

- The **order window** is ``window_bounds(as_of, window_days, maturity_days)``: the
  ``window_days`` days that end ``maturity_days`` before the end of the as-of date, so that
  complaints have had time to arrive.
- An **order line counts** when paid or returned (cancelled lines were never delivered) and
  ordered inside the window.
- A **complaint counts** when it names such a line (same order and product) and was filed
  before the end of the as-of date (``AsOf.end``).
- The **daily history** is every counted line ordered in the ``history_days`` days that end
  with the as-of date, per product and age in whole days at the cutoff, with the complaints
  filed about them by the cutoff. Young lines have not had time to draw their complaints, so
  each line counts as the share of complaints that arrive within its age (its **exposure**).
  That share comes from the data: the delays of the complaints about lines ordered between
  ``DELAY_COHORT_DAYS + DELAY_HORIZON_DAYS`` and ``DELAY_HORIZON_DAYS`` days before the cutoff,
  whose complaints have all had time to arrive. With too few of them (a new data set) a line
  counts fully from ``maturity_days`` days of age and not before.
"""

from __future__ import annotations

import logging
from datetime import datetime

import duckdb
import pandas as pd

from features.asof import AsOf
from features.columns import Col, Table
from features.contract import UNKNOWN_CATEGORY
from features.engine import has_table
from features.sql import ident, literal, render
from features.vocabulary import QualityCol

logger = logging.getLogger(__name__)


COUNT_COLUMNS: tuple[str, ...] = (
    Col.PRODUCT_ID,
    Col.SUPPLIER_ID,
    Col.CATEGORY,
    QualityCol.ORDERS_30D,
    QualityCol.COMPLAINTS_30D,
)
DAILY_COLUMNS: tuple[str, ...] = (
    Col.PRODUCT_ID,
    QualityCol.AGE_DAYS,
    QualityCol.DAY_LINES,
    QualityCol.DAY_EXPOSURE,
    QualityCol.DAY_COMPLAINTS,
)

# Complaints are taken to arrive within DELAY_HORIZON_DAYS of the order; the delay distribution
# is measured on the DELAY_COHORT_DAYS of lines before that, and needs MIN_DELAY_COMPLAINTS.
DELAY_HORIZON_DAYS = 30
DELAY_COHORT_DAYS = 90
MIN_DELAY_COMPLAINTS = 20


def window_bounds(as_of: AsOf, window_days: int, maturity_days: int = 0) -> tuple[datetime, datetime]:
    """The order window ``[start, end)``: ``end`` is the end of the day ``maturity_days`` before
    the as-of date, ``start`` is ``window_days`` before ``end``.

    With ``maturity_days`` 0 the as-of date itself is the last day inside the window; with
    7 the window's last day is a week before it.
    """
    last_day = as_of.days_before(maturity_days)
    return last_day.days_before(window_days).end, last_day.end


_COUNTED_LINE = (
    "{alias}.{status} IN ({paid}, {returned}) "
    "AND {alias}.{ordered_at} >= $start AND {alias}.{ordered_at} < $window_end"
)

_LINES_SQL = """
SELECT o.{product_id}, count(*) AS {orders_30d} FROM {orders} o WHERE {counted_o} GROUP BY o.{product_id}
"""

_FILED_SQL = """
SELECT c.{product_id}, count(*) AS {complaints_30d} FROM {complaints} c
WHERE c.{complained_at} < $end AND EXISTS (
    SELECT 1 FROM {orders} o
    WHERE o.{order_id} = c.{order_id} AND o.{product_id} = c.{product_id} AND {counted_o}
)
GROUP BY c.{product_id}
"""

_NO_COMPLAINTS_SQL = "SELECT NULL::VARCHAR AS {product_id}, 0::BIGINT AS {complaints_30d} WHERE false"

_COUNTS_SQL = """
WITH lines AS ({lines}), filed AS ({filed})
SELECT p.{product_id}, p.{supplier_id}, coalesce(p.{category}, {unknown}) AS {category},
    coalesce(l.{orders_30d}, 0)::BIGINT AS {orders_30d},
    coalesce(f.{complaints_30d}, 0)::BIGINT AS {complaints_30d}
FROM {products} p
LEFT JOIN lines l ON l.{product_id} = p.{product_id}
LEFT JOIN filed f ON f.{product_id} = p.{product_id}
ORDER BY p.{product_id}
"""

_UNMATCHED_SQL = """
SELECT count(*) FROM {complaints} c WHERE c.{complained_at} < $end
AND NOT EXISTS (
    SELECT 1 FROM {orders} o WHERE o.{order_id} = c.{order_id} AND o.{product_id} = c.{product_id}
)
"""

_DELAYS_SQL = """
SELECT least(date_diff('second', o.{ordered_at}, c.{complained_at}) // 86400, $horizon - 1) AS delay_day,
    count(*) AS complaints
FROM {complaints} c JOIN {orders} o ON o.{order_id} = c.{order_id} AND o.{product_id} = c.{product_id}
WHERE c.{complained_at} < $end AND {cohort_o}
GROUP BY ALL
"""

_DAILY_FILED_SQL = """
SELECT l.{product_id}, l.age, count(*) AS k
FROM {complaints} c JOIN (SELECT DISTINCT {order_id}, {product_id}, age FROM counted) l
    ON l.{order_id} = c.{order_id} AND l.{product_id} = c.{product_id}
WHERE c.{complained_at} < $end
GROUP BY ALL
"""

_DAILY_NO_COMPLAINTS_SQL = "SELECT {product_id}, age, 0 AS k FROM counted WHERE false"

_DAILY_SQL = """
WITH arrived AS (SELECT * FROM (VALUES {arrived}) AS a(age_day, share)),
counted AS (
    SELECT o.{order_id}, o.{product_id}, date_diff('second', o.{ordered_at}, $end) // 86400 AS age
    FROM {orders} o WHERE {counted_o}
),
lines AS (
    SELECT l.{product_id}, l.age, count(*) AS n, sum(coalesce(a.share, 1.0)) AS exposure
    FROM counted l LEFT JOIN arrived a ON a.age_day = l.age
    GROUP BY ALL
),
filed AS ({filed})
SELECT l.{product_id}, l.age::BIGINT AS {age_days}, l.n::BIGINT AS {day_lines},
    l.exposure::DOUBLE AS {day_exposure}, coalesce(f.k, 0)::BIGINT AS {day_complaints}
FROM lines l LEFT JOIN filed f ON f.{product_id} = l.{product_id} AND f.age = l.age
ORDER BY l.{product_id}, l.age
"""

# The SQL's ``{orders_30d}``, ``{complaints_30d}`` and daily names: the gate's count columns.
_COUNT_NAMES = dict(
    orders_30d=ident(QualityCol.ORDERS_30D),
    complaints_30d=ident(QualityCol.COMPLAINTS_30D),
    age_days=ident(QualityCol.AGE_DAYS),
    day_lines=ident(QualityCol.DAY_LINES),
    day_exposure=ident(QualityCol.DAY_EXPOSURE),
    day_complaints=ident(QualityCol.DAY_COMPLAINTS),
)


def complaint_counts(
    con: duckdb.DuckDBPyConnection, as_of: AsOf, window_days: int, maturity_days: int = 0
) -> pd.DataFrame:
    """Order lines of the window and the complaints about them, for every product.

    Columns ``COUNT_COLUMNS``, sorted by product id; an empty category reads ``unknown``.
    Without a complaints view every complaint count is 0.
    """
    start, window_end = window_bounds(as_of, window_days, maturity_days)
    counted = render(_COUNTED_LINE, alias="o")
    with_complaints = has_table(con, Table.COMPLAINTS)
    filed = _FILED_SQL if with_complaints else _NO_COMPLAINTS_SQL
    sql = render(
        _COUNTS_SQL,
        lines=render(_LINES_SQL, counted_o=counted, **_COUNT_NAMES),
        filed=render(filed, counted_o=counted, **_COUNT_NAMES),
        unknown=literal(UNKNOWN_CATEGORY),
        **_COUNT_NAMES,
    )
    params: dict[str, object] = {"start": start, "window_end": window_end}
    if with_complaints:
        params["end"] = as_of.end
    counts = con.execute(sql, params).df()
    return counts.astype({QualityCol.ORDERS_30D: "int64", QualityCol.COMPLAINTS_30D: "int64"})


def complaint_arrival(con: duckdb.DuckDBPyConnection, as_of: AsOf, horizon_days: int) -> list[float] | None:
    """Share of complaints filed within ``d + 1`` days of their order, for ``d`` in ``0..horizon_days-1``.

    Measured on the lines ordered ``DELAY_COHORT_DAYS`` days before the last ``DELAY_HORIZON_DAYS``
    (all their complaints have arrived by the cutoff); a delay of ``DELAY_HORIZON_DAYS`` or more
    counts in the last day. None without a complaints view or with fewer than
    ``MIN_DELAY_COMPLAINTS`` such complaints: ``daily_counts`` then counts lines from maturity_days.
    """
    if not has_table(con, Table.COMPLAINTS):
        return None
    cohort_end = as_of.days_before(DELAY_HORIZON_DAYS).end
    cohort_start = as_of.days_before(DELAY_HORIZON_DAYS + DELAY_COHORT_DAYS).end
    sql = render(_DELAYS_SQL, cohort_o=render(_COUNTED_LINE, alias="o"))
    params = {
        "horizon": DELAY_HORIZON_DAYS,
        "end": as_of.end,
        "start": cohort_start,
        "window_end": cohort_end,
    }
    delays = dict(con.execute(sql, params).fetchall())
    total = sum(delays.values())
    if total < MIN_DELAY_COMPLAINTS:
        return None
    counts = [delays.get(day, 0) for day in range(horizon_days)]
    return [sum(counts[: day + 1]) / total for day in range(horizon_days)]


def daily_counts(
    con: duckdb.DuckDBPyConnection, as_of: AsOf, history_days: int, maturity_days: int
) -> pd.DataFrame:
    """Counted lines, their exposure and the complaints about them, per product and age in days.

    Columns ``DAILY_COLUMNS``, one row per product and order day with a counted line in the
    ``history_days`` days that end with the as-of date (age 0: ordered on the as-of date);
    sorted by product and age. ``day_exposure`` weighs each line by the share of complaints
    that have usually arrived by its age (``complaint_arrival``), or, when that cannot be
    measured, by 1 from ``maturity_days`` days of age and 0 before. Without a complaints view
    every complaint count is 0.
    """
    arrival = complaint_arrival(con, as_of, DELAY_HORIZON_DAYS)
    if arrival is None:
        arrival = [0.0 if day < maturity_days else 1.0 for day in range(max(maturity_days, 1))]
    values = ", ".join(f"({day}, {share!r})" for day, share in enumerate(arrival))
    counted = render(_COUNTED_LINE, alias="o")
    filed = _DAILY_FILED_SQL if has_table(con, Table.COMPLAINTS) else _DAILY_NO_COMPLAINTS_SQL
    sql = render(_DAILY_SQL, arrived=values, counted_o=counted, filed=render(filed), **_COUNT_NAMES)
    params = {"start": as_of.days_before(history_days).end, "window_end": as_of.end, "end": as_of.end}
    daily = con.execute(sql, params).df()
    return daily.astype({QualityCol.DAY_LINES: "int64", QualityCol.DAY_COMPLAINTS: "int64"})


def unmatched_complaints(con: duckdb.DuckDBPyConnection, as_of: AsOf) -> int:
    """Complaints filed by the end of the as-of date that name no order line (order id and product id)."""
    if not has_table(con, Table.COMPLAINTS):
        return 0
    found = con.execute(render(_UNMATCHED_SQL), {"end": as_of.end}).fetchone()
    return int(found[0]) if found else 0


def has_complaints(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a complaints view exists and holds at least one row."""
    if not has_table(con, Table.COMPLAINTS):
        return False
    found = con.execute(render("SELECT count(*) FROM {complaints}")).fetchone()
    return bool(found and found[0])


def quality_counts(
    con: duckdb.DuckDBPyConnection, as_of: AsOf, window_days: int, maturity_days: int = 0
) -> pd.DataFrame:
    """``complaint_counts``, logging what the data leave out: no complaints at all (every
    product will grade normal) or complaints that name no order line (not counted)."""
    if not has_complaints(con):
        logger.warning("quality gate: no complaints in the data set; every product is graded normal")
    else:
        unmatched = unmatched_complaints(con, as_of)
        if unmatched:
            logger.warning(
                "quality gate: %d complaints name an order line (order_id, product_id) that is not in "
                "orders; they are not counted",
                unmatched,
            )
    start, end = window_bounds(as_of, window_days, maturity_days)
    logger.info("quality gate as of %s: order lines from %s to %s (exclusive)", as_of, start, end)
    return complaint_counts(con, as_of, window_days, maturity_days)
