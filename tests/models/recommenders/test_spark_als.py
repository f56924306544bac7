"""Spark ALS: implicit's hyper-parameters mapped onto Spark's, and Spark's factors back in matrix order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.errors import SiyuError
from models.recommenders import InteractionData, SparkALSRecommender
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
