"""Per-distributor lists and outreach on a hand-made case whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.interactions import InteractionCol
from models.recommenders import InteractionData, Recommender, RecommendFilters
from models.recommenders.distributors import (
    DistributorStream,
    TopProducts,
    aggregate_members,
    community_signals,
    distributor_lists,
    member_weights,
    outreach_lists,
)
from models.recommenders.list_config import ListsConfig

PRODUCTS = ["P1", "P2", "P3", "P4"]
SCORES = {
    "C1": [0.9, 0.1, 0.5, 0.0],
    "C2": [0.8, 0.0, 0.6, 0.1],
    "C3": [0.0, 0.2, 0.9, 0.0],
    "C4": [0.0, 0.0, 0.0, 1.0],
}
HOMES = pd.Series({"C1": "D1", "C2": "D1", "C3": "D1", "C4": "D2"})
CATEGORIES = np.array(["a", "a", "b", "b"], dtype=object)


class FixedScores(Recommender):
    """Scores given by hand (a stand-in for a fitted model)."""

    name = "fixed_scores_for_tests"

    def _fit(self, data: InteractionData) -> None:
        self.table_ = np.array([SCORES[c] for c in data.consumer_ids], dtype=np.float32)

    def _score_rows(self, consumer_ids: pd.Index, rows: np.ndarray) -> np.ndarray:
        return self.table_[rows]


def _data(blocked: tuple[str, str] | None = None) -> InteractionData:
    pairs = [
        (consumer, product, 1.0, 2 if consumer == "C1" else 1) for consumer in SCORES for product in PRODUCTS
    ]
    frame = pd.DataFrame(
        pairs, columns=["consumer_id", "product_id", InteractionCol.WEIGHT, InteractionCol.PURCHASES]
    )
    if blocked is not None:
        hit = (frame["consumer_id"] == blocked[0]) & (frame["product_id"] == blocked[1])
        frame.loc[hit, InteractionCol.WEIGHT] = -1.0
    return InteractionData.from_frames(frame)


def _config(**changes: object) -> ListsConfig:
    base = dict(
        community_weight=0.0,
        trend_weight=0.0,
        member_weighting="uniform",
        likely_top_k=2,
        reason_min_customers=3,
        distributor_top_n=3,
        outreach_size=2,
    )
    return ListsConfig(**{**base, **changes})


def _lists(model: Recommender, config: ListsConfig, weights: pd.Series | None = None) -> pd.DataFrame:
    data = model.data_
    weights = member_weights(data, config) if weights is None else weights
    distributors = pd.Index(["D1", "D2"])
    aggregated = aggregate_members(model, HOMES, weights, distributors, RecommendFilters(), config)
    signals = community_signals(data, HOMES, distributors, config)
    return distributor_lists(aggregated, signals, RecommendFilters(), config, CATEGORIES), aggregated


def test_members_scores_are_summed_and_ranked() -> None:
    model = FixedScores().fit(_data())
    lists, aggregated = _lists(model, _config())
    d1 = lists[lists["distributor_id"] == "D1"]
    # column sums over C1..C3: P1 1.7, P2 0.3, P3 2.0, P4 0.1
    assert d1["product_id"].tolist() == ["P3", "P1", "P2"]
    np.testing.assert_allclose(d1["score"], [1.0, 0.85, 0.15], rtol=1e-5)
    np.testing.assert_array_equal(aggregated.likely_buyers[0], [2, 1, 3, 0])
    assert d1["reason"].iloc[0] == "3 of your customers are likely to buy"
    assert lists[lists["distributor_id"] == "D2"]["product_id"].iloc[0] == "P4"


def test_member_weights_change_the_answer() -> None:
    model = FixedScores().fit(_data())
    weights = pd.Series({"C1": 1.0, "C2": 1.0, "C3": 0.0, "C4": 1.0})
    lists, _ = _lists(model, _config(), weights)
    assert lists[lists["distributor_id"] == "D1"]["product_id"].tolist()[:2] == ["P1", "P3"]


def test_repeat_favourite_reason_from_purchases() -> None:
    model = FixedScores().fit(_data())
    lists, _ = _lists(model, _config(reason_min_customers=4, reason_min_repeat_buyers=1))
    assert (
        lists[lists["distributor_id"] == "D1"]["reason"]
        .iloc[0]
        .startswith("repeat favourite in your group (1 ")
    )


def test_filters_apply_to_distributor_lists() -> None:
    model = FixedScores().fit(_data())
    config = _config()
    weights = member_weights(model.data_, config)
    filters = RecommendFilters(exclude_products=frozenset({"P3"}), demote={"P1": 0.1})
    distributors = pd.Index(["D1", "D2"])
    aggregated = aggregate_members(model, HOMES, weights, distributors, filters, config)
    signals = community_signals(model.data_, HOMES, distributors, config)
    lists = distributor_lists(aggregated, signals, filters, config, CATEGORIES)
    assert "P3" not in set(lists["product_id"])
    assert lists[lists["distributor_id"] == "D1"]["product_id"].tolist() == ["P2", "P1", "P4"]


def test_outreach_one_message_per_customer_best_first() -> None:
    model = FixedScores().fit(_data())
    config = _config()
    lists, _ = _lists(model, config)
    outreach = outreach_lists(model, HOMES, member_weights(model.data_, config), lists, config, CATEGORIES)
    d1 = outreach[outreach["distributor_id"] == "D1"]
    # best pushed product per member: C1 P1 (0.9), C2 P1 (0.8), C3 P3 (0.9); two kept
    assert d1[["consumer_id", "product_id"]].values.tolist() == [["C1", "P1"], ["C3", "P3"]]
    assert d1["rank"].tolist() == [1, 2]
    assert d1["reason"].iloc[0] == "bought it 2 times before"
    assert outreach["consumer_id"].is_unique


def test_outreach_skips_blocked_pairs() -> None:
    model = FixedScores().fit(_data(blocked=("C1", "P1")))
    config = _config(outreach_size=5)
    lists, _ = _lists(model, config)
    outreach = outreach_lists(model, HOMES, member_weights(model.data_, config), lists, config, CATEGORIES)
    c1 = outreach[outreach["consumer_id"] == "C1"]
    assert c1["product_id"].tolist() == ["P3"]


@pytest.mark.parametrize("top_n", [3, 1])  # 1: members keep 2 of 4 products, some scored again
@pytest.mark.parametrize("blocked", [None, ("C2", "P1")])
def test_the_one_pass_stream_equals_the_dense_lists(
    top_n: int, blocked: tuple[str, str] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # C5 (in D1) ranks D1's pushed P3 last: its kept products cannot settle it, it is scored again
    monkeypatch.setitem(SCORES, "C5", [0.5, 0.4, 0.1, 0.3])
    homes = pd.concat([HOMES, pd.Series({"C5": "D1"})])
    model = FixedScores().fit(_data(blocked))
    config = _config(distributor_top_n=top_n, outreach_size=5)
    weights = member_weights(model.data_, config)
    distributors = pd.Index(["D0", "D1", "D2", "D3"])  # D0 and D3: listed, no member
    aggregated = aggregate_members(model, homes, weights, distributors, RecommendFilters(), config)
    signals = community_signals(model.data_, homes, distributors, config)
    pushed = distributor_lists(aggregated, signals, RecommendFilters(), config, CATEGORIES)
    outreach = outreach_lists(model, homes, weights, pushed, config, CATEGORIES)
    stream = DistributorStream(model, distributors, weights, RecommendFilters(), config, CATEGORIES)
    members = pd.Index(["C1", "C2", "C3", "C5", "C4"])
    codes = distributors.get_indexer(homes.reindex(members))
    streamed = []
    for i, block in enumerate(model.score_blocks(members, batch_size=1)):  # D1 spans three blocks
        later = codes[i + 1] if i + 1 < len(codes) else len(distributors)
        streamed.extend(stream.add(block.consumer_ids, codes[i : i + 1], block.scores, later))
    streamed.extend(stream.finish())
    pd.testing.assert_frame_equal(pd.concat([p for p, _ in streamed if len(p)], ignore_index=True), pushed)
    assert set(pushed["distributor_id"]) == {"D0", "D1", "D2", "D3"}
    pd.testing.assert_frame_equal(pd.concat([o for _, o in streamed if len(o)], ignore_index=True), outreach)
    assert len(outreach) >= 3
    assert (stream.rescored > 0) == (top_n == 1)
    assert "C5" in set(outreach["consumer_id"])


def test_settling_kept_products_is_the_members_by_kept_by_pushed_comparison() -> None:
    """``TopProducts.settle`` one pushed slot at a time gives what the whole members × kept ×
    pushed comparison gives (members with fewer kept products than slots, unpushed -1 slots)."""
    rng = np.random.default_rng(5)
    members, depth, pushed, products = 300, 8, 5, 30
    columns = np.stack([rng.permutation(products)[:depth] for _ in range(members)])
    scores = -np.sort(-rng.random((members, depth)).astype(np.float32), axis=1)
    short = rng.random(members) < 0.2  # fewer candidates than slots
    columns[short, -2:], scores[short, -2:] = -1, -np.inf
    candidates = rng.integers(0, products, (members, pushed))
    candidates[rng.random((members, pushed)) < 0.1] = -1
    kept = TopProducts(
        pd.Index([f"C{i}" for i in range(members)]), np.zeros(members, np.int64), columns, scores
    )
    gathered, settled = kept.settle(candidates)
    hits = (columns[:, :, None] == candidates[:, None, :]) & (candidates[:, None, :] >= 0)
    want = np.where(hits, scores[:, :, None], -np.inf).max(axis=1)
    np.testing.assert_array_equal(gathered, want)
    assert gathered.dtype == want.dtype
    np.testing.assert_array_equal(settled, (want.max(axis=1) > scores[:, -1]) | ~np.isfinite(scores[:, -1]))
    assert settled.any() and not settled.all()
