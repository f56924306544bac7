"""Metrics against hand-computed values, and the temporal split / protocols on tiny frames."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from features.asof import AsOf
from features.engine import connect
from features.interactions import InteractionConfig
from models.evaluation import (
    MetricCol,
    Protocol,
    TimeSplit,
    catalogue_coverage,
    evaluate_models,
    make_task,
    new_items_truth,
    novelty,
    ranking_metrics,
)
from models.recommenders import RepeatPurchaseRecommender
from tests.data import orders_frame, products_frame


def _frame(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["consumer_id", "product_id", "rank"])


TRUTH = pd.DataFrame({"consumer_id": ["C1", "C1", "C2", "C3"], "product_id": ["A", "B", "C", "D"]})
LISTS = _frame(
    [("C1", "A", 1), ("C1", "X", 2), ("C1", "B", 3), ("C2", "Y", 1), ("C2", "C", 2), ("C2", "Z", 3)]
)


def test_ranking_metrics_match_hand_computed_values() -> None:
    metrics = ranking_metrics(LISTS, TRUTH, k=3)
    ndcg_c1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))  # hits at 1 and 3 of 2 relevant
    ndcg_c2 = (1 / math.log2(3)) / 1  # hit at 2 of 1 relevant
    assert metrics[MetricCol.NDCG] == pytest.approx((ndcg_c1 + ndcg_c2 + 0) / 3)  # C3 has no list: 0
    assert metrics[MetricCol.RECALL] == pytest.approx((1 + 1 + 0) / 3)
    assert metrics[MetricCol.PRECISION] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert metrics[MetricCol.MAP] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 2 + 0) / 3)
    assert metrics[MetricCol.HIT_RATE] == pytest.approx(2 / 3)


def test_metrics_ignore_ranks_beyond_k_and_cap_the_ideal_at_k() -> None:
    metrics = ranking_metrics(LISTS, TRUTH, k=1)
    assert metrics[MetricCol.NDCG] == pytest.approx(1 / 3)  # only C1's rank-1 hit counts; ideal = 1 hit
    assert metrics[MetricCol.RECALL] == pytest.approx(0.5 / 3)
    assert metrics[MetricCol.MAP] == pytest.approx(1 / 3)


def test_coverage_and_novelty() -> None:
    assert catalogue_coverage(LISTS, catalogue_size=10, k=3) == pytest.approx(0.6)  # A X B Y C Z
    assert catalogue_coverage(LISTS, catalogue_size=10, k=1) == pytest.approx(0.2)
    shares = pd.Series({"A": 0.5, "X": 0.25, "B": 0.25, "Y": 0.125, "C": 0.125, "Z": 0.125})
    assert novelty(LISTS, shares, k=3) == pytest.approx((1 + 2 + 2 + 3 + 3 + 3) / 6)


def test_splits_tune_before_the_cutoff() -> None:
    split = TimeSplit.holdout(AsOf(date(2025, 3, 31)), 30)
    assert split == TimeSplit(AsOf(date(2025, 3, 1)), AsOf(date(2025, 3, 31)))
    validation = split.validation(10)
    assert validation.test_end == split.cutoff and validation.cutoff == AsOf(date(2025, 2, 19))


def test_task_keeps_returning_buyers_and_known_products_and_new_items_drop_repurchases() -> None:
    orders = pd.concat(
        [
            orders_frame(),
            pd.DataFrame(
                {
                    "order_id": ["O8", "O8", "O9"],
                    "consumer_id": ["C1", "C1", "C9"],
                    "distributor_id": ["D1", "D1", "D1"],
                    "product_id": ["P1", "P3", "P1"],
                    "quantity": [1, 1, 1],
                    "unit_price": [9.0, 5.0, 9.0],
                    "ordered_at": pd.to_datetime(["2025-04-03", "2025-04-03", "2025-04-04"]),
                    "status": ["paid", "paid", "paid"],
                }
            ),
        ]
    )
    con = connect({"orders": orders, "products": products_frame()})
    task = make_task(
        con,
        TimeSplit(AsOf(date(2025, 3, 31)), AsOf(date(2025, 4, 30))),
        InteractionConfig(half_life_days=None),
    )
    # C9 never bought before; C1's P3 was returned, not bought, but P3 is in the catalogue (weight < 0 pair)
    assert task.truth.values.tolist() == [["C1", "P1"], ["C1", "P3"]]
    assert new_items_truth(task.truth, task.train).values.tolist() == [["C1", "P3"]]
    table = evaluate_models({"repeat": RepeatPurchaseRecommender()}, task, k=2)
    assert table[MetricCol.PROTOCOL].tolist() == list(Protocol.ALL)
    all_items = table.set_index(MetricCol.PROTOCOL).loc[Protocol.ALL_ITEMS]
    assert all_items[MetricCol.CONSUMERS] == 1
    assert all_items[MetricCol.HIT_RATE] == 1.0  # repeat purchase puts P1 (bought before) first


def test_a_model_that_is_a_fitted_components_twin_is_measured_on_that_component(
    planted_data, other_data
) -> None:
    """The nightly's itemknn_bm25 and ease are the ranker's own components: not fitted twice, same numbers."""
    from models.evaluation import EvaluationTask
    from models.recommenders import EASERecommender, ItemKNNRecommender, RankerRecommender
    from tests.models.recommenders.test_ranker import PARAMS

    truth = pd.DataFrame(
        {
            "consumer_id": other_data.consumer_ids[:30].intersection(planted_data.consumer_ids),
        }
    ).assign(product_id=planted_data.product_ids[0])
    task = EvaluationTask(TimeSplit(AsOf(date(2025, 2, 28)), AsOf(date(2025, 3, 30))), planted_data, truth)
    ranker = RankerRecommender(**PARAMS)
    twin, other = ItemKNNRecommender(neighbours=20), ItemKNNRecommender(neighbours=10)
    together = evaluate_models({"ranker": ranker, "itemknn": twin, "itemknn10": other}, task, k=5)
    assert not hasattr(twin, "data_")  # measured on the ranker's component, never fitted itself
    assert hasattr(other, "data_")  # other parameters: fitted as always
    alone = evaluate_models(
        {"itemknn": ItemKNNRecommender(neighbours=20), "itemknn10": ItemKNNRecommender(neighbours=10)},
        task,
        k=5,
    )
    numbers = [c for c in together.columns if c not in MetricCol.TIMINGS]
    pd.testing.assert_frame_equal(
        together[numbers].iloc[2:].reset_index(drop=True), alone[numbers].reset_index(drop=True)
    )
    no_twin = evaluate_models({"ease": EASERecommender()}, task, k=5)  # no ranker before it: fitted
    assert no_twin[MetricCol.FIT_SECONDS].iloc[0] > 0


@pytest.mark.parametrize("name", ["ranker", "als", "repeat", "popularity_community", "itemknn_cosine"])
def test_both_protocols_from_one_scoring_pass_equal_each_protocols_own_recommend(
    name: str, planted_data, other_data
) -> None:
    """The evaluation scores a consumer once for both protocols; its numbers are those of
    ``recommend`` with each protocol's filters, consumer by consumer."""
    from models.evaluation import (
        EvaluationTask,
        consumer_metrics,
        consumer_share,
        protocol_filters,
        protocol_truth,
    )
    from tests.models.recommenders.test_contract import MODELS

    bought = planted_data.bought.tocsr()
    consumers = planted_data.consumer_ids[::2]
    owned = planted_data.product_ids[bought[planted_data.rows_of(consumers)].argmax(axis=1).A1]
    truth = pd.concat(  # each one product bought before; the first ten also two others
        [
            pd.DataFrame({"consumer_id": consumers, "product_id": owned}),
            pd.DataFrame({"consumer_id": consumers[:10].repeat(2), "product_id": ["P05", "P11"] * 10}),
        ]
    ).drop_duplicates()
    task = EvaluationTask(TimeSplit(AsOf(date(2025, 2, 28)), AsOf(date(2025, 3, 30))), planted_data, truth)
    model = MODELS[name]().fit(planted_data)
    table = evaluate_models({name: model}, task, k=5, fit=False).set_index(MetricCol.PROTOCOL)
    assert set(table.index) == set(Protocol.ALL)
    for protocol in Protocol.ALL:
        wanted = protocol_truth(task, protocol)
        lists = model.recommend(wanted["consumer_id"].unique(), 5, protocol_filters(protocol))
        means = consumer_metrics(lists, wanted, 5).mean()
        for metric in ("ndcg", "recall", "precision", "map", "hit_rate"):
            assert table.loc[protocol, metric] == means[metric], (protocol, metric)
        top = lists.loc[lists["rank"] <= 5, "product_id"]
        assert table.loc[protocol, MetricCol.COVERAGE] == top.nunique() / planted_data.shape[1]
        assert table.loc[protocol, MetricCol.NOVELTY] == pytest.approx(
            float((-np.log2(consumer_share(planted_data).reindex(top).to_numpy())).mean()), rel=1e-12
        )
    assert (
        table.loc[Protocol.NEW_ITEMS, MetricCol.CONSUMERS]
        < table.loc[Protocol.ALL_ITEMS, MetricCol.CONSUMERS]
    )


