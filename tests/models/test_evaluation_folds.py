"""Rolling-origin evaluation: fold windows for hand-made dates, the planted leak, the summary over folds."""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from pathlib import Path
from typing import ClassVar

import duckdb
import numpy as np
import pandas as pd
import pytest

from features.asof import AsOf
from features.engine import connect
from features.interactions import purchased_pairs
from features.vocabulary import MetricCol
from models.evaluation import (
    FOLD_COLUMNS,
    FOLDS_CONFIDENCE_METHOD,
    SUMMARY_COLUMNS,
    FoldLeakError,
    RollingFold,
    TimeSplit,
    confidence_method,
    fold_metrics_by_name,
    metric_name,
    metrics_by_name,
    rolling_folds,
    summarise_folds,
    t_interval,
)
from models.recommenders.base import InteractionData
from models.recommenders.popularity import PopularityRecommender
from models.recommenders.training import ModelSpec, RecommendConfig, build_data, evaluate_folds
from sources.simulator import SimulationConfig, simulate
from tests.cli import run_cli

# --- fold windows --------------------------------------------------------------------------------


def test_three_folds_end_30_60_and_90_days_before_the_end_each_tuned_just_before() -> None:
    folds = rolling_folds(AsOf(date(2025, 12, 31)), 3, holdout_days=30, validation_days=30)
    assert [fold.number for fold in folds] == [1, 2, 3]
    assert [fold.cutoff for fold in folds] == [
        AsOf(date(2025, 12, 1)),
        AsOf(date(2025, 11, 1)),
        AsOf(date(2025, 10, 2)),
    ]
    assert [fold.test.test_end for fold in folds] == [
        AsOf(date(2025, 12, 31)),
        AsOf(date(2025, 12, 1)),
        AsOf(date(2025, 11, 1)),
    ]
    for fold in folds:  # tuning: the 30 days that end exactly at the fold's cutoff
        assert fold.tuning == TimeSplit(fold.cutoff.days_before(30), fold.cutoff)
    # fold 1 is the single-window protocol
    assert folds[0].test == TimeSplit.holdout(AsOf(date(2025, 12, 31)), 30)


def test_folds_of_an_exact_instant_keep_its_clock_time_and_their_own_window_lengths() -> None:
    last = datetime(2010, 12, 9, 12, 50)
    folds = rolling_folds(last, 2, holdout_days=14, validation_days=21)
    assert folds[0].test == TimeSplit(datetime(2010, 11, 25, 12, 50), last)
    assert folds[1].test == TimeSplit(datetime(2010, 11, 11, 12, 50), datetime(2010, 11, 25, 12, 50))
    assert folds[1].tuning == TimeSplit(datetime(2010, 10, 21, 12, 50), datetime(2010, 11, 11, 12, 50))


def test_a_fold_whose_tuning_window_reaches_into_its_test_window_cannot_be_made() -> None:
    test = TimeSplit(AsOf(date(2025, 12, 1)), AsOf(date(2025, 12, 31)))
    leaky = TimeSplit(AsOf(date(2025, 11, 15)), AsOf(date(2025, 12, 2)))  # one day past the cutoff
    with pytest.raises(FoldLeakError, match="fold 1: its tuning window ends .* after its test cutoff"):
        RollingFold(1, test, leaky)
    with pytest.raises(FoldLeakError, match="is empty"):
        empty = TimeSplit(AsOf(date(2025, 12, 1)), AsOf(date(2025, 12, 1)))
        RollingFold(2, empty, empty.validation(30))
    RollingFold(1, test, test.validation(30))  # ending at the cutoff is allowed
    with pytest.raises(ValueError, match="at least 1"):
        rolling_folds(AsOf(date(2025, 12, 31)), 0, 30, 30)


# --- the summary over folds ----------------------------------------------------------------------


def _fold_row(fold: int, model: str, ndcg: float, consumers: int) -> dict[str, object]:
    row: dict[str, object] = {column: 0.0 for column in FOLD_COLUMNS}
    row.update(
        {
            MetricCol.FOLD: fold,
            MetricCol.FOLD_CUTOFF: f"2025-0{fold}-01 00:00:00",
            MetricCol.MODEL: model,
            MetricCol.PROTOCOL: "all_items",
            MetricCol.CONSUMERS: consumers,
            MetricCol.NDCG: ndcg,
            MetricCol.NDCG_LOW: ndcg - 0.01,
            MetricCol.NDCG_HIGH: ndcg + 0.01,
        }
    )
    return row


