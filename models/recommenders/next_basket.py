"""Next-basket baselines over each consumer's baskets in time order: TIFU-KNN and UP-CF@r.

Benchmark baselines (``benchmarks/recommenders_online_retail.py``), not production models:
they need the order of a consumer's baskets, which ``InteractionData`` does not keep, so they
are not registered as configurable kinds. Give them the history before the cutoff
(``basket_history(con, cutoff)``) with ``with_baskets`` before ``fit``; they score the
consumers and products of the fitted data and hold a dense consumers × products score matrix
(fine for a benchmark of thousands of consumers, not for a nightly of millions).

- **TIFU-KNN** (Hu, He, Ou, Pei, Wang; SIGIR 2020). A consumer's baskets, latest first, are
  cut into groups of ``group_size``; a group's vector is the mean of its baskets' product
  indicators weighted ``basket_decay ** (position from the group's latest basket)``, the
  consumer's vector the mean of the group vectors weighted ``group_decay ** (groups back)``.
  The score is ``alpha · own vector + (1 − alpha) · mean vector of the neighbours`` nearest
  in Euclidean distance. (The paper's groups start at the oldest basket; here the latest
  group is the full one, so the most recent baskets are always weighted alike.)
- **UP-CF@r** (Faggioli, Polato, Aiolli; UMAP 2020). ``UP@r``: the share of the consumer's last
  ``recency`` baskets (all when None) that hold the product. The score sums the ``UP@r``
  vectors of every consumer ``v`` (``u`` included) weighted ``sim(u, v) ** locality``, with the
  asymmetric cosine ``|I_u ∩ I_v| / (|I_u| ** asymmetry · |I_v| ** (1 − asymmetry))`` over the
  sets of products ever bought.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.columns import Col
from features.errors import SiyuError
from features.interactions import Cutoff, upper_bound
from features.sql import render
from models.recommenders.base import InteractionData, Recommender

# Columns of ``basket_history`` (beside consumer_id, product_id).
BASKET_AGE = "basket_age"  # 0 = the consumer's latest basket, 1 = the one before, ...
BASKETS = "baskets"  # how many baskets the consumer has
Shape = tuple[int, int]


def basket_history(con: duckdb.DuckDBPyConnection, cutoff: Cutoff) -> pd.DataFrame:
    """Distinct (consumer, basket, product) of the paid lines before ``upper_bound(cutoff)``.

    Columns consumer_id, product_id, ``BASKET_AGE``, ``BASKETS``; a basket is an order, dated by
    its first line (ties broken by order id).
    """
    sql = render(
        "SELECT {consumer_id}, {order_id}, {product_id}, min({ordered_at}) AS {ordered_at} "
        "FROM paid_lines WHERE {ordered_at} < $end GROUP BY ALL"
    )
    lines = con.execute(sql, {"end": upper_bound(cutoff)}).df()
    return with_basket_age(lines)


def with_basket_age(lines: pd.DataFrame) -> pd.DataFrame:
    """``basket_history``'s columns from lines with consumer_id, order_id, product_id, ordered_at."""
    keys = [Col.CONSUMER_ID, Col.ORDER_ID]
    baskets = lines.groupby(keys, as_index=False)[Col.ORDERED_AT].min()
    baskets = baskets.sort_values([Col.CONSUMER_ID, Col.ORDERED_AT, Col.ORDER_ID])
    grouped = baskets.groupby(Col.CONSUMER_ID)
    baskets[BASKET_AGE] = grouped.cumcount(ascending=False)
    baskets[BASKETS] = grouped[Col.ORDER_ID].transform("size")
    merged = lines[[*keys, Col.PRODUCT_ID]].drop_duplicates().merge(baskets[[*keys, BASKET_AGE, BASKETS]])
    return merged[[Col.CONSUMER_ID, Col.PRODUCT_ID, BASKET_AGE, BASKETS]].reset_index(drop=True)


