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
import pandas as pd
import pytest
import scipy.sparse as sp

import models.recommenders.base as base_module
import models.recommenders.ranker as ranker_module
import models.recommenders.ranker_features as features_module
from models.recommenders import InteractionData, RankerRecommender
from models.recommenders.base import top_columns, top_k
from models.recommenders.distributors import _add_likely_counts
from models.recommenders.ranker_features import ProductStats, basket_similarity
from tests.models.recommenders.conftest import planted_frames
from tests.models.recommenders.test_ranker import PARAMS


def _plain_top_columns(scores: np.ndarray, depth: int) -> np.ndarray:
    """The computation ``top_columns`` replaces (the ranker's code before it)."""
    top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def _plain_basket_similarity(
    baskets: sp.csr_matrix, everything: np.ndarray, stats: ProductStats
) -> np.ndarray:
    recent = baskets.toarray() > 0
    recent[everything] = True
    return (sp.csr_matrix(recent, dtype=np.float32) @ stats.copurchase).toarray()


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
    recent[5] = False
    everything = np.zeros(12, dtype=bool)
    everything[[2, 7]] = True  # consumers without purchases: the whole catalogue is their basket
    recent[everything] = False
    baskets = sp.csr_matrix(recent, dtype=np.float32)
    expected = _plain_basket_similarity(baskets, everything, _stats(similarity))
    assert np.array_equal(basket_similarity(baskets, everything, _stats(similarity)), expected)
    monkeypatch.setattr(features_module, "COPURCHASE_SLICE_BYTES", 4 * 30 * 7)  # slices of 7 columns
    sliced = _stats(similarity)
    assert sliced._dense_copurchase is None  # too large to keep dense: sliced for each block
    assert np.array_equal(basket_similarity(baskets, everything, sliced), expected)


