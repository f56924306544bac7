"""Spark ALS: implicit's hyper-parameters mapped onto Spark's, and Spark's factors back in matrix order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import SiyuError
from models.recommenders import InteractionData, RankerRecommender, SparkALSRecommender, load_recommender
from models.recommenders.implicit_models import FactorStart


def _data() -> InteractionData:
    """Three consumers, two products; weights 1, 3, 0.05 and one pair blocked (weight -1)."""
    frame = pd.DataFrame(
        {
            "consumer_id": ["A", "A", "B", "C", "C"],
            "product_id": ["X", "Y", "X", "Y", "X"],
            "weight": [1.0, 3.0, 0.05, 2.0, -1.0],
        }
    )
    return InteractionData.from_frames(frame)


def test_ratings_give_spark_the_confidences_implicit_uses() -> None:
    model = SparkALSRecommender(alpha=10.0)
    triples = model._triples(_data()).sort_values(["row", "col"]).reset_index(drop=True)
    assert triples[["row", "col"]].values.tolist() == [
        [0, 0],
        [0, 1],
        [1, 0],
        [2, 1],
    ]  # blocked pair left out
    spark_confidence = 1 + 10.0 * triples["rating"].to_numpy(dtype=np.float64)
    # implicit: alpha * weight = 10, 30, (0.5: below 1, floored near 1), 20
    np.testing.assert_allclose(spark_confidence, [10.0, 30.0, 1.0, 20.0], rtol=1e-5)
    assert (triples["rating"] > 0).all()


def test_reg_param_is_lambda_over_the_mean_products_per_consumer() -> None:
    # 4 positive pairs over 3 consumers: 4/3 products each; 0.05 / (4/3) = 0.0375
    assert SparkALSRecommender(regularization=0.05).spark_reg_param(_data()) == pytest.approx(0.0375)


def test_warm_start_is_refused_with_a_fix() -> None:
    start = FactorStart(pd.Index(["A"]), pd.Index(["X"]), np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(SiyuError, match="fix: drop warm_iterations"):
        SparkALSRecommender().warm_from(start)


def test_a_ranker_with_a_spark_als_component_fits_saves_and_carries(
    spark: object, planted_data: InteractionData, tmp_path: Path
) -> None:
    components = {"spark_als": {"kind": "spark_als", "factors": 8, "iterations": 3, "blocks": 2}}
    ranker = RankerRecommender(components=components, candidates_per_model=8, popular_candidates=5)
    ranker.fit(planted_data)
    assert isinstance(ranker.models_["spark_als"], SparkALSRecommender)
    lists = ranker.recommend(["C001", "C002"], 5)
    assert lists.groupby("consumer_id").size().tolist() == [5, 5]
    restored = load_recommender(ranker.save(tmp_path / "ranker"))
    pd.testing.assert_frame_equal(restored.recommend(["C001", "C002"], 5), lists)


def test_carried_factors_score_like_the_fit_on_the_same_data(
    spark: object, planted_data: InteractionData
) -> None:
    fitted = SparkALSRecommender(factors=8, iterations=3, blocks=2).fit(planted_data)
    carried = SparkALSRecommender(factors=8, iterations=3, blocks=2).carried_onto(
        planted_data, fitted.portable_state(), planted_data.product_ids
    )
    np.testing.assert_array_equal(carried.item_factors_, fitted.item_factors_)
    # consumers re-solved against the kept item factors (implicit's half-step): the same favourites
    top_fitted = fitted.recommend(["C001", "C002", "C003"], 3)["product_id"]
    top_carried = carried.recommend(["C001", "C002", "C003"], 3)["product_id"]
    assert len(set(top_fitted) & set(top_carried)) >= 5
