"""The contract every recommender keeps (see models/recommenders/base.py), checked for each model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import SiyuError
from models.recommenders import (
    RECOMMENDATION_COLUMNS,
    ALSRecommender,
    BPRRecommender,
    EASERecommender,
    InteractionData,
    ItemKNNRecommender,
    LightFMRecommender,
    PopularityRecommender,
    RankerRecommender,
    Recommender,
    RecommendFilters,
    RepeatPurchaseRecommender,
    SparkALSRecommender,
    load_recommender,
    registered_models,
)

SMALL_COMPONENTS = {
    "itemknn": {"kind": "itemknn", "neighbours": 20},
    "als": {"kind": "als", "factors": 8, "iterations": 3, "num_threads": 1},
}

MODELS: dict[str, Callable[[], Recommender]] = {
    "als": lambda: ALSRecommender(factors=8, iterations=3, num_threads=1),
    "spark_als": lambda: SparkALSRecommender(factors=8, iterations=3, blocks=2),
    "bpr": lambda: BPRRecommender(factors=8, iterations=20),
    "itemknn_bm25": lambda: ItemKNNRecommender("bm25", neighbours=20),
    "itemknn_cosine": lambda: ItemKNNRecommender("cosine", neighbours=20),
    "ease": lambda: EASERecommender(l2=10.0),
    "lightfm": lambda: LightFMRecommender(components=8, epochs=3),
    "popularity_global": lambda: PopularityRecommender("global"),
    "popularity_category": lambda: PopularityRecommender("category"),
    "popularity_community": lambda: PopularityRecommender("community"),
    "repeat": lambda: RepeatPurchaseRecommender(),
    "ranker": lambda: RankerRecommender(
        components=SMALL_COMPONENTS, candidates_per_model=8, popular_candidates=5
    ),
}

SOME = ["C000", "C001", "C002", "C010", "C033"]
# Models fitted on Spark: conftest's one local[2] session runs them (started only when one is tested).
SPARK_MODELS = frozenset({"spark_als"})


def _needs_spark(name: str, request: pytest.FixtureRequest) -> None:
    if name in SPARK_MODELS:
        request.getfixturevalue("spark")


def test_every_registered_model_is_in_the_suite() -> None:
    shipped = {name for name, cls in registered_models().items() if cls.__module__.startswith("models.")}
    assert {make().name for make in MODELS.values()} == shipped


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_second_fit_starts_from_scratch(
    name: str, planted_data: InteractionData, other_data: InteractionData, request: pytest.FixtureRequest
) -> None:
    _needs_spark(name, request)
    assert set(other_data.consumer_ids) != set(planted_data.consumer_ids)
    assert set(other_data.product_ids) != set(planted_data.product_ids)
    refitted = MODELS[name]().fit(other_data).fit(planted_data)
    fresh = MODELS[name]().fit(planted_data)
    ids = [*planted_data.consumer_ids, "C063", "C090", "NOBODY"]  # C090: only in other_data
    assert sorted(vars(refitted)) == sorted(vars(fresh))
    pd.testing.assert_frame_equal(refitted.score(ids), fresh.score(ids), check_exact=True)
    pd.testing.assert_frame_equal(refitted.recommend(ids, 5), fresh.recommend(ids, 5), check_exact=True)


@pytest.fixture(scope="module", params=sorted(MODELS))
def fitted(request: pytest.FixtureRequest, planted_data: InteractionData) -> tuple[str, Recommender]:
    _needs_spark(request.param, request)
    return request.param, MODELS[request.param]().fit(planted_data)


def test_recommend_returns_the_documented_frame(fitted: tuple[str, Recommender]) -> None:
    _, model = fitted
    lists = model.recommend(SOME, 5)
    assert list(lists.columns) == list(RECOMMENDATION_COLUMNS)
    assert lists["consumer_id"].unique().tolist() == SOME
    for _, group in lists.groupby("consumer_id"):
        assert group["rank"].tolist() == list(range(1, 6))
        assert group["score"].is_monotonic_decreasing
        assert group["product_id"].is_unique


def test_refit_with_the_same_seed_gives_the_same_lists(
    fitted: tuple[str, Recommender], planted_data: InteractionData
) -> None:
    name, model = fitted
    again = MODELS[name]().fit(planted_data)
    pd.testing.assert_frame_equal(model.recommend(SOME, 5), again.recommend(SOME, 5))


def test_save_load_round_trip_gives_identical_lists(fitted: tuple[str, Recommender], tmp_path: Path) -> None:
    _, model = fitted
    model.save(tmp_path / "model")
    assert not list((tmp_path / "model").rglob("*.pkl"))
    restored = load_recommender(tmp_path / "model")
    assert type(restored) is type(model)
    filters = RecommendFilters(exclude_purchased=True, category_cap=2)
    pd.testing.assert_frame_equal(model.recommend(SOME, 6, filters), restored.recommend(SOME, 6, filters))
    assert model.get_params() == restored.get_params()


def test_filters_really_filter(fitted: tuple[str, Recommender], planted_data: InteractionData) -> None:
    _, model = fitted
    allowed = frozenset(f"P{i:02d}" for i in range(0, 24, 2))
    pulled = frozenset({"P00", "P02"})
    lists = model.recommend(SOME, 5, RecommendFilters(allowed_products=allowed, exclude_products=pulled))
    assert set(lists["product_id"]) <= allowed - pulled
    assert len(lists) == 5 * len(SOME)

    unfiltered = model.recommend(SOME, 20, RecommendFilters(exclude_purchased=True))
    rows = planted_data.rows_of(unfiltered["consumer_id"])
    columns = planted_data.columns_of(unfiltered["product_id"])
    assert not np.asarray(planted_data.bought[rows, columns]).any()

    capped = model.recommend(SOME, 6, RecommendFilters(category_cap=2))
    categories = capped["product_id"].map(planted_data.product_profiles["category"])
    assert capped.assign(category=categories).groupby(["consumer_id", "category"]).size().max() <= 2


def test_demotion_moves_a_product_down(fitted: tuple[str, Recommender]) -> None:
    _, model = fitted
    before = model.recommend(["C001"], 10)
    top = before["product_id"].iloc[0]
    after = model.recommend(["C001"], 10, RecommendFilters(demote={top: 1e-6}))
    rank_after = after.loc[after["product_id"] == top, "rank"]
    assert rank_after.empty or int(rank_after.iloc[0]) > 1


def test_blocked_pairs_are_never_recommended(fitted: tuple[str, Recommender]) -> None:
    _, model = fitted
    lists = model.recommend(["C000"], 24)
    assert "P01" not in set(lists["product_id"])


def test_unknown_consumers_never_raise_and_are_reported(fitted: tuple[str, Recommender]) -> None:
    name, model = fitted
    ids = ["C001", "NOBODY", "C063"]  # C063 registered (profile) but never bought
    mask = model.can_score(ids)
    lists = model.recommend(ids, 3)
    assert set(lists["consumer_id"]) == {i for i, ok in zip(ids, mask, strict=True) if ok}
    assert mask[0]
    if name.startswith(("popularity", "repeat")):
        assert mask.all()  # the popularity family scores anyone
    elif name == "lightfm":
        assert mask.tolist() == [True, False, True]  # cold start from the profile
    else:
        assert mask.tolist() == [True, False, False]
    blocks = list(model.score_blocks(ids))
    assert np.isnan(blocks[0].scores[~mask]).all() and np.isfinite(blocks[0].scores[mask]).all()


def test_similar_items_and_pair_scores(fitted: tuple[str, Recommender]) -> None:
    _, model = fitted
    similar = model.similar_items(["P00", "UNKNOWN"], 3)
    assert similar["product_id"].unique().tolist() == ["P00"]
    assert "P00" not in set(similar["similar_product_id"])
    pairs = model.score(["C001", "NOBODY"], ["P00", "P03", "UNKNOWN"])
    scorable = [
        c for c, ok in zip(["C001", "NOBODY"], model.can_score(["C001", "NOBODY"]), strict=True) if ok
    ]
    assert pairs[["consumer_id", "product_id"]].values.tolist() == [
        [c, p] for c in scorable for p in ("P00", "P03")
    ]
    block = next(model.score_blocks(["C001"]))
    lists = model.recommend(["C001"], 1)
    assert np.isclose(np.nanmax(block.scores[0]), lists["score"].iloc[0])  # same scores as the lists


def test_unfitted_model_and_bad_filters_give_clear_errors() -> None:
    with pytest.raises(SiyuError, match="not fitted"):
        ALSRecommender().recommend(["C1"], 3)
    with pytest.raises(SiyuError, match="demotion"):
        RecommendFilters(demote={"P1": 2.0})


def test_lists_from_score_blocks_equal_recommend(fitted: tuple[str, Recommender]) -> None:
    _, model = fitted
    ids = [*SOME, "NOBODY"]
    filters = RecommendFilters(exclude_purchased=True, exclude_products=frozenset({"P03"}))
    from_blocks = pd.concat(
        [model.recommend_from_block(block, 4, filters) for block in model.score_blocks(ids, batch_size=2)],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(from_blocks, model.recommend(ids, 4, filters))
