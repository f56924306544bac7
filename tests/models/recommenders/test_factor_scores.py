"""A factor model's scores of a consumer are the same bits in whatever block they are scored.

The scoring pass's blocks differ between the driver's pass and the Spark parts (``PassPlan.part``),
and the ranker reads the order of a component's scores (``<component>_generator_rank``, the top
``candidates_per_model`` cut): a float32 product whose last bits follow the block's shape swapped
two near-tied ALS scores, and moved list scores by up to 4% (10M nightly, DuckDB against Spark).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.recommenders import ALSRecommender
from models.recommenders.base import factor_scores


def _als(consumers: int = 600, products: int = 1962, factors: int = 48) -> ALSRecommender:
    rng = np.random.default_rng(11)
    model = ALSRecommender(factors=factors)
    model._set_state(
        {
            "user_factors": (rng.standard_normal((consumers, factors)) * 0.3).astype(np.float32),
            "item_factors": (rng.standard_normal((products, factors)) * 0.05).astype(np.float32),
        }
    )
    return model


def test_a_consumers_factor_scores_do_not_depend_on_the_block() -> None:
    model = _als()
    ids = pd.Index([f"C{i:04d}" for i in range(model.user_factors_.shape[0])])
    rows = np.arange(len(ids))
    whole = model._score_rows(ids, rows)
    alone = np.vstack([model._score_rows(ids[[row]], rows[[row]]) for row in rows[:40]])
    np.testing.assert_array_equal(alone, whole[:40])
    for start, stop in ((0, 17), (3, 260), (5, 599), (101, 600)):  # other shapes, other places
        np.testing.assert_array_equal(model._score_rows(ids[start:stop], rows[start:stop]), whole[start:stop])


def test_factor_scores_are_the_product_rounded_to_float32() -> None:
    model = _als(consumers=20, products=30, factors=8)
    users, items = model.user_factors_, model.item_factors_
    got = factor_scores(users, items)
    assert got.dtype == np.float32
    exact = users.astype(np.float64) @ items.astype(np.float64).T
    np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-7)
