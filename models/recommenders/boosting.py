"""The ranker's learners: fit on candidate features, score, save as plain arrays.

Chosen by the ranker's ``learner`` parameter (docs/recommenders.md has the measurement that
picked the default):

- ``hgb``: scikit-learn's ``HistGradientBoostingClassifier`` (binary: bought in the window or not);
- ``lambdarank``: LightGBM with the LambdaRank objective, one query per consumer;
- ``logistic``: scikit-learn's ``LogisticRegression`` (Newton-Cholesky solver) on standardised
  features (missing = 0), the production learner. With ``BoostingParams.split_column`` it is two
  regressions, one for the rows where that column is positive (the ranker passes its ``owned``
  flag: products the consumer bought) and one for the rest, so the weights that rank a
  consumer's own products do not also have to rank the products new to them.

``score`` is always in (0, 1) (the logistic of the trees' raw output), so the scores of a
community's members add up sensibly. Both are deterministic for a seed (no row or column
subsampling; LightGBM runs with ``deterministic``). Saving never pickles: the scikit-learn
trees are their node arrays (``models.trees``), the LightGBM booster its text model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit

from features.errors import SiyuError
from features.progress import progress
from models.trees import HGBTrees

LEARNERS = ("hgb", "lambdarank", "logistic")


@dataclass(frozen=True)
class BoostingParams:
    """Tree hyper-parameters shared by both learners."""

    iterations: int = 200
    learning_rate: float = 0.05
    leaves: int = 31
    min_leaf: int = 50
    l2: float = 1.0
    seed: int = 42
    threads: int = 2
    # logistic only: fit one regression where this column is > 0 and one for the other rows
    split_column: int | None = None


class BoostedTrees:
    """A fitted learner: ``predict(x)`` in (0, 1), ``state()`` / ``from_state`` for saving."""

    def __init__(self, learner: str, model: Any) -> None:
        self.learner = learner
        self.model = model

    @classmethod
    def fit(
        cls, learner: str, x: np.ndarray, y: np.ndarray, group_sizes: np.ndarray, params: BoostingParams
    ) -> BoostedTrees:
        """Fit on feature rows ``x`` (NaN = missing), labels ``y``; ``group_sizes``: candidates per
        consumer, in row order (LambdaRank's queries)."""
        if learner == "hgb":
            return cls(learner, _fit_hgb(x, y, params))
        if learner == "lambdarank":
            return cls(learner, _fit_lambdarank(x, y, group_sizes, params))
        if learner == "logistic":
            return cls(learner, _Logistic.fit(x, y, params))
        raise SiyuError(f"ranker: unknown learner {learner!r}\n  fix: use one of {list(LEARNERS)}")

    def predict(self, x: np.ndarray, threads: int = 2) -> np.ndarray:
        """Scores in (0, 1), float32."""
        if self.learner in ("hgb", "logistic"):
            raw = self.model.raw(x, threads)
        else:
            raw = self.model.predict(x, raw_score=True, num_threads=threads)
        # scipy's logistic: no overflow warning where a raw score is below about -709 (its score is 0)
        return expit(np.asarray(raw, dtype=np.float64)).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        """Arrays that ``from_state`` restores (no pickle)."""
        if self.learner in ("hgb", "logistic"):
            return self.model.state()
        return {"booster": np.array(self.model.model_to_string())}

    @classmethod
    def from_state(cls, learner: str, arrays: dict[str, np.ndarray]) -> BoostedTrees:
        if learner == "hgb":
            return cls(learner, HGBTrees.from_state(arrays))
        if learner == "logistic":
            return cls(learner, _Logistic.from_state(arrays))
        return cls(learner, _lightgbm().Booster(model_str=str(arrays["booster"])))


class _Logistic:
    """Logistic regressions over standardised features; missing values read as 0.

    One regression (1-D ``coef``, ``mean``, ``scale``, as saved before the split existed) or two
    (2-D, one row each: row 0 for the rows whose ``split_column`` is 0, row 1 for those where it
    is positive).
    """

    def __init__(
        self,
        coef: np.ndarray,
        intercept: np.ndarray,
        mean: np.ndarray,
        scale: np.ndarray,
        split_column: int | None = None,
    ) -> None:
        self.coef, self.intercept, self.mean, self.scale = coef, intercept, mean, scale
        self.split_column = split_column if np.ndim(coef) == 2 else None

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, params: BoostingParams) -> _Logistic:
        column = params.split_column
        if column is None:
            return cls(*_fit_logistic(x, y, params.l2))
        positive = x[:, column] > 0  # NaN compares False: missing reads as 0, as in ``raw``
        parts = [~positive, positive]
        if any(len(np.unique(y[part])) < 2 for part in parts):  # a side with one class: one regression
            return cls(*_fit_logistic(x, y, params.l2))
        fitted = []
        # each regression is seconds of Newton steps over millions of candidates at 10M lines
        with progress("ranker: the two logistic regressions", total=len(parts), unit="regressions") as bar:
            for part in parts:
                fitted.append(_fit_logistic(x[part], y[part], params.l2))
                bar.advance()
        return cls(*(np.stack(arrays) for arrays in zip(*fitted, strict=True)), split_column=column)

    def raw(self, x: np.ndarray, threads: int) -> np.ndarray:
        weights = (self.coef / self.scale).astype(np.float32)  # one row per regression when split
        np.copyto(x, 0.0, where=np.isnan(x))  # in place, as nan_to_num(x, copy=False) without its inf passes
        if not np.isfinite(x).all():
            np.nan_to_num(x, copy=False)
        if self.split_column is None:  # BLAS's matrix-vector product sums in another order when
            x = np.ascontiguousarray(x)  # it reads a Fortran-ordered x: row order, as always
            return x @ weights + float(self.intercept[0] - np.dot(self.mean / self.scale, self.coef))
        rows = zip(np.ravel(self.intercept), self.mean, self.scale, self.coef, strict=True)
        offsets = np.array([b - np.dot(m / s, c) for b, m, s, c in rows])  # as the single path's offset
        # candidates × 2, each regression's raw score; the matrix product reads x in either order
        # (``candidate_features`` gives Fortran order) with the same sums, so no row-order copy
        both = x @ weights.T + offsets.astype(np.float32)
        return both[np.arange(len(x)), (x[:, self.split_column] > 0).astype(np.intp)]

    def state(self) -> dict[str, np.ndarray]:
        split = -1 if self.split_column is None else self.split_column
        return {
            "coef": self.coef,
            "intercept": self.intercept,
            "mean": self.mean,
            "scale": self.scale,
            "split_column": np.array([split], dtype=np.int64),
        }

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray]) -> _Logistic:
        split = int(arrays["split_column"][0]) if "split_column" in arrays else -1
        return cls(
            *(arrays[key] for key in ("coef", "intercept", "mean", "scale")),
            split_column=None if split < 0 else split,
        )


