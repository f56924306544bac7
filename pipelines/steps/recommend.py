"""The recommend step: train the production model as of a date and write every published list.

``run_recommend`` reads the clean tables through the DuckDB engine, builds the interactions
and profiles as of ``as_of``, fits the production model (``recommend:``, ``fit_production``), builds the
business filters (sale window, quality gate, already bought, category cap) and writes, each
atomically (``features.files.atomic_path``) and in a fixed row order:

- ``consumer_recommendations.parquet``: every known consumer (consumers table ∪ buyers),
  ``k`` rows each (the model's list, topped up by the fallback chain);
- ``distributor_recommendations.parquet`` and ``distributor_outreach.parquet``;
- ``similar_items.parquet``, ``fallback_community.parquet``, ``fallback_global.parquet``.

Every column is documented in ``docs/recommendation_lists.md``. The quality gate's lists come
from ``quality_alerts_path`` (a ``quality_alerts.csv``, read through its Parquet twin) or,
without it, from running the gate here with ``config.quality``: pulled products are never
recommended by accident.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.asof import AsOf
from features.catalog import StepFile, export_file
from features.columns import Col, Table
from features.engine import connect, has_table
from features.errors import SiyuError
from features.files import atomic_path, write_parquet_atomically
from features.interactions import (
    InteractionConfig,
    build_interactions,
    consumer_profiles,
    product_profiles,
)
from features.quality_counts import quality_counts
from models.quality import QualityCol, assess
from models.recommenders import InteractionData, RecCol, Recommender, RecommendFilters
from models.recommenders.distributors import (
    decayed_spend,
    distributor_and_outreach_lists,
)
from models.recommenders.fallback import (
    FallbackLists,
    build_fallback_lists,
)
from models.recommenders.filters import build_filters
from models.recommenders.lists import consumer_list_chunks, home_distributors
from models.recommenders.training import fit_production
from pipelines.config import NightlyConfig
from reporting.excel import read_history, twin_path

logger = logging.getLogger(__name__)

CONSUMER_COLUMNS: tuple[str, ...] = export_file(StepFile.CONSUMER_LISTS).column_names()
SIMILAR_DEPTH = 20
CHUNK_CONSUMERS = 100_000


@dataclass(frozen=True)
class RecommendOutcome:
    """Where the lists went and what they hold (small numbers only)."""

    paths: dict[str, Path]
    model: str
    consumers: int
    consumers_from_fallback: int
    distributors: int
    outreach_rows: int
    seconds: float


def run_recommend(
    clean_paths: dict[str, Path],
    as_of: AsOf | date,
    config: NightlyConfig,
    out_dir: Path,
    k: int | None = None,
    exclude_purchased: bool | None = None,
    quality_alerts_path: Path | None = None,
) -> RecommendOutcome:
    """Fit the production model on data up to ``as_of`` and write every list under ``out_dir``.

    The production model is ``config.recommend``'s (``fit_production``: tuned on the window
    before ``as_of``, then fitted up to it). ``k`` None takes ``recommend.k``;
    ``exclude_purchased`` None takes ``lists.exclude_purchased``.
    """
    as_of = AsOf.of(as_of)
    started = time.perf_counter()
    lists = config.lists
    k = k or config.recommend.k
    out_dir.mkdir(parents=True, exist_ok=True)
    con = connect(clean_paths)
    data = _interaction_data(con, as_of, config.recommend.interactions)
    logger.info("recommend as of %s: fitting on %d consumers x %d products", as_of, *data.shape)
    model = fit_production(con, as_of, config.recommend, data=data)
    products = con.execute(f'SELECT * FROM "{Table.PRODUCTS}"').df()
    filters = build_filters(
        products,
        as_of,
        lists,
        _alerts(con, as_of, config, quality_alerts_path),
        config.quality,
        exclude_purchased,
    )
    homes = home_distributors(data)
    fallback = build_fallback_lists(data, filters, depth=3 * k, window_days=lists.fallback_window_days)
    paths: dict[str, Path] = {}
    consumers, from_fallback = _write_consumer_lists(
        model, data, homes, k, fallback, filters, out_dir / StepFile.CONSUMER_LISTS
    )
    paths[StepFile.CONSUMER_LISTS] = out_dir / StepFile.CONSUMER_LISTS
    spend = (
        decayed_spend(con, as_of, lists.member_half_life_days) if lists.member_weighting == "spend" else None
    )
    pushed, outreach = distributor_and_outreach_lists(
        model, data, homes, _distributor_table_ids(con), filters, lists, spend
    )
    paths[StepFile.DISTRIBUTOR_LISTS] = write_parquet_atomically(pushed, out_dir / StepFile.DISTRIBUTOR_LISTS)
    paths[StepFile.OUTREACH] = write_parquet_atomically(outreach, out_dir / StepFile.OUTREACH)
    similar = model.similar_items(data.product_ids, SIMILAR_DEPTH)
    paths[StepFile.SIMILAR_ITEMS] = write_parquet_atomically(similar, out_dir / StepFile.SIMILAR_ITEMS)
    paths[StepFile.FALLBACK_COMMUNITY] = write_parquet_atomically(
        fallback.community, out_dir / StepFile.FALLBACK_COMMUNITY
    )
    paths[StepFile.FALLBACK_GLOBAL] = write_parquet_atomically(
        fallback.global_, out_dir / StepFile.FALLBACK_GLOBAL
    )
    seconds = time.perf_counter() - started
    logger.info(
        "recommend: %d consumers (%d from the fallback chain), %.1fs", consumers, from_fallback, seconds
    )
    return RecommendOutcome(
        paths,
        model.name,
        consumers,
        from_fallback,
        int(pushed[Col.DISTRIBUTOR_ID].nunique()),
        len(outreach),
        seconds,
    )


def _interaction_data(
    con: duckdb.DuckDBPyConnection, as_of: AsOf, interaction_config: InteractionConfig
) -> InteractionData:
    interactions = build_interactions(con, as_of, interaction_config)
    if interactions.empty:
        raise SiyuError(
            f"no orders or events up to {as_of}: nothing to recommend from\n"
            "  fix: check --as-of against the dates in orders.ordered_at"
        )
    return InteractionData.from_frames(
        interactions, consumer_profiles(con, as_of), product_profiles(con), as_of
    )


def _alerts(
    con: duckdb.DuckDBPyConnection, as_of: AsOf, config: NightlyConfig, path: Path | None
) -> pd.DataFrame:
    if path is None:
        logger.info(
            "no --quality given: running the quality gate as of %s for the pulled / warned lists", as_of
        )
        settings = config.quality
        counts = quality_counts(
            con, as_of, settings.window_days, settings.maturity_days, settings.recent_days
        )
        return assess(counts, as_of, settings).alerts
    if path.is_dir():
        path = path / StepFile.QUALITY_ALERTS
    if not path.is_file() and not twin_path(path).is_file():
        raise SiyuError(
            f"{path}: quality alerts not found\n"
            "  fix: pass --quality with the --out directory of siyu quality"
        )
    return read_history(
        path, [Col.PRODUCT_ID, QualityCol.LEVEL], "use quality_alerts.csv written by siyu quality"
    )


# --- consumer lists ------------------------------------------------------------------------------


def _write_consumer_lists(
    model: Recommender,
    data: InteractionData,
    homes: pd.Series,
    k: int,
    fallback: FallbackLists,
    filters: RecommendFilters,
    path: Path,
) -> tuple[int, int]:
    """Stream the lists chunk by chunk into ``path``; returns (consumers, consumers from the fallback)."""
    from_fallback = 0
    with atomic_path(path) as partial, pq.ParquetWriter(partial, _CONSUMER_SCHEMA) as writer:
        for chunk in consumer_list_chunks(model, data, homes, k, fallback, filters, CHUNK_CONSUMERS):
            from_fallback += chunk.from_fallback
            rows = pa.Table.from_pandas(chunk.rows, preserve_index=False, schema=_CONSUMER_SCHEMA)
            writer.write_table(rows)
            logger.info("consumer lists: %d of %d consumers", chunk.done, len(homes))
    return len(homes), from_fallback


_CONSUMER_SCHEMA = pa.schema(
    [
        (RecCol.CONSUMER_ID, pa.string()),
        (RecCol.PRODUCT_ID, pa.string()),
        (RecCol.RANK, pa.int32()),
        (RecCol.SCORE, pa.float32()),
        (RecCol.REASON, pa.string()),
    ]
)


def _distributor_table_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    if not has_table(con, Table.DISTRIBUTORS):
        return set()
    frame = con.execute(f'SELECT DISTINCT "{Col.DISTRIBUTOR_ID}" FROM "{Table.DISTRIBUTORS}"').df()
    return set(frame[Col.DISTRIBUTOR_ID].dropna().astype(str))
