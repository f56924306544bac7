"""Strong simple baselines: recent popularity (global, per category, per community) and repeat purchase.

- ``PopularityRecommender(scope="global")``: products by the number of distinct consumers
  who interacted with them in the trailing ``window_days`` (all history when empty).
- ``scope="category"``: the same popularity, multiplied by the consumer's share of
  interaction weight in the product's category (plus a small floor so that every product
  stays reachable): popular products of the categories the consumer buys.
- ``scope="community"``: popularity among the members of the consumer's home distributor
  (``home_distributor_id`` of the consumer profiles), with global popularity as tiebreak.
- ``RepeatPurchaseRecommender``: the consumer's own products first, by frequency (optionally
  decayed by recency) with recent popularity breaking ties, then recent popularity. On
  retail logs this is the strongest single baseline.

All of them can score every consumer: one without history gets the global (or community)
list. Scores: popularity in [0, 1); own products of the repeat model above 2.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.columns import Col
from features.errors import SiyuError
from features.interactions import InteractionCol
from models.recommenders.base import InteractionData, Recommender, engine_rows

Scope = Literal["global", "category", "community"]  # vocabulary: a value, not a column
SCOPES: tuple[Scope, ...] = get_args(Scope)
GLOBAL, CATEGORY, COMMUNITY = SCOPES
_TIEBREAK = 1e-3
BASELINE_DAYS = 90.0  # the distributor lists' trend compares its window's buyers with these days'
_CATEGORY_FLOOR = 0.05


def recent_popularity(data: InteractionData, window_days: float | None) -> np.ndarray:
    """Distinct consumers per product whose last interaction lies in the trailing window. On
    ``partial`` data, the engine's count over every consumer's rows (``InteractionData.engine``)."""
    if data.partial:
        counted = engine_rows(data).products(window_days)
        return counted.reindex(data.product_ids, fill_value=0).to_numpy(dtype=np.float64)
    recent = recent_indicator(data, window_days)
    return np.asarray(recent.sum(axis=0), dtype=np.float64).ravel()


def recent_community_buyers(
    data: InteractionData, window_days: float | None, communities: pd.Index, members: sp.csr_matrix
) -> sp.csr_matrix:
    """Community × product: the distinct members whose last interaction with the product lies in
    the trailing window (``members``: community × consumer membership over ``data``'s rows; on
    ``partial`` data the engine's count per home distributor, ``communities`` being their ids)."""
    if not data.partial:
        return (members @ recent_indicator(data, window_days)).tocsr().astype(np.float64)
    counted = engine_rows(data).communities(window_days)
    rows = communities.get_indexer(counted[Col.DISTRIBUTOR_ID].astype(str))
    columns = data.columns_of(counted[Col.PRODUCT_ID])
    kept = (rows >= 0) & (columns >= 0)
    values = counted["buyers"].to_numpy(dtype=np.float64)[kept]
    shape = (len(communities), len(data.product_ids))
    return sp.csr_matrix((values, (rows[kept], columns[kept])), shape=shape)


def recent_indicator(data: InteractionData, window_days: float | None) -> sp.csr_matrix:
    """Consumer × product 0/1: the consumer's latest interaction with the product is within the window."""
    if window_days is None or data.age_days is None:
        indicator = data.matrix.copy()
        indicator.data = np.ones_like(indicator.data)
        return indicator
    indicator = data.age_days.copy()
    indicator.data = (indicator.data <= window_days).astype(np.float32)
    indicator.eliminate_zeros()
    return indicator


def _normalised(values: np.ndarray) -> np.ndarray:
    top = values.max() if len(values) else 0.0
    return (values / top if top > 0 else values) * (1 - _TIEBREAK)


class PopularityRecommender(Recommender):
    """Recent popularity, globally, within the consumer's categories or within their community."""

    name = "popularity"

    def __init__(self, scope: Scope = GLOBAL, window_days: float | None = 30.0) -> None:
        self.scope = scope
        self.window_days = window_days

    def _fit(self, data: InteractionData) -> None:
        if self.scope not in SCOPES:
            raise SiyuError(
                f"popularity scope {self.scope!r} unknown\n  fix: use global, category or community"
            )
        popularity = recent_popularity(data, self.window_days)
        if popularity.sum() == 0:  # nothing in the window: fall back to all history
            popularity = recent_popularity(data, None)
        self.popularity_ = _normalised(popularity).astype(np.float32)
        self.community_ids_ = np.array([], dtype=str)
        self.community_popularity_ = sp.csr_matrix((0, len(popularity)), dtype=np.float32)
        if self.scope == COMMUNITY:
            self._fit_communities(data)

    def _fit_communities(self, data: InteractionData) -> None:
        """Sparse community × product popularity: memory grows with the members' products, not with
        communities × catalogue."""
        home = data.consumer_attribute(data.consumer_ids, InteractionCol.HOME_DISTRIBUTOR_ID)
        if home is None:
            return
        known = np.array([value is not None for value in home])
        codes, communities = pd.factorize(pd.Series(home[known], dtype=str))
        membership = sp.csr_matrix(
            (np.ones(known.sum(), np.float32), (codes, np.flatnonzero(known))),
            shape=(len(communities), len(data.consumer_ids)),
        )
        counts = recent_community_buyers(data, self.window_days, pd.Index(communities), membership)
        top = np.asarray(counts.max(axis=1).todense(), dtype=np.float64).ravel()
        counts.data = counts.data / np.repeat(np.where(top > 0, top, 1.0), np.diff(counts.indptr))
        counts.data *= 1 - _TIEBREAK
        self.community_ids_ = np.asarray(communities, dtype=str)
        self.community_popularity_ = counts.astype(np.float32)

    def rows_to_fit(self) -> int:
        return 0  # popularity: the engine's counts on partial data

    def _can_score_cold(self, consumer_ids: pd.Index) -> np.ndarray:
        return np.ones(len(consumer_ids), dtype=bool)

    def _score_rows(self, consumer_ids: pd.Index, rows: np.ndarray) -> np.ndarray:
        scores = np.broadcast_to(self.popularity_, (len(rows), len(self.popularity_))).copy()
        if self.scope == CATEGORY:
            scores *= self._category_affinity(rows)
        elif self.scope == COMMUNITY:
            scores = self._community_scores(consumer_ids, scores)
        return scores

    def _category_affinity(self, rows: np.ndarray) -> np.ndarray:
        categories = self._data.product_attribute(Col.CATEGORY)
        if categories is None:
            return np.ones((len(rows), len(self.popularity_)), dtype=np.float32)
        codes = pd.factorize(categories)[0]
        one_hot = sp.csr_matrix((np.ones(len(codes), np.float32), (np.arange(len(codes)), codes)))
        history = self._data.matrix[np.where(rows >= 0, rows, 0)]
        per_category = np.asarray((history @ one_hot).todense())
        per_category[rows < 0] = 0.0
        totals = per_category.sum(axis=1, keepdims=True)
        share = np.divide(per_category, np.where(totals > 0, totals, 1.0))
        share[totals.ravel() == 0] = 1.0
        return (share[:, codes] + _CATEGORY_FLOOR).astype(np.float32)

    def _community_scores(self, consumer_ids: pd.Index, scores: np.ndarray) -> np.ndarray:
        home = self._data.consumer_attribute(consumer_ids, InteractionCol.HOME_DISTRIBUTOR_ID)
        if home is None or len(self.community_ids_) == 0:
            return scores
        index = pd.Index(self.community_ids_).get_indexer(pd.Index([str(h) for h in home]))
        found = index >= 0
        community = self.community_popularity_[index[found]].toarray()
        scores[found] = community + _TIEBREAK * self.popularity_[None, :]
        return scores

    def _state(self) -> dict[str, np.ndarray | sp.csr_matrix]:
        return {
            "popularity": self.popularity_,
            "community_ids": self.community_ids_.astype(str),
            "community_popularity": self.community_popularity_,
        }

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.popularity_ = arrays["popularity"]
        self.community_ids_ = arrays["community_ids"]
        self.community_popularity_ = sp.csr_matrix(arrays["community_popularity"], dtype=np.float32)


class RepeatPurchaseRecommender(Recommender):
    """The consumer's own products by frequency (and recency), then popular products.

    Own products score ``2 + purchases ** frequency_power * 0.5 ** (age_days / half_life_days)
    + popularity_weight * popularity`` (no decay when ``half_life_days`` is empty: frequency,
    then popularity breaks ties); other products score their recent popularity in [0, 1).
    """

    name = "repeat"

    def __init__(
        self,
        half_life_days: float | None = None,
        frequency_power: float = 1.0,
        popularity_weight: float = 1.0,
        window_days: float | None = 30.0,
    ) -> None:
        self.half_life_days = half_life_days
        self.frequency_power = frequency_power
        self.popularity_weight = popularity_weight
        self.window_days = window_days

    def _fit(self, data: InteractionData) -> None:
        popularity = recent_popularity(data, self.window_days)
        if popularity.sum() == 0:
            popularity = recent_popularity(data, None)
        self.popularity_ = _normalised(popularity).astype(np.float32)

    def rows_to_fit(self) -> int:
        return 0  # popularity: the engine's counts on partial data; own products: the scored rows

    def _can_score_cold(self, consumer_ids: pd.Index) -> np.ndarray:
        return np.ones(len(consumer_ids), dtype=bool)

    def own_scores(self, rows: np.ndarray) -> sp.csr_matrix:
        """Sparse frequency × recency score of each consumer's own products (rows ≥ 0)."""
        data = self._data
        frequency = (data.purchases if data.purchases is not None else data.matrix)[rows].astype(np.float32)
        frequency.data = (
            np.maximum(frequency.data, 0.5) ** self.frequency_power
        )  # event-only pairs count half
        if self.half_life_days is not None and data.age_days is not None:
            frequency.data *= 0.5 ** (data.age_days[rows].data / self.half_life_days)
        return frequency

    def _score_rows(self, consumer_ids: pd.Index, rows: np.ndarray) -> np.ndarray:
        scores = np.broadcast_to(self.popularity_, (len(rows), len(self.popularity_))).copy()
        known = np.flatnonzero(rows >= 0)
        if len(known):
            own = self.own_scores(rows[known]).tocoo()
            scores[known[own.row], own.col] = (
                2.0 + own.data + self.popularity_weight * self.popularity_[own.col]
            )
        return scores

    def _state(self) -> dict[str, np.ndarray]:
        return {"popularity": self.popularity_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.popularity_ = arrays["popularity"]
