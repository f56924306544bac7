"""The simulator's vectorised draws, on inputs whose answer is known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from sources.simulator.market import CATEGORIES, CATEGORY_INDEX
from sources.simulator.sampling import GroupSampler, boost_matrix, dirichlet, pick, sample_cdf, sort_order


def test_group_sampler_draws_within_the_group_by_weight() -> None:
    # group 0: item 10 (weight 1) and 11 (weight 3), i.e. shares 0.25 / 0.75; group 1: item 20 only
    sampler = GroupSampler.build(np.array([1, 0, 0]), np.array([20, 11, 10]), np.array([5.0, 3.0, 1.0]), 2)
    drawn = sampler.sample(np.array([0, 0, 0, 1, 1]), np.array([0.1, 0.3, 0.99, 0.0, 0.99]))
    assert drawn.tolist() == [10, 11, 11, 20, 20]


def test_group_sampler_refuses_an_empty_group() -> None:
    with pytest.raises(ValueError, match="every group needs at least one item"):
        GroupSampler.build(np.array([0, 2]), np.array([1, 2]), np.array([1.0, 1.0]), 3)


@pytest.mark.parametrize("high", [10, 2**62], ids=["one word", "several words"])
def test_sort_order_sorts_like_lexsort_and_keeps_ties_in_order(high: int) -> None:
    rng = np.random.default_rng(0)
    first, second = rng.integers(0, 5, 200), rng.integers(0, high, 200)
    second[:20] = 3  # ties on both keys
    first[:20] = 1
    assert sort_order(first, second).tolist() == np.lexsort((second, first)).tolist()


def test_pick_takes_the_only_weighted_column_of_each_row() -> None:
    shares = np.array([[0.0, 0.0, 5.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    assert pick(np.random.default_rng(1), shares).tolist() == [2, 0, 1]


def test_sample_cdf_maps_uniforms_to_buckets_and_never_past_the_last() -> None:
    cdf = np.array([0.2, 0.5, 1.0])
    assert sample_cdf(cdf, np.array([0.0, 0.2, 0.49, 0.99, 1.0])).tolist() == [0, 1, 1, 2, 2]


def test_boost_matrix_has_a_row_per_key_and_a_last_row_of_ones() -> None:
    matrix = boost_matrix({"parent": {"beauty": 2.0}}, ("parent", "student"))
    assert matrix.shape == (3, len(CATEGORIES))
    assert matrix[0, CATEGORY_INDEX["beauty"]] == 2.0
    assert matrix.sum() == 3 * len(CATEGORIES) + 1.0


def test_dirichlet_rows_are_shares() -> None:
    draws = dirichlet(np.random.default_rng(2), np.full((4, 3), 0.5))
    assert draws.shape == (4, 3)
    assert np.allclose(draws.sum(axis=1), 1.0)
    assert (draws > 0).all()
