"""The ranker's faster block scoring (issue 18, session 9) gives exactly what it gave before.

The frozen computation below is the session-8 ``RankerRecommender._candidates`` and
``_score_rows`` (dense bought mask from ``toarray``, ``np.nonzero``, 2-D gathers, the candidate
features copied into row order, item-kNN as a sparse × sparse product, BLAS with its default
threads); the new code must give the same float32 scores, and so the same lists. The same up to
float summation order: the new code multiplies blocks of other shapes, and where BLAS picks its
kernel by block shape (OpenBLAS on CPUs without AVX-512) a score moves in its last bits, so the
scores are compared to ``SCORE_RTOL`` (a candidate missed or added moves a score by orders of
magnitude). Also each fast path against the plain computation it replaced, and the pass's scoring
threads against scoring in line.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

import models.recommenders.base as base_module
from models.recommenders import InteractionData, RankerRecommender
from models.recommenders.base import nonzero_flat, top_columns
from models.recommenders.boosting import _Logistic
from models.recommenders.implicit_models import ItemKNNRecommender
from models.recommenders.ranker import _bought_mask
from models.recommenders.ranker_features import candidate_features, category_codes
from models.recommenders.scoring_pass import _score, _scored_ahead

COMPONENTS = {
    "itemknn": {"kind": "itemknn", "similarity": "bm25", "neighbours": 30},
    "ease": {"kind": "ease", "l2": 50.0},
    "als": {"kind": "als", "factors": 16, "iterations": 3, "num_threads": 1},
}
# float32 scores through BLAS products of other block shapes: last bits only (7.6e-6 seen on an
# AMD EPYC without AVX-512); a wrong feature or candidate moves a score far more
SCORE_RTOL, SCORE_ATOL = 1e-5, 1e-9


def _world(seed: int = 21, consumers: int = 700, products: int = 260) -> InteractionData:
    """Consumers with a taste for a band of products, repeat purchases, views and ages."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(consumers):
        centre = rng.integers(0, products)
        picks = np.unique((centre + rng.integers(-25, 25, size=rng.integers(2, 14))) % products)
        for p in picks:
            purchases = int(rng.integers(0, 5))  # 0: viewed only
            rows.append((f"C{c:04d}", f"P{p:03d}", 0.2 + purchases, purchases, int(rng.integers(1, 120))))
    frame = pd.DataFrame(rows, columns=["consumer_id", "product_id", "weight", "purchases", "age"])
    end = pd.Timestamp("2025-06-01")
    frame["last_interaction_at"] = end - pd.to_timedelta(frame.pop("age"), unit="D")
    paid = frame["purchases"] > 0
    frame["last_purchase_at"] = frame["last_interaction_at"].where(paid)
    spacing = pd.to_timedelta(11 * (frame["purchases"].clip(lower=1) - 1), unit="D")
    frame["first_purchase_at"] = (frame["last_interaction_at"] - spacing).where(paid)
    product_ids = [f"P{p:03d}" for p in range(products)]
    catalogue = pd.DataFrame(
        {
            "product_id": product_ids,
            "category": [f"cat{p % 7}" for p in range(products)],
            "price_band": [f"p{p % 4 + 1}" for p in range(products)],
        }
    )
    return InteractionData.from_frames(frame, None, catalogue, as_of=end.date())


@pytest.fixture(scope="module")
def ranker() -> RankerRecommender:
    return RankerRecommender(components=COMPONENTS, candidates_per_model=20, popular_candidates=10).fit(
        _world()
    )


def _session8_scores(model: RankerRecommender, rows: np.ndarray) -> np.ndarray:
    """``RankerRecommender._score_rows`` as session 8 left it (see the module docstring)."""
    data = model.data_
    mask = data.bought[rows].toarray() > 0
    blocks, ranks = [], []
    depth = min(model.candidates_per_model, data.shape[1])
    for name, component in model.models_.items():
        if name == "itemknn":
            block = (data.matrix[rows] @ component.similarity_).toarray().astype(np.float32)
        else:
            block = np.asarray(component._score_rows(None, rows), dtype=np.float32)
        ranked = top_columns(block, depth)
        rank = np.full(block.shape, depth + 1, dtype=np.uint8)
        np.put_along_axis(rank, ranked, np.arange(1, depth + 1, dtype=np.uint8)[None, :], axis=1)
        np.put_along_axis(mask, ranked, True, axis=1)
        blocks.append(block)
        ranks.append(rank)
    popular = np.argsort(-model.stats_.popularity_30d, kind="stable")[: model.popular_candidates]
    mask[:, popular] = True
    batch_rows, columns = np.nonzero(mask)
    best = [np.maximum(block.max(axis=1), -block.min(axis=1)) for block in blocks]
    scaled = [
        block[batch_rows, columns] / np.where(top > 0, top, 1.0)[batch_rows]
        for block, top in zip(blocks, best, strict=True)
    ]
    component_ranks = [rank[batch_rows, columns].astype(np.float32) for rank in ranks]
    features = np.ascontiguousarray(
        candidate_features(
            data, model.stats_, category_codes(data), rows, batch_rows, columns, scaled, component_ranks
        )
    )
    scores = np.empty((len(rows), data.shape[1]), dtype=np.float32)
    scores[:] = 1e-6 * model.stats_.popularity_30d
    scores[batch_rows, columns] = model.trees_.predict(features)
    return scores


