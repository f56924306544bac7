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

``activity_summary`` adds, for the same buyers, the trailing-window counts the churn and
value models learn from (``ActivityCol``); ``future_activity`` counts what each consumer did
in the ``horizon_days`` *after* a date: the label of a model trained on an earlier as-of
date, and the truth of ``siyu evaluate-segments``. It is the only reader of rows after an
as-of date, and the nightly calls it only for dates at least one horizon before its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Literal

import duckdb
import pandas as pd

from features.asof import AsOf
from features.columns import Col
from features.progress import progress
from features.sql import render
from features.vocabulary import BTYDCol

TRAILING_DAYS: tuple[int, ...] = (30, 90, 180, 365)
_EARLIEST = datetime(1900, 1, 1)  # before any order: the whole history


class ActivityCol:
    """Columns of ``activity_summary`` (besides the BTYD summary's) and of ``future_activity``."""

    DAYS_SINCE_LAST = "days_since_last"
    MEAN_GAP_DAYS = "mean_gap_days"
    SILENCE_RATIO = "silence_ratio"
    PURCHASE_DAYS = "purchase_days_{days}d"
    VALUE = "value_{days}d"
    VALUE_TOTAL = "value_total"
    FUTURE_PURCHASE_DAYS = "future_purchase_days"
    FUTURE_VALUE = "future_value"

    @staticmethod
    def purchase_days(days: int) -> str:
        """``purchase_days_<days>d``: purchase days in the trailing ``days`` ending with the as-of date."""
        return ActivityCol.PURCHASE_DAYS.format(days=days)

    @staticmethod
    def value(days: int) -> str:
        """``value_<days>d``: net value of the trailing ``days`` ending with the as-of date."""
        return ActivityCol.VALUE.format(days=days)


SUMMARY_COLUMNS: tuple[str, ...] = (
    Col.CONSUMER_ID,
    BTYDCol.FREQUENCY,
    BTYDCol.RECENCY,
    BTYDCol.T,
    BTYDCol.MONETARY_VALUE,
)

# One row per (consumer, calendar day) with a paid or returned line before ``$end``: every frame
# below is a query over this table, so a night aggregates the orders once for all its as-of dates.
_DAYS_SQL = """
CREATE TEMP TABLE {days} AS
SELECT {consumer_id}, {ordered_at}::DATE AS day,
    count(*) FILTER (WHERE {status} = {paid}) AS paid_lines,
    coalesce(sum(round({quantity} * {unit_price} * 100)::BIGINT) FILTER (WHERE {status} = {paid}), 0)
        AS paid_cents,
    coalesce(sum(round(abs({quantity}) * {unit_price} * 100)::BIGINT) FILTER (WHERE {status} = {returned}), 0)
        AS returned_cents
FROM {orders}
WHERE {ordered_at} < $end AND {status} IN ({paid}, {returned})
GROUP BY 1, 2
"""

