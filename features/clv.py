"""The buy-till-you-die summary of each consumer as of a date, for BG/NBD and Gamma-Gamma (see docs/clv.md).

``btyd_summary`` returns one row per consumer with at least one paid line by the end of the
as-of date, in the conventions of ``lifetimes`` and ``pymc-marketing``, all in whole days:

- a **purchase day** is a calendar day on which the consumer has at least one ``paid`` line;
  several orders on one day are one purchase (the model counts purchase occasions);
- ``frequency`` is the number of *repeat* purchase days: distinct purchase days minus one;
- ``recency`` is the number of days from the first to the last purchase day (0 without repeats);
- ``T`` is the number of days from the first purchase day to the as-of date;
- ``monetary_value`` is the mean net value of the repeat purchase days, 0 when ``frequency`` is 0.
  Value is ``quantity x unit_price`` of paid lines, summed in whole cents (exact and identical on
  every run). ``cancelled`` lines never count. How a ``returned`` line counts against the value
  depends on what a return looks like in the data (``returns``):

  - ``"excluded"`` (default; the contract's and the simulator's meaning): a returned line *is*
    the delivered line whose money went back, so it adds nothing and the value is net of
    returns, as the consumer features' ``monetary``. The value of a purchase day is then > 0;
  - ``"subtracted"`` (sources where a return is a separate refund line and the original stays
    paid, as the Online Retail import): the returned line's ``|quantity| x unit_price`` is taken
    off. Returned lines stamped after the first purchase day count against the repeat value,
    even on a day without a paid line; those on or before the first purchase day belong to the
    first purchase, which the Gamma-Gamma convention leaves out. The value can then be 0 or
    negative; ``models.clv`` sets such consumers aside.

Only rows with ``ordered_at`` before the end of the as-of date are read, so appending later
rows changes nothing.
"""

from __future__ import annotations

from typing import Literal

import duckdb
import pandas as pd

from features.asof import AsOf
from features.columns import Col
from features.sql import render
from features.vocabulary import BTYDCol

SUMMARY_COLUMNS: tuple[str, ...] = (
    Col.CONSUMER_ID,
    BTYDCol.FREQUENCY,
    BTYDCol.RECENCY,
    BTYDCol.T,
    BTYDCol.MONETARY_VALUE,
)

_SUMMARY_SQL = """
WITH lines_by_day AS (
    SELECT {consumer_id}, {ordered_at}::DATE AS day,
        count(*) FILTER (WHERE {status} = {paid}) AS paid_lines,
        coalesce(sum(round({quantity} * {unit_price} * 100)::BIGINT)
            FILTER (WHERE {status} = {paid}), 0) AS paid_cents,
        coalesce(sum(round(abs({quantity}) * {unit_price} * 100)::BIGINT)
            FILTER (WHERE {status} = {returned}), 0) AS returned_cents
    FROM {orders}
    WHERE {ordered_at} < $end AND {status} IN ({paid}, {returned})
    GROUP BY 1, 2
),
purchases AS (
    SELECT {consumer_id}, count(*) AS purchase_days, min(day) AS first_day, max(day) AS last_day
    FROM lines_by_day WHERE paid_lines > 0 GROUP BY 1
),
repeat_value AS (
    SELECT l.{consumer_id}, sum(l.paid_cents - $returned_weight * l.returned_cents) AS net_cents
    FROM lines_by_day l JOIN purchases p ON p.{consumer_id} = l.{consumer_id}
    WHERE l.day > p.first_day GROUP BY 1
)
SELECT p.{consumer_id},
    (p.purchase_days - 1)::BIGINT AS frequency,
    (p.last_day - p.first_day)::BIGINT AS recency,
    ($as_of::DATE - p.first_day)::BIGINT AS "T",
    CASE WHEN p.purchase_days > 1
        THEN coalesce(r.net_cents, 0) / 100.0 / (p.purchase_days - 1) ELSE 0.0 END AS monetary_value
FROM purchases p LEFT JOIN repeat_value r ON r.{consumer_id} = p.{consumer_id}
ORDER BY p.{consumer_id}
"""


ReturnsRule = Literal["excluded", "subtracted"]
RETURNS_RULES: tuple[str, ...] = ("excluded", "subtracted")


def btyd_summary(
    con: duckdb.DuckDBPyConnection, as_of: AsOf, returns: ReturnsRule = "excluded"
) -> pd.DataFrame:
    """Frequency, recency, T (days) and mean repeat value of every consumer who bought by ``as_of``.

    ``con`` is a ``features.engine.connect`` connection with an ``orders`` view. One row per
    consumer with at least one paid line up to the end of ``as_of``, sorted by consumer id;
    columns ``SUMMARY_COLUMNS``. ``returns`` says whether a returned line is left out of the
    value (``"excluded"``) or taken off it (``"subtracted"``); see the module docstring.
    """
    if returns not in RETURNS_RULES:
        raise ValueError(f"returns must be one of {RETURNS_RULES}, got {returns!r}")
    params = {"end": as_of.end, "as_of": as_of.date, "returned_weight": int(returns == "subtracted")}
    summary = con.execute(render(_SUMMARY_SQL), params).df()
    return summary.astype(
        {
            BTYDCol.FREQUENCY: "int64",
            BTYDCol.RECENCY: "int64",
            BTYDCol.T: "int64",
            BTYDCol.MONETARY_VALUE: "float64",
        }
    )[list(SUMMARY_COLUMNS)].reset_index(drop=True)
