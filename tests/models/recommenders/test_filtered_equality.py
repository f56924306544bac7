"""The lists' filter (``Recommender._filtered``: sale window, demotion, blocked and bought pairs)
gives exactly what its whole-block version gave, now that it copies only the allowed columns and
demotes only the demoted ones."""

from __future__ import annotations

import numpy as np
import pytest

from models.recommenders import InteractionData
from models.recommenders.base import demote_scores
from models.recommenders.popularity import PopularityRecommender


def _whole_block(model, scores, rows, mask, demotion, exclude_purchased) -> np.ndarray:
    """The computation ``_filtered`` replaces (before issue 18, session 8)."""
    scores = np.where(mask[None, :], scores, -np.inf).astype(np.float32)
    scores[~np.isfinite(scores)] = -np.inf
    if demotion is not None:
        scores = demote_scores(scores, demotion[None, :])
    known = rows >= 0
    for matrix, wanted in ((model._data.blocked, True), (model._data.bought, exclude_purchased)):
        if wanted and known.any():
            sub = matrix[rows[known]].tocoo()
            scores[np.flatnonzero(known)[sub.row], sub.col] = -np.inf
    return scores


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("exclude_purchased", [True, False])
def test_filtered_equals_the_whole_block_version(
    planted_data: InteractionData, dtype: type, exclude_purchased: bool
) -> None:
    model = PopularityRecommender().fit(planted_data)
    n_products = planted_data.shape[1]
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(40, n_products)).astype(dtype)  # negative and positive scores
    scores[::5, ::3] = np.nan
    scores[1, 2], scores[2, 4], scores[3, 6] = np.inf, -np.inf, 0.0
    scores[4] = -0.0
    if dtype is np.float64:
        scores[5, 1] = 1e39  # finite in float64, inf in float32
    rows = rng.integers(-1, planted_data.shape[0], size=40)
    for mask in (
        rng.random(n_products) < 0.3,
        np.ones(n_products, dtype=bool),
        np.zeros(n_products, dtype=bool),
    ):
        for demotion in (None, np.where(rng.random(n_products) < 0.2, 0.25, 1.0).astype(np.float32)):
            expected = _whole_block(model, scores, rows, mask, demotion, exclude_purchased)
            got = model._filtered(scores, rows, mask, demotion, exclude_purchased)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, expected)
            assert np.array_equal(np.signbit(got), np.signbit(expected))  # -0.0 stays -0.0
    assert np.isnan(scores).any()  # the input is left as it was
