"""siyu backfill: the as-of dates it runs, and three nightly exports whose tiers migrate date to date."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from features.catalog import Folder, StepFile
from features.errors import SiyuError
from pipelines.publish import current_export, dated_exports
from pipelines.steps.backfill import BACKFILL_FILE, backfill_dates, parse_every
from pipelines.tracking import TrackingConfig, using_tracking
from sources.simulator import SimulationConfig, simulate
from tests.cli import run_cli

pytestmark = pytest.mark.usefixtures("shared_prefect_server")  # its nights share one (tests/conftest.py)

# --- dates ---------------------------------------------------------------------------------------


def test_monthly_dates_keep_the_day_of_the_month_or_the_months_last_day() -> None:
    assert backfill_dates(date(2025, 1, 31), date(2025, 5, 31), "1M") == [
        date(2025, 1, 31),
        date(2025, 2, 28),
        date(2025, 3, 31),
        date(2025, 4, 30),
        date(2025, 5, 31),
    ]
    quarterly = backfill_dates(date(2025, 1, 15), date(2025, 7, 14), "3m")
    assert quarterly == [date(2025, 1, 15), date(2025, 4, 15)]


def test_weekly_and_daily_steps_stop_at_the_last_date() -> None:
    assert backfill_dates(date(2025, 3, 1), date(2025, 3, 16), "1W") == [
        date(2025, 3, 1),
        date(2025, 3, 8),
        date(2025, 3, 15),
    ]
    assert backfill_dates(date(2025, 3, 1), date(2025, 3, 15), "7D") == backfill_dates(
        date(2025, 3, 1), date(2025, 3, 15), "1W"
    )
    assert backfill_dates(date(2025, 3, 1), date(2025, 3, 1), "2W") == [date(2025, 3, 1)]


@pytest.mark.parametrize("every", ["", "M", "0M", "1Y", "-1W", "one month"])
def test_a_step_that_is_not_a_count_of_days_weeks_or_months_is_refused(every: str) -> None:
    with pytest.raises(SiyuError, match=r"--every .*\n  fix: "):
        parse_every(every)


def test_to_before_from_is_refused() -> None:
    with pytest.raises(SiyuError, match="before --from"):
        backfill_dates(date(2025, 3, 2), date(2025, 3, 1), "1M")


# --- three dates end to end ----------------------------------------------------------------------

# Small and fast, as the flow test: CLV off, the production model and one baseline.
CONFIG = {
    "tracking": {"experiment": "test-backfill"},
    "publish": {"keep_last": 2},  # fewer than the backfill's dates: the backfill keeps them all
    "segmentation": {"clv": {"enabled": False}},
    # two rolling folds: the nightly's gate then compares means over the same two folds
    "recommend": {"evaluation": {"models": ["ranker", "popularity_global"], "folds": 2}},
}


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A simulated world (300 consumers, 120 days) backfilled every week over its last 2 weeks."""
    root = tmp_path_factory.mktemp("backfill")
    data = root / "data"
    simulate(data, SimulationConfig(consumers=300, distributors=10, products=50, days=120, seed=7))
    config = root / "nightly.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    last = pd.read_parquet(data / "orders.parquet")["ordered_at"].max().date()
    dates = [last - timedelta(days=14), last - timedelta(days=7), last]
    work = root / "work"
    args = ["backfill", "--from", str(dates[0]), "--to", str(last), "--every", "1W"]
    args += ["--config", str(config), "--data", str(data), "--out", str(work)]
    with pytest.MonkeyPatch.context() as monkeypatch:
        status = run_cli(monkeypatch, *args)
    return {"status": status, "work": work, "dates": dates, "args": args}


def _tiers(export: Path) -> pd.DataFrame:
    return pd.read_parquet(export / StepFile.CONSUMER_TIERS_TWIN).set_index("consumer_id")


def test_three_dates_give_three_exports_and_current_is_the_last(backfilled: dict) -> None:
    assert backfilled["status"] == 0
    exports = backfilled["work"] / Folder.EXPORTS
    assert [p.name for p in dated_exports(exports)] == [str(d) for d in backfilled["dates"]]
    assert current_export(exports).name.startswith(str(backfilled["dates"][-1]))


def test_the_second_export_migrates_tiers_from_the_first(backfilled: dict) -> None:
    first, second, _ = dated_exports(backfilled["work"] / Folder.EXPORTS)
    before, after = _tiers(first), _tiers(second)
    assert set(before["movement"]) == {"new"}  # the first date has no history
    both = after.index.intersection(before.index)
    assert len(both) > 0 and set(after.loc[both, "movement"]) - {"new"}
    # each consumer's previous tier on the 2nd date is its tier on the 1st
    pd.testing.assert_series_equal(
        after.loc[both, "previous_tier"].astype(str),
        before.loc[both, "member_tier"].astype(str),
        check_names=False,
    )
    migration = pd.read_csv(second / StepFile.TIER_MIGRATION, encoding="utf-8-sig")
    assert set(migration["previous"]) - {"(new)"}  # rows for tiers of the first date


def test_backfill_csv_sums_up_each_date(backfilled: dict) -> None:
    table = pd.read_csv(backfilled["work"] / BACKFILL_FILE)
    assert list(table["as_of"]) == [str(d) for d in backfilled["dates"]]
    assert table["validation_ndcg"].between(0, 1).all()
    # the same columns on every date, whole counts, 0 where nobody moved so
    movements = ["movement.up", "movement.down", "movement.same", "movement.new"]
    assert set(movements) <= set(table.columns)
    assert all(pd.api.types.is_integer_dtype(table[name]) for name in movements)
    assert table.loc[0, "movement.new"] > 0 and table.loc[0, movements[:3]].sum() == 0
    assert table.loc[1, movements[:3]].sum() > 0


def test_each_export_holds_the_evaluation_of_both_folds_without_timings(backfilled: dict) -> None:
    for export in dated_exports(backfilled["work"] / Folder.EXPORTS):
        evaluation = json.loads((export / StepFile.EVALUATION).read_text())
        assert {row["fold"] for row in evaluation["folds"]} == {1, 2}
        assert all("fit_seconds" not in row for row in evaluation["folds"] + evaluation["results"])
        assert {row["folds"] for row in evaluation["results"]} == {2}


def test_a_second_backfill_over_the_same_dates_is_refused(backfilled: dict, monkeypatch, capsys) -> None:
    assert run_cli(monkeypatch, *backfilled["args"]) == 2
    assert "already holds exports dated" in capsys.readouterr().err


def test_every_nightly_run_logs_each_folds_numbers_to_mlflow(backfilled: dict) -> None:
    """Each night's production model run holds both folds' numbers; the night's run holds their
    mean, which is what the champion gate compares."""
    with using_tracking(TrackingConfig(experiment="test-backfill"), backfilled["work"]) as client:
        experiment = client.get_experiment_by_name("test-backfill")
        runs = client.search_runs([experiment.experiment_id])
    nights = [run for run in runs if MLFLOW_PARENT_RUN_ID not in run.data.tags]
    assert len(nights) == 3
    for night in nights:
        (ranker,) = [
            run
            for run in runs
            if run.data.tags.get(MLFLOW_PARENT_RUN_ID) == night.info.run_id
            and run.info.run_name.startswith("ranker-")
        ]
        metrics = ranker.data.metrics
        folds = [metrics[f"fold{i}/all_items/ndcg_at_10"] for i in (1, 2)]
        mean = sum(folds) / 2
        assert metrics["all_items/ndcg_at_10"] == pytest.approx(mean)
        assert night.data.metrics["champion_gate/validation_ndcg"] == pytest.approx(mean)
