"""The fallback chain: unknown consumers get their community's list, then global popularity; never empty."""

from __future__ import annotations

import pandas as pd
import pytest

from features.errors import SiyuError
from features.interactions import InteractionCol
from models.recommenders import InteractionData, RecommendFilters
from models.recommenders.fallback import (
    SOURCE_COMMUNITY,
    SOURCE_GLOBAL,
    FallbackLists,
    build_fallback_lists,
    complete_lists,
)
from tests.popularity import counts_of


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    # community D1 (C1, C2) loves P3; globally P1 is the most popular (C3, C4, C5 in D2)
    pairs = [("C1", "P3"), ("C2", "P3"), ("C2", "P2"), ("C3", "P1"), ("C4", "P1"), ("C5", "P1"), ("C5", "P2")]
    frame = pd.DataFrame(pairs, columns=["consumer_id", "product_id"]).assign(**{InteractionCol.WEIGHT: 1.0})
    frame.loc[len(frame)] = ["C1", "P4", -1.0]  # returned: blocked for C1
    profiles = pd.DataFrame(
        {
            "consumer_id": ["C1", "C2", "C3", "C4", "C5", "NEW1", "NEW2"],
            InteractionCol.HOME_DISTRIBUTOR_ID: ["D1", "D1", "D2", "D2", "D2", "D1", None],
        }
    )
    return frame, profiles


def _data() -> InteractionData:
    frame, profiles = _frames()
    return InteractionData.from_frames(frame, consumers=profiles)


def _fallback(filters: RecommendFilters) -> FallbackLists:
    return build_fallback_lists(counts_of(*_frames()), filters, depth=10)


def _homes(data: InteractionData) -> pd.Series:
    return data.consumer_profiles[InteractionCol.HOME_DISTRIBUTOR_ID]


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"consumer_id": [], "product_id": [], "score": [], "rank": []})


def test_lists_are_community_then_global() -> None:
    fallback = _fallback(RecommendFilters())
    d1 = fallback.community[fallback.community["distributor_id"] == "D1"]
    assert d1["product_id"].tolist()[:2] == ["P3", "P2"]
    assert fallback.global_["product_id"].tolist()[:3] == ["P1", "P2", "P3"]
    assert fallback.global_["recent_buyers"].tolist()[:3] == [3, 2, 2]


def test_unknown_consumer_gets_community_list_then_global() -> None:
    data = _data()
    fallback = _fallback(RecommendFilters())
    ids = pd.Index(["NEW1", "NEW2", "STRANGER"])
    lists = complete_lists(_empty(), ids, _homes(data), 3, fallback, data, RecommendFilters())
    new1 = lists[lists["consumer_id"] == "NEW1"]
    assert new1["product_id"].tolist() == ["P3", "P2", "P1"]
    assert new1["source"].tolist() == [SOURCE_COMMUNITY, SOURCE_COMMUNITY, SOURCE_GLOBAL]
    for consumer in ("NEW2", "STRANGER"):  # no community: the global list
        rows = lists[lists["consumer_id"] == consumer]
        assert rows["product_id"].tolist() == ["P1", "P2", "P3"]
        assert set(rows["source"]) == {SOURCE_GLOBAL}
    assert lists["consumer_id"].drop_duplicates().tolist() == ids.tolist()


def test_short_lists_are_topped_up_after_own_rows_skipping_blocked_and_bought() -> None:
    data = _data()
    filters = RecommendFilters(exclude_purchased=True)
    fallback = _fallback(filters)
    own = pd.DataFrame({"consumer_id": ["C1"], "product_id": ["P1"], "score": [0.9], "rank": [1]})
    lists = complete_lists(own, pd.Index(["C1"]), _homes(data), 3, fallback, data, filters)
    # P3 bought by C1, P4 blocked (returned): own P1, then community P2, nothing else left
    assert lists["product_id"].tolist() == ["P1", "P2"]
    assert lists["source"].tolist() == ["model", SOURCE_COMMUNITY]
    assert lists["rank"].tolist() == [1, 2]


def test_fallback_respects_filters() -> None:
    filters = RecommendFilters(
        exclude_products=frozenset({"P1"}), allowed_products=frozenset({"P1", "P2", "P4"})
    )
    fallback = _fallback(filters)
    assert fallback.global_["product_id"].tolist() == ["P2", "P4"]
    assert "P3" not in set(fallback.community["product_id"])


def test_empty_sale_window_is_dropped_rather_than_empty_lists() -> None:
    filters = RecommendFilters(allowed_products=frozenset())
    fallback = _fallback(filters)
    assert len(fallback.global_) == 4


def test_everything_pulled_is_a_clear_error() -> None:
    filters = RecommendFilters(exclude_products=frozenset({"P1", "P2", "P3", "P4"}))
    with pytest.raises(SiyuError, match="every product is excluded"):
        _fallback(filters)


def test_category_cap_applies_to_fallback_rows() -> None:
    data = _data()
    categories = {"P1": "a", "P2": "a", "P3": "a", "P4": "b"}
    filters = RecommendFilters(category_cap=1, categories=categories)
    fallback = _fallback(filters)
    lists = complete_lists(_empty(), pd.Index(["NEW1"]), _homes(data), 3, fallback, data, filters)
    assert lists["product_id"].tolist() == ["P3", "P4"]


def test_exclude_purchased_skips_paid_purchases_not_views() -> None:
    # the model's lists and the top-up share one definition: paid purchases (InteractionData.bought)
    frame = pd.DataFrame(
        {
            "consumer_id": ["C1", "C1", "C2", "C2", "C3"],
            "product_id": ["P1", "P2", "P1", "P2", "P2"],
            InteractionCol.WEIGHT: [1.0, 0.2, 1.0, 1.0, 1.0],
            InteractionCol.PURCHASES: [1, 0, 1, 1, 1],  # C1 only viewed P2
        }
    )
    data = InteractionData.from_frames(frame)
    filters = RecommendFilters(exclude_purchased=True)
    fallback = build_fallback_lists(counts_of(frame), filters, depth=10)
    lists = complete_lists(_empty(), pd.Index(["C1"]), pd.Series(dtype=object), 2, fallback, data, filters)
    assert lists["product_id"].tolist() == ["P2"]  # P1 bought: skipped; P2 viewed: kept
    assert data.bought[0].indices.tolist() == [0]
