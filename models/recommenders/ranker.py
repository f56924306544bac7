"""The production blend: a learned ranker over candidates from several models (two-stage ranking).

Stage 1, candidates per consumer: every product they bought, the top ``candidates_per_model``
of each component model (item-kNN BM25, EASE, ALS by default) and the ``popular_candidates``
most popular products of the last 30 days.

Stage 2, a learner (``models.recommenders.boosting``: a logistic regression by default, which
led on the tuning window, two of them with ``split_owned``: one for the consumer's own products
and one for the products new to them; scikit-learn's ``HistGradientBoostingClassifier`` as
``learner="hgb"``, LightGBM LambdaRank as ``learner="lambdarank"``) scores each candidate from
the features of ``models.recommenders.ranker_features``: purchase history, repurchase timing
("is it due?"), co-purchase with the recent basket, popularity and its trend, the consumer's
activity, category share, price band against the consumer's usual band, and each
component's score and rank. ``exclude_features`` leaves feature groups out (the ablation in
docs/recommenders.md). The learned model is called "the trees" below whatever the learner.

``score`` is in (0, 1), a probability-like score of buying in the next window (non-candidates
get a tiny popularity score below every candidate), so scores add up meaningfully across a
community. The ranker is trained where the truth is known, never on the test window:

- ``tune(train, truth)``: components fitted on ``train`` (data up to the validation cutoff),
  labels = ``truth`` (pairs bought in the validation window); the learned model is handed
  to the **next** ``fit``, which refits the components on its data and uses them.
  ``fit_production`` in ``models.recommenders.training`` does this with the window before
  the as-of date. ``tune_fitted(truth)`` learns the trees over the components the last
  ``fit`` left (no second fit): ``fit_production`` uses it on the ranker that evaluation
  already fitted at the tuning window's start.
- Every other ``fit(data)`` starts from scratch (``fit(a).fit(b)`` is ``fit(b)``): it tunes
  on a holdout carved out of ``data`` itself: purchases whose latest interaction lies in the
  last ``validation_days`` become labels and are taken out of (or, for repeat buys,
  decremented in) the training view — an approximation of the real window for when only an
  ``InteractionData`` is at hand.

Above ``max_fit_consumers`` consumers (200,000 by default) the product-side state, each
component's portable state (item-kNN and EASE similarities, ALS item factors) and the product
statistics, is learned from a fixed sample of that many consumers (``fitting_sample``: the
smallest hashes of their ids) and each component is then carried onto every consumer
(``carried_onto``; ALS solves each consumer's factors against the item factors). Every
consumer is still scored from their own history; what the sample saves is the fitting.

Persistence: the components' arrays, the product statistics and the trees as plain arrays
(no pickle).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.columns import Col
from features.errors import SiyuError
from features.progress import CONSUMERS, Progress, progress
from models.recommenders.base import (
    InteractionData,
    Recommender,
    hashed_sample,
    nonzero_flat,
    registered_models,
    top_columns,
)
from models.recommenders.boosting import LEARNERS, BoostedTrees, BoostingParams
from models.recommenders.ranker_features import (
    COMPONENT_GROUP,
    FEATURE_GROUPS,
    OWNED_FEATURE,
    ProductStats,
    candidate_features,
    category_codes,
    feature_names,
    group_columns,
)

logger = logging.getLogger(__name__)

# ALS at 8 iterations: within 0.002 validation NDCG of 15 on Online Retail (nested window before the
# benchmark's validation window), at about half the fitting time, which the 1M-consumer budget needs.
# Issue 18 (session 9): 48 factors, 5 cold + 2 warm iterations (was 64, 8 + 3), a third less ALS CPU
# time (sim100k); Online Retail test window 0.4084 / 0.1392 (all / new) against 0.4084 / 0.1381.
DEFAULT_COMPONENTS: dict[str, dict[str, Any]] = {
    "itemknn": {"kind": "itemknn", "similarity": "bm25", "neighbours": 100},
    "ease": {"kind": "ease", "l2": 500.0},
    "als": {"kind": "als", "factors": 48, "iterations": 5, "warm_iterations": 2},
}
# Every group by default. Co-purchase was neutral on the Online Retail tuning window but helped the
# distributor lists' validation window (docs/recommenders.md). It was half the scoring pass's time
# until its product became sparse x dense (issue 18; about a sixth of the ranker's scoring since the
# rest got faster in session 7); ("copurchase",) here or in the config still saves that sixth.
DEFAULT_EXCLUDED_FEATURES: tuple[str, ...] = ()
# Product-side state from at most this many consumers (``fitting_sample``; #11 point 5's first step,
# session 27): on the 10M-line simulated night (751k-876k consumers per fit) the ranker's NDCG@10
# was 0.3946 / 0.1949 (all / new items) against 0.3943 / 0.1957 fitted on everyone, inside each
# other's 95% intervals, and "train and evaluate" took 338 s instead of 401 s. Below it (the demo,
# Online Retail, 1M lines) nothing changes.
DEFAULT_MAX_FIT_CONSUMERS = 200_000
_STATS_PREFIX = "stats__"
_TREES_PREFIX = "trees__"


def build_component(spec: dict[str, Any]) -> Recommender:
    """A model from ``{"kind": name, **params}``."""
    params = dict(spec)
    kind = params.pop("kind", None)
    model_cls = registered_models().get(str(kind))
    if model_cls is None:
        raise SiyuError(f"unknown model kind {kind!r}\n  fix: use one of {sorted(registered_models())}")
    return model_cls(**params)


class RankerRecommender(Recommender):
    """Learned ranker over candidates of several component models (see module doc)."""

    name = "ranker"
    batch_size = 4096

    def __init__(
        self,
        components: dict[str, dict[str, Any]] | None = None,
        candidates_per_model: int = 50,
        popular_candidates: int = 50,
        validation_days: float = 30.0,
        learner: str = "logistic",
        iterations: int = 200,
        learning_rate: float = 0.05,
        leaves: int = 31,
        min_leaf: int = 50,
        l2: float = 1.0,
        exclude_features: list[str] | None = None,
        max_training_consumers: int = 20_000,
        random_state: int = 42,
        split_owned: bool = True,
        max_fit_consumers: int | None = DEFAULT_MAX_FIT_CONSUMERS,
    ) -> None:
        self.components = (
            components if components is not None else {k: dict(v) for k, v in DEFAULT_COMPONENTS.items()}
        )
        self.candidates_per_model = candidates_per_model
        self.popular_candidates = popular_candidates
        self.validation_days = validation_days
        self.learner = learner
        self.iterations = iterations
        self.learning_rate = learning_rate
        self.leaves = leaves
        self.min_leaf = min_leaf
        self.l2 = l2
        self.exclude_features = list(
            DEFAULT_EXCLUDED_FEATURES if exclude_features is None else exclude_features
        )
        self.max_training_consumers = max_training_consumers
        self.random_state = random_state
        self.split_owned = split_owned
        self.max_fit_consumers = max_fit_consumers
        _check_settings(learner, self.exclude_features, max_fit_consumers)
        self._tuned: BoostedTrees | None = None  # trees from tune(), for the next fit only
        self._starts: dict[str, Any] = {}  # the tuned components' warm starts, for the next fit only

    # -- training ----------------------------------------------------------------------------

    def tune(self, train: InteractionData, truth: pd.DataFrame) -> RankerRecommender:
        """Learn the ranker's trees on a validation window, for the next ``fit`` to use.

        Components are fitted on ``train``, labels are ``truth`` (consumer_id, product_id).
        """
        self._tuned = None
        self._fit_components(train)
        self._tuned = self.trees_ = self._learn_trees(train, truth)
        self._starts = self._component_starts()
        return self

    def tune_fitted(self, truth: pd.DataFrame) -> RankerRecommender:
        """Like ``tune(self.data_, truth)`` without fitting the components again: the trees are
        learned over the components as the last ``fit`` left them, for the next ``fit`` to use.

        Production reuses the ranker that evaluation fitted at its cutoff this way, when that
        cutoff is where the production tuning window starts.
        """
        self._tuned = self.trees_ = self._learn_trees(self._data, truth)
        self._starts = self._component_starts()
        return self

    def learned_state(self) -> dict[str, np.ndarray]:
        """The fitted trees as arrays (what ``save`` writes for them)."""
        return self.trees_.state()

    def _learn_trees(self, train: InteractionData, truth: pd.DataFrame) -> BoostedTrees:
        """Gradient-boosted trees over the candidates of the components fitted on ``train``."""
        x, y, groups, consumers = self._window_rows(train, truth)
        return self._fit_learner(x, y, groups, consumers)

    def _window_rows(
        self, train: InteractionData, truth: pd.DataFrame
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The learner's rows of one window: (features, labels, candidates per consumer, consumers),
        over the candidates of the components fitted on ``train``, labelled by ``truth``."""
        consumers = self._training_consumers(train, truth)
        features, targets, groups = [], [], []
        with progress("ranker: tuning window", total=len(consumers), unit=CONSUMERS) as bar:
            for batch, rows, block, target in self.labelled_batches(train, consumers, truth, bar):
                targets.append(target)
                features.append(block)
                sizes = np.bincount(rows, minlength=len(batch))
                groups.append(sizes[sizes > 0])
        return np.vstack(features), np.concatenate(targets), np.concatenate(groups), len(consumers)

    def labelled_batches(
        self, train: InteractionData, consumers: pd.Index, truth: pd.DataFrame, bar: Progress | None = None
    ) -> Iterator[tuple[pd.Index, np.ndarray, np.ndarray, np.ndarray]]:
        """(consumer batch, each candidate's row in the batch, feature block, label) of the
        ``consumers``' candidates over the components fitted on ``train``; label = the
        (consumer, product) pair is in ``truth``. ``benchmarks/ranker_ceiling.py`` reads it too."""
        n_products = train.shape[1]
        label_rows = train.rows_of(truth[Col.CONSUMER_ID])
        label_columns = train.columns_of(truth[Col.PRODUCT_ID])
        known = (label_rows >= 0) & (label_columns >= 0)
        labels = np.unique(label_rows[known].astype(np.int64) * n_products + label_columns[known])
        for batch, rows, columns, block in self._candidate_batches(consumers, bar):
            pair_keys = train.rows_of(batch)[rows].astype(np.int64) * n_products + columns
            yield batch, rows, block, np.isin(pair_keys, labels)

    def _fit_learner(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray, consumers: int) -> BoostedTrees:
        if y.all() or not y.any():
            raise SiyuError(
                "ranker: the validation window gives only one class of labels\n  fix: widen validation_days"
            )
        logger.info("ranker: learning the %s weights on %d candidates", self.learner, len(y))
        trees = BoostedTrees.fit(self.learner, x, y, groups, self._boosting_params())
        logger.info(
            "ranker (%s) tuned on %d candidates of %d consumers (%.1f%% positive)",
            self.learner,
            len(y),
            consumers,
            100 * y.mean(),
        )
        return trees

    def _training_consumers(self, train: InteractionData, truth: pd.DataFrame) -> pd.Index:
        """The window's buyers with history, a seeded sample of ``max_training_consumers`` at most."""
        consumers = self.tuning_consumers(train.consumer_ids, truth)
        if len(consumers) == 0:
            raise SiyuError(
                "ranker: no consumer of the validation window has history\n  fix: widen validation_days"
            )
        return consumers

    def tuning_consumers(self, consumer_ids: pd.Index, truth: pd.DataFrame) -> pd.Index:
        """The learner's consumers: the window's buyers among ``consumer_ids`` (those with
        history), a seeded sample of ``max_training_consumers`` at most."""
        consumers = pd.Index(truth[Col.CONSUMER_ID].astype(str).unique())
        consumers = consumers[consumers.isin(consumer_ids)]
        if len(consumers) > self.max_training_consumers:
            picked = np.random.default_rng(self.random_state).choice(
                len(consumers), self.max_training_consumers, replace=False
            )
            consumers = consumers[np.sort(picked)]
        return consumers

    def _boosting_params(self) -> BoostingParams:
        return BoostingParams(
            iterations=self.iterations,
            learning_rate=self.learning_rate,
            leaves=self.leaves,
            min_leaf=self.min_leaf,
            l2=self.l2,
            seed=self.random_state,
            split_column=self._owned_column() if self.split_owned else None,
        )

    def _owned_column(self) -> int | None:
        """Position of the ``owned`` flag among the learner's features (None when ``history`` is left out)."""
        if "history" in self.exclude_features:
            return None
        names = feature_names(list(self.components))
        return [name for name in np.delete(names, self._excluded_columns())].index(OWNED_FEATURE)

    def _excluded_columns(self) -> np.ndarray:
        """Positions of the left-out groups' columns in ``candidate_features``' matrix."""
        groups = group_columns(list(self.components))
        return np.concatenate([groups[group] for group in self.exclude_features] or [np.zeros(0, np.int64)])

    def fitting_consumers(self) -> int | None:
        return self.max_fit_consumers

    def _item_vectors(self) -> sp.csr_matrix:
        """``similar_items``' co-purchase vectors, from the consumers the product-side state is
        learned from (``fitting_sample``): the same on partial data as on every row."""
        return fitting_sample(self._data, self.max_fit_consumers).matrix.T.tocsr()

    def _fit(self, data: InteractionData) -> None:
        trees, self._tuned = self._tuned, None  # a tune() counts for one fit only
        starts, self._starts = self._starts, {}
        if trees is None and data.partial:
            raise ValueError(
                "ranker: the learner learns from every consumer's rows: tune it first, or fit on all rows"
            )
        if trees is None:
            train, truth = holdout_from(data, self.validation_days)
            self._fit_components(train)
            trees = self._learn_trees(train, truth)
        self._fit_components(data, starts)
        self.trees_ = trees

    def _fit_components(self, data: InteractionData, starts: dict[str, Any] | None = None) -> None:
        """Fit every component on ``data``; those with a start in ``starts`` (a component's
        ``factor_start`` of the tuning fit) begin from it (``warm_from``, ALS's warm start).

        With ``max_fit_consumers`` and more consumers than that, the product-side state (each
        component's portable state and the product statistics) is learned from the fixed sample
        ``fitting_sample`` picks, and each component is then carried onto all of ``data``
        (``carried_onto``: ALS solves every consumer's factors against the item factors). A
        component that needs no consumer's rows on the driver (``rows_to_fit`` 0: ``spark_als``,
        which reads partial data's rows from the engine, or a popularity count) is fitted on
        ``data`` itself: every row."""
        self.data_ = data
        self.models_ = {}
        starts = starts or {}
        sample = fitting_sample(data, self.max_fit_consumers)
        with progress("ranker: fitting components", total=len(self.components), unit="models") as bar:
            for name, spec in self.components.items():
                model = build_component(spec)
                if name in starts:
                    model.warm_from(starts[name])  # type: ignore[attr-defined]
                if model.rows_to_fit() == 0:  # learns from every row, needing none here
                    model.fit(data)
                else:
                    model.fit(sample)
                    if sample is not data:
                        model = build_component(spec).carried_onto(
                            data, model.portable_state(), data.product_ids
                        )
                self.models_[name] = model
                bar.advance()
        self.stats_ = ProductStats.fit(sample)

    def _component_starts(self) -> dict[str, Any]:
        """What the next fit's components can start from: the factors of those that warm-start."""
        return {
            name: model.factor_start()  # type: ignore[attr-defined]
            for name, model in self.models_.items()
            if getattr(model, "warm_iterations", None) is not None
        }

    # -- scoring -----------------------------------------------------------------------------

    def _score_rows(self, consumer_ids: pd.Index, rows: np.ndarray) -> np.ndarray:
        scores = np.empty((len(rows), self._data.shape[1]), dtype=np.float32)
        scores[:] = 1e-6 * self.stats_.popularity_30d
        for _, _, flat, block in self._candidates(consumer_ids, rows):
            scores.ravel()[flat] = self.trees_.predict(block)
        return scores

    def _can_score_cold(self, consumer_ids: pd.Index) -> np.ndarray:
        return np.zeros(len(consumer_ids), dtype=bool)

    def _candidate_batches(self, consumers: pd.Index, bar: Progress | None = None):
        for start in range(0, len(consumers), self.batch_size):
            batch = consumers[start : start + self.batch_size]
            rows = self._data.rows_of(batch)
            for batch_rows, columns, _, block in self._candidates(batch, rows):
                yield batch, batch_rows, columns, block
            if bar is not None:
                bar.advance(len(batch))

    def _candidates(self, consumer_ids: pd.Index, rows: np.ndarray):
        """Yield (row positions in the batch, product columns, positions in the flattened
        ``batch × products`` block, float32 feature block) of the candidates, in row then column order."""
        data = self._data
        mask = _bought_mask(data, rows)
        blocks, ranks = [], []
        depth = min(self.candidates_per_model, data.shape[1])
        rank_type = np.uint8 if depth < np.iinfo(np.uint8).max else np.int64
        for model in self.models_.values():
            block = np.asarray(model._score_rows(consumer_ids, rows), dtype=np.float32)
            ranked = top_columns(block, depth)
            rank = np.full(block.shape, depth + 1, dtype=rank_type)
            np.put_along_axis(rank, ranked, np.arange(1, depth + 1, dtype=rank_type)[None, :], axis=1)
            np.put_along_axis(mask, ranked, True, axis=1)
            blocks.append(block)
            ranks.append(rank)
        popular = np.argsort(-self.stats_.popularity_30d, kind="stable")[: self.popular_candidates]
        mask[:, popular] = True
        batch_rows, flat = nonzero_flat(mask)
        columns = flat - batch_rows * mask.shape[1]
        component_scores = [_over_best(block, batch_rows, flat) for block in blocks]
        component_ranks = [rank.ravel()[flat].astype(np.float32) for rank in ranks]
        features = candidate_features(
            data,
            self.stats_,
            category_codes(data),
            rows,
            batch_rows,
            columns,
            component_scores,
            component_ranks,
            skip=frozenset(self.exclude_features),
        )
        yield batch_rows, columns, flat, self._without_excluded(features)

    def _without_excluded(self, features: np.ndarray) -> np.ndarray:
        if not self.exclude_features:
            return features
        return np.delete(features, self._excluded_columns(), axis=1)

    # -- persistence -------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            **{f"{_STATS_PREFIX}{key}": value for key, value in self.stats_.arrays().items()},
            **{f"{_TREES_PREFIX}{key}": value for key, value in self.trees_.state().items()},
        }
        for name, model in self.models_.items():
            state.update({f"component__{name}__{key}": value for key, value in model._state().items()})
        return state

    def _set_state(self, arrays: dict[str, Any]) -> None:
        self.stats_ = ProductStats.from_arrays(_with_prefix(arrays, _STATS_PREFIX))
        self.trees_ = BoostedTrees.from_state(self.learner, _with_prefix(arrays, _TREES_PREFIX))
        self.models_ = {}
        for name, spec in self.components.items():
            model = build_component(spec)
            model.data_ = self.data_
            model._set_state(_with_prefix(arrays, f"component__{name}__"))
            self.models_[name] = model

    def _consumer_keys(self) -> tuple[str, ...]:
        """Each component's per-consumer arrays (the statistics and trees are product-level)."""
        return tuple(
            f"component__{name}__{key}"
            for name, model in self.models_.items()
            for key in model._consumer_keys()
        )

    def _consumer_state(self, data: InteractionData) -> dict[str, Any] | None:
        """Each component's ``consumer_state`` on ``data``; None when one of them learned its own."""
        state: dict[str, Any] = {}
        for name, model in self.models_.items():
            own = model.consumer_state(data)
            if own is None:
                return None
            state.update({f"component__{name}__{key}": value for key, value in own.items()})
        return state

    def _portable_state(self) -> dict[str, Any]:
        """The trees and each component's portable state (the product statistics are counts)."""
        state: dict[str, Any] = {f"{_TREES_PREFIX}{key}": value for key, value in self.trees_.state().items()}
        for name, model in self.models_.items():
            state.update(
                {f"component__{name}__{key}": value for key, value in model.portable_state().items()}
            )
        return state

    def _carry(self, data: InteractionData, state: dict[str, Any], columns: np.ndarray) -> None:
        """Kept trees and components carried onto ``data``; product statistics counted on it."""
        self.trees_ = BoostedTrees.from_state(self.learner, _with_prefix(state, _TREES_PREFIX))
        self.models_ = {}
        for name, spec in self.components.items():
            model = build_component(spec)
            model.data_ = data
            model._carry(data, _with_prefix(state, f"component__{name}__"), columns)
            self.models_[name] = model
        self.stats_ = ProductStats.fit(fitting_sample(data, self.max_fit_consumers))