def _stats(similarity: sp.csr_matrix) -> ProductStats:
    n_products = similarity.shape[0]
    flat = np.zeros(n_products, dtype=np.float32)
    return ProductStats(flat, flat, flat, flat, flat, similarity)


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
    flat = batch_rows * block.shape[1] + columns
    np.testing.assert_array_equal(
        ranker_module._over_best(block, batch_rows, flat), scaled[batch_rows, columns]
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
    counted = np.zeros((3, 20))
    _add_likely_counts(counted, scores, mask, rows, 5)
    np.testing.assert_array_equal(counted, expected)


# --- candidate features: the sparse, per-candidate computations against the dense block ones ------


class _ReadWithAt(features_module.CandidateLookup):
    """Reads every value by searching the candidates in the block (the code before the lookup)."""

    def at(self, matrix: sp.csr_matrix, missing: float = np.nan) -> np.ndarray:
        return features_module._at(matrix, self.batch_rows, self.columns, missing)


def _dense_features(
    data: InteractionData, stats: ProductStats, rows: np.ndarray, batch_rows: np.ndarray, columns: np.ndarray
) -> np.ndarray:
    """The 27 fixed features as the code before computed them: dense ``batch × products`` rows of
    purchases and ages, the whole data's repeat counts, sums over dense rows."""
    own, ages = data.purchases[rows].toarray(), data.age_days[rows].toarray()
    at = (batch_rows, columns)
    owned = own[at] > 0
    age = np.where(ages[at] > 0, ages[at], features_module.NO_AGE_DAYS)
    history = [np.log1p(own[at]), owned, np.where(owned, np.log1p(age), np.nan)]
    ranks = features_module._own_ranks(data, rows, _ReadWithAt(batch_rows, columns, data.shape[1]))
    repeats = data.purchases.copy()
    repeats.data = np.maximum(repeats.data - 1, 0)
    span_block, repeats_block = data.purchase_span_days[rows], repeats[rows]
    pair = features_module._ratio(
        features_module._at(span_block, *at, 0.0), features_module._at(repeats_block, *at, 0.0)
    )
    consumer = features_module._ratio(span_block.sum(axis=1), repeats_block.sum(axis=1))[batch_rows]
    product = stats.repurchase_interval[columns]
    age_owned = np.where(owned, age, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        due = [np.where(interval > 0, age_owned / interval, np.nan) for interval in (pair, consumer, product)]
    timing = [np.log1p(pair), np.log1p(consumer), np.log1p(product), *due]
    aged = np.where(own > 0, ages, np.inf)
    recent = aged <= aged.min(axis=1, keepdims=True) + features_module.RECENT_BASKET_DAYS
    strength = (sp.csr_matrix(recent, dtype=np.float32) @ stats.copurchase).toarray()[at]
    copurchase = [strength, strength / np.maximum(np.count_nonzero(recent, axis=1)[batch_rows], 1)]
    popularity = features_module._popularity(stats, columns)
    last = np.where(own > 0, ages, features_module.NO_AGE_DAYS).min(axis=1)
    consumer_features = [
        np.log1p((own > 0).sum(axis=1, dtype=np.float32))[batch_rows],
        np.log1p(own.sum(axis=1, dtype=np.float32))[batch_rows],
        np.log1p(last)[batch_rows],
    ]
    codes = features_module.category_codes(data)
    one_hot = sp.csr_matrix((np.ones(len(codes), np.float32), (np.arange(len(codes)), codes)))
    per_category = np.asarray(own @ one_hot)
    totals = per_category.sum(axis=1)
    category = per_category[batch_rows, codes[columns]] / np.where(totals > 0, totals, 1.0)[batch_rows]
    band = features_module.price_band_numbers(data)
    weights = own * ~np.isnan(band)[None, :]
    weight_totals = weights.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        usual = np.where(weight_totals > 0, weights @ np.nan_to_num(band) / weight_totals, np.nan)
    gap = band[columns] - usual[batch_rows]
    parts = [
        *history,
        *ranks,
        *timing,
        *copurchase,
        *popularity,
        *consumer_features,
        category,
        gap,
        np.abs(gap),
    ]
    return np.vstack([np.asarray(part, dtype=np.float32) for part in parts]).T


def _with_views(data_frames: tuple[pd.DataFrame, ...]) -> InteractionData:
    """The planted data plus viewed-only pairs (no purchase) and two consumers who only viewed."""
    interactions, consumers, products = data_frames
    views = pd.DataFrame(
        {
            "consumer_id": ["C000", "C001", "C002", "C060", "C060", "C061"],
            "product_id": ["P05", "P07", "P11", "P01", "P02", "P03"],
            "weight": 0.05,
            "purchases": 0,
            "last_interaction_at": pd.Timestamp("2025-02-25"),
        }
    )
    return InteractionData.from_frames(
        pd.concat([interactions, views], ignore_index=True),
        consumers,
        products,
        as_of=pd.Timestamp("2025-02-28").date(),
    )


def test_candidate_features_equal_the_dense_computations() -> None:
    """Bit for bit, for consumers with purchases, with viewed-only products, and with views only
    (their basket is the whole catalogue); candidates in row order and in any other order."""
    data = _with_views(planted_frames())
    stats = ProductStats.fit(data)
    rows = data.rows_of(["C000", "C001", "C002", "C003", "C010", "C060", "C061"])
    assert (rows >= 0).all()
    rng = np.random.default_rng(8)
    batch_rows, columns = np.nonzero(
        (rng.random((len(rows), data.shape[1])) < 0.5) | (data.matrix[rows].toarray() > 0)
    )
    expected = _dense_features(data, stats, rows, batch_rows, columns)
    codes = features_module.category_codes(data)
    actual = features_module.candidate_features(data, stats, codes, rows, batch_rows, columns, [], [])
    np.testing.assert_array_equal(actual, expected)
    shuffled = rng.permutation(len(columns))
    actual = features_module.candidate_features(
        data, stats, codes, rows, batch_rows[shuffled], columns[shuffled], [], []
    )
    np.testing.assert_array_equal(actual, expected[shuffled])


def test_the_finite_fast_paths_equal_nan_to_num() -> None:
    """Members' scores and most feature rows are finite: the faster forms give nan_to_num's values,
    with and without NaN and infinities."""
    from models.recommenders.boosting import _Logistic
    from models.recommenders.distributors import _nan_as_minus_inf, _scaled

    rng = np.random.default_rng(9)
    finite = rng.standard_normal((20, 30)).astype(np.float32)
    awkward = finite.copy()
    awkward[::3, ::4], awkward[1, 2], awkward[2, 5] = np.nan, np.inf, -np.inf
    for scores in (finite, awkward):
        np.testing.assert_array_equal(_nan_as_minus_inf(scores), np.nan_to_num(scores, nan=-np.inf))
        assert _nan_as_minus_inf(scores).dtype == np.float32
        expected = np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0)
        np.testing.assert_array_equal(_scaled(scores, "raw"), expected)
        logistic = _Logistic(rng.standard_normal(30), np.array([0.3]), rng.random(30), rng.random(30) + 0.5)
        plain = np.nan_to_num(scores.copy()) @ (logistic.coef / logistic.scale).astype(np.float32)
        offset = float(logistic.intercept[0] - np.dot(logistic.mean / logistic.scale, logistic.coef))
        np.testing.assert_array_equal(logistic.raw(scores.copy(), 1), plain + offset)
