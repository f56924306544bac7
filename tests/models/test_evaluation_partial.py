"""The evaluation on partial data (``evaluate_folds(..., partial=True)``, a Spark night's default):
each window's data hold only the rows the evaluation reads, and every number is the one every
row gives; so is the production tuning that reuses fold 1's ranker."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.asof import AsOf
from features.engine import connect
from features.errors import SiyuError
from features.interactions import latest_activity
from features.vocabulary import MetricCol
from models.evaluation import consumer_share, interaction_data
from models.recommenders.base import InteractionData
from models.recommenders.implicit_models import ItemKNNRecommender
from models.recommenders.popularity import (
    COMMUNITY,
    PopularityRecommender,
    RepeatPurchaseRecommender,
    recent_popularity,
)
from models.recommenders.ranker import RankerRecommender
from models.recommenders.spark_als import SparkALSRecommender
from models.recommenders.training import FittedModel, evaluate_folds, partial_sample, tune_production
from pipelines.config import NightlyConfig
from pipelines.steps.validate import load_and_validate
from sources.simulator import SimulationConfig, simulate

NAMES = ["ranker", "repeat", "popularity_global", "popularity_category", "popularity_community"]
TIMINGS = [MetricCol.FIT_SECONDS, MetricCol.RECOMMEND_SECONDS]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("partial_evaluation")
    simulate(root / "data", SimulationConfig(consumers=1500, distributors=20, products=120, days=120, seed=1))
    settings = NightlyConfig().model_dump()
    recommend = settings["recommend"]
    params = recommend["models"]["ranker"]["params"]
    # a fitting sample, a learner's sample and a test sample, each smaller than its population
    params.update(max_fit_consumers=400, max_training_consumers=150)
    recommend["evaluation"]["sample_consumers"] = 120
    config = NightlyConfig.model_validate(settings)
    validated = load_and_validate(root / "data", None, config, root / "validated")
    con = connect(validated.clean_paths)
    last = AsOf(latest_activity(con).date())
    every = evaluate_folds(con, config.recommend, NAMES, last, folds=2, partial=False)
    partial = evaluate_folds(con, config.recommend, NAMES, last, folds=2, partial=True)
    return {
        "con": con,
        "config": config,
        "last": last,
        "every": every,
        "partial": partial,
        "clean_paths": validated.clean_paths,
    }


def test_every_fold_measures_the_same_numbers_from_partial_data(world: dict) -> None:
    every, partial = world["every"], world["partial"]
    train = partial.latest_task.train
    assert train.partial and not every.latest_task.train.partial
    assert train.consumer_ids.equals(every.latest_task.train.consumer_ids)
    with_rows = int((np.diff(train.matrix.indptr) > 0).sum())
    assert with_rows < 0.8 * int((np.diff(every.latest_task.train.matrix.indptr) > 0).sum())
    assert partial.test_consumers == every.test_consumers and partial.sampled == every.sampled
    for table in ("per_fold", "summary"):
        pd.testing.assert_frame_equal(
            getattr(partial, table).drop(columns=TIMINGS), getattr(every, table).drop(columns=TIMINGS)
        )
    assert set(partial.per_fold[MetricCol.MODEL]) == set(NAMES)


def test_production_tuned_on_fold_ones_partial_data_learns_what_every_row_teaches(world: dict) -> None:
    """``tune_production`` reuses the ranker fold 1 fitted: its learner's consumers' rows are in the
    partial data (``PartialRows.also``), so the tuned model scores tonight's data alike."""
    con, config, last = world["con"], world["config"], world["last"]
    night = interaction_data(con, last, config.recommend.interactions)
    lists = []
    for run in (world["every"], world["partial"]):
        evaluated = FittedModel("ranker", run.latest_models["ranker"], run.folds[0].cutoff)
        model = tune_production(con, last, config.recommend, evaluated=evaluated).fit(night)
        lists.append(model.recommend(night.consumer_ids[:300], 10))
    pd.testing.assert_frame_equal(lists[0], lists[1])


def test_partial_data_count_popularity_on_the_engine(world: dict, tmp_path) -> None:
    con, config, last = world["con"], world["config"], world["last"]
    interactions = config.recommend.interactions
    full = interaction_data(con, last, interactions)
    partial = interaction_data(con, last, interactions, sample=100)
    assert partial.partial and partial.matrix.nnz < full.matrix.nnz / 3
    for window in (30.0, 7.0, None):
        np.testing.assert_array_equal(recent_popularity(partial, window), recent_popularity(full, window))
    pd.testing.assert_series_equal(consumer_share(partial), consumer_share(full))
    whole, sampled = PopularityRecommender(COMMUNITY).fit(full), PopularityRecommender(COMMUNITY).fit(partial)
    np.testing.assert_array_equal(whole.popularity_, sampled.popularity_)
    order = pd.Index(sampled.community_ids_).get_indexer(whole.community_ids_)
    assert (order >= 0).all()
    assert (whole.community_popularity_ != sampled.community_popularity_[order]).nnz == 0
    # saved partial data lose the engine: asking them to count is an error, not a sample's count
    partial.save(tmp_path / "partial")
    loaded = InteractionData.load(tmp_path / "partial")
    with pytest.raises(ValueError, match="partial"):
        recent_popularity(loaded, 30.0)


