"""Wrappers over the ``implicit`` library (0.7): ALS, BPR and item-kNN (BM25 / cosine), plus EASE.

implicit 0.7 takes the consumer × product CSR (``user_items``) in ``fit``. The wrappers
set ``num_threads`` and ``random_state`` explicitly, run the library inside
``threadpool_limits(1, "blas")`` (implicit parallelises itself; a multi-threaded BLAS
underneath makes it slower, which is what its "OpenBLAS threads" warning is about), keep
only the learned arrays (factors, similarity matrix) and score with numpy, so the
library's objects and integer ids never leave this module.

``EASERecommender`` is Steck's closed-form item-item model (EASE^R, 2019): one dense
product × product solve; strong on "new items" for catalogues of a few thousand products.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from features.progress import progress
from models.recommenders.base import (
    DenseSlices,
    InteractionData,
    Recommender,
    carried_rows,
    carried_square,
    factor_scores,
)

if TYPE_CHECKING:
    from implicit.cpu.als import AlternatingLeastSquares

logger = logging.getLogger(__name__)


class _FactorModel(Recommender):
    """Scores are consumer factors · product factors."""

    _consumer_arrays = ("user_factors",)

    def _score_rows(self, consumer_ids: pd.Index, rows: np.ndarray) -> np.ndarray:
        return factor_scores(self.user_factors_[rows], self.item_factors_)

    def _item_vectors(self) -> np.ndarray:
        return self.item_factors_

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_factors_ = arrays["user_factors"]
        self.item_factors_ = arrays["item_factors"]


@dataclass(frozen=True)
class FactorStart:
    """Factors an ALS fit left, by consumer and product id: where a later fit on other data starts."""

    consumer_ids: pd.Index
    product_ids: pd.Index
    user_factors: np.ndarray
    item_factors: np.ndarray

    def factors_on(self, data: InteractionData, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(user, item) factors in ``data``'s row and column order: the kept rows where the id was
        fitted, implicit's own start (uniform in [0, 0.01), seeded) for new consumers and products."""
        rng = np.random.default_rng(seed)
        return (
            _rows_or_random(self.user_factors, self.consumer_ids.get_indexer(data.consumer_ids), rng),
            _rows_or_random(self.item_factors, self.product_ids.get_indexer(data.product_ids), rng),
        )


