"""The ranker's two ways to learn its weights (an explicit ``tune`` for the next fit, or a holdout),
and its product-side state from a consumer sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.errors import SiyuError
from models.recommenders import InteractionData, RankerRecommender
from models.recommenders.ranker import build_component, fitting_sample, holdout_from
from models.recommenders.ranker_features import ProductStats

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


def test_product_side_state_from_a_fixed_consumer_sample_scores_every_consumer(
    planted_data: InteractionData,
) -> None:
    """``max_fit_consumers``: components and product statistics learned from a hash-picked sample,
    carried onto every consumer; at or above the number of consumers it changes nothing."""
    size = planted_data.shape[0] // 2
    sample = fitting_sample(planted_data, size)
    assert sample.shape == (size, planted_data.shape[1])
    hashes = pd.util.hash_pandas_object(pd.Series(planted_data.consumer_ids, dtype=str), index=False)
    smallest = set(planted_data.consumer_ids[np.argsort(hashes.to_numpy())[:size]])
    assert set(sample.consumer_ids) == smallest  # each id's own hash picks it, not its row
    assert fitting_sample(planted_data, planted_data.shape[0]) is planted_data

    ranker = RankerRecommender(**PARAMS, max_fit_consumers=size).fit(planted_data)
    ids = planted_data.consumer_ids
    assert ranker.can_score(ids).all()
    assert ranker.models_["als"].user_factors_.shape[0] == planted_data.shape[0]
    assert np.array_equal(ranker.stats_.popularity_all, ProductStats.fit(sample).popularity_all)
    assert not np.array_equal(ranker.stats_.popularity_all, ProductStats.fit(planted_data).popularity_all)
    similarity = ranker.models_["itemknn"].similarity_
    assert (similarity != build_component(PARAMS["components"]["itemknn"]).fit(sample).similarity_).nnz == 0
    assert len(ranker.score(ids)) > 0

    whole = RankerRecommender(**PARAMS, max_fit_consumers=planted_data.shape[0]).fit(planted_data)
    pd.testing.assert_frame_equal(whole.score(ids), RankerRecommender(**PARAMS).fit(planted_data).score(ids))


def test_max_fit_consumers_must_be_positive() -> None:
    with pytest.raises(SiyuError, match="max_fit_consumers"):
        RankerRecommender(max_fit_consumers=0)