def test_interaction_data_logs_each_part_and_equals_the_parts_put_together(caplog) -> None:
    """``interaction_data`` (the split's, the tuning window's and production's data: seconds each at
    10M lines) logs the pairs, the profiles and the matrices, and is ``from_frames`` of the parts."""
    import logging

    from features.interactions import build_interactions, consumer_profiles, product_profiles
    from models.evaluation import interaction_data
    from models.recommenders import InteractionData

    con = connect({"orders": orders_frame(), "products": products_frame()})
    as_of = AsOf(date(2025, 3, 31))
    with caplog.at_level(logging.INFO, logger="models.evaluation"):
        data = interaction_data(con, as_of)
    lines = [
        record.getMessage() for record in caplog.records if "interaction data as of" in record.getMessage()
    ]
    assert [line.split(": ")[1].split(",")[0] for line in lines] == [
        f"{data.matrix.nnz + data.blocked.nnz} pairs read",
        f"profiles of {len(consumer_profiles(con, as_of))} consumers and {len(products_frame())} products",
        f"{data.shape[0]} consumers x {data.shape[1]} products",
    ]
    parts = InteractionData.from_frames(
        build_interactions(con, as_of, ordered=False),
        consumer_profiles(con, as_of),
        product_profiles(con),
        as_of,
    )
    assert (data.matrix != parts.matrix).nnz == 0 and data.consumer_ids.equals(parts.consumer_ids)
    pd.testing.assert_frame_equal(data.consumer_profiles, parts.consumer_profiles)