def test_the_summary_is_the_mean_over_folds_with_a_t_interval_over_the_fold_means() -> None:
    per_fold = pd.DataFrame(
        [_fold_row(f, "a", v, 100) for f, v in ((1, 0.1), (2, 0.2), (3, 0.3))] + [_fold_row(1, "b", 0.5, 40)]
    )
    summary = summarise_folds(per_fold)
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert list(summary[MetricCol.MODEL]) == ["a", "b"]
    a, b = summary.iloc[0], summary.iloc[1]
    assert a[MetricCol.NDCG] == pytest.approx(0.2)
    assert a[MetricCol.CONSUMERS] == 300 and a[MetricCol.FOLDS] == 3
    # by hand: sd 0.1, t(0.975, 2) = 4.302653, half width 4.302653 * 0.1 / sqrt(3) = 0.248414
    assert a[MetricCol.NDCG_LOW] == pytest.approx(0.2 - 0.248414, abs=1e-6)
    assert a[MetricCol.NDCG_HIGH] == pytest.approx(0.2 + 0.248414, abs=1e-6)
    # one fold keeps its own per-consumer interval
    assert (b[MetricCol.NDCG_LOW], b[MetricCol.NDCG_HIGH]) == pytest.approx((0.49, 0.51))
    assert b[MetricCol.FOLDS] == 1
    assert math.isnan(t_interval(np.array([0.4]))[0])
    assert confidence_method(3) == FOLDS_CONFIDENCE_METHOD != confidence_method(1)


def test_per_fold_metrics_are_named_by_fold_for_mlflow() -> None:
    per_fold = pd.DataFrame([_fold_row(1, "a", 0.1, 10), _fold_row(2, "a", 0.3, 12)])
    named = fold_metrics_by_name(per_fold)
    assert named["fold1.all_items.a.ndcg"] == pytest.approx(0.1)
    assert named["fold2.all_items.a.ndcg"] == pytest.approx(0.3)
    assert named["fold2.all_items.a.consumers"] == 12


# --- the planted leak, end to end ----------------------------------------------------------------


class LeakSpy(PopularityRecommender):
    """Popularity that records every (consumer, product) pair it is given to tune and fit on."""

    name = "leak_spy_test"
    seen: ClassVar[list[tuple[str, set[tuple[str, str]]]]] = []

    def tune(self, train: InteractionData, truth: pd.DataFrame) -> LeakSpy:
        LeakSpy.seen.append(("tune data", _pairs(train)))
        LeakSpy.seen.append(("tune truth", set(zip(truth.iloc[:, 0], truth.iloc[:, 1], strict=True))))
        return self

    def _fit(self, data: InteractionData) -> None:
        LeakSpy.seen.append(("fit", _pairs(data)))
        super()._fit(data)


def _pairs(data: InteractionData) -> set[tuple[str, str]]:
    rows, columns = data.matrix.nonzero()
    return set(zip(data.consumer_ids[rows], data.product_ids[columns], strict=True))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("folds")
    simulate(out, SimulationConfig(consumers=400, distributors=8, products=60, days=150, seed=11))
    return out


def _connect(world: Path) -> duckdb.DuckDBPyConnection:
    return connect({t: world / f"{t}.parquet" for t in ("orders", "products", "consumers")})


def _config(**evaluation: object) -> RecommendConfig:
    models = {"spy": ModelSpec(kind="leak_spy_test"), "pop": ModelSpec(kind="popularity")}
    return RecommendConfig(production="spy", models=models, evaluation=evaluation)


