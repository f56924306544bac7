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
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import duckdb
import pandas as pd

from features.asof import AsOf
from features.catalog import StepFile
from features.columns import Col, Table
from features.engine import connect, has_table
from features.errors import SiyuError
from features.files import write_parquet_atomically, write_text_atomically
from features.interactions import (
    Cutoff,
    InteractionConfig,
    history_fingerprint,
    interactions_query,
    keep_interactions,
    shared_interactions,
)
from features.messages import Messages
from features.popularity import NightRows
from features.progress import CONSUMERS, progress
from models.evaluation import interaction_data, rolling_folds
from models.quality import QualityCol
from models.recommenders import InteractionData, Recommender
from models.recommenders.distributors import Trend, decayed_spend
from models.recommenders.fallback import PopularityCounts, build_fallback_lists
from models.recommenders.filters import build_filters
from models.recommenders.lists import home_distributors
from models.recommenders.scoring_pass import LIST_SCHEMAS, WrittenLists, list_pass, write_chunks
from models.recommenders.store import (
    CarriedEvaluation,
    ModelKey,
    StoredModel,
    read_stored,
    refit_reason,
    write_stored,
)
from models.recommenders.training import fit_production, tune_production
from pipelines.config import NightlyConfig
from pipelines.steps.quality import grade_products
from reporting.excel import read_history, twin_path

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from features.spark_engine import SparkConnection
    from models.recommenders.base import RecommendFilters
    from models.recommenders.fallback import FallbackLists
    from models.recommenders.training import FittedModel, RecommendConfig

logger = logging.getLogger(__name__)
T = TypeVar("T")

SIMILAR_DEPTH = 20


@dataclass(frozen=True)
class ProductionModel:
    """Tonight's production model on tonight's data, and the evaluation its numbers come from.

    ``reused``: the stored model carried onto tonight's data (no fit, no evaluation tonight;
    ``evaluation`` is the one of the night it was fitted, ``fitted_as_of``); ``key``: what it was
    trained on (``ModelKey.label``), the same on every night that reuses it."""

    model: Recommender
    data: InteractionData
    evaluation: CarriedEvaluation
    fitted_as_of: date
    key: str
    reused: bool


# () -> (metrics, gate NDCG, sample in words, the production model as evaluated, the champion's
# settings measured tonight as (version, name) or None)
Evaluate = Callable[
    [], tuple[dict[str, float], float, str | None, "FittedModel | None", tuple[str, str] | None]
]


def production_model(
    con: duckdb.DuckDBPyConnection,
    as_of: AsOf | date,
    config: NightlyConfig,
    outputs: Path,
    store: Path,
    evaluate: Evaluate,
) -> ProductionModel:
    """Tonight's production model under the refit cadence (``recommend.refit_every_days``).

    When the model stored in ``store`` can serve tonight (``models.recommenders.store.refit_reason``
    gives no reason to fit), it is carried onto tonight's interaction data and its night's
    ``evaluation.json`` is written to ``outputs`` again. Otherwise ``evaluate()`` runs (it writes
    ``outputs/evaluation.json`` and returns the numbers, the gate's NDCG, the sample in words and
    the production model as the evaluation fitted it), the model is tuned (``tune_production``,
    reusing that, whose fitted state is then dropped), tonight's interaction data are built, the
    model is fitted on them and stored for the next nights.
    """
    as_of = AsOf.of(as_of)
    recommend = config.recommend
    config_hash = recommend.model_hash()
    stored = read_stored(store)
    reason = refit_reason(
        stored,
        recommend.production,
        config_hash,
        as_of,
        recommend.refit_every_days,
        lambda day: history_fingerprint(con, AsOf.of(day)),
    )
    if reason is None and stored is not None:
        return _reused(con, as_of, config, outputs, stored)
    logger.info("fitting the production model tonight: %s", reason)
    with ExitStack() as stack:
        shared = shared_interactions(con, _fitting_cutoffs(as_of, recommend), recommend.interactions)
        _timed("shared interaction data", stack.enter_context)(shared)
        metrics, ndcg, sample, evaluated, champion_measured = _timed("evaluation", evaluate)()
        # Tuned (and the evaluated model's data and components dropped) before tonight's data
        # are built: the 300,000-distributor night peaked while both were held.
        tuned = _timed("production tuning", tune_production)(con, as_of, recommend, evaluated=evaluated)
        del evaluated
        data = _timed("interaction data", night_data)(con, as_of, recommend.interactions, tuned)
    model = _timed("production fit", tuned.fit)(data)
    key = ModelKey(config_hash, as_of.date, history_fingerprint(con, as_of))
    report = (outputs / StepFile.EVALUATION).read_text(encoding="utf-8")
    evaluation = CarriedEvaluation(metrics, ndcg, sample, report, champion_measured)
    write_stored(store, StoredModel.of(recommend.production, model, key, evaluation))
    return ProductionModel(model, data, evaluation, as_of.date, key.label, False)