def _rows_or_random(values: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    picked = carried_rows(values, rows)
    new = rows < 0
    picked[new] = rng.random((int(new.sum()), values.shape[1]), dtype=np.float32) * 0.01
    return picked


class ALSRecommender(_FactorModel):
    """implicit's alternating least squares on confidence ``1 + alpha * weight`` (Hu et al. 2008).

    ``bm25``: re-weight the matrix with BM25 (K1, B) before fitting, which often helps on
    retail logs where a few heavy buyers dominate the counts.

    ``warm_iterations``: a fit after ``warm_from(start)`` starts from ``start``'s factors (an
    earlier fit, mapped onto this data's ids) and runs this many iterations instead of
    ``iterations``; None: every fit starts from random factors. The ranker warm-starts the fit
    that follows its tuning (the same components one window later).
    """

    name = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 10.0,
        iterations: int = 15,
        bm25: bool = False,
        random_state: int = 42,
        num_threads: int = 2,
        warm_iterations: int | None = None,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.bm25 = bm25
        self.random_state = random_state
        self.num_threads = num_threads
        self.warm_iterations = warm_iterations
        self._start: FactorStart | None = None

    def warm_from(self, start: FactorStart) -> ALSRecommender:
        """Start the next fit (only the next) from ``start`` when ``warm_iterations`` is set."""
        self._start = start
        return self

    def factor_start(self) -> FactorStart:
        """This fit's factors by id, for ``warm_from`` of a later fit."""
        data = self._data
        return FactorStart(data.consumer_ids, data.product_ids, self.user_factors_, self.item_factors_)

    def _fit(self, data: InteractionData) -> None:
        start, self._start = self._start, None
        with threadpool_limits(1, "blas"):
            model = self._als()
            if start is not None and self.warm_iterations is not None:
                model.iterations = self.warm_iterations
                model.user_factors, model.item_factors = start.factors_on(data, self.random_state)
            step = f"{self.name}: fitting {self.factors} factors on {data.shape[0]:,} consumers"
            with progress(step, total=model.iterations, unit="iterations") as bar:
                # implicit calls back after each iteration (at 10M lines one is several seconds)
                model.fit(self._weighted(data), show_progress=False, callback=lambda *_: bar.advance())
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        # implicit's last iteration solves the consumers before the products: a fitted model's
        # consumer factors are not the solve against its final item factors (solving them again
        # cost up to 0.0013 NDCG@10 on Online Retail's three folds, session 28), so they count
        # as learned (``consumer_state`` None); a carried model's are that solve
        self.solved_ = False

    def _portable_state(self) -> dict[str, np.ndarray]:
        return {"item_factors": self.item_factors_}

    def _carry(self, data: InteractionData, state: dict[str, np.ndarray], columns: np.ndarray) -> None:
        """Kept item factors; each consumer's factors solved against them (one ALS half-step)."""
        self.item_factors_ = np.ascontiguousarray(carried_rows(state["item_factors"], columns))
        self.user_factors_ = self._solved_users(data)
        self.solved_ = True

    def _consumer_state(self, data: InteractionData) -> dict[str, np.ndarray] | None:
        """The consumers' factors solved from their rows, when this model's are that solve (a
        carried model's: ``solved_``); None for a fitted model's (its last iteration solved the
        consumers against the previous item factors) and with ``bm25``, whose weights count every
        consumer's rows (a consumer's weighted row is not a function of that row alone)."""
        if self.bm25 or not self.solved_:
            return None
        return {"user_factors": self._solved_users(data)}

    def _state(self) -> dict[str, np.ndarray]:
        return {**super()._state(), "solved": np.asarray(self.solved_)}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(arrays)
        self.solved_ = bool(arrays["solved"]) if "solved" in arrays else False  # saved before session 28

    def _solved_users(self, data: InteractionData) -> np.ndarray:
        """Each consumer's factors solved against ``item_factors_`` (one ALS half-step, row by row:
        implicit's least squares over ``YᵀY`` and the consumer's own row)."""
        with threadpool_limits(1, "blas"):
            model = self._als()
            model.item_factors = self.item_factors_
            users = model.recalculate_user(np.arange(data.shape[0]), self._weighted(data))
        return np.ascontiguousarray(users, dtype=np.float32)

    def _als(self) -> AlternatingLeastSquares:
        """implicit's CPU ALS with this model's settings."""
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.random_state,
            num_threads=self.num_threads,
        )

    def _weighted(self, data: InteractionData) -> sp.csr_matrix:
        """The matrix ALS sees: BM25-weighted when configured, float32 CSR."""
        matrix = bm25_weight(data.matrix) if self.bm25 else data.matrix
        return matrix.astype(np.float32).tocsr()


class BPRRecommender(_FactorModel):
    """implicit's Bayesian personalised ranking (pairwise, sampled negatives)."""

    name = "bpr"

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.05,
        regularization: float = 0.01,
        iterations: int = 100,
        random_state: int = 42,
        num_threads: int = 1,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.random_state = random_state
        self.num_threads = num_threads

    def _fit(self, data: InteractionData) -> None:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        # Hogwild updates are only reproducible with one thread; more threads trade that for speed.
        with threadpool_limits(1, "blas"):
            model = BayesianPersonalizedRanking(
                factors=self.factors,
                learning_rate=self.learning_rate,
                regularization=self.regularization,
                iterations=self.iterations,
                random_state=self.random_state,
                num_threads=self.num_threads,
            )
            model.fit(data.matrix.tocsr(), show_progress=False)
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)