class _BasketRecommender(Recommender):
    """Scores every fitted consumer × product once, from ``with_baskets``' history."""

    def with_baskets(self, baskets: pd.DataFrame) -> _BasketRecommender:
        """Use ``baskets`` (``basket_history`` before the fitted data's cutoff) in the next ``fit``."""
        self._baskets = baskets
        return self

    def _fit(self, data: InteractionData) -> None:
        baskets = getattr(self, "_baskets", None)
        if baskets is None:
            raise SiyuError(
                f"{self.name}: no basket history to fit on\n"
                "  fix: call with_baskets(basket_history(con, cutoff)) before fit"
            )
        rows = data.rows_of(baskets[Col.CONSUMER_ID].astype(str))
        columns = data.columns_of(baskets[Col.PRODUCT_ID].astype(str))
        known = (rows >= 0) & (columns >= 0)
        lines = baskets.loc[known]
        self.scores_ = self._scores(
            rows[known],
            columns[known],
            lines[BASKET_AGE].to_numpy(dtype=np.int64),
            lines[BASKETS].to_numpy(dtype=np.int64),
            data.shape,
        ).astype(np.float32)

    def _scores(
        self, rows: np.ndarray, columns: np.ndarray, age: np.ndarray, count: np.ndarray, shape: Shape
    ) -> np.ndarray:
        raise NotImplementedError

    def _score_rows(self, consumer_ids: pd.Index, rows: np.ndarray) -> np.ndarray:
        return self.scores_[rows]

    _consumer_arrays = ("scores",)

    def _state(self) -> dict[str, np.ndarray]:
        return {"scores": self.scores_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.scores_ = arrays["scores"]


class TifuKnnRecommender(_BasketRecommender):
    """TIFU-KNN: time-decayed repeat vectors blended with the nearest neighbours' (module docstring)."""

    def __init__(
        self,
        group_size: int = 7,
        basket_decay: float = 0.9,
        group_decay: float = 0.7,
        neighbours: int = 300,
        alpha: float = 0.9,
    ) -> None:
        self.group_size = group_size
        self.basket_decay = basket_decay
        self.group_decay = group_decay
        self.neighbours = neighbours
        self.alpha = alpha

    def _scores(
        self, rows: np.ndarray, columns: np.ndarray, age: np.ndarray, count: np.ndarray, shape: Shape
    ) -> np.ndarray:
        group, position = np.divmod(age, self.group_size)
        groups = -(-count // self.group_size)  # ceil
        group_baskets = np.minimum(self.group_size, count - group * self.group_size)
        weight = (self.basket_decay**position / group_baskets * self.group_decay**group / groups).astype(
            np.float64
        )
        own = sp.csr_matrix((weight, (rows, columns)), shape=shape)
        return self.alpha * own.toarray() + (1 - self.alpha) * _neighbour_mean(own, self.neighbours)


def _neighbour_mean(vectors: sp.csr_matrix, neighbours: int) -> np.ndarray:
    """Each row's mean over its ``neighbours`` nearest other rows (Euclidean distance), dense."""
    count = vectors.shape[0]
    k = min(neighbours, count - 1)
    if k < 1:
        return np.zeros(vectors.shape)
    squared = np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel()
    distance = squared[:, None] + squared[None, :] - 2.0 * (vectors @ vectors.T).toarray()
    np.fill_diagonal(distance, np.inf)
    nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]
    pick = sp.csr_matrix(
        (np.full(count * k, 1.0 / k), (np.repeat(np.arange(count), k), nearest.ravel())), shape=(count, count)
    )
    return (pick @ vectors).toarray()


class UpCfRecommender(_BasketRecommender):
    """UP-CF@r: recency-aware user popularity spread over similar consumers (module docstring)."""

    def __init__(self, recency: int | None = 5, asymmetry: float = 0.5, locality: float = 5.0) -> None:
        self.recency = recency
        self.asymmetry = asymmetry
        self.locality = locality

    def _scores(
        self, rows: np.ndarray, columns: np.ndarray, age: np.ndarray, count: np.ndarray, shape: Shape
    ) -> np.ndarray:
        window = count if self.recency is None else np.minimum(count, self.recency)
        recent = age < window
        popularity = sp.csr_matrix(
            (1.0 / window[recent], (rows[recent], columns[recent])), shape=shape, dtype=np.float64
        )
        bought = sp.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=shape)
        bought.data[:] = 1.0  # a set: duplicates summed above count once
        overlap = (bought @ bought.T).toarray()
        size = np.maximum(np.asarray(bought.sum(axis=1)).ravel(), 1.0)
        similarity = overlap / (size[:, None] ** self.asymmetry * size[None, :] ** (1 - self.asymmetry))
        return np.asarray((popularity.T @ (similarity**self.locality).T).T)


# Not registered kinds (they need basket histories); the names label them in logs and tables.
TifuKnnRecommender.name = "tifuknn"
UpCfRecommender.name = "upcf"
