"""The ranker's logistic learner: the split on the owned flag, and old saved states."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from models.recommenders.boosting import BoostedTrees, BoostingParams
from models.recommenders.ranker import RankerRecommender

OWNED = 1  # column of the owned flag in the hand-made rows below


def _opposite_sides(n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Rows (signal, owned, noise): owned rows are bought when the signal is high, the
    others when it is low, so one regression cannot rank both sides."""
    rng = np.random.default_rng(7)
    signal = rng.normal(size=n)
    owned = np.arange(n) % 2 == 0
    x = np.column_stack([signal, owned, rng.normal(size=n)]).astype(np.float32)
    y = np.where(owned, signal > 0.3, signal < -0.3)
    return x, y


def _side_accuracy(trees: BoostedTrees, x: np.ndarray, y: np.ndarray, owned: bool) -> float:
    side = (x[:, OWNED] > 0) == owned
    return float(np.mean((trees.predict(x[side].copy()) > 0.5) == y[side]))


def test_the_split_learns_each_side_where_one_regression_cannot() -> None:
    x, y = _opposite_sides()
    split = BoostedTrees.fit("logistic", x, y, np.ones(1), BoostingParams(split_column=OWNED))
    single = BoostedTrees.fit("logistic", x, y, np.ones(1), BoostingParams())
    assert split.state()["coef"].shape == (2, 3)
    assert _side_accuracy(split, x, y, owned=True) > 0.9
    assert _side_accuracy(split, x, y, owned=False) > 0.9
    # one regression can only put the signal's weight one way: one side comes out wrong
    assert min(_side_accuracy(single, x, y, owned) for owned in (True, False)) < 0.7


def test_a_split_model_round_trips_exactly() -> None:
    x, y = _opposite_sides()
    trees = BoostedTrees.fit("logistic", x, y, np.ones(1), BoostingParams(split_column=OWNED))
    restored = BoostedTrees.from_state("logistic", trees.state())
    np.testing.assert_array_equal(restored.predict(x.copy()), trees.predict(x.copy()))


def test_a_side_with_one_class_falls_back_to_one_regression() -> None:
    x, y = _opposite_sides()
    y = np.where(x[:, OWNED] > 0, True, y)  # every owned row bought: that side has one class
    trees = BoostedTrees.fit("logistic", x, y, np.ones(1), BoostingParams(split_column=OWNED))
    assert trees.state()["coef"].shape == (3,)
    assert trees.state()["split_column"][0] == -1


def test_a_regression_saved_before_the_split_scores_as_before() -> None:
    # a stored model of the earlier format: 1-D coef, no split column; by hand
    # raw = 0.5 + 2·(x0 − 1)/2 − 1·x1 = x0 − x1 − 0.5
    state = {
        "coef": np.array([2.0, -1.0]),
        "intercept": np.array([0.5]),
        "mean": np.array([1.0, 0.0]),
        "scale": np.array([2.0, 1.0]),
    }
    x = np.array([[3.0, 1.0], [1.0, 0.0], [np.nan, 2.0]], dtype=np.float32)
    raw = np.array([1.5, 0.5, -2.5])  # NaN reads as 0
    expected = (1 / (1 + np.exp(-raw))).astype(np.float32)
    np.testing.assert_allclose(BoostedTrees.from_state("logistic", state).predict(x), expected, rtol=1e-6)


def test_the_ranker_splits_on_the_owned_column_wherever_it_lands() -> None:
    assert RankerRecommender()._boosting_params().split_column == 1
    # leaving out a group before it does not move it; leaving out history removes it
    assert RankerRecommender(exclude_features=["timing"])._boosting_params().split_column == 1
    assert RankerRecommender(exclude_features=["history"])._boosting_params().split_column is None
    assert RankerRecommender(split_owned=False)._boosting_params().split_column is None


def test_the_two_regressions_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    """At 10M lines each regression is seconds of Newton steps: a progress line says how far (#18)."""
    x, y = _opposite_sides()
    with caplog.at_level(logging.INFO):
        BoostedTrees.fit("logistic", x, y, np.ones(1), BoostingParams(split_column=OWNED))
    lines = [r.getMessage() for r in caplog.records if "the two logistic regressions" in r.getMessage()]
    assert lines and "2 / 2 regressions" in lines[-1] and lines[-1].endswith("done")