def _fitting_cutoffs(as_of: AsOf, recommend: RecommendConfig) -> list[Cutoff]:
    """The cutoffs whose interaction data a fitting night builds: each evaluation fold's test
    cutoff and tuning-window start, and the as-of date (``features.interactions.shared_interactions``
    aggregates them in one pass)."""
    settings = recommend.evaluation
    folds = rolling_folds(as_of, settings.folds, settings.holdout_days, settings.validation_days)
    return [as_of, *(cutoff for fold in folds for cutoff in (fold.test.cutoff, fold.tuning.cutoff))]


def _reused(
    con: duckdb.DuckDBPyConnection, as_of: AsOf, config: NightlyConfig, outputs: Path, stored: StoredModel
) -> ProductionModel:
    """The stored model carried onto tonight's data, with its night's evaluation."""
    age = (as_of.date - stored.key.as_of).days
    logger.info(
        "reusing the production model fitted as of %s (%d days old; recommend.refit_every_days %d): "
        "tonight's interaction data, no fit, no evaluation (its numbers are that night's)",
        stored.key.as_of,
        age,
        config.recommend.refit_every_days,
    )
    data = _timed("interaction data", night_data)(
        con, as_of, config.recommend.interactions, stored.unfitted()
    )
    model = _timed("carry stored model", stored.carried_onto)(data)
    write_text_atomically(outputs / StepFile.EVALUATION, stored.evaluation.report)
    return ProductionModel(model, data, stored.evaluation, stored.key.as_of, stored.key.label, True)


