"""Popularity counted by the engine over the night's interaction rows: one SQL definition for
DuckDB and Spark (``features.transpile`` renders it for Spark).

The fallback lists (global and per community) and the distributor lists' platform-wide trend
count **distinct consumers per product whose latest interaction lies in a trailing window**,
over every consumer's rows. Counted here by the engine, they need no consumer's rows on the
driver. The definitions match the in-memory ones of ``models.recommenders.popularity``
(``recent_popularity``) exactly:

- a pair counts when its summed weight is positive (``InteractionData``'s matrix holds only
  those; a returned or complained-about pair does not count);
- its age is the time from its ``last_interaction_at`` to the end of the night in days, as a
  32-bit float, at least one hour (a missing time reads as 365 days): ``InteractionData``'s
  ``age_days``;
- a window of ``None`` days is all history.

The rows come from a ``NightRows`` query: the night's ``interactions_query`` (the
rows ``keep_interactions`` wrote), or any relation with ``INTERACTION_COLUMNS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from features.columns import Col
from features.interactions import (
    Cutoff,
    InteractionConfig,
    consumer_profiles_query,
    interactions_query,
    upper_bound,
)
from features.sql import render
from features.vocabulary import InteractionCol


@dataclass(frozen=True)
class NightRows:
    """A query of interaction rows (``INTERACTION_COLUMNS``), its parameters, and the instant
    their ages are measured from (``end``), with the query of each consumer's home distributor
    (``homes``: ``consumer_id``, ``home_distributor_id``; None: no communities)."""

    sql: str
    params: dict[str, object]
    end: datetime
    homes: tuple[str, dict[str, object]] | None = None

    @classmethod
    def of(cls, con: duckdb.DuckDBPyConnection, as_of: Cutoff, config: InteractionConfig) -> NightRows:
        """The night's rows as of ``as_of`` and its consumers' homes (``consumer_profiles``')."""
        sql, params = interactions_query(con, as_of, config, ordered=False)
        return cls(sql, params, upper_bound(as_of), consumer_profiles_query(con, as_of))


def product_buyers(
    con: duckdb.DuckDBPyConnection, rows: NightRows, windows: Sequence[float | None]
) -> pd.DataFrame:
    """One row per product of the rows (those with only non-positive pairs too), sorted by id:
    ``product_id`` and ``buyers<i>`` (int64), the distinct consumers whose positive pair with
    the product is at most ``windows[i]`` days old."""
    counts = ", ".join(
        f"sum(CASE WHEN weight > 0{_within(window)} THEN 1 ELSE 0 END) AS buyers{i}"
        for i, window in enumerate(windows)
    )
    sql = render(
        "WITH night AS ({aged}) SELECT {product_id}, {counts} FROM night GROUP BY {product_id} "
        "ORDER BY {product_id}",
        aged=_aged(rows.sql),
        counts=counts,
    )
    frame = con.execute(sql, _params(rows, sql)).df()
    for i in range(len(windows)):
        frame[f"buyers{i}"] = frame[f"buyers{i}"].fillna(0).astype("int64")
    frame[Col.PRODUCT_ID] = frame[Col.PRODUCT_ID].astype(str)
    return frame


def community_buyers(con: duckdb.DuckDBPyConnection, rows: NightRows, window: float | None) -> pd.DataFrame:
    """Per home distributor × product, the distinct members (consumers whose home it is) whose
    positive pair with the product is at most ``window`` days old; only counts above zero.
    Columns ``distributor_id``, ``product_id``, ``buyers`` (int64), sorted by the first two."""
    if rows.homes is None:
        return pd.DataFrame({Col.DISTRIBUTOR_ID: [], Col.PRODUCT_ID: [], "buyers": []}).astype(
            {Col.DISTRIBUTOR_ID: object, Col.PRODUCT_ID: object, "buyers": "int64"}
        )
    homes_sql, homes_params = rows.homes
    sql = render(
        "WITH night AS ({aged}), homes AS ({homes}) "
        "SELECT CAST(h.{home} AS VARCHAR) AS {distributor_id}, n.{product_id}, count(*) AS buyers "
        "FROM night n JOIN homes h ON n.{consumer_id} = h.{consumer_id} "
        "WHERE n.weight > 0 AND h.{home} IS NOT NULL{within} "
        "GROUP BY CAST(h.{home} AS VARCHAR), n.{product_id} ORDER BY 1, 2",
        aged=_aged(rows.sql),
        homes=homes_sql,
        home=f'"{InteractionCol.HOME_DISTRIBUTOR_ID}"',
        within=_within(window, "n.age"),
    )
    frame = con.execute(sql, _params(rows, sql, homes_params)).df()
    frame["buyers"] = frame["buyers"].astype("int64")
    return frame


class EngineRows:
    """The night's interaction rows where the engine holds them (``rows``, a ``NightRows`` query
    on ``con``): what ``InteractionData`` that hold a sample's rows only (``partial``) cannot
    count or read themselves. The buyer counts are counted when first asked for a window and kept
    (``models.recommenders.popularity.recent_popularity``); ``spark_als`` fits on the rows
    (``models.recommenders.spark_als``). Valid while the connection is open."""

    def __init__(self, con: duckdb.DuckDBPyConnection, rows: NightRows) -> None:
        self.con = con
        self.rows = rows
        self._products: dict[float | None, pd.Series] = {}
        self._communities: dict[float | None, pd.DataFrame] = {}

    def products(self, window: float | None) -> pd.Series:
        """``product_buyers`` of one window: buyers (int64) by product id."""
        if window not in self._products:
            frame = product_buyers(self.con, self.rows, [window])
            self._products[window] = frame.set_index(Col.PRODUCT_ID)["buyers0"]
        return self._products[window]

    def communities(self, window: float | None) -> pd.DataFrame:
        """``community_buyers`` of one window."""
        if window not in self._communities:
            self._communities[window] = community_buyers(self.con, self.rows, window)
        return self._communities[window]

    def positive_pairs(self) -> tuple[str, dict[str, object]]:
        """The query of the rows' (consumer_id, product_id, weight) with positive weight (the pairs
        ``InteractionData``'s matrix holds) and its parameters."""
        sql = render(
            "SELECT {consumer_id}, {product_id}, weight FROM ({rows}) WHERE weight > 0", rows=self.rows.sql
        )
        return sql, {key: value for key, value in self.rows.params.items() if f"${key}" in sql}


def _aged(rows_sql: str) -> str:
    """The rows with ``age``: ``InteractionData.age_days``' value as SQL."""
    return render(
        "SELECT {consumer_id}, {product_id}, weight, CAST(greatest(coalesce("
        "epoch($counted_at - last_interaction_at) / 86400.0, 365.0), 1.0 / 24) AS FLOAT) AS age "
        "FROM ({rows_sql})",
        rows_sql=rows_sql,
    )


def _within(window: float | None, age: str = "age") -> str:
    return "" if window is None else f" AND {age} <= {float(window)!r}"


def _params(rows: NightRows, sql: str, extra: dict[str, object] | None = None) -> dict[str, object]:
    params = {**rows.params, **(extra or {}), "counted_at": rows.end}
    return {key: value for key, value in params.items() if f"${key}" in sql}
