"""The scoring pass's fast paths give exactly what the plain computations they replace gave.

- ``top_columns`` (a component's top candidates, every list's ``top_k``) against ``argpartition``
  + stable sort, also on rows full of ties and NaN, where the order among tied scores is
  ``argpartition``'s own, and on wide rows that go through its shortlist;
- ``basket_similarity`` (co-purchase with the recent basket) against the sparse product
  ``csr(recent) @ similarity``, bit for bit, with whole-catalogue baskets and column slices;
- a component's scaled scores read at the candidates against scaling the whole block;
- the ranker's scores and lists with the first two replaced by those plain computations.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import models.recommenders.base as base_module
import models.recommenders.ranker as ranker_module
import models.recommenders.ranker_features as features_module
from models.recommenders import InteractionData, RankerRecommender
from models.recommenders.base import top_columns, top_k
from models.recommenders.distributors import _likely_counts
from models.recommenders.ranker_features import basket_similarity
from tests.models.recommenders.test_ranker import PARAMS


def _plain_top_columns(scores: np.ndarray, depth: int) -> np.ndarray:
    """The computation ``top_columns`` replaces (the ranker's code before it)."""
    top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def _plain_basket_similarity(recent: np.ndarray, similarity: sp.csr_matrix) -> np.ndarray:
    return (sp.csr_matrix(recent, dtype=np.float32) @ similarity).toarray()


def test_top_columns_on_distinct_scores_is_the_best_first() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [3.0, 1.0, 2.0, 0.0]], dtype=np.float32)
    assert top_columns(scores, 2).tolist() == [[1, 3], [0, 2]]


@pytest.mark.parametrize("depth", [1, 3, 7, 12, 40])
def test_top_columns_equals_argpartition_with_ties_and_nan(depth: int) -> None:
    rng = np.random.default_rng(depth)
    distinct = rng.random((50, 40)).astype(np.float32)
    tied = rng.integers(0, 4, size=(50, 40)).astype(np.float32)  # many ties at every boundary
    sparse_like = np.where(rng.random((50, 40)) < 0.8, 0.0, distinct).astype(np.float32)
    with_nan = distinct.copy()
    with_nan[::7, ::5] = np.nan
    all_zero = np.zeros((3, 40), dtype=np.float32)
    for scores in (distinct, tied, sparse_like, with_nan, all_zero):
        expected = _plain_top_columns(scores, min(depth, 40))
        assert np.array_equal(top_columns(scores, min(depth, 40)), expected)


@pytest.mark.parametrize("depth", [1, 5, 10, 20, 50])
def test_top_columns_through_the_shortlist_equals_argpartition(depth: int) -> None:
    """Wide rows (a block's shape): most rows go through the shortlist, the rest (ties at the
    bound, NaN, too few finite scores) through the whole row or argpartition."""
    rng = np.random.default_rng(100 + depth)
    distinct = rng.standard_normal((120, 700)).astype(np.float32)
    masked = np.where(rng.random((120, 700)) < 0.85, -np.inf, distinct).astype(np.float32)
    masked[:5, 3:] = -np.inf  # fewer than ``depth`` finite scores
    sparse_like = np.where(rng.random((120, 700)) < 0.95, 0.0, distinct).astype(np.float32)
    with_nan = distinct.copy()
    with_nan[::3, ::11] = np.nan
    with_nan[7] = np.nan
    with_nan[9, : depth - 1] = np.nan  # NaN group maxima lower the bound: few columns reach it
    tied = rng.integers(0, 30, size=(120, 700)).astype(np.float32)
    for scores in (distinct, masked, sparse_like, with_nan, tied, distinct.astype(np.float64)):
        assert np.array_equal(top_columns(scores, depth), _plain_top_columns(scores, depth))
    listed, _, columns = base_module._shortlist(distinct, depth)
    assert len(listed) > 100  # the shortlist is the path taken
    assert columns.shape[1] <= base_module._SHORTLIST_WIDTH * depth


def test_basket_similarity_equals_the_sparse_product_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    similarity = sp.random(30, 30, density=0.3, random_state=4, dtype=np.float32, format="csr")
    recent = rng.random((12, 30)) < 0.2
    recent[[2, 7]] = True  # consumers without purchases: the whole catalogue is their basket
    recent[5] = False
    expected = _plain_basket_similarity(recent, similarity)
    assert np.array_equal(basket_similarity(recent, similarity), expected)
    monkeypatch.setattr(features_module, "COPURCHASE_SLICE_BYTES", 4 * 30 * 7)  # slices of 7 columns
    assert np.array_equal(basket_similarity(recent, similarity), expected)


def test_ranker_scores_and_lists_equal_the_plain_computations(
    planted_data: InteractionData, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = RankerRecommender(**PARAMS).fit(planted_data)
    consumers = planted_data.consumer_ids
    fast = np.vstack([block.scores for block in model.score_blocks(consumers, 16)])
    fast_lists = model.recommend(consumers, 5)
    monkeypatch.setattr(ranker_module, "top_columns", _plain_top_columns)
    monkeypatch.setattr(base_module, "top_columns", _plain_top_columns)
    monkeypatch.setattr(features_module, "basket_similarity", _plain_basket_similarity)
    plain = np.vstack([block.scores for block in model.score_blocks(consumers, 16)])
    np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-9)
    assert fast_lists.equals(model.recommend(consumers, 5))


def test_component_scores_at_the_candidates_equal_the_scaled_block() -> None:
    rng = np.random.default_rng(5)
    block = (rng.random((9, 15)) - 0.7).astype(np.float32)
    block[3] = 0.0  # nothing to scale by
    block[4, 2] = np.nan
    batch_rows, columns = np.nonzero(rng.random((9, 15)) < 0.4)
    best = np.abs(block).max(axis=1, keepdims=True)
    scaled = block / np.where(best > 0, best, 1.0)  # the block-wide computation it replaced
    np.testing.assert_array_equal(
        ranker_module._over_best(block, batch_rows, columns), scaled[batch_rows, columns]
    )


def test_likely_counts_equal_the_plain_computation() -> None:
    rng = np.random.default_rng(6)
    scores = rng.random((12, 20)).astype(np.float32)
    scores[::4, ::3] = np.nan
    mask = rng.random(20) < 0.7
    rows = rng.integers(0, 3, size=12)
    masked = np.where(mask[None, :], np.nan_to_num(scores, nan=-np.inf), -np.inf).astype(np.float32)
    columns, _ = top_k(masked, 5)  # the computation it replaced: count each member's top 5
    expected = np.zeros((3, 20))
    for row, top in zip(rows, columns, strict=True):
        np.add.at(expected[row], top[top >= 0], 1.0)
    np.testing.assert_array_equal(_likely_counts(scores, mask, rows, 3, 5), expected)
