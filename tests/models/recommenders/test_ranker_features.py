"""The ranker's candidate features on hand-made histories whose values are known by hand."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.columns import Col
from features.errors import SiyuError
from features.vocabulary import InteractionCol
from models.recommenders import InteractionData, RankerRecommender, load_recommender
from models.recommenders.ranker import holdout_from
from models.recommenders.ranker_features import (
    ProductStats,
    candidate_features,
    category_codes,
    due_ratio,
    feature_names,
    popularity_trend,
)
from tests.models.recommenders.test_ranker import PARAMS, same_trees

AS_OF = date(2025, 3, 1)
END = pd.Timestamp("2025-03-02")  # the end of the as-of day: ages are measured from here


def _history(rows: list[tuple[str, str, int, float, float]]) -> InteractionData:
    """(consumer, product, purchases, days since the first purchase, days since the last one)."""
    frame = pd.DataFrame(rows, columns=[Col.CONSUMER_ID, Col.PRODUCT_ID, "n", "first", "last"])
    interactions = pd.DataFrame(
        {
            Col.CONSUMER_ID: frame[Col.CONSUMER_ID],
            Col.PRODUCT_ID: frame[Col.PRODUCT_ID],
            InteractionCol.WEIGHT: frame["n"].astype(float),
            InteractionCol.PURCHASES: frame["n"],
            InteractionCol.FIRST_PURCHASE_AT: END - pd.to_timedelta(frame["first"], unit="D"),
            InteractionCol.LAST_PURCHASE_AT: END - pd.to_timedelta(frame["last"], unit="D"),
            InteractionCol.LAST_INTERACTION_AT: END - pd.to_timedelta(frame["last"], unit="D"),
        }
    )
    products = pd.DataFrame(
        {
            Col.PRODUCT_ID: ["A", "B", "C", "D"],
            Col.CATEGORY: ["tea", "tea", "soap", "soap"],
            InteractionCol.PRICE_BAND: ["p1", "p3", "p5", "p1"],
        }
    )
    return InteractionData.from_frames(interactions, products=products, as_of=AS_OF)


def _features(data: InteractionData, consumer: str, products: list[str]) -> pd.DataFrame:
    rows = data.rows_of([consumer])
    columns = data.columns_of(products)
    values = candidate_features(
        data, ProductStats.fit(data), category_codes(data), rows, np.zeros(len(columns), int), columns, [], []
    )
    return pd.DataFrame(values, columns=feature_names([]), index=products)


HISTORY = [
    # C1 buys A every 14 days (3 orders over 28 days), last 13 days ago: A is due
    ("C1", "A", 3, 41.0, 13.0),
    # C1 bought B three times over 28 days too, but 2 days ago: not due
    ("C1", "B", 3, 30.0, 2.0),
    ("C2", "A", 2, 40.0, 20.0),  # C2 re-buys A after 20 days
    ("C2", "C", 1, 3.0, 3.0),
    ("C3", "C", 1, 5.0, 5.0),
    ("C3", "D", 1, 25.0, 25.0),
]


def test_a_product_bought_every_14_days_last_bought_13_days_ago_is_due() -> None:
    data = _history(HISTORY)
    features = _features(data, "C1", ["A", "B", "C"])
    assert features.loc["A", "pair_interval_log"] == pytest.approx(np.log1p(14.0))
    assert features.loc["A", "due_pair"] == pytest.approx(13 / 14, rel=1e-5)
    assert features.loc["B", "due_pair"] == pytest.approx(2 / 14, rel=1e-5)
    assert features.loc["A", "due_pair"] > 0.9 > 0.2 > features.loc["B", "due_pair"]
    # the consumer's typical interval: (28 + 28) / (2 + 2) = 14 days
    assert features.loc["A", "consumer_interval_log"] == pytest.approx(np.log1p(14.0))
    # the product's: C1 28 days over 2 repeats, C2 20 days over 1 -> 48 / 3 = 16 days
    assert features.loc["A", "due_product"] == pytest.approx(13 / 16, rel=1e-5)
    # C was never bought by C1 and never re-bought by anyone: no interval, no "due"
    assert np.isnan(features.loc["C", ["pair_interval_log", "product_interval_log", "due_pair"]]).all()
    assert due_ratio(13.0, 14.0) == pytest.approx(13 / 14)


def test_popularity_trend_compares_the_last_week_with_the_month() -> None:
    trend = popularity_trend(np.array([3.0, 0.0, 1.0, 0.0]), np.array([3.0, 6.0, 30.0 / 7, 0.0]))
    assert trend[0] == pytest.approx(30 / 7)  # all of the month's buyers came in the last week: rising
    assert trend[1] == 0.0  # none in the last week: falling
    assert trend[2] == pytest.approx(1.0)  # a steady rate
    assert np.isnan(trend[3])  # no buyer in the month
    data = _history(HISTORY)
    features = _features(data, "C3", ["A", "C"])
    # C: buyers 3 and 5 days ago (both within 7 days) -> rising; A: last buyers 13 and 20 days ago
    assert features.loc["C", "popularity_trend"] == pytest.approx(30 / 7, rel=1e-5)
    assert features.loc["A", "popularity_trend"] == 0.0


def test_price_band_against_the_consumers_usual_band() -> None:
    data = _history(HISTORY)
    features = _features(data, "C1", ["A", "B", "C"])
    # C1 bought A (p1) and B (p3) three times each: usual band 2
    assert features.loc["C", "price_band_gap"] == pytest.approx(3.0)  # p5: three bands dearer
    assert features.loc["A", "price_band_gap"] == pytest.approx(-1.0)
    assert features.loc["A", "price_band_gap_abs"] == pytest.approx(1.0)


def test_category_share_and_copurchase_with_the_recent_basket() -> None:
    data = _history(HISTORY)
    features = _features(data, "C1", ["A", "C", "D"])
    assert features.loc["A", "category_share"] == pytest.approx(1.0)  # C1 bought only tea
    assert features.loc["C", "category_share"] == 0.0
    # C1's recent basket is {A, B}; D's only buyer C3 never bought either
    assert features.loc["D", "copurchase_recent_sum"] == 0.0
    c2 = _features(data, "C2", ["D", "B"])
    # C2's recent basket is {C} (3 days ago; A was 17 days before that): C is bought with D by C3
    assert c2.loc["D", "copurchase_recent_sum"] > 0.0
    assert c2.loc["B", "copurchase_recent_sum"] == 0.0


def test_unknown_learner_or_feature_group_is_a_clear_error() -> None:
    with pytest.raises(SiyuError, match="learner 'xgb'"):
        RankerRecommender(learner="xgb")
    with pytest.raises(SiyuError, match="unknown groups \\['colour'\\]"):
        RankerRecommender(exclude_features=["colour"])


@pytest.mark.parametrize("learner", ["hgb", "lambdarank"])
def test_tree_learners_are_deterministic_and_round_trip(
    learner: str, planted_data: InteractionData, tmp_path: Path
) -> None:
    if learner == "lambdarank":
        pytest.importorskip("lightgbm")
    params = {**PARAMS, "learner": learner, "iterations": 20}
    first = RankerRecommender(**params).fit(planted_data)
    second = RankerRecommender(**params).fit(planted_data)
    assert same_trees(first.learned_state(), second.learned_state())
    ids = planted_data.consumer_ids[:10]
    lists = first.recommend(ids, 5)
    pd.testing.assert_frame_equal(second.recommend(ids, 5), lists, check_exact=True)
    restored = load_recommender(first.save(tmp_path / "ranker"))
    pd.testing.assert_frame_equal(restored.recommend(ids, 5), lists, check_exact=True)
    assert lists["score"].between(0, 1).all()


def test_leaving_a_feature_group_out_changes_the_trees(planted_data: InteractionData) -> None:
    full = RankerRecommender(**PARAMS).fit(planted_data)
    without = RankerRecommender(**PARAMS, exclude_features=["history"]).fit(planted_data)
    assert not same_trees(full.learned_state(), without.learned_state())
    assert len(without.recommend(planted_data.consumer_ids[:3], 5)) == 15


def test_place_of_a_product_in_the_consumers_own_history() -> None:
    data = _history(HISTORY)
    c2 = _features(data, "C2", ["A", "C", "D"])
    # C2 bought A twice (20 days ago) and C once (3 days ago)
    assert c2.loc["A", "purchase_share"] == pytest.approx(2 / 3)
    assert c2.loc["A", "purchase_rank_log"] == pytest.approx(np.log(1))
    assert c2.loc["C", "purchase_rank_log"] == pytest.approx(np.log(2))
    assert c2.loc["C", "recency_rank_log"] == pytest.approx(np.log(1))
    assert c2.loc["A", "recency_rank_log"] == pytest.approx(np.log(2))
    assert np.isnan(c2.loc["D", ["purchase_share", "purchase_rank_log", "recency_rank_log"]]).all()


def test_the_holdout_takes_the_last_purchase_out_of_the_repurchase_span() -> None:
    data = _history(HISTORY)
    view, truth = holdout_from(data, 15.0)
    held = set(zip(truth[Col.CONSUMER_ID], truth[Col.PRODUCT_ID], strict=True))
    assert ("C1", "A") in held and ("C2", "A") not in held  # C2 last bought A 20 days ago
    row, column = view.rows_of(["C1"])[0], view.columns_of(["A"])[0]
    assert view.purchases[row, column] == 2
    assert view.purchase_span_days[row, column] == pytest.approx(14.0)  # 28 days over 2 gaps -> 1 gap
    row = view.rows_of(["C2"])[0]
    assert view.purchase_span_days[row, column] == pytest.approx(20.0)  # untouched
