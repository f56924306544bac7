"""ALS's warm start: the fit after the ranker's tuning starts from the tuned factors."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.recommenders import ALSRecommender, InteractionData, RankerRecommender
from models.recommenders.ranker import holdout_from
from tests.models.recommenders.test_ranker import PARAMS

ALS = {"factors": 8, "iterations": 3, "num_threads": 1}


def test_zero_warm_iterations_keep_the_start_on_the_new_ids(
    planted_data: InteractionData, other_data: InteractionData
) -> None:
    start = ALSRecommender(**ALS).fit(other_data).factor_start()
    warm = ALSRecommender(**ALS, warm_iterations=0).warm_from(start).fit(planted_data)
    for ids, fitted_ids, kept, got in (
        (planted_data.consumer_ids, start.consumer_ids, start.user_factors, warm.user_factors_),
        (planted_data.product_ids, start.product_ids, start.item_factors, warm.item_factors_),
    ):
        rows = fitted_ids.get_indexer(ids)
        assert (rows >= 0).any() and (rows < 0).any()  # some ids fitted before, some new
        np.testing.assert_array_equal(got[rows >= 0], kept[rows[rows >= 0]])
        new = got[rows < 0]
        assert ((new >= 0) & (new < 0.01)).all()  # implicit's own random start for new ids


def test_a_warm_start_serves_only_the_next_fit_and_needs_warm_iterations(
    planted_data: InteractionData, other_data: InteractionData
) -> None:
    start = ALSRecommender(**ALS).fit(other_data).factor_start()
    fresh = ALSRecommender(**ALS).fit(planted_data)
    warm = ALSRecommender(**ALS, warm_iterations=1).warm_from(start).fit(planted_data)
    assert not np.array_equal(warm.item_factors_, fresh.item_factors_)
    warm.fit(planted_data)
    np.testing.assert_array_equal(warm.item_factors_, fresh.item_factors_)
    unset = ALSRecommender(**ALS).warm_from(start).fit(planted_data)  # warm_iterations None: cold
    np.testing.assert_array_equal(unset.item_factors_, fresh.item_factors_)


def test_the_ranker_warm_starts_the_fit_after_tuning_from_the_tuned_components(
    planted_data: InteractionData, other_data: InteractionData
) -> None:
    params = {
        **PARAMS,
        "components": {**PARAMS["components"], "als": {**PARAMS["components"]["als"], "warm_iterations": 1}},
    }
    ranker = RankerRecommender(**params).tune(*holdout_from(other_data, 30))
    start = ranker.models_["als"].factor_start()
    ranker.fit(planted_data)
    als = {key: value for key, value in params["components"]["als"].items() if key != "kind"}
    expected = ALSRecommender(**als).warm_from(start).fit(planted_data)
    np.testing.assert_array_equal(ranker.models_["als"].user_factors_, expected.user_factors_)
    cold = RankerRecommender(**params).fit(planted_data)  # no tune: no warm start
    np.testing.assert_array_equal(
        cold.models_["als"].item_factors_, ALSRecommender(**als).fit(planted_data).item_factors_
    )
    ids = planted_data.consumer_ids
    ranker.fit(planted_data)  # the next fit without a tune is cold again
    pd.testing.assert_frame_equal(
        ranker.models_["als"].score(ids), ALSRecommender(**als).fit(planted_data).score(ids), check_exact=True
    )


def test_every_als_iteration_is_reported_cold_and_warm(
    planted_data: InteractionData, other_data: InteractionData, monkeypatch
) -> None:
    """ALS reports each iteration (implicit's callback) through ``features.progress``: at 10M lines
    an iteration is seconds, and a fit without it was a silent half minute. A warm fit counts its
    ``warm_iterations``."""
    import features.progress as progress_module

    monkeypatch.setattr(progress_module, "LOG_EVERY_SECONDS", 0.0)
    updates: list[progress_module.ProgressUpdate] = []
    remove = progress_module.add_listener(updates.append)
    try:
        start = ALSRecommender(**ALS).fit(other_data).factor_start()
        ALSRecommender(**ALS, warm_iterations=2).warm_from(start).fit(planted_data)
    finally:
        remove()
    fits = [update for update in updates if update.step.startswith("als: fitting")]
    assert [(update.done, update.total, update.finished) for update in fits] == [
        (1, 3, False),
        (2, 3, False),
        (3, 3, True),  # the last iteration is the done line's
        (1, 2, False),
        (2, 2, True),
    ]
    assert f"{planted_data.shape[0]:,} consumers" in fits[-1].step
