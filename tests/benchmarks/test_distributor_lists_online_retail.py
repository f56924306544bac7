"""The distributor-list benchmark's pure parts: NDCG@20 by hand, the pooled blend choice, the ceiling.

The ceiling must count only next-window buyers who have history before the cutoff (a list built
from the members cannot know a newcomer), and distinct buyers, not order lines.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from benchmarks.distributor_lists_online_retail import _known_members_future, ndcg, pooled_choice


def test_ndcg_graded_by_hand() -> None:
    # gains 1 at rank 1 and 3 at rank 2; ideal order 3, 1
    dcg = 1 / np.log2(2) + 3 / np.log2(3)
    ideal = 3 / np.log2(2) + 1 / np.log2(3)
    assert np.isclose(ndcg(["a", "b", "c"], {"a": 1.0, "b": 3.0}), dcg / ideal)
    assert ndcg(["b", "a"], {"a": 1.0, "b": 3.0}) == 1.0


def test_pooled_choice_takes_the_best_mean_over_windows_not_the_best_single_window() -> None:
    scores = {
        (0.0, 0.0, 7): [0.50, 0.48, 0.47],  # mean 0.4833
        (0.5, 0.6, 7): [0.55, 0.40, 0.44],  # best on the first window alone, mean 0.4633
    }
    assert pooled_choice(scores) == (0.0, 0.0, 7)
    assert pooled_choice({blend: values[:1] for blend, values in scores.items()}) == (0.5, 0.6, 7)


def test_pooled_choice_keeps_the_first_blend_on_a_tie() -> None:
    assert pooled_choice({(0.0, 0.0, 7): [0.4], (1.0, 1.0, 30): [0.4]}) == (0.0, 0.0, 7)


def test_ceiling_counts_distinct_buyers_with_history_per_community() -> None:
    future = pd.DataFrame(
        {
            "consumer_id": ["c1", "c1", "c2", "new", "c3"],
            "product_id": ["p1", "p1", "p1", "p2", "p2"],
            "community": ["A", "A", "A", "A", "B"],
        }
    )
    window = SimpleNamespace(
        future=future,
        data=SimpleNamespace(consumer_ids=pd.Index(["c1", "c2", "c3"]), product_ids=pd.Index(["p1", "p2"])),
        distributors=pd.Index(["A", "B"]),
    )
    ceiling = _known_members_future(window)
    # A: p1 by c1 (twice, counted once) and c2; p2 only by a newcomer; B: p2 by c3
    np.testing.assert_array_equal(ceiling, [[2.0, 0.0], [0.0, 1.0]])
