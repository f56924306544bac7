"""The engine's popularity counts (``features.popularity``) over hand-made interaction frames:
the same SQL as the nightly's, run by an in-memory DuckDB over the frames."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import pandas as pd

from features.interactions import upper_bound
from features.popularity import NightRows
from features.vocabulary import InteractionCol
from models.recommenders.fallback import PopularityCounts


def counts_of(
    interactions: pd.DataFrame,
    profiles: pd.DataFrame | None = None,
    window_days: float | None = None,
    trend_days: float | None = 7,
    as_of: date | None = None,
) -> PopularityCounts:
    """``PopularityCounts`` of ``interactions`` (``build_interactions``' columns; a missing
    ``last_interaction_at`` reads as 365 days old) with ``profiles``' home distributors, their
    ages measured from the end of ``as_of`` (default: the day of the latest interaction)."""
    rows = interactions[["consumer_id", "product_id", InteractionCol.WEIGHT]].copy()
    seen = interactions.get(InteractionCol.LAST_INTERACTION_AT)
    rows[InteractionCol.LAST_INTERACTION_AT] = pd.to_datetime(seen) if seen is not None else pd.NaT
    rows[InteractionCol.LAST_INTERACTION_AT] = rows[InteractionCol.LAST_INTERACTION_AT].astype(
        "datetime64[us]"
    )
    if as_of is None:
        latest = rows[InteractionCol.LAST_INTERACTION_AT].max()
        as_of = latest.date() if pd.notna(latest) else date(2000, 1, 1)
    con = duckdb.connect()
    con.register("night_rows", rows)
    homes = None
    if profiles is not None and InteractionCol.HOME_DISTRIBUTOR_ID in profiles:
        con.register("night_homes", profiles[["consumer_id", InteractionCol.HOME_DISTRIBUTOR_ID]])
        homes = ("SELECT * FROM night_homes", {})
    end: datetime = upper_bound(as_of)
    return PopularityCounts.of(
        con, NightRows("SELECT * FROM night_rows", {}, end, homes), window_days, trend_days
    )