def test_which_models_can_be_evaluated_on_partial_data() -> None:
    """The largest fitting sample of the models (0: popularity counts only); None as soon as one
    model needs every consumer's rows, and the evaluation then reads every row."""
    assert partial_sample([RepeatPurchaseRecommender(), PopularityRecommender()]) == 0
    assert (
        partial_sample([RankerRecommender(max_fit_consumers=50), RankerRecommender(max_fit_consumers=80)])
        == 80
    )
    assert partial_sample([RankerRecommender(max_fit_consumers=None)]) is None
    assert partial_sample([PopularityRecommender(), ItemKNNRecommender()]) is None


def test_spark_als_on_partial_data_fits_on_the_engines_rows(world: dict, spark: object, tmp_path) -> None:
    """On partial data ``spark_als`` reads its ratings from the engine (DuckDB's rows handed to
    Spark, or Spark's own): the same (row, col, rating) as every row's matrix gives, and factors
    for consumers whose rows the data do not hold."""
    from features.spark_engine import SparkConnection

    con, config, last = world["con"], world["config"], world["last"]
    interactions = config.recommend.interactions
    full = interaction_data(con, last, interactions)
    partial = interaction_data(con, last, interactions, sample=100)
    on_spark = SparkConnection(spark, world["clean_paths"], spill_dir=tmp_path)
    spark_partial = interaction_data(on_spark, last, interactions, sample=100)
    assert spark_partial.partial and spark_partial.consumer_ids.equals(full.consumer_ids)
    model = SparkALSRecommender(factors=8, iterations=3, blocks=2)
    assert model.rows_to_fit() == 0 and SparkALSRecommender(bm25=True).rows_to_fit() is None
    ratings = [
        model.ratings(spark, data).toPandas().sort_values(["row", "col"]).reset_index(drop=True)
        for data in (full, partial, spark_partial)
    ]
    pd.testing.assert_frame_equal(ratings[0], ratings[1])
    pd.testing.assert_frame_equal(ratings[0], ratings[2])
    assert len(ratings[1]) == full.matrix.nnz > partial.matrix.nnz
    assert model.spark_reg_param(partial) == model.spark_reg_param(full)
    fitted = model.fit(partial)
    without_rows = np.flatnonzero((np.diff(partial.matrix.indptr) == 0) & (np.diff(full.matrix.indptr) > 0))
    assert len(without_rows) > 0 and (np.abs(fitted.user_factors_[without_rows]).sum(axis=1) > 0).all()
    with pytest.raises(SiyuError, match="bm25"):
        SparkALSRecommender(bm25=True).ratings(spark, partial)


def test_a_rankers_spark_als_component_learns_from_every_row_of_partial_data(
    world: dict, spark: object
) -> None:
    """In a ranker fitted on partial data, item-kNN learns from the fitting sample and is carried
    onto everyone; ``spark_als`` (``rows_to_fit`` 0) is fitted on the data itself, from the
    engine's rows: factors for every consumer with history, learned rather than solved."""
    from features.interactions import cutoff_before, purchased_pairs

    con, config, last = world["con"], world["config"], world["last"]
    interactions = config.recommend.interactions
    components = {
        "spark_als": {"kind": "spark_als", "factors": 8, "iterations": 3, "blocks": 2},
        "itemknn": {"kind": "itemknn", "neighbours": 20},
    }
    ranker = RankerRecommender(
        components=components, candidates_per_model=8, popular_candidates=5, max_fit_consumers=100
    )
    start = cutoff_before(last, 30)
    truth = purchased_pairs(con, start, last)
    window = interaction_data(con, start, interactions, sample=100)
    learners = ranker.tuning_consumers(window.consumer_ids, truth)
    window = interaction_data(con, start, interactions, sample=100, also=learners)
    ranker.tune(window, truth)
    partial = interaction_data(con, last, interactions, sample=100)
    ranker.fit(partial)
    als, knn = ranker.models_["spark_als"], ranker.models_["itemknn"]
    assert als.data_ is partial and not als.solved_
    with_history = np.flatnonzero(np.diff(interaction_data(con, last, interactions).matrix.indptr) > 0)
    assert (np.abs(als.user_factors_[with_history]).sum(axis=1) > 0).all()
    assert knn.data_ is partial  # carried from the sample
    assert ranker.consumer_state(partial) is None  # learned: the Spark pass ships the factors