def _bought_mask(data: InteractionData, rows: np.ndarray) -> np.ndarray:
    """``data.bought[rows].toarray() > 0``, set from the sparse rows' positive entries without
    the dense float copy."""
    bought = data.bought[rows].tocsr()
    bought.sum_duplicates()
    mask = np.zeros(bought.shape, dtype=bool)
    positive = bought.data > 0
    block_rows = np.repeat(np.arange(bought.shape[0]), np.diff(bought.indptr))
    mask[block_rows[positive], bought.indices[positive]] = True
    return mask


def _over_best(block: np.ndarray, batch_rows: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """A component's scores at the candidates (``flat``: positions in the flattened block, rows
    ``batch_rows``) over the consumer's best absolute score (float32)."""
    best = np.maximum(block.max(axis=1), -block.min(axis=1))  # = |block|.max, without the copy
    return block.ravel()[flat] / np.where(best > 0, best, 1.0)[batch_rows]


def _with_prefix(arrays: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {key[len(prefix) :]: value for key, value in arrays.items() if key.startswith(prefix)}


def fitting_sample(data: InteractionData, size: int | None) -> InteractionData:
    """The consumers whose rows the product-side state is learned from: all of ``data`` when
    ``size`` is None or not smaller than its consumers, else the ``size`` consumers with the
    smallest fixed hash of their id (``base.hashed_sample``), so that the sample does not depend
    on the rows' order and changes little from night to night."""
    rows = hashed_sample(data.consumer_ids, size)
    if rows is None:
        return data
    logger.info("ranker: product-side state from a fixed sample of %d of %d consumers", size, data.shape[0])
    return data.of_rows(rows, data.consumer_ids[rows])


def _check_settings(learner: str, exclude_features: list[str], max_fit_consumers: int | None) -> None:
    if max_fit_consumers is not None and max_fit_consumers < 1:
        raise SiyuError(
            f"ranker: max_fit_consumers is {max_fit_consumers}\n"
            "  fix: a positive number of consumers, or leave it out to fit on every consumer"
        )
    if learner not in LEARNERS:
        raise SiyuError(f"ranker: learner {learner!r} is unknown\n  fix: use one of {list(LEARNERS)}")
    groups = [*FEATURE_GROUPS, COMPONENT_GROUP]
    unknown = sorted(set(exclude_features) - set(groups))
    if unknown:
        raise SiyuError(
            f"ranker: exclude_features names unknown groups {unknown}\n  fix: use some of {groups}"
        )


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
        _held_out_span(data, recent, keep),
    )
    return view, truth


def _held_out_span(data: InteractionData, recent: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix | None:
    """Purchase spans without the held-out last purchase: a span over n purchases shrinks to
    (n − 2) / (n − 1) of itself (evenly spaced purchases assumed)."""
    if data.purchase_span_days is None or data.purchases is None:
        return None
    n = data.purchases.data
    share = np.where((recent.data > 0) & (n > 1), np.maximum(n - 2, 0) / np.maximum(n - 1, 1), 1.0)
    return _subset(data.purchase_span_days, keep, data.purchase_span_days.data * share)


def _subset(like: sp.csr_matrix, keep: np.ndarray, values: np.ndarray) -> sp.csr_matrix:
    """``like``'s structure restricted to ``keep`` with new ``values`` (explicit zeros are kept)."""
    row_of = np.repeat(np.arange(like.shape[0]), np.diff(like.indptr))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(row_of[keep], minlength=like.shape[0]))])
    return sp.csr_matrix((values[keep].astype(np.float32), like.indices[keep], indptr), shape=like.shape)
