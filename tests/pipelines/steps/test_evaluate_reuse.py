"""Production tuning reuses the ranker the evaluation fitted at its cutoff: same weights, same lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import models.recommenders.training as training
from features.asof import AsOf
from features.engine import connect
from features.interactions import latest_activity
from models.recommenders.training import RecommendConfig, build_data, fit_production
from pipelines.steps.evaluate import contract_tables, run_evaluation
from sources.simulator import SimulationConfig, simulate

RANKER = {
    "kind": "ranker",
    "params": {
        "components": {
            "itemknn": {"kind": "itemknn", "neighbours": 20},
            "als": {"kind": "als", "factors": 8, "iterations": 3, "num_threads": 1},
        },
        "candidates_per_model": 10,
        "popular_candidates": 5,
    },
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("platform")
    simulate(out, SimulationConfig(consumers=500, distributors=8, products=60, days=120, seed=11))
    return out


def _config(validation_days: int = 30) -> RecommendConfig:
    return RecommendConfig.model_validate(
        {
            "models": {"ranker": RANKER, "repeat": {"kind": "repeat"}},
            "evaluation": {"holdout_days": 30, "validation_days": validation_days, "sample_consumers": 50},
        }
    )


def test_production_reuses_the_evaluated_ranker_and_gets_the_same_weights_and_lists(
    platform: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config()
    con = connect(contract_tables(platform))
    as_of = AsOf.of(latest_activity(con))
    report = run_evaluation(platform, config, as_of, con=con)
    evaluated = report.fitted("ranker")
    assert evaluated is not None and evaluated.cutoff == as_of.days_before(30)
    data = build_data(con, as_of, config.interactions)

    fresh = fit_production(con, as_of, config, data=data)
    built: list[object] = []
    monkeypatch.setattr(
        training, "build_data", lambda con, at, *a: built.append(at) or build_data(con, at, *a)
    )
    reused = fit_production(con, as_of, config, data=data, evaluated=evaluated)

    assert reused is evaluated.model and built == []  # no data built again at the cutoff
    learned, expected = reused.learned_state(), fresh.learned_state()
    assert learned.keys() == expected.keys()
    for key in learned:
        assert np.array_equal(learned[key], expected[key]), key
    ids = data.consumer_ids
    pd.testing.assert_frame_equal(reused.recommend(ids, 10), fresh.recommend(ids, 10), check_exact=True)


def test_other_windows_tune_from_scratch(platform: Path) -> None:
    config = _config(validation_days=20)  # the tuning window starts 20 days back, not at the cutoff
    con = connect(contract_tables(platform))
    as_of = AsOf.of(latest_activity(con))
    evaluated = run_evaluation(platform, config, as_of, con=con, model_names=["ranker"]).fitted("ranker")
    assert evaluated is not None
    model = fit_production(con, as_of, config, evaluated=evaluated)
    assert model is not evaluated.model
    assert run_evaluation(platform, config, as_of, con=con, model_names=["repeat"]).fitted("ranker") is None


def test_a_fitting_night_drops_the_evaluated_state_before_building_tonights_data(
    platform: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipelines.steps.recommend as step
    from features.catalog import StepFile
    from pipelines.config import NightlyConfig

    config = _config()
    con = connect(contract_tables(platform))
    as_of = AsOf.of(latest_activity(con))
    evaluated = run_evaluation(platform, config, as_of, con=con).fitted("ranker")
    assert evaluated is not None and hasattr(evaluated.model, "data_")
    outputs = tmp_path / "outputs"

    def evaluate() -> tuple[dict[str, float], float, str, object]:
        outputs.mkdir()
        (outputs / StepFile.EVALUATION).write_text("{}\n")
        return {}, 0.3, "the sample", evaluated, None

    held: list[list[str]] = []
    build = step.night_data
    monkeypatch.setattr(
        step,
        "night_data",
        lambda *a: held.append([k for k in vars(evaluated.model) if k.endswith("_")]) or build(*a),
    )
    nightly = NightlyConfig().model_copy(update={"recommend": config})
    tonight = step.production_model(con, as_of, nightly, outputs, tmp_path / "store", evaluate)

    assert held == [[]]  # no data, components or trees of the evaluation's cutoff left
    assert tonight.model is evaluated.model and tonight.model.data_ is tonight.data
    fresh = fit_production(con, as_of, config, data=tonight.data)
    learned, expected = tonight.model.learned_state(), fresh.learned_state()
    assert learned.keys() == expected.keys()
    for key in learned:
        assert np.array_equal(learned[key], expected[key]), key
