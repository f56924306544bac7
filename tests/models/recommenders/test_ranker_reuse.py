"""``tune_fitted``: learning the ranker's weights over the components a fit left, with no second fit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.recommenders import InteractionData, RankerRecommender
from models.recommenders.ranker import holdout_from
from tests.models.recommenders.test_ranker import PARAMS


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
    for key in ("coef_", "intercept_", "mean_", "scale_"):
        assert np.array_equal(getattr(reused, key), getattr(tuned, key)), key

    tuned.fit(planted_data)
    reused.fit(planted_data)
    assert np.array_equal(reused.coef_, tuned.coef_)
    assert reused.data_ is planted_data and all(m.data_ is planted_data for m in reused.models_.values())
    ids = planted_data.consumer_ids
    pd.testing.assert_frame_equal(reused.recommend(ids, 5), tuned.recommend(ids, 5), check_exact=True)


def test_tune_fitted_serves_only_the_next_fit(
    planted_data: InteractionData, other_data: InteractionData
) -> None:
    window, truth = holdout_from(other_data, 30)
    ranker = RankerRecommender(**PARAMS).tune(*holdout_from(planted_data, 30)).fit(window)
    ranker.tune_fitted(truth).fit(planted_data)
    weights = ranker.coef_.copy()
    ranker.fit(planted_data)  # no tune before this fit: it learns its own weights
    assert not np.array_equal(ranker.coef_, weights)
    assert np.array_equal(ranker.coef_, RankerRecommender(**PARAMS).fit(planted_data).coef_)
