"""The refit cadence in the recommend step: a night fits and stores, the next nights carry the stored
model onto their data (its lists are the stored model's, scored directly), a changed config refits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.catalog import StepFile
from features.engine import connect
from models.recommenders import ALSRecommender
from models.recommenders.store import read_stored
from models.recommenders.training import build_data
from pipelines.config import NightlyConfig
from pipelines.steps.recommend import production_model, run_recommend
from pipelines.steps.validate import load_and_validate
from sources.simulator import SimulationConfig, simulate

K = 6


def _tuned_als(con: object, as_of: object, config: object, evaluated: object = None) -> ALSRecommender:
    """Stands in for ``tune_production``: a small ALS instead of the tuned ranker (fast)."""
    return ALSRecommender(factors=8, iterations=4, num_threads=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("cadence")
    simulate(root / "data", SimulationConfig(consumers=1500, distributors=8, products=120, days=90, seed=3))
    validated = load_and_validate(root / "data", None, NightlyConfig(), root / "validated")
    return {"root": root, "validated": validated, "con": connect(validated.clean_paths)}


class _Evaluation:
    """Stands in for the nightly's evaluation: writes evaluation.json, counts its calls."""

    def __init__(self, outputs: Path, ndcg: float) -> None:
        self.outputs, self.ndcg, self.calls = outputs, ndcg, 0

    def __call__(self) -> tuple[dict[str, float], float, str, None, tuple[str, str]]:
        self.calls += 1
        self.outputs.mkdir(parents=True, exist_ok=True)
        (self.outputs / StepFile.EVALUATION).write_text(f'{{"ndcg": {self.ndcg}}}\n')
        return {"all_items.ranker.ndcg": self.ndcg}, self.ndcg, "the sample", None, ("3", "ranker_old")


def _night(world: dict, config: NightlyConfig, days_before: int, name: str, ndcg: float = 0.25):
    as_of = world["validated"].as_of.days_before(days_before)
    outputs = world["root"] / name
    evaluation = _Evaluation(outputs, ndcg)
    store = world["root"] / "production_model"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("pipelines.steps.recommend.tune_production", _tuned_als)
        tonight = production_model(world["con"], as_of, config, outputs, store, evaluation)
    return tonight, evaluation, as_of, outputs


def _lists(world: dict, config: NightlyConfig, as_of, out: Path, data, model) -> pd.DataFrame:
    outcome = run_recommend(
        world["validated"].clean_paths, as_of, config, out, K, con=world["con"], data=data, model=model
    )
    return pd.read_parquet(outcome.paths[StepFile.CONSUMER_LISTS])


def test_nights_between_refits_carry_the_stored_model_and_a_config_change_refits(world: dict) -> None:
    config = NightlyConfig()
    assert config.recommend.refit_every_days == 7
    first, evaluated, first_day, _ = _night(world, config, 3, "night1", ndcg=0.25)
    assert not first.reused and evaluated.calls == 1 and first.fitted_as_of == first_day.date

    second, not_evaluated, as_of, outputs = _night(world, config, 0, "night2", ndcg=0.99)
    assert second.reused and not_evaluated.calls == 0
    assert second.fitted_as_of == first_day.date and second.key == first.key
    assert second.evaluation.ndcg == 0.25  # the fitting night's numbers, not re-measured
    # and its measure of the champion's settings, for the gate of the nights it is carried on
    assert second.evaluation.champion_measured == ("3", "ranker_old")
    assert (outputs / StepFile.EVALUATION).read_text() == '{"ndcg": 0.25}\n'
    assert second.data.shape[0] > first.data.shape[0]  # tonight's consumers, not the fitting night's

    published = _lists(world, config, as_of, world["root"] / "lists", second.data, second.model)
    stored = read_stored(world["root"] / "production_model")
    direct = stored.carried_onto(build_data(world["con"], as_of, config.recommend.interactions))
    expected = _lists(world, config, as_of, world["root"] / "direct", direct.data_, direct)
    pd.testing.assert_frame_equal(published, expected, check_exact=True)

    changed = config.model_copy(deep=True)
    changed.recommend.interactions.half_life_days = 60.0
    third, evaluated_again, _, _ = _night(world, changed, 2, "night3", ndcg=0.3)
    assert not third.reused and evaluated_again.calls == 1 and third.key != first.key

    every_night = changed.model_copy(deep=True)
    every_night.recommend.refit_every_days = 1
    fourth, evaluated_fourth, _, _ = _night(world, every_night, 0, "night4")  # 2 days old, same config
    assert not fourth.reused and evaluated_fourth.calls == 1
    rerun, evaluated_rerun, _, _ = _night(world, changed, 0, "night4-rerun")  # fitted for this night
    assert not rerun.reused and evaluated_rerun.calls == 1
