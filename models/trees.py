"""scikit-learn's histogram gradient-boosted trees as plain arrays: saved without pickle, scored
without the estimator.

A fitted ``HistGradientBoostingClassifier`` (binary) or ``HistGradientBoostingRegressor`` is its
baseline and one ``TreePredictor`` per iteration, each a structured array of nodes. ``HGBTrees``
keeps those (``of``), sums the trees' outputs as the estimator does (``raw``: the estimator's raw
prediction, to which the caller applies the loss's link: the logistic for log loss, ``exp`` for
Poisson) and saves them as three arrays (``state`` / ``from_state``). The ranker
(``models.recommenders.boosting``) and the churn / value models (``models.churn``) keep their
trees this way. Numeric features only (no categorical ones).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

_NODES, _SIZES, _BASELINE = "hgb_nodes", "hgb_tree_sizes", "hgb_baseline"


class HGBTrees:
    """The trees of a fitted single-output histogram gradient-boosting estimator."""

    def __init__(self, predictors: list[Any], baseline: float) -> None:
        self.predictors = predictors
        self.baseline = baseline

    @classmethod
    def of(cls, estimator: Any) -> HGBTrees:
        """The trees of a fitted binary classifier or a regressor."""
        predictors = [iteration[0] for iteration in estimator._predictors]
        return cls(predictors, float(np.ravel(estimator._baseline_prediction)[0]))

    def raw(self, x: np.ndarray, threads: int) -> np.ndarray:
        """The raw prediction per row of ``x`` (NaN = missing), as the estimator's own."""
        known_categories = np.zeros((0, 8), dtype=np.uint32)
        feature_map = np.zeros(0, dtype=np.uint32)
        raw = np.full(len(x), self.baseline, dtype=np.float64)
        features = np.ascontiguousarray(x, dtype=np.float64)
        for predictor in self.predictors:
            raw += predictor.predict(features, known_categories, feature_map, threads)
        return raw

    def state(self) -> dict[str, np.ndarray]:
        """Three arrays that ``from_state`` restores: every tree's nodes, one after the other, the
        trees' sizes and the baseline."""
        sizes = np.array([len(p.nodes) for p in self.predictors], dtype=np.int64)
        nodes = np.concatenate([p.nodes for p in self.predictors])
        return {_NODES: nodes, _SIZES: sizes, _BASELINE: np.array([self.baseline])}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray]) -> HGBTrees:
        from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

        no_categories = np.zeros((0, 8), dtype=np.uint32)
        bounds = np.concatenate([[0], np.cumsum(arrays[_SIZES])])
        predictors = [
            TreePredictor(arrays[_NODES][start:end].copy(), no_categories, no_categories)
            for start, end in itertools.pairwise(bounds)
        ]
        return cls(predictors, float(arrays[_BASELINE][0]))
