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

# The SQL's ``{orders_30d}`` and ``{complaints_30d}``: the quality gate's count columns.
_COUNT_NAMES = dict(
    orders_30d=ident(QualityCol.ORDERS_30D),
    complaints_30d=ident(QualityCol.COMPLAINTS_30D),
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