def test_no_fold_tunes_or_fits_on_pairs_first_bought_in_its_test_window(world: Path) -> None:
    con = _connect(world)
    LeakSpy.seen.clear()
    last = AsOf.of(pd.read_parquet(world / "orders.parquet")["ordered_at"].max())
    result = evaluate_folds(con, _config(sample_consumers=None), ["spy"], last, folds=2, k=5)
    assert [fold.number for fold in result.folds] == [1, 2]
    # folds run oldest first; each tunes (data, truth) then fits: three records per fold
    assert [kind for kind, _ in LeakSpy.seen] == ["tune data", "tune truth", "fit"] * 2
    for fold, records in zip(reversed(result.folds), (LeakSpy.seen[:3], LeakSpy.seen[3:]), strict=True):
        known = _pairs(build_data(con, fold.cutoff))  # everything up to the fold's cutoff
        test = purchased_pairs(con, fold.cutoff, fold.test.test_end)
        leak = set(zip(test.iloc[:, 0], test.iloc[:, 1], strict=True)) - known
        assert leak, "the planted test-window pairs must exist for this test to mean anything"
        for kind, pairs in records:
            assert not pairs & leak, f"fold {fold.number}: {kind} saw pairs of its test window"
            assert pairs, kind


def test_every_model_is_measured_on_the_same_consumers_and_fold_1_is_the_single_window(world: Path) -> None:
    con = _connect(world)
    last = AsOf.of(pd.read_parquet(world / "orders.parquet")["ordered_at"].max())
    config = _config(sample_consumers=20, seed=3)
    two = evaluate_folds(con, config, ["spy", "pop"], last, folds=2, k=5)
    one = evaluate_folds(con, config, ["spy", "pop"], last, folds=1, k=5)
    per_fold = two.per_fold
    assert list(per_fold.columns) == list(FOLD_COLUMNS)
    assert sorted(per_fold[MetricCol.FOLD].unique()) == [1, 2]
    sizes = per_fold.groupby([MetricCol.FOLD, MetricCol.PROTOCOL])[MetricCol.CONSUMERS].nunique()
    assert (sizes == 1).all()  # champion and challenger alike: the same consumers per fold and protocol
    assert two.test_consumers[0] > 20 and two.sampled == [min(20, n) for n in two.test_consumers]
    metrics = [MetricCol.MODEL, MetricCol.PROTOCOL, MetricCol.CONSUMERS, MetricCol.NDCG, MetricCol.RECALL]
    first = per_fold[per_fold[MetricCol.FOLD] == 1][metrics].reset_index(drop=True)
    pd.testing.assert_frame_equal(first, one.per_fold[metrics])
    pd.testing.assert_frame_equal(one.summary[metrics], one.per_fold[metrics])  # one fold: itself
    means = per_fold.groupby([MetricCol.MODEL, MetricCol.PROTOCOL], sort=False)[MetricCol.NDCG].mean()
    assert two.summary[MetricCol.NDCG].to_numpy() == pytest.approx(means.to_numpy())
    assert set(two.latest_models) == {"spy", "pop"} and two.latest_task.split == two.folds[0].test
    # what the champion gate reads for a champion trained as "pop": its mean over tonight's folds
    gate_key = metric_name("all_items", "pop", MetricCol.NDCG)
    assert metrics_by_name(two.summary)[gate_key] == pytest.approx(means[("pop", "all_items")])


def test_siyu_evaluate_folds_prints_the_mean_and_writes_every_fold(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    report = tmp_path / "evaluation.json"
    work = ["--out", str(tmp_path / "work")]  # not the checkout's work/
    args = ["evaluate", "--data", str(world), *work, "--folds", "2", "--k", "5"]
    args += ["--model", "popularity_global"]
    assert run_cli(monkeypatch, *args, "--json", str(report)) == 0
    out = capsys.readouterr().out
    assert "mean over 2 rolling folds of 30 days" in out and "t(0.975" in out
    written = json.loads(report.read_text())
    assert {row["fold"] for row in written["folds"]} == {1, 2}
    assert [row["folds"] for row in written["results"]] == [2, 2]  # all_items, new_items
    assert written["sample"]["confidence"] == FOLDS_CONFIDENCE_METHOD
    mean = np.mean([row["ndcg"] for row in written["folds"] if row["protocol"] == "all_items"])
    assert written["results"][0]["ndcg"] == pytest.approx(mean)
    assert run_cli(monkeypatch, "evaluate", "--data", str(world), *work, "--folds", "0") == 2
    assert run_cli(monkeypatch, "evaluate", "--data", str(world), *work, "--folds", "9") == 2
    assert "too short for this many folds" in capsys.readouterr().err
