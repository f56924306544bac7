"""The engine's popularity counts (features.popularity) are the in-memory definition's
(models.recommenders.popularity.recent_popularity over InteractionData) on every consumer's rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.asof import AsOf
from features.engine import connect
from features.interactions import InteractionCol, InteractionConfig, latest_activity
from features.popularity import NightRows
from models.evaluation import interaction_data
from models.recommenders.distributors import Trend
from models.recommenders.fallback import PopularityCounts
from models.recommenders.list_config import ListsConfig
from models.recommenders.popularity import recent_indicator, recent_popularity
from pipelines.config import NightlyConfig
from pipelines.steps.validate import load_and_validate
from sources.simulator import SimulationConfig, simulate


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("popularity")
    simulate(root / "data", SimulationConfig(consumers=600, distributors=30, products=80, days=120, seed=5))
    checked = load_and_validate(root / "data", None, NightlyConfig(), root / "validated")
    con = connect(checked.clean_paths)
    as_of = AsOf(latest_activity(con).date()).days_before(3)
    config = InteractionConfig()
    return con, as_of, config, interaction_data(con, as_of, config)


@pytest.mark.parametrize("window", [30.0, 7.0, 90.0, None])
def test_product_buyers_are_the_in_memory_counts(night, window: float | None) -> None:
    con, as_of, config, data = night
    counts = PopularityCounts.of(con, NightRows.of(con, as_of, config), window, 7)
    assert counts.product_ids.equals(data.product_ids)  # the same catalogue, products seen only as
    # returns (no positive pair) included
    expected = recent_popularity(data, window)
    assert counts.window == window and expected.sum() > 0
    np.testing.assert_array_equal(counts.buyers, expected)
    np.testing.assert_array_equal(counts.trend_buyers, recent_popularity(data, 7))
    np.testing.assert_array_equal(counts.baseline_buyers, recent_popularity(data, 90.0))


@pytest.mark.parametrize("window", [30.0, None])
def test_community_buyers_are_the_members_in_memory_counts(night, window: float | None) -> None:
    con, as_of, config, data = night
    counts = PopularityCounts.of(con, NightRows.of(con, as_of, config), window, 7)
    home = pd.Series(data.consumer_attribute(data.consumer_ids, InteractionCol.HOME_DISTRIBUTOR_ID))
    indicator = recent_indicator(data, window).tocsr()
    expected = {}  # the communities whose members have a pair in the window (the others list nothing)
    for community in set(home.dropna().astype(str)):
        rows = np.flatnonzero(home.notna() & (home.astype(str) == community))
        summed = np.asarray(indicator[rows].sum(axis=0)).ravel()
        if summed.any():
            expected[community] = summed
    assert sorted(expected) == counts.communities.tolist() and len(expected) > 5
    for i, community in enumerate(counts.communities):
        np.testing.assert_array_equal(counts.community_buyers[i].toarray().ravel(), expected[community])


def test_an_empty_window_falls_back_to_all_history(night) -> None:
    con, _, config, _ = night
    later = AsOf(latest_activity(con).date()).days_before(-400)  # nobody within 30 days of it
    counts = PopularityCounts.of(con, NightRows.of(con, later, config), 30.0, 7)
    assert counts.window is None and counts.buyers.sum() > 0
    assert counts.community_buyers.sum() > 0 and counts.trend_buyers.sum() == 0


def test_the_trend_from_counts_is_the_trend_of_the_data(night) -> None:
    con, as_of, config, data = night
    lists = ListsConfig(trend_min_buyers=2, trend_min_ratio=1.2)
    counts = PopularityCounts.of(con, NightRows.of(con, as_of, config), 30.0, lists.trend_days)
    expected = Trend.of(data, lists)
    assert expected.trending.any()  # the fixture has trending products
    shuffled = data.product_ids[::-1]  # a model's catalogue in another order, and one unknown product
    got = Trend.of_counts(counts, shuffled.append(pd.Index(["not-sold"])), lists)
    np.testing.assert_array_equal(got.buyers[:-1], expected.buyers[::-1])
    np.testing.assert_array_equal(got.trending[:-1], expected.trending[::-1])
    assert got.buyers[-1] == 0 and not got.trending[-1]