def _fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(coef, intercept, mean, scale) of one logistic regression on standardised ``x`` (NaN = 0)."""
    from sklearn.linear_model import LogisticRegression

    x = np.nan_to_num(x.astype(np.float64), copy=False)
    mean, std = x.mean(axis=0), x.std(axis=0)
    scale = np.where(std > 0, std, 1.0)
    x -= mean  # standardised in place: one float64 copy of the training rows, not three
    x /= scale
    # Newton-Cholesky: a few Newton steps (each one p × p Hessian, p ≈ 30 features) instead of
    # ~65 L-BFGS passes over millions of candidate rows; it also lands closer to the optimum.
    regression = LogisticRegression(C=1.0 / max(l2, 1e-9), solver="newton-cholesky", max_iter=2000)
    regression.fit(x, y)
    return regression.coef_.ravel().astype(np.float64), regression.intercept_.astype(np.float64), mean, scale


def _fit_hgb(x: np.ndarray, y: np.ndarray, params: BoostingParams) -> HGBTrees:
    from sklearn.ensemble import HistGradientBoostingClassifier

    classifier = HistGradientBoostingClassifier(
        max_iter=params.iterations,
        learning_rate=params.learning_rate,
        max_leaf_nodes=params.leaves,
        min_samples_leaf=params.min_leaf,
        l2_regularization=params.l2,
        early_stopping=False,
        random_state=params.seed,
    )
    empty = np.isnan(x).all(axis=0)
    if empty.any():  # the binner cannot bin a column without values; constant columns never split
        x = np.where(empty[None, :], 0.0, x).astype(x.dtype)
    classifier.fit(x, y)
    return HGBTrees.of(classifier)


def _lightgbm() -> Any:
    """LightGBM, an optional dependency (not pinned: only ``learner: lambdarank`` needs it)."""
    try:
        import lightgbm
    except ImportError as error:
        raise SiyuError(
            "ranker: learner 'lambdarank' needs LightGBM, which is not installed\n"
            "  fix: pip install lightgbm==4.7.0, or set the ranker's learner to logistic or hgb"
        ) from error
    return lightgbm


def _fit_lambdarank(x: np.ndarray, y: np.ndarray, group_sizes: np.ndarray, params: BoostingParams) -> Any:
    lightgbm = _lightgbm()

    settings = {
        "objective": "lambdarank",
        "learning_rate": params.learning_rate,
        "num_leaves": params.leaves,
        "min_data_in_leaf": params.min_leaf,
        "lambda_l2": params.l2,
        "lambdarank_truncation_level": 20,
        "eval_at": [10],
        "seed": params.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": params.threads,
        "verbosity": -1,
    }
    dataset = lightgbm.Dataset(x, label=y.astype(np.float64), group=group_sizes, free_raw_data=True)
    return lightgbm.train(settings, dataset, num_boost_round=params.iterations)
