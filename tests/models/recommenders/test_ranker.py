"""The ranker's two ways to learn its weights: an explicit ``tune`` for the next fit, or a holdout."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.recommenders import InteractionData, RankerRecommender
from models.recommenders.ranker import holdout_from

PARAMS = {
    "components": {
        "itemknn": {"kind": "itemknn", "neighbours": 20},
        "als": {"kind": "als", "factors": 8, "iterations": 3, "num_threads": 1},
    },
    "candidates_per_model": 8,
    "popular_candidates": 5,
}


def test_fit_after_tune_keeps_the_tuned_weights_and_refits_the_components(
    planted_data: InteractionData, other_data: InteractionData
) -> None:
    ranker = RankerRecommender(**PARAMS).tune(*holdout_from(other_data, 30))
    tuned = ranker.learned_state()
    ranker.fit(planted_data)
    assert same_trees(ranker.learned_state(), tuned)
    assert ranker.data_ is planted_data
    assert all(model.data_ is planted_data for model in ranker.models_.values())
    assert not same_trees(RankerRecommender(**PARAMS).fit(planted_data).learned_state(), tuned)


def test_a_tune_serves_only_the_next_fit(planted_data: InteractionData, other_data: InteractionData) -> None:
    ranker = RankerRecommender(**PARAMS).tune(*holdout_from(other_data, 30)).fit(planted_data)
    ranker.fit(planted_data)
    fresh = RankerRecommender(**PARAMS).fit(planted_data)
    ids = planted_data.consumer_ids
    pd.testing.assert_frame_equal(ranker.score(ids), fresh.score(ids), check_exact=True)


def same_trees(left: dict[str, np.ndarray], right: dict[str, np.ndarray]) -> bool:
    """Whether two ``learned_state()`` dicts hold the same trees."""
    return left.keys() == right.keys() and all(np.array_equal(left[k], right[k]) for k in left)