def _timed(stage: str, fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` whose seconds go to the run's ``run_timings.json`` as ``recommenders: <stage>``."""
    from pipelines.runtime import timed

    return timed(f"recommenders: {stage}", fn)


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
    con: duckdb.DuckDBPyConnection | None = None,
    data: InteractionData | None = None,
    model: Recommender | None = None,
) -> RecommendOutcome:
    """Fit the production model on data up to ``as_of`` and write every list under ``out_dir``.

    The production model is ``config.recommend``'s (``fit_production``: tuned on the window
    before ``as_of``, then fitted up to it). ``k`` None takes ``recommend.k``;
    ``exclude_purchased`` None takes ``lists.exclude_purchased``. A run context may hand over
    what it already has: ``con`` (an open DuckDB session over ``clean_paths``' tables),
    ``data`` (the interaction data as of ``as_of``) and ``model`` (the production model
    fitted on ``data``); each one missing is made here. The reasons' sentences are in
    ``config.locale``; each row also carries its ``reason_code``.
    """
    as_of = AsOf.of(as_of)
    started = time.perf_counter()
    lists = config.lists
    k = k or config.recommend.k
    out_dir.mkdir(parents=True, exist_ok=True)
    con = con if con is not None else connect(clean_paths)
    data = data if data is not None else night_data(con, as_of, config.recommend.interactions)
    if model is None:
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
    # popularity over every consumer's rows, counted by the engine (features.popularity)
    counts = _timed("popularity counts", PopularityCounts.of)(
        con,
        NightRows.of(con, as_of, config.recommend.interactions),
        lists.fallback_window_days,
        lists.trend_days,
    )
    fallback = build_fallback_lists(counts, filters, depth=3 * k)
    trend = Trend.of_counts(counts, model.data_.product_ids, lists)
    spend = (
        decayed_spend(con, as_of, lists.member_half_life_days) if lists.member_weighting == "spend" else None
    )
    targets = {name: out_dir / name for name in LIST_SCHEMAS}
    spark = getattr(con, "spark", None)  # a features.spark_engine.SparkConnection's session
    if spark is not None:
        written = _spark_lists(
            spark, con, as_of, config, model, data, homes, k, fallback, filters, spend, trend, targets
        )
    else:
        chunks = list_pass(
            model,
            data,
            homes,
            k,
            fallback,
            filters,
            lists,
            _distributor_table_ids(con),
            spend,
            Messages.load(config.locale),
            trend,
        )
        with progress("scoring and writing lists", total=len(homes), unit=CONSUMERS) as bar:
            written = write_chunks(chunks, targets, bar.advance)
    paths = dict(targets)
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
        "recommend: %d consumers (%d from the fallback chain), %.1fs",
        len(homes),
        written.from_fallback,
        seconds,
    )
    return RecommendOutcome(
        paths,
        model.name,
        len(homes),
        written.from_fallback,
        written.distributors,
        written.outreach_rows,
        seconds,
    )


def night_data(
    con: duckdb.DuckDBPyConnection,
    as_of: AsOf,
    interaction_config: InteractionConfig,
    model: Recommender | None = None,
) -> InteractionData:
    """Tonight's interaction data, for ``model`` to be fitted or carried on and to score.

    On Spark, when ``model`` learns its product-level state from a sample of consumers
    (``Recommender.fitting_consumers``) and there are more consumers than that, the data hold
    only that sample's rows (``InteractionData.partial``: every consumer's id, every product):
    the fit learns what it would learn from every row, and the scoring parts read each
    consumer's own rows (``spark_scoring``), so no process holds every consumer's rows. On
    DuckDB the driver's pass scores from these data: every row."""
    keep_interactions(con, as_of, interaction_config)  # the counts (and on Spark the parts) read them again
    on_spark = getattr(con, "spark", None) is not None
    sample = model.fitting_consumers() if model is not None and on_spark else None
    data = interaction_data(con, as_of, interaction_config, sample=sample)
    if data.shape[0] == 0:
        raise SiyuError(
            f"no orders or events up to {as_of}: nothing to recommend from\n"
            "  fix: check --as-of against the dates in orders.ordered_at"
        )
    return data


def _alerts(
    con: duckdb.DuckDBPyConnection, as_of: AsOf, config: NightlyConfig, path: Path | None
) -> pd.DataFrame:
    if path is None:
        logger.info(
            "no --quality given: running the quality gate as of %s for the pulled / warned lists", as_of
        )
        return grade_products(con, as_of, config.quality).alerts
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


# --- the list files --------------------------------------------------------------------------------


def _distributor_table_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    if not has_table(con, Table.DISTRIBUTORS):
        return set()
    frame = con.execute(f'SELECT DISTINCT "{Col.DISTRIBUTOR_ID}" FROM "{Table.DISTRIBUTORS}"').df()
    return set(frame[Col.DISTRIBUTOR_ID].dropna().astype(str))


# --- engine.kind spark: the pass on the executors (issue #11 point 4; docs/spark.md) ---------------


def _spark_lists(
    spark: SparkSession,
    con: SparkConnection,
    as_of: AsOf,
    config: NightlyConfig,
    model: Recommender,
    data: InteractionData,
    homes: pd.Series,
    k: int,
    fallback: FallbackLists,
    filters: RecommendFilters,
    spend: pd.Series | None,
    trend: Trend,
    targets: dict[str, Path],
) -> WrittenLists:
    """The one pass's lists computed by Spark tasks (``models.recommenders.spark_scoring``): the
    same rows, in the same order, in the same files as the driver's pass. Each task reads its own
    consumers' interaction rows, as Spark computes them from the night's tables."""
    from models.recommenders.scoring_pass import PassOrder, PassPlan
    from models.recommenders.spark_scoring import ScoringInputs, consumers_per_second, spark_list_pass

    if model.data_ is not data:
        raise ValueError("the Spark pass scores the model's own interaction data: fit or carry it on `data`")
    lists = config.lists
    plan = PassPlan.of(PassOrder.of(homes, _distributor_table_ids(con)), data, lists.batch_size)
    inputs = ScoringInputs(
        model, plan, homes, k, fallback, filters, lists, spend, config.locale, as_of.date, trend
    )
    sql, params = interactions_query(con, as_of, config.recommend.interactions, ordered=False)
    spill = con.execute("SELECT current_setting('temp_directory')").fetchone()  # the spill folder
    scratch = Path(spill[0] if spill and spill[0] else tempfile.gettempdir())
    result = _timed("scoring pass on Spark", spark_list_pass)(
        spark, inputs, con.execute(sql, params).frame(), targets, scratch
    )
    logger.info(
        "scoring on Spark: %d parts, %.0f consumers per second per part (mean), slowest part %.1fs",
        len(result.parts),
        consumers_per_second(result),
        float(result.parts["seconds"].max()) if len(result.parts) else 0.0,
    )
    return WrittenLists(result.from_fallback, result.outreach_rows, len(homes), result.distributors)
