"""The ranker ceiling's parts: out-of-fold learners never see the labels of the consumers they score.

A learner that memorises its training rows scores its own labels perfectly: fitted on every
consumer (in-sample) its lists reach the best re-ranking of the candidates, so the machinery can
show a ceiling that high; out of fold the same memoriser must fall far below it, or labels leak.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.ranker_ceiling import (
    CandidateRows,
    candidate_rows,
    in_sample,
    ndcg_row,
    part_of,
    with_learners,
)
from benchmarks.recommenders_online_retail import PROTOCOL_INTERACTIONS
from features.engine import connect
from features.interactions import latest_activity, purchased_pairs
from models.evaluation import Protocol, make_task, rolling_folds
from models.recommenders.ranker import RankerRecommender
from sources.simulator import SimulationConfig, simulate

ALL = f"ndcg@10 {Protocol.ALL_ITEMS}"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[RankerRecommender, CandidateRows, object]:
    out: Path = tmp_path_factory.mktemp("ceiling")
    simulate(out, SimulationConfig(consumers=500, distributors=8, products=60, days=150, seed=5))
    con = connect({t: out / f"{t}.parquet" for t in ("orders", "products", "consumers")})
    fold = rolling_folds(latest_activity(con), 1, 30, 30)[0]
    test_task = make_task(con, fold.test, PROTOCOL_INTERACTIONS)
    validation_task = make_task(con, fold.tuning, PROTOCOL_INTERACTIONS)
    ranker = RankerRecommender(candidates_per_model=10, popular_candidates=10)
    ranker.tune(validation_task.train, purchased_pairs(con, fold.tuning.cutoff, fold.tuning.test_end))
    ranker.fit(test_task.train)
    rows = candidate_rows(ranker, purchased_pairs(con, fold.cutoff, fold.test.test_end))
    return ranker, rows, test_task


class Memoriser:
    """Scores 1 on a feature row it was fitted on as a positive, 0 elsewhere (a 1-NN at distance 0)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.positives = {row.tobytes() for row in np.nan_to_num(x[y])}

    def predict(self, x: np.ndarray, threads: int = 2) -> np.ndarray:
        return np.array([row.tobytes() in self.positives for row in np.nan_to_num(x)], dtype=np.float32)


@pytest.fixture
def memorising(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        RankerRecommender, "_fit_learner", lambda self, x, y, groups, consumers: Memoriser(x, y)
    )


def test_candidate_rows_are_grouped_by_consumer_with_labels_from_the_truth(fitted) -> None:
    _, rows, test_task = fitted
    assert len(rows.x) == len(rows.y) == len(rows.owner) and rows.y.any() and not rows.y.all()
    runs = np.flatnonzero(np.r_[True, rows.owner[1:] != rows.owner[:-1]])
    assert len(runs) == len(set(rows.owner))  # each consumer's candidates are one run of rows
    assert set(rows.owner) <= set(test_task.truth["consumer_id"].astype(str))
    assert rows.groups(np.ones(len(rows.y), dtype=bool)).sum() == len(rows.y)


def test_groups_count_the_chosen_rows_of_each_consumer_in_order() -> None:
    rows = CandidateRows(
        np.zeros((6, 1)), np.zeros(6, dtype=bool), np.array(["a", "a", "b", "c", "c", "c"], dtype=object)
    )
    assert rows.groups(np.ones(6, dtype=bool)).tolist() == [2, 1, 3]
    assert rows.groups(np.array([True, False, False, True, True, False])).tolist() == [1, 2]


def test_parts_depend_on_the_seed_and_the_id_only() -> None:
    ids = [f"c{i}" for i in range(2000)]
    first = part_of(ids, 5, 0)
    assert set(first) == set(range(5)) and np.bincount(first).min() > 300
    assert (part_of(ids[::-1], 5, 0) == first[::-1]).all()  # not on order
    assert (part_of(ids, 5, 1) != first).mean() > 0.6  # another seed, another partition


def test_no_learner_is_fitted_on_a_consumer_it_scores(fitted) -> None:
    ranker, rows, _ = fitted
    model, seen = with_learners(ranker, rows, {"learner": "logistic"}, parts=3, seed=0)
    owners = pd.unique(rows.owner)
    parts = part_of(owners, 3, 0)
    for index, learned_from in enumerate(seen):
        assert learned_from == set(owners[parts != index])
    # each consumer is scored by the learner of their part: stub learners answer with their part
    model.learners = [_Constant((index + 1) / 10) for index in range(3)]
    scores = next(model.score_blocks(pd.Index(owners[:200]))).scores
    for row, part in zip(scores, parts[:200], strict=True):
        assert np.isclose(np.nanmax(row), (part + 1) / 10)


def test_a_memorising_learner_is_perfect_in_sample_and_not_out_of_fold(fitted, memorising) -> None:
    ranker, rows, test_task = fitted
    perfect = ndcg_row(in_sample(ranker, rows, {}), test_task)[ALL]
    chance = ndcg_row(with_learners(ranker, rows, {}, parts=5, seed=0)[0], test_task)[ALL]
    assert perfect > 0.9  # the best re-ranking of the candidates: the machinery can show a high ceiling
    assert chance < perfect - 0.3, (chance, perfect)  # no consumer's own labels reach their scores


class _Constant:
    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, x: np.ndarray, threads: int = 2) -> np.ndarray:
        return np.full(len(x), self.value, dtype=np.float32)
