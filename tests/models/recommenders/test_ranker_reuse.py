"""``tune_fitted``: learning the ranker's weights over the components a fit left, with no second fit."""

from __future__ import annotations

import pandas as pd

from models.recommenders import InteractionData, RankerRecommender
from models.recommenders.ranker import holdout_from
from tests.models.recommenders.test_ranker import PARAMS, same_trees


def test_tune_fitted_learns_the_weights_tune_would_and_the_next_fit_uses_them(
    planted_data: InteractionData, other_data: InteractionData
) -> None:
    window, truth = holdout_from(other_data, 30)
    tuned = RankerRecommender(**PARAMS).tune(window, truth)
    # as the evaluation leaves it: tuned elsewhere, then fitted on the window's data
    reused = RankerRecommender(**PARAMS).tune(*holdout_from(planted_data, 30)).fit(window)
    fitted_components = reused.models_
    reused.tune_fitted(truth)
    assert reused.models_ is fitted_components  # nothing fitted again
    assert same_trees(reused.learned_state(), tuned.learned_state())

    tuned.fit(planted_data)
    reused.fit(planted_data)
    assert same_trees(reused.learned_state(), tuned.learned_state())
    assert reused.data_ is planted_data and all(m.data_ is planted_data for m in reused.models_.values())
    ids = planted_data.consumer_ids
    pd.testing.assert_frame_equal(reused.recommend(ids, 5), tuned.recommend(ids, 5), check_exact=True)


def test_tune_fitted_serves_only_the_next_fit(
    planted_data: InteractionData, other_data: InteractionData
) -> None:
    window, truth = holdout_from(other_data, 30)
    ranker = RankerRecommender(**PARAMS).tune(*holdout_from(planted_data, 30)).fit(window)
    ranker.tune_fitted(truth).fit(planted_data)
    weights = ranker.learned_state()
    ranker.fit(planted_data)  # no tune before this fit: it learns its own weights
    assert not same_trees(ranker.learned_state(), weights)
    assert same_trees(ranker.learned_state(), RankerRecommender(**PARAMS).fit(planted_data).learned_state())
