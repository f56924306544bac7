"""TIFU-KNN and UP-CF@r on hand-made basket histories whose scores are known by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from features.errors import SiyuError
from models.recommenders.base import InteractionData
from models.recommenders.next_basket import (
    BASKET_AGE,
    BASKETS,
    TifuKnnRecommender,
    UpCfRecommender,
    with_basket_age,
)

# A: basket o1 on day 1 (P1, P2), o2 on day 5 (P2), o3 on day 9 (P3); B: o4 on day 3 (P1);
# C: o5 on day 2 (P2, P3)
LINES = pd.DataFrame(
    {
        "consumer_id": ["A", "A", "A", "A", "B", "C", "C"],
        "order_id": ["o1", "o1", "o2", "o3", "o4", "o5", "o5"],
        "product_id": ["P1", "P2", "P2", "P3", "P1", "P2", "P3"],
        "ordered_at": pd.to_datetime(
            ["2025-01-01", "2025-01-01", "2025-01-05", "2025-01-09", "2025-01-03", "2025-01-02", "2025-01-02"]
        ),
    }
)


@pytest.fixture
def baskets() -> pd.DataFrame:
    return with_basket_age(LINES)


@pytest.fixture
def data(baskets: pd.DataFrame) -> InteractionData:
    pairs = baskets[["consumer_id", "product_id"]].drop_duplicates().assign(weight=1.0)
    return InteractionData.from_frames(pairs)


def _scores(model: object, consumer: str) -> dict[str, float]:
    frame = model.score([consumer])  # type: ignore[attr-defined]
    return {p: round(float(v), 4) for p, v in zip(frame["product_id"], frame["score"], strict=True)}


def test_baskets_are_aged_from_the_latest(baskets: pd.DataFrame) -> None:
    a = baskets[baskets["consumer_id"] == "A"].set_index("product_id")
    assert a.loc["P3", BASKET_AGE] == 0 and sorted(a.loc["P2", BASKET_AGE]) == [1, 2]
    assert a.loc["P1", BASKET_AGE] == 2 and set(a[BASKETS]) == {3}


def test_tifu_knn_weighs_baskets_within_groups_and_groups_by_their_age(
    baskets: pd.DataFrame, data: InteractionData
) -> None:
    # groups of 2 from the latest: (age 0, age 1) and (age 2); decays 0.5; two groups
    # P3: 1/2 * 1/2 = 0.25; P2: 0.5/2 * 1/2 + 1/1 * 0.5/2 = 0.375; P1: 0.25
    model = TifuKnnRecommender(group_size=2, basket_decay=0.5, group_decay=0.5, alpha=1.0)
    own = _scores(model.with_baskets(baskets).fit(data), "A")
    assert own == {"P1": 0.25, "P2": 0.375, "P3": 0.25}
    # alpha 0, one neighbour: B's nearest (Euclidean) is A or C? B = (P1: 1); A = (.25, .375, .25),
    # C = (0, .5, .5): |B - A|² = 0.5625 + 0.140625 + 0.0625 = 0.765625 < |B - C|² = 1.5 -> A
    borrowed = TifuKnnRecommender(group_size=2, basket_decay=0.5, group_decay=0.5, neighbours=1, alpha=0.0)
    assert _scores(borrowed.with_baskets(baskets).fit(data), "B") == own


def test_up_cf_spreads_recent_popularity_over_asymmetric_cosine_neighbours(
    baskets: pd.DataFrame, data: InteractionData
) -> None:
    # UP@1: A -> P3, B -> P1, C -> P2, P3 at 1/1 each. For B (bought {P1}), asymmetry 0.5:
    # sim(B, A) = 1 / (1 * sqrt(3)) = 0.5774, sim(B, C) = 0, sim(B, B) = 1.
    model = UpCfRecommender(recency=1, asymmetry=0.5, locality=1.0).with_baskets(baskets).fit(data)
    assert _scores(model, "B") == {"P1": 1.0, "P2": 0.0, "P3": 0.5774}
    # all baskets (recency None): A's UP = P1 1/3, P2 2/3, P3 1/3
    everything = UpCfRecommender(recency=None, asymmetry=0.5, locality=1.0).with_baskets(baskets).fit(data)
    assert _scores(everything, "B")["P2"] == pytest.approx(0.5774 * 2 / 3, abs=1e-4)


def test_fitting_without_baskets_says_how_to_give_them(data: InteractionData) -> None:
    with pytest.raises(SiyuError, match="with_baskets"):
        UpCfRecommender().fit(data)
