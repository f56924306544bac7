"""The production blend: a learned ranker over candidates from several models (two-stage ranking).

Stage 1, candidates per consumer: every product they bought, the top ``candidates_per_model``
of each component model (item-kNN BM25, EASE, ALS by default) and the ``popular_candidates``
most popular products of the last 30 days.

Stage 2, a logistic regression scores each candidate from these features:

- the pair: purchases (log), owned flag, days since the last interaction (log, owned only),
  share of the consumer's purchases in the product's category;
- the product: popularity over the last 7 / 30 days and all history;
- the consumer: distinct products, purchases, days since the last activity (logs);
- each component: its score divided by the consumer's best score, and its rank (log,
  capped at ``candidates_per_model + 1``).

``score`` is the predicted probability of buying in the next window (non-candidates get a
tiny popularity score below every candidate), so scores add up meaningfully across a
community. The ranker is trained where the truth is known, never on the test window:

- ``tune(train, truth)``: components fitted on ``train`` (data up to the validation cutoff),
  labels = ``truth`` (pairs bought in the validation window); the learned weights are handed
  to the **next** ``fit``, which refits the components on its data and uses them.
  ``fit_production`` in ``models.recommenders.training`` does this with the window before
  the as-of date. ``tune_fitted(truth)`` learns the weights over the components the last
  ``fit`` left (no second fit): ``fit_production`` uses it on the ranker that evaluation
  already fitted at the tuning window's start.
- Every other ``fit(data)`` starts from scratch (``fit(a).fit(b)`` is ``fit(b)``): it tunes
  on a holdout carved out of ``data`` itself: purchases whose latest interaction lies in the
  last ``validation_days`` become labels and are taken out of (or, for repeat buys,
  decremented in) the training view — an approximation of the real window for when only an
  ``InteractionData`` is at hand.

Persistence: the components' arrays and the regression's coefficients and scaler, no pickle.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from features.columns import Col
from features.errors import SiyuError
from features.progress import CONSUMERS, Progress, progress
from models.recommenders.base import InteractionData, Recommender, registered_models
from models.recommenders.popularity import recent_popularity

logger = logging.getLogger(__name__)

# ALS at 8 iterations: within 0.002 validation NDCG of 15 on Online Retail (nested window before the
# benchmark's validation window), at about half the fitting time, which the 1M-consumer budget needs.
DEFAULT_COMPONENTS: dict[str, dict[str, Any]] = {
    "itemknn": {"kind": "itemknn", "similarity": "bm25", "neighbours": 100},
    "ease": {"kind": "ease", "l2": 500.0},
    "als": {"kind": "als", "factors": 64, "iterations": 8},
}
_NO_AGE_DAYS = 3650.0


def build_component(spec: dict[str, Any]) -> Recommender:
    """A model from ``{"kind": name, **params}``."""
    params = dict(spec)
    kind = params.pop("kind", None)
    model_cls = registered_models().get(str(kind))
    if model_cls is None:
        raise SiyuError(f"unknown model kind {kind!r}\n  fix: use one of {sorted(registered_models())}")
    return model_cls(**params)


class RankerRecommender(Recommender):
    """Logistic-regression ranker over candidates of several component models (see module doc)."""

    name = "ranker"
    batch_size = 4096

    def __init__(
        self,
        components: dict[str, dict[str, Any]] | None = None,
        candidates_per_model: int = 50,
        popular_candidates: int = 50,
        validation_days: float = 30.0,
        regularization: float = 1.0,
        max_training_consumers: int = 20_000,
        random_state: int = 42,
    ) -> None:
        self.components = (
            components if components is not None else {k: dict(v) for k, v in DEFAULT_COMPONENTS.items()}
        )
        self.candidates_per_model = candidates_per_model
        self.popular_candidates = popular_candidates
        self.validation_days = validation_days
        self.regularization = regularization
        self.max_training_consumers = max_training_consumers
        self.random_state = random_state
        self._tuned: dict[str, np.ndarray] | None = None  # weights from tune(), for the next fit only

    # -- training ----------------------------------------------------------------------------

    def tune(self, train: InteractionData, truth: pd.DataFrame) -> RankerRecommender:
        """Learn the ranker's weights on a validation window, for the next ``fit`` to use.

        Components are fitted on ``train``, labels are ``truth`` (consumer_id, product_id).
        """
        self._tuned = None
        self._fit_components(train)
        self._tuned = self._learn_weights(train, truth)
        self._set_weights(self._tuned)
        return self

    def tune_fitted(self, truth: pd.DataFrame) -> RankerRecommender:
        """Like ``tune(self.data_, truth)`` without fitting the components again: the weights are
        learned over the components as the last ``fit`` left them, for the next ``fit`` to use.

        Production reuses the ranker that evaluation fitted at its cutoff this way, when that
        cutoff is where the production tuning window starts.
        """
        self._tuned = self._learn_weights(self._data, truth)
        self._set_weights(self._tuned)
        return self

    def _learn_weights(self, train: InteractionData, truth: pd.DataFrame) -> dict[str, np.ndarray]:
        """Logistic-regression weights over the candidates of the components fitted on ``train``."""
        consumers = pd.Index(truth[Col.CONSUMER_ID].astype(str).unique())
        consumers = consumers[train.rows_of(consumers) >= 0]
        if len(consumers) == 0:
            raise SiyuError(
                "ranker: no consumer of the validation window has history\n  fix: widen validation_days"
            )
        if len(consumers) > self.max_training_consumers:
            picked = np.random.default_rng(self.random_state).choice(
                len(consumers), self.max_training_consumers, replace=False
            )
            consumers = consumers[np.sort(picked)]
        n_products = train.shape[1]
        label_rows = train.rows_of(truth[Col.CONSUMER_ID])
        label_columns = train.columns_of(truth[Col.PRODUCT_ID])
        known = (label_rows >= 0) & (label_columns >= 0)
        labels = np.unique(label_rows[known].astype(np.int64) * n_products + label_columns[known])
        features, targets = [], []
        with progress("ranker: tuning window", total=len(consumers), unit=CONSUMERS) as bar:
            for batch, rows, columns, block in self._candidate_batches(consumers, bar):
                pair_keys = train.rows_of(batch)[rows].astype(np.int64) * n_products + columns
                targets.append(np.isin(pair_keys, labels))
                features.append(block)
        x, y = np.vstack(features).astype(np.float64), np.concatenate(targets)
        if y.all() or not y.any():
            raise SiyuError(
                "ranker: the validation window gives only one class of labels\n  fix: widen validation_days"
            )
        mean = x.mean(axis=0)
        scale = np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        regression = LogisticRegression(C=self.regularization, max_iter=2000)
        regression.fit((x - mean) / scale, y)
        logger.info(
            "ranker tuned on %d candidates of %d consumers (%.1f%% positive)",
            len(y),
            len(consumers),
            100 * y.mean(),
        )
        return {
            "coef": regression.coef_.ravel().astype(np.float64),
            "intercept": np.array([float(regression.intercept_[0])]),
            "mean": mean,
            "scale": scale,
        }

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.coef_, self.intercept_ = weights["coef"], weights["intercept"]
        self.mean_, self.scale_ = weights["mean"], weights["scale"]

    def _fit(self, data: InteractionData) -> None:
        weights, self._tuned = self._tuned, None  # a tune() counts for one fit only
        if weights is None:
            train, truth = holdout_from(data, self.validation_days)
            self._fit_components(train)
            weights = self._learn_weights(train, truth)
        self._fit_components(data)
        self._set_weights(weights)

    def _fit_components(self, data: InteractionData) -> None:
        self.data_ = data
        self.models_ = {}
        with progress("ranker: fitting components", total=len(self.components), unit="models") as bar:
            for name, spec in self.components.items():
                self.models_[name] = build_component(spec).fit(data)
                bar.advance()
        self._fit_popularity(data)

    def _fit_popularity(self, data: InteractionData) -> None:
        self.popularity_ = {
            window: _scaled(recent_popularity(data, None if window == "all" else float(window)))
            for window in ("7", "30", "all")
        }

    # -- scoring -----------------------------------------------------------------------------

    def _score_rows(self, consumer_ids: pd.Index, rows: np.ndarray) -> np.ndarray:
        scores = np.empty((len(rows), self._data.shape[1]), dtype=np.float32)
        scores[:] = 1e-6 * self.popularity_["30"]
        weights = (self.coef_ / self.scale_).astype(np.float32)
        offset = float(self.intercept_[0] - np.dot(self.mean_ / self.scale_, self.coef_))
        for batch_rows, columns, block in self._candidates(consumer_ids, rows):
            logit = block @ weights + offset
            scores[batch_rows, columns] = 1.0 / (1.0 + np.exp(-logit))
        return scores

    def _can_score_cold(self, consumer_ids: pd.Index) -> np.ndarray:
        return np.zeros(len(consumer_ids), dtype=bool)

    def _candidate_batches(self, consumers: pd.Index, bar: Progress | None = None):
        for start in range(0, len(consumers), self.batch_size):
            batch = consumers[start : start + self.batch_size]
            rows = self._data.rows_of(batch)
            for batch_rows, columns, block in self._candidates(batch, rows):
                yield batch, batch_rows, columns, block
            if bar is not None:
                bar.advance(len(batch))

    def _candidates(self, consumer_ids: pd.Index, rows: np.ndarray):
        """Yield (row positions in the batch, product columns, float32 feature block) of the candidates."""
        data = self._data
        n_products = data.shape[1]
        own = (data.purchases if data.purchases is not None else data.bought)[rows].toarray()
        mask = own > 0
        component_scores, component_ranks = [], []
        depth = min(self.candidates_per_model, n_products)
        for model in self.models_.values():
            block = np.asarray(model._score_rows(consumer_ids, rows), dtype=np.float32)
            top = np.argpartition(-block, depth - 1, axis=1)[:, :depth]  # robust to many tied zeros
            order = np.argsort(-np.take_along_axis(block, top, axis=1), axis=1, kind="stable")
            ranked = np.take_along_axis(top, order, axis=1)
            rank = np.full(block.shape, depth + 1, dtype=np.float32)
            np.put_along_axis(rank, ranked, np.arange(1, depth + 1, dtype=np.float32)[None, :], axis=1)
            np.put_along_axis(mask, ranked, True, axis=1)
            best = np.abs(block).max(axis=1, keepdims=True)
            block /= np.where(best > 0, best, 1.0)
            component_scores.append(block)
            component_ranks.append(rank)
        popular = np.argsort(-self.popularity_["30"], kind="stable")[: self.popular_candidates]
        mask[:, popular] = True
        batch_rows, columns = np.nonzero(mask)
        features = self._features(rows, own, batch_rows, columns, component_scores, component_ranks)
        yield batch_rows, columns, features

    def _features(
        self,
        rows: np.ndarray,
        own: np.ndarray,
        batch_rows: np.ndarray,
        columns: np.ndarray,
        component_scores: list[np.ndarray],
        component_ranks: list[np.ndarray],
    ) -> np.ndarray:
        """One float32 row per candidate; the columns are listed in the module docstring."""
        data = self._data
        out = np.empty((len(columns), 10 + 2 * len(component_scores)), dtype=np.float32)
        purchases = own[batch_rows, columns]
        owned = purchases > 0
        out[:, 0] = np.log1p(purchases)
        out[:, 1] = owned
        last_activity = np.full(len(rows), _NO_AGE_DAYS, dtype=np.float32)
        if data.age_days is not None:
            ages = data.age_days[rows]
            last_activity = _row_min(ages)
            pair_age = ages.toarray()[batch_rows, columns]
            out[:, 2] = np.log1p(np.where(pair_age > 0, pair_age, _NO_AGE_DAYS)) * owned
        else:
            out[:, 2] = np.log1p(_NO_AGE_DAYS) * owned
        out[:, 3] = self._category_share(own, batch_rows, columns)
        for position, window in enumerate(("7", "30", "all"), start=4):
            out[:, position] = np.log1p(100 * self.popularity_[window][columns])
        out[:, 7] = np.log1p((own > 0).sum(axis=1, dtype=np.float32))[batch_rows]
        out[:, 8] = np.log1p(own.sum(axis=1, dtype=np.float32))[batch_rows]
        out[:, 9] = np.log1p(last_activity)[batch_rows]
        for position, (score, rank) in enumerate(zip(component_scores, component_ranks, strict=True)):
            out[:, 10 + 2 * position] = score[batch_rows, columns]
            out[:, 11 + 2 * position] = np.log1p(rank[batch_rows, columns])
        return out

    def _category_share(self, own: np.ndarray, batch_rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        codes = self._category_codes()
        if codes is None:
            return np.zeros(len(columns), dtype=np.float32)
        per_category = np.zeros((own.shape[0], codes.max() + 1), dtype=np.float32)
        for code in range(codes.max() + 1):
            per_category[:, code] = own[:, codes == code].sum(axis=1)
        totals = per_category.sum(axis=1)
        return per_category[batch_rows, codes[columns]] / np.where(totals > 0, totals, 1.0)[batch_rows]

    def _category_codes(self) -> np.ndarray | None:
        categories = self._data.product_attribute(Col.CATEGORY)
        return None if categories is None else pd.factorize(categories)[0]

    # -- persistence -------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "coef": self.coef_,
            "intercept": self.intercept_,
            "mean": self.mean_,
            "scale": self.scale_,
            **{f"popularity_{w}": values for w, values in self.popularity_.items()},
        }
        for name, model in self.models_.items():
            state.update({f"component__{name}__{key}": value for key, value in model._state().items()})
        return state

    def _set_state(self, arrays: dict[str, Any]) -> None:
        self._set_weights(arrays)
        self.popularity_ = {w: arrays[f"popularity_{w}"] for w in ("7", "30", "all")}
        self.models_ = {}
        for name, spec in self.components.items():
            model = build_component(spec)
            model.data_ = self.data_
            prefix = f"component__{name}__"
            model._set_state(
                {key[len(prefix) :]: value for key, value in arrays.items() if key.startswith(prefix)}
            )
            self.models_[name] = model


def holdout_from(data: InteractionData, days: float) -> tuple[InteractionData, pd.DataFrame]:
    """Approximate validation window inside ``data``: (training view, truth pairs).

    Bought pairs whose latest interaction is at most ``days`` old become truth; a pair bought
    once leaves the view, a pair bought n > 1 times stays with weight × (n − 1) / n.
    """
    if data.age_days is None or data.purchases is None:
        raise SiyuError(
            "ranker: the data carry no purchase counts or ages to hold out a window\n"
            "  fix: build InteractionData from build_interactions output, or call tune() first"
        )
    recent = data.age_days.copy()
    recent.data = ((recent.data <= days) & (data.purchases.data > 0)).astype(np.float32)
    coo = recent.tocoo()
    hit = coo.data > 0
    truth = pd.DataFrame(
        {Col.CONSUMER_ID: data.consumer_ids[coo.row[hit]], Col.PRODUCT_ID: data.product_ids[coo.col[hit]]}
    )
    keep_share = np.where(
        recent.data > 0, (data.purchases.data - 1) / np.maximum(data.purchases.data, 1), 1.0
    )
    keep = data.matrix.data * keep_share > 0
    matrix = _subset(data.matrix, keep, data.matrix.data * keep_share)
    purchases = _subset(
        data.purchases, keep, np.where(recent.data > 0, data.purchases.data - 1, data.purchases.data)
    )
    ages = _subset(
        data.age_days,
        keep,
        np.where(recent.data > 0, np.maximum(data.age_days.data, days + 1), data.age_days.data),
    )
    view = InteractionData(
        data.consumer_ids,
        data.product_ids,
        matrix,
        data.blocked,
        data.consumer_profiles,
        data.product_profiles,
        purchases,
        ages,
    )
    return view, truth


def _subset(like: sp.csr_matrix, keep: np.ndarray, values: np.ndarray) -> sp.csr_matrix:
    """``like``'s structure restricted to ``keep`` with new ``values`` (explicit zeros are kept)."""
    row_of = np.repeat(np.arange(like.shape[0]), np.diff(like.indptr))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(row_of[keep], minlength=like.shape[0]))])
    return sp.csr_matrix((values[keep].astype(np.float32), like.indices[keep], indptr), shape=like.shape)


def _scaled(values: np.ndarray) -> np.ndarray:
    top = values.max() if len(values) else 0.0
    return (values / top if top > 0 else values).astype(np.float32)


def _row_min(matrix: sp.csr_matrix) -> np.ndarray:
    result = np.full(matrix.shape[0], _NO_AGE_DAYS, dtype=np.float32)
    non_empty = np.diff(matrix.indptr) > 0
    if non_empty.any():
        result[non_empty] = np.minimum.reduceat(matrix.data, matrix.indptr[:-1][non_empty])
    return result