class ItemKNNRecommender(Recommender):
    """implicit's item-item nearest neighbours: BM25- or cosine-weighted similarity, top ``neighbours``.

    Score of a product = Σ over the consumer's products of weight × similarity, as implicit
    computes it; ``binary`` scores with 0/1 history instead of the interaction weights.
    """

    name = "itemknn"

    def __init__(
        self,
        similarity: str = "bm25",
        neighbours: int = 100,
        k1: float = 1.2,
        b: float = 0.75,
        binary: bool = False,
        num_threads: int = 2,
    ) -> None:
        self.similarity = similarity
        self.neighbours = neighbours
        self.k1 = k1
        self.b = b
        self.binary = binary
        self.num_threads = num_threads

    def _fit(self, data: InteractionData) -> None:
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

        if self.similarity == "bm25":
            model = BM25Recommender(K=self.neighbours, K1=self.k1, B=self.b, num_threads=self.num_threads)
        elif self.similarity == "cosine":
            model = CosineRecommender(K=self.neighbours, num_threads=self.num_threads)
        else:
            from features.errors import SiyuError

            raise SiyuError(f"item-kNN similarity {self.similarity!r} unknown\n  fix: use bm25 or cosine")
        from implicit.utils import ParameterWarning

        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            # implicit re-weights into a COO matrix internally and then warns about its own conversion
            warnings.filterwarnings("ignore", message="Method expects CSR input", category=ParameterWarning)
            model.fit(data.matrix.tocsr(), show_progress=False)
        self.similarity_ = model.similarity.tocsr().astype(np.float32)

    def _score_rows(self, consumer_ids: pd.Index, rows: np.ndarray) -> np.ndarray:
        history = self._data.matrix[rows]
        if self.binary:
            history = history.copy()
            history.data = np.ones_like(history.data)
        if self.similarity_.dtype != np.float32 or history.dtype != np.float32:
            return (history @ self.similarity_).toarray()
        return self._dense_similarity().times(history)  # = the sparse product, in about 60% of its time

    def _dense_similarity(self) -> DenseSlices:
        """The similarity as dense slices, made once per fitted (or loaded, or carried) similarity."""
        cached = getattr(self, "_dense", None)
        if cached is None or cached.matrix is not self.similarity_:
            cached = self._dense = DenseSlices(self.similarity_)
        return cached

    def _item_vectors(self) -> sp.csr_matrix:
        return self.similarity_

    def _state(self) -> dict[str, sp.csr_matrix]:
        return {"similarity": self.similarity_}

    def _set_state(self, arrays: dict[str, sp.csr_matrix]) -> None:
        self.similarity_ = arrays["similarity"]

    def _portable_state(self) -> dict[str, sp.csr_matrix]:
        return self._state()

    def _carry(self, data: InteractionData, state: dict[str, sp.csr_matrix], columns: np.ndarray) -> None:
        self.similarity_ = carried_square(state["similarity"], columns)


class EASERecommender(Recommender):
    """EASE^R: B = I − P / diag(P) with P = (XᵀX + λI)⁻¹; scores = X B (zero diagonal)."""

    name = "ease"

    def __init__(self, l2: float = 200.0, binary: bool = True, max_products: int = 20_000) -> None:
        self.l2 = l2
        self.binary = binary
        self.max_products = max_products

    def _fit(self, data: InteractionData) -> None:
        n_products = data.shape[1]
        if n_products > self.max_products:
            from features.errors import SiyuError

            raise SiyuError(
                f"EASE needs a dense {n_products}×{n_products} matrix "
                f"(over max_products={self.max_products})\n"
                "  fix: use item-kNN or ALS for catalogues this large"
            )
        history = self._history(data.matrix)
        with threadpool_limits(2, "blas"):
            gram = (history.T @ history).toarray().astype(np.float64)
            gram[np.diag_indices(n_products)] += self.l2
            precision = np.linalg.inv(gram)
        weights = -precision / np.diag(precision)[None, :]
        weights[np.diag_indices(n_products)] = 0.0
        self.weights_ = weights.astype(np.float32)

    def _history(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        if not self.binary:
            return matrix
        history = matrix.copy()
        history.data = np.ones_like(history.data)
        return history

    def _score_rows(self, consumer_ids: pd.Index, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self._history(self._data.matrix[rows]) @ self.weights_)

    def _item_vectors(self) -> np.ndarray:
        return self.weights_.T

    def _state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.weights_ = arrays["weights"]

    def _portable_state(self) -> dict[str, np.ndarray]:
        return self._state()

    def _carry(self, data: InteractionData, state: dict[str, np.ndarray], columns: np.ndarray) -> None:
        self.weights_ = carried_square(state["weights"], columns)


def bm25_weight(matrix: sp.csr_matrix, k1: float = 100.0, b: float = 0.8) -> sp.csr_matrix:
    """BM25 re-weighting of a consumer × product matrix (as ``implicit.nearest_neighbours.bm25_weight``
    applied to the product × consumer view): damp heavy buyers, boost rarely bought products."""
    from implicit.nearest_neighbours import bm25_weight as implicit_bm25

    return implicit_bm25(matrix.T.tocoo(), K1=k1, B=b).T.tocsr().astype(np.float32)