_SUMMARY_SQL = """
WITH lines_by_day AS (SELECT * FROM {days} WHERE day <= $as_of::DATE),
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

_WINDOW_SQL = """
WITH lines_by_day AS (
    SELECT {consumer_id}, day, paid_lines, paid_cents - $returned_weight * returned_cents AS net_cents
    FROM {days} WHERE day >= $start::DATE AND day < $end::DATE
)
SELECT {consumer_id}, {columns}
FROM lines_by_day GROUP BY 1 ORDER BY 1
"""


ReturnsRule = Literal["excluded", "subtracted"]
RETURNS_RULES: tuple[str, ...] = ("excluded", "subtracted")


@contextmanager
def purchase_days(con: duckdb.DuckDBPyConnection, end: datetime) -> Iterator[str]:
    """The name of a temporary table of every consumer's days with a paid or returned line before
    ``end`` (paid lines, paid and returned cents per day), dropped when the block ends.

    The frames of this module are queries over it: one aggregation of the orders serves every
    as-of date and window up to ``end``.
    """
    name = f"clv_purchase_days_{uuid.uuid4().hex}"
    con.execute(render(_DAYS_SQL, days=name), {"end": end})
    try:
        yield name
    finally:
        con.execute(f"DROP TABLE IF EXISTS {name}")


def btyd_summary(
    con: duckdb.DuckDBPyConnection, as_of: AsOf, returns: ReturnsRule = "excluded"
) -> pd.DataFrame:
    """Frequency, recency, T (days) and mean repeat value of every consumer who bought by ``as_of``.

    ``con`` is a ``features.engine.connect`` connection with an ``orders`` view. One row per
    consumer with at least one paid line up to the end of ``as_of``, sorted by consumer id;
    columns ``SUMMARY_COLUMNS``. ``returns`` says whether a returned line is left out of the
    value (``"excluded"``) or taken off it (``"subtracted"``); see the module docstring.
    """
    _check_returns(returns)
    with purchase_days(con, as_of.end) as days:
        return _summary(con, days, as_of, returns)


def _check_returns(returns: str) -> None:
    if returns not in RETURNS_RULES:
        raise ValueError(f"returns must be one of {RETURNS_RULES}, got {returns!r}")


def _summary(con: duckdb.DuckDBPyConnection, days: str, as_of: AsOf, returns: ReturnsRule) -> pd.DataFrame:
    params = {"as_of": as_of.date, "returned_weight": int(returns == "subtracted")}
    summary = con.execute(render(_SUMMARY_SQL, days=days), params).df()
    return summary.astype(
        {
            BTYDCol.FREQUENCY: "int64",
            BTYDCol.RECENCY: "int64",
            BTYDCol.T: "int64",
            BTYDCol.MONETARY_VALUE: "float64",
        }
    )[list(SUMMARY_COLUMNS)].reset_index(drop=True)


def activity_summary(
    con: duckdb.DuckDBPyConnection, as_of: AsOf, returns: ReturnsRule = "excluded"
) -> pd.DataFrame:
    """``btyd_summary`` plus trailing-window activity of every buyer (``ActivityCol``), summary order.

    Purchase days and net value (paid minus returned, as ``returns`` says) in the trailing
    ``TRAILING_DAYS`` ending with ``as_of``, the whole history's net value, days since the last
    purchase day (``T - recency``), the mean gap between purchase days (``recency / frequency``,
    empty without repeats) and the silence in units of that gap (empty without repeats).
    """
    _check_returns(returns)
    with purchase_days(con, as_of.end) as days:
        return _activity(con, days, as_of, returns)


def _activity(con: duckdb.DuckDBPyConnection, days: str, as_of: AsOf, returns: ReturnsRule) -> pd.DataFrame:
    summary = _summary(con, days, as_of, returns)
    columns = [
        f"count(*) FILTER (WHERE paid_lines > 0 AND day > $as_of::DATE - {days_back}) "
        f"AS {ActivityCol.purchase_days(days_back)}"
        for days_back in TRAILING_DAYS
    ] + [
        f"coalesce(sum(net_cents) FILTER (WHERE day > $as_of::DATE - {days_back}), 0) / 100.0 "
        f"AS {ActivityCol.value(days_back)}"
        for days_back in TRAILING_DAYS
    ]
    columns.append(f"sum(net_cents) / 100.0 AS {ActivityCol.VALUE_TOTAL}")
    params = {
        "start": _EARLIEST.date(),
        "end": as_of.end.date(),
        "as_of": as_of.date,
        "returned_weight": int(returns == "subtracted"),
    }
    windows = con.execute(render(_WINDOW_SQL, days=days, columns=", ".join(columns)), params).df()
    merged = summary.merge(windows, on=Col.CONSUMER_ID, how="left", validate="one_to_one")
    since_last = merged[BTYDCol.T] - merged[BTYDCol.RECENCY]
    repeat = merged[BTYDCol.FREQUENCY] > 0
    gap = (merged[BTYDCol.RECENCY] / merged[BTYDCol.FREQUENCY].where(repeat)).astype("float64")
    merged[ActivityCol.DAYS_SINCE_LAST] = since_last.astype("int64")
    merged[ActivityCol.MEAN_GAP_DAYS] = gap
    merged[ActivityCol.SILENCE_RATIO] = since_last / gap.where(gap > 0)
    return merged


def future_activity(
    con: duckdb.DuckDBPyConnection,
    as_of: AsOf,
    horizon_days: int,
    consumers: pd.Series,
    returns: ReturnsRule = "excluded",
) -> pd.DataFrame:
    """Purchase days and net value of each of ``consumers`` in the ``horizon_days`` after ``as_of``.

    One row per entry of ``consumers`` (same order): ``future_purchase_days`` (calendar days
    with a paid line, after the end of ``as_of`` and before the end of ``as_of`` + horizon) and
    ``future_value``; 0 for a consumer who did nothing then. Reads rows after ``as_of``: the
    label of an earlier as-of date, or the truth of an evaluation, never a nightly feature.
    """
    _check_returns(returns)
    with purchase_days(con, _horizon_end(as_of, horizon_days)) as days:
        return _future(con, days, as_of, horizon_days, consumers, returns)


def _horizon_end(as_of: AsOf, horizon_days: int) -> datetime:
    return AsOf(as_of.date + timedelta(days=horizon_days)).end


def _future(
    con: duckdb.DuckDBPyConnection,
    days: str,
    as_of: AsOf,
    horizon_days: int,
    consumers: pd.Series,
    returns: ReturnsRule,
) -> pd.DataFrame:
    columns = (
        f"count(*) FILTER (WHERE paid_lines > 0) AS {ActivityCol.FUTURE_PURCHASE_DAYS}, "
        f"sum(net_cents) / 100.0 AS {ActivityCol.FUTURE_VALUE}"
    )
    params = {
        "start": as_of.end.date(),
        "end": _horizon_end(as_of, horizon_days).date(),
        "returned_weight": int(returns == "subtracted"),
    }
    future = con.execute(render(_WINDOW_SQL, days=days, columns=columns), params).df()
    ids = pd.DataFrame({Col.CONSUMER_ID: consumers.to_numpy()})
    merged = ids.merge(
        future.astype({Col.CONSUMER_ID: ids[Col.CONSUMER_ID].dtype}), on=Col.CONSUMER_ID, how="left"
    )
    return merged.fillna({ActivityCol.FUTURE_PURCHASE_DAYS: 0, ActivityCol.FUTURE_VALUE: 0.0}).astype(
        {ActivityCol.FUTURE_PURCHASE_DAYS: "int64", ActivityCol.FUTURE_VALUE: "float64"}
    )


def labelled_activity(
    con: duckdb.DuckDBPyConnection, as_of: AsOf, horizon_days: int, returns: ReturnsRule = "excluded"
) -> pd.DataFrame:
    """``activity_summary`` as of ``as_of`` with each buyer's ``future_activity`` over the horizon."""
    _check_returns(returns)
    with purchase_days(con, _horizon_end(as_of, horizon_days)) as days:
        return _labelled(con, days, as_of, horizon_days, returns)


