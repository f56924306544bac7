"""LightFM (WARP) with side features, for cold start.

Product features: an identity feature plus category, brand (``supplier_id``) and price band.
Consumer features: an identity feature plus age band, home distributor and city tier (the
profile columns that exist). Each row of a feature matrix is normalised to sum 1.

A consumer with a profile but no interaction (registered, never bought) is *cold*: the
model scores them from their profile features alone (the identity feature is left out),
so ``can_score`` is true for them. One thread by default, because LightFM's Hogwild
updates are only reproducible single-threaded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.columns import Col
from features.interactions import InteractionCol
from models.recommenders.base import InteractionData, Recommender, factor_scores

PRODUCT_FEATURES: tuple[str, ...] = (Col.CATEGORY, Col.SUPPLIER_ID, InteractionCol.PRICE_BAND)
CONSUMER_FEATURES: tuple[str, ...] = (InteractionCol.HOME_DISTRIBUTOR_ID, Col.AGE_BAND, Col.CITY_TIER)


def feature_matrix(
    profiles: pd.DataFrame | None, columns: tuple[str, ...], n_rows: int, identity_rows: int
) -> sp.csr_matrix:
    """Row-normalised one-hot matrix: an identity block for the first ``identity_rows`` rows, then
    one block per profile column (a missing value gives no feature)."""
    blocks = [sp.eye(n_rows, identity_rows, dtype=np.float32, format="csr")]
    for column in columns:
        if profiles is None or column not in profiles:
            continue
        values = profiles[column].astype(object).where(profiles[column].notna(), None)
        codes, _ = pd.factorize(values.astype(str).where(values.notna(), None), use_na_sentinel=True)
        present = codes >= 0
        n_codes = max(codes.max() + 1, 1) if len(codes) else 1
        blocks.append(
            sp.csr_matrix(
                (np.ones(present.sum(), np.float32), (np.flatnonzero(present), codes[present])),
                shape=(n_rows, n_codes),
            )
        )
    matrix = sp.hstack(blocks, format="csr") if blocks else sp.csr_matrix((n_rows, 1), dtype=np.float32)
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    return sp.diags(1.0 / np.where(sums > 0, sums, 1.0)).dot(matrix).tocsr().astype(np.float32)


class LightFMRecommender(Recommender):
    """LightFM with WARP loss over consumer and product side features."""

    name = "lightfm"
    _consumer_arrays = ("user_factors",)  # (cold_factors: by consumer id, kept whole)

    def __init__(
        self,
        components: int = 32,
        epochs: int = 20,
        learning_rate: float = 0.05,
        item_alpha: float = 1e-6,
        user_alpha: float = 1e-6,
        max_sampled: int = 10,
        random_state: int = 42,
        num_threads: int = 1,
    ) -> None:
        self.components = components
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.item_alpha = item_alpha
        self.user_alpha = user_alpha
        self.max_sampled = max_sampled
        self.random_state = random_state
        self.num_threads = num_threads

    def _fit(self, data: InteractionData) -> None:
        from lightfm import LightFM

        cold_ids = pd.Index([], dtype=str)
        if data.consumer_profiles is not None:
            cold_ids = data.consumer_profiles.index.difference(data.consumer_ids)
        everyone = data.consumer_ids.append(cold_ids)
        n_known = len(data.consumer_ids)
        all_features = feature_matrix(
            _consumer_rows(data, everyone), CONSUMER_FEATURES, len(everyone), n_known
        )
        user_features = all_features[:n_known]
        item_features = feature_matrix(data.product_profiles, PRODUCT_FEATURES, data.shape[1], data.shape[1])
        model = LightFM(
            no_components=self.components,
            loss="warp",
            learning_rate=self.learning_rate,
            item_alpha=self.item_alpha,
            user_alpha=self.user_alpha,
            max_sampled=self.max_sampled,
            random_state=np.random.RandomState(self.random_state),
        )
        interactions = data.matrix.tocoo()
        model.fit(
            interactions,
            user_features=user_features,
            item_features=item_features,
            epochs=self.epochs,
            num_threads=self.num_threads,
        )
        item_bias, item_embedding = model.get_item_representations(item_features)
        self.item_factors_ = np.hstack([item_embedding, item_bias[:, None]]).astype(np.float32)
        self.user_factors_ = self._user_factors(model, user_features)
        self.cold_ids_ = np.asarray(cold_ids, dtype=str)
        self.cold_factors_ = self._user_factors(model, all_features[n_known:])

    @staticmethod
    def _user_factors(model: object, features: sp.csr_matrix) -> np.ndarray:
        _, embedding = model.get_user_representations(features)
        return np.hstack([embedding, np.ones((embedding.shape[0], 1), np.float32)]).astype(np.float32)

    def _can_score_cold(self, consumer_ids: pd.Index) -> np.ndarray:
        return pd.Index(self.cold_ids_).get_indexer(consumer_ids) >= 0

    def _score_rows(self, consumer_ids: pd.Index, rows: np.ndarray) -> np.ndarray:
        factors = np.empty((len(rows), self.item_factors_.shape[1]), dtype=np.float32)
        known = rows >= 0
        factors[known] = self.user_factors_[rows[known]]
        if (~known).any():
            factors[~known] = self.cold_factors_[pd.Index(self.cold_ids_).get_indexer(consumer_ids[~known])]
        return factor_scores(factors, self.item_factors_)

    def _item_vectors(self) -> np.ndarray:
        return self.item_factors_[:, :-1]

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "cold_ids": self.cold_ids_.astype(str),
            "cold_factors": self.cold_factors_,
        }

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors_ = arrays["user_factors"]
        self.item_factors_ = arrays["item_factors"]
        self.cold_ids_ = arrays["cold_ids"]
        self.cold_factors_ = arrays["cold_factors"]


def _consumer_rows(data: InteractionData, consumer_ids: pd.Index) -> pd.DataFrame | None:
    if data.consumer_profiles is None:
        return None
    return data.consumer_profiles.reindex(pd.Index(consumer_ids).astype(str))