@pytest.mark.parametrize("block_size", [700, 128, 5])
def test_ranker_scores_equal_the_session_8_computation(ranker: RankerRecommender, block_size: int) -> None:
    data = ranker.data_
    assert ranker.trees_.model.split_column is not None  # the production learner: two regressions
    for start in range(0, data.shape[0], block_size):
        ids = data.consumer_ids[start : start + block_size]
        rows = data.rows_of(ids)
        expected = _session8_scores(ranker, rows)
        got = ranker._score_rows(ids, rows)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=SCORE_RTOL, atol=SCORE_ATOL)
        with threadpool_limits(1, "blas"):  # as the pass scores: one BLAS thread
            got = ranker._score_rows(ids, rows)
            np.testing.assert_allclose(got, expected, rtol=SCORE_RTOL, atol=SCORE_ATOL)


def test_ranker_lists_are_unchanged(ranker: RankerRecommender) -> None:
    data = ranker.data_
    ids = data.consumer_ids[:300]
    rows = data.rows_of(ids)
    block = base_module.ScoreBlock(ids, data.product_ids, _session8_scores(ranker, rows))
    expected = ranker.recommend_from_block(block, 10)
    assert len(expected) == 3000
    pd.testing.assert_frame_equal(ranker.recommend(ids, 10), expected)


@pytest.mark.parametrize("slice_bytes", [None, 4 * 260 * 17])
def test_item_knn_scores_equal_the_sparse_product(
    slice_bytes: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bit for bit, with the similarity dense whole and in column slices of 17 products."""
    if slice_bytes is not None:
        monkeypatch.setattr(base_module, "DENSE_SLICE_BYTES", slice_bytes)
    data = _world(seed=5)
    for binary in (False, True):
        model = ItemKNNRecommender(neighbours=40, binary=binary, num_threads=1).fit(data)
        rows = np.arange(data.shape[0])
        history = data.matrix[rows].copy()
        if binary:
            history.data = np.ones_like(history.data)
        expected = (history @ model.similarity_).toarray()
        np.testing.assert_array_equal(model._score_rows(data.consumer_ids, rows), expected)
        assert (model._dense_similarity()._whole is None) == (slice_bytes is not None)


def test_the_bought_mask_equals_the_dense_comparison() -> None:
    data = _world(seed=3)
    rows = np.array([4, 0, 4, 9, 1])  # repeated and unordered rows
    np.testing.assert_array_equal(_bought_mask(data, rows), data.bought[rows].toarray() > 0)
    explicit = sp.csr_matrix((np.array([0.0, 2.0, -1.0]), np.array([1, 3, 2]), np.array([0, 2, 3])), (2, 4))
    viewed = InteractionData(
        pd.Index(["a", "b"]),
        pd.Index(["p", "q", "r", "s"]),
        explicit,
        sp.csr_matrix((2, 4), dtype=bool),
    )  # no purchase counts: bought is the matrix itself, explicit zero and negative entry included
    np.testing.assert_array_equal(_bought_mask(viewed, np.array([0, 1])), explicit.toarray() > 0)


def test_nonzero_flat_equals_nonzero() -> None:
    rng = np.random.default_rng(4)
    for shape in ((7, 13), (1, 5), (0, 4), (3, 0)):
        mask = rng.random(shape) < 0.3
        rows, flat = nonzero_flat(mask)
        expected_rows, expected_columns = np.nonzero(mask)
        np.testing.assert_array_equal(rows, expected_rows)
        np.testing.assert_array_equal(flat - rows * mask.shape[1], expected_columns)


@pytest.mark.parametrize("n_candidates", [1, 37, 5_000, 200_003])
def test_the_logistic_reads_a_fortran_ordered_block_with_the_same_sums(n_candidates: int) -> None:
    rng = np.random.default_rng(n_candidates)
    by_feature = (rng.standard_normal((30, n_candidates)) * rng.lognormal(size=(30, 1))).astype(np.float32)
    by_feature[rng.random(by_feature.shape) < 0.1] = np.nan
    by_feature[5] = rng.random(n_candidates) < 0.4  # the owned flag the two regressions split on
    single = _Logistic(rng.standard_normal(30), np.array([0.2]), rng.random(30), rng.random(30) + 0.5)
    split = _Logistic(
        rng.standard_normal((2, 30)),
        np.array([0.2, -0.4]),
        rng.random((2, 30)),
        rng.random((2, 30)) + 0.5,
        split_column=5,
    )
    for logistic in (single, split):
        expected = logistic.raw(np.ascontiguousarray(by_feature.T), 2)
        np.testing.assert_array_equal(logistic.raw(by_feature.copy().T, 2), expected)
        with threadpool_limits(1, "blas"):
            if logistic is single:  # OpenBLAS's matrix-vector product is not thread-count stable
                expected = logistic.raw(np.ascontiguousarray(by_feature.T), 1)
            np.testing.assert_array_equal(logistic.raw(by_feature.copy().T, 1), expected)


def test_scoring_ahead_on_threads_gives_the_blocks_in_order(ranker: RankerRecommender) -> None:
    data = ranker.data_
    blocks = [data.consumer_ids[start : start + 90] for start in range(0, data.shape[0], 90)]
    blocks.insert(2, pd.Index([], dtype=object))  # a block of consumers without history
    inline = [_score(ranker, ids, data) for ids in blocks]
    for threads in (1, 2, 3):
        ahead = list(_scored_ahead(ranker, blocks, data, threads))
        assert len(ahead) == len(inline)
        for got, expected in zip(ahead, inline, strict=True):
            assert got.consumer_ids.equals(expected.consumer_ids)
            np.testing.assert_array_equal(got.scores, expected.scores)
