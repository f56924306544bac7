"""Planted truth: on a small simulated platform, personalised models find the tastes the simulator planted.

The simulator draws each consumer's category tastes (truth/consumer_tastes.parquet) and each
community's (truth/community_tastes.parquet). A model that learned them recommends products
of the consumer's favourite categories; global popularity cannot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.asof import AsOf
from features.columns import Col
from features.engine import connect
from features.interactions import latest_activity
from models.evaluation import MetricCol, Protocol, TimeSplit, evaluate_models, make_task
from models.recommenders import (
    ALSRecommender,
    InteractionData,
    ItemKNNRecommender,
    PopularityRecommender,
    RankerRecommender,
    Recommender,
    RecommendFilters,
)
from models.recommenders.training import build_data, tune_on_window
from sources.simulator import SimulationConfig, simulate


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(out, SimulationConfig(consumers=3000, distributors=20, products=200, days=240, seed=11))
    return out


def _connect(platform: Path):
    tables = ("orders", "products", "consumers", "events", "complaints")
    return connect({t: platform / f"{t}.parquet" for t in tables})


def _taste_mass(
    model: Recommender, data: InteractionData, tastes: pd.DataFrame, consumers: pd.Index
) -> float:
    """Mean planted taste weight of the category of each recommended (not yet bought) product."""
    lists = model.recommend(consumers, 10, RecommendFilters(exclude_purchased=True))
    lists[Col.CATEGORY] = lists[Col.PRODUCT_ID].map(data.product_profiles[Col.CATEGORY])
    weights = tastes.set_index([Col.CONSUMER_ID, Col.CATEGORY])["weight"]
    return float(
        weights.reindex(pd.MultiIndex.from_frame(lists[[Col.CONSUMER_ID, Col.CATEGORY]])).fillna(0).mean()
    )


def test_personalised_models_recover_planted_category_tastes(platform: Path) -> None:
    con = _connect(platform)
    as_of = AsOf.of(latest_activity(con))
    data = build_data(con, as_of)
    tastes = pd.read_parquet(platform / "truth" / "consumer_tastes.parquet")
    active = data.consumer_ids[np.diff(data.bought.indptr) >= 4]
    assert len(active) > 200
    baseline = _taste_mass(PopularityRecommender("global").fit(data), data, tastes, active)
    for model in (
        PopularityRecommender("category"),
        ItemKNNRecommender("bm25"),
        ALSRecommender(factors=16, iterations=5),
    ):
        mass = _taste_mass(model.fit(data), data, tastes, active)
        assert mass > 1.2 * baseline, f"{model.name}: {mass:.4f} vs global popularity {baseline:.4f}"


def test_community_popularity_follows_planted_community_tastes(platform: Path) -> None:
    con = _connect(platform)
    data = build_data(con, AsOf.of(latest_activity(con)))
    community = pd.read_parquet(platform / "truth" / "community_tastes.parquet")
    homes = data.consumer_profiles["home_distributor_id"].rename(Col.DISTRIBUTOR_ID)
    tastes = community.merge(homes.reset_index(), on=Col.DISTRIBUTOR_ID)[
        [Col.CONSUMER_ID, Col.CATEGORY, "weight"]
    ]
    consumers = data.consumer_ids[:1000]
    local = _taste_mass(
        PopularityRecommender("community", window_days=None).fit(data), data, tastes, consumers
    )
    overall = _taste_mass(
        PopularityRecommender("global", window_days=None).fit(data), data, tastes, consumers
    )
    assert local > 1.2 * overall


def test_tuned_ranker_beats_popularity_on_the_future_window(platform: Path) -> None:
    con = _connect(platform)
    split = TimeSplit.holdout(AsOf.of(latest_activity(con)), 30)
    task = make_task(con, split)
    components = {"itemknn": {"kind": "itemknn"}, "als": {"kind": "als", "factors": 16, "iterations": 5}}
    ranker = tune_on_window(RankerRecommender(components=components), con, split.cutoff, 30)
    table = evaluate_models({"ranker": ranker, "popularity": PopularityRecommender()}, task, k=10)
    ndcg = table.set_index([MetricCol.MODEL, MetricCol.PROTOCOL])[MetricCol.NDCG]
    assert ndcg[("ranker", Protocol.ALL_ITEMS)] > ndcg[("popularity", Protocol.ALL_ITEMS)]