def _labelled(
    con: duckdb.DuckDBPyConnection, days: str, as_of: AsOf, horizon_days: int, returns: ReturnsRule
) -> pd.DataFrame:
    frame = _activity(con, days, as_of, returns)
    future = _future(con, days, as_of, horizon_days, frame[Col.CONSUMER_ID], returns)
    return pd.concat([frame, future.drop(columns=Col.CONSUMER_ID)], axis=1)


def model_frames(
    con: duckdb.DuckDBPyConnection, as_of: AsOf, horizon_days: int, returns: ReturnsRule = "excluded"
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Training, validation and current frames of the churn and value models as of ``as_of``.

    Training: labelled, as of two horizons before ``as_of``; validation: labelled, as of one
    horizon before (its label window ends with ``as_of``); current: unlabelled, as of
    ``as_of``. No row after the end of ``as_of`` is read, and the orders are aggregated once
    (``purchase_days``) for all three.
    """
    _check_returns(returns)
    validation_as_of = AsOf(as_of.date - timedelta(days=horizon_days))
    train_as_of = AsOf(as_of.date - timedelta(days=2 * horizon_days))
    # four queries of seconds each at 10M lines: counted, so the step is never a silent stretch
    with progress("CLV frames", total=4, unit="queries") as bar, purchase_days(con, as_of.end) as days:
        bar.advance()
        train = _labelled(con, days, train_as_of, horizon_days, returns)
        bar.advance()
        validation = _labelled(con, days, validation_as_of, horizon_days, returns)
        bar.advance()
        current = _activity(con, days, as_of, returns)
        bar.advance()
        return train, validation, current
