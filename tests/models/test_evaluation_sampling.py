"""The evaluation's consumer sample (seeded, order-free) and its per-consumer confidence intervals."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from features.asof import AsOf
from features.vocabulary import MetricCol
from models.evaluation import (
    INTERVAL_COLUMNS,
    EvaluationTask,
    TimeSplit,
    confidence_interval,
    consumer_metrics,
    interval_of,
    metric_intervals,
    ranking_metrics,
    sample_consumers,
)
from models.recommenders.base import InteractionData

IDS = pd.Index([f"C{i:03d}" for i in range(200)])


def test_the_sample_is_fixed_by_the_seed_and_not_by_the_order_of_the_ids() -> None:
    first = sample_consumers(IDS, 20, seed=0)
    assert len(first) == 20 and first.is_unique and first.isin(IDS).all()
    assert first.equals(sample_consumers(IDS, 20, seed=0))
    assert first.equals(sample_consumers(IDS[::-1], 20, seed=0))  # shuffled input, same sample
    assert not first.equals(sample_consumers(IDS, 20, seed=1))
    assert first.is_monotonic_increasing


def test_no_cap_or_a_cap_above_the_population_keeps_everyone() -> None:
    assert sample_consumers(IDS, None).equals(IDS)
    assert sample_consumers(IDS, 500).equals(IDS)
    assert sample_consumers(IDS, 200).equals(IDS)


def test_a_sampled_task_keeps_the_truth_of_the_sampled_consumers_only() -> None:
    truth = pd.DataFrame({"consumer_id": ["A", "A", "B", "C", "D"], "product_id": ["P", "Q", "P", "R", "P"]})
    train = InteractionData.from_frames(
        pd.DataFrame(columns=["consumer_id", "product_id", "weight"]).astype({"weight": float})
    )
    split = TimeSplit(AsOf(date(2025, 3, 1)), AsOf(date(2025, 3, 31)))
    task = EvaluationTask(split, train, truth)
    sampled = task.sample(2, seed=3)
    kept = sample_consumers(task.consumer_ids, 2, seed=3)
    assert sampled.consumers == 2 and task.consumers == 4
    assert set(sampled.truth["consumer_id"]) == set(kept)
    assert len(sampled.truth) == truth["consumer_id"].isin(kept).sum()
    assert task.sample(None) is task


def test_per_consumer_values_average_to_the_metrics() -> None:
    lists = pd.DataFrame(
        [("C1", "A", 1), ("C1", "X", 2), ("C2", "B", 1)], columns=["consumer_id", "product_id", "rank"]
    )
    truth = pd.DataFrame({"consumer_id": ["C1", "C2", "C3"], "product_id": ["A", "C", "D"]})
    values = consumer_metrics(lists, truth, k=2)
    assert values.index.tolist() == ["C1", "C2", "C3"]
    assert values[MetricCol.HIT_RATE].tolist() == [1.0, 0.0, 0.0]
    assert values[MetricCol.PRECISION].tolist() == [0.5, 0.0, 0.0]
    means = ranking_metrics(lists, truth, k=2)
    assert means[MetricCol.NDCG] == pytest.approx(1 / 3)
    bounds = metric_intervals(values)
    assert set(bounds) == set(INTERVAL_COLUMNS)
    low, high = interval_of(MetricCol.HIT_RATE)
    # hit rate values 1, 0, 0: mean 1/3, sd 0.57735, half-width 1.96 * 0.57735 / sqrt(3) = 0.65333
    assert bounds[low] == pytest.approx(1 / 3 - 0.653333, abs=1e-5)
    assert bounds[high] == pytest.approx(1 / 3 + 0.653333, abs=1e-5)


def test_the_interval_contains_the_mean_and_narrows_with_more_consumers() -> None:
    values = np.random.default_rng(0).random(10_000)
    widths = []
    for n in (100, 1_000, 10_000):
        low, high = confidence_interval(values[:n])
        assert low < values[:n].mean() < high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[2] == pytest.approx(10, rel=0.1)  # 1 / sqrt(n)


def test_the_interval_of_one_consumer_is_unknown() -> None:
    assert all(math.isnan(bound) for bound in confidence_interval(np.array([0.5])))
    with pytest.raises(ValueError, match="no confidence interval"):
        interval_of(MetricCol.COVERAGE)
