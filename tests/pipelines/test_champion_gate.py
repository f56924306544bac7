"""The champion gate compares on tonight's sample when tonight measured the champion's model or its
stored settings."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from models.recommenders.training import CHAMPION_RECIPE, RecommendConfig
from pipelines.champion import (
    MODEL_TAG,
    SAMPLE_TAG,
    ChampionRecipe,
    RecommenderOutcome,
    champion_recipe,
    measure_champion,
    promote,
    register_recommender,
)
from pipelines.tracking import CHALLENGER, CHAMPION, TrackingConfig, start_nightly_run, using_tracking
from tests.pipelines.test_tracking import log_echo_model


def outcome(tmp_path: Path, label: str, configured: str, ndcg: float, tonight: dict[str, float]):
    """A night's recommender outcome: ``configured`` is published; ``tonight`` = model -> NDCG measured."""
    artifact = tmp_path / label / "artifact"
    artifact.mkdir(parents=True)
    (artifact / "model.json").write_text(json.dumps({"label": label}))
    return RecommenderOutcome(
        artifact_dir=artifact,
        validation_ndcg=ndcg,
        metrics={f"all_items.{name}.ndcg": value for name, value in tonight.items()},
        model=configured,
        log_model=log_echo_model,
        configured=configured,
        sample=f"2025-03-01..2025-03-31, 50 of 90 consumers, seed 0 ({label})",
    )


@pytest.fixture
def store(tmp_path: Path):
    config = TrackingConfig(champion_margin=0.01)
    work = tmp_path / "work"
    with using_tracking(config, work) as client:
        yield config, work, client


def night(store, night_outcome: RecommenderOutcome):
    config, work, client = store
    run_id = start_nightly_run(client, config, work, date(2025, 3, 31), {})
    decision = register_recommender(night_outcome, config, work, run_id)
    promote(decision, config, work)
    return decision


def test_a_new_production_model_meets_the_champion_remeasured_on_tonights_sample(
    store, tmp_path: Path
) -> None:
    config, _, client = store
    first = night(store, outcome(tmp_path, "one", "ease", 0.50, {"ease": 0.50}))
    tags = client.get_model_version(config.model_name, first.version).tags
    assert tags[MODEL_TAG] == "ease" and "50 of 90" in tags[SAMPLE_TAG]
    # tonight ranker is production; ease measured on tonight's sample scores 0.30, below the ranker's 0.40
    switched = night(store, outcome(tmp_path, "two", "ranker", 0.40, {"ranker": 0.40, "ease": 0.30}))
    assert switched.alias == CHAMPION and switched.previous_champion == first.version


def test_without_tonights_measure_of_the_champion_its_registered_ndcg_counts(store, tmp_path: Path) -> None:
    first = night(store, outcome(tmp_path, "one", "ease", 0.50, {"ease": 0.50}))
    # ease not measured tonight: the registered 0.50 holds
    kept = night(store, outcome(tmp_path, "two", "ranker", 0.40, {"ranker": 0.40}))
    assert kept.alias == CHALLENGER and kept.champion_ndcg == pytest.approx(0.50)
    # the same model as the champion: its registered NDCG, not tonight's number of the same model
    same = night(store, outcome(tmp_path, "three", "ease", 0.45, {"ease": 0.45}))
    assert same.champion_version == first.version and same.champion_ndcg == pytest.approx(0.50)


def test_a_reuse_night_carries_the_champions_own_model_forward_and_records_the_cadence(
    store, tmp_path: Path
) -> None:
    """Refit cadence: the stored champion model on fresher data takes champion without a comparison
    (its NDCG equals the champion's, which the margin alone would refuse); another model is judged."""
    from dataclasses import replace

    from pipelines.champion import FITTED_AS_OF_TAG, MODEL_AGE_METRIC, MODEL_KEY_TAG, REUSED_METRIC

    config, _, client = store
    fitted = replace(
        outcome(tmp_path, "one", "ranker", 0.40, {"ranker": 0.40}),
        model_key="2025-03-29/cafe",
        fitted_as_of="2025-03-29",
    )
    first = night(store, fitted)
    reused = night(
        store,
        replace(
            outcome(tmp_path, "two", "ranker", 0.40, {"ranker": 0.40}),
            reused=True,
            model_key="2025-03-29/cafe",
            fitted_as_of="2025-03-29",
        ),
    )
    assert reused.alias == CHAMPION and reused.previous_champion == first.version
    version = client.get_model_version(config.model_name, reused.version)
    assert version.tags[MODEL_KEY_TAG] == "2025-03-29/cafe" and version.tags[FITTED_AS_OF_TAG] == "2025-03-29"
    assert "fitted on the data up to 2025-03-29, scored on" in version.description
    runs = client.search_runs(
        [client.get_experiment_by_name(config.experiment).experiment_id],
        filter_string="tags.mlflow.runName LIKE 'nightly-%'",
    )
    recorded = [(run.data.metrics.get(REUSED_METRIC), run.data.metrics.get(MODEL_AGE_METRIC)) for run in runs]
    assert (1.0, 2.0) in recorded and (0.0, 2.0) in recorded  # nights as of 2025-03-31: reused / fitted
    # a stored model that is not the champion's is judged as always (0.40 does not beat 0.40 + margin)
    other = night(
        store,
        replace(
            outcome(tmp_path, "three", "ranker", 0.40, {"ranker": 0.40}),
            reused=True,
            model_key="2025-03-30/beef",
            fitted_as_of="2025-03-30",
        ),
    )
    assert other.alias == CHALLENGER and other.champion_version == reused.version


def test_the_same_recipe_fitted_on_newer_data_takes_over_unless_clearly_worse(store, tmp_path: Path) -> None:
    """The same recipe (config hash) gives one number on the same folds; the champion's registered
    NDCG comes from its own older window, so only a clear drop keeps it."""
    from dataclasses import replace

    def fitted(label: str, ndcg: float, high: float, key: str, as_of: str) -> RecommenderOutcome:
        night_outcome = outcome(tmp_path, label, "ranker", ndcg, {"ranker": ndcg})
        metrics = {**night_outcome.metrics, "all_items.ranker.ndcg_ci_high": high}
        return replace(night_outcome, metrics=metrics, model_key=f"{as_of}/{key}", fitted_as_of=as_of)

    first = night(store, fitted("one", 0.40, 0.44, "cafe/00000001", "2025-03-01"))
    # 0.39 is not 0.40 + margin, but within noise of a number from another window: it takes over
    newer = night(store, fitted("two", 0.39, 0.43, "cafe/00000002", "2025-03-08"))
    assert newer.alias == CHAMPION and newer.previous_champion == first.version
    # clearly below (its whole interval under the champion's 0.39): the champion stays
    broken = night(store, fitted("three", 0.20, 0.25, "cafe/00000003", "2025-03-15"))
    assert broken.alias == CHALLENGER and broken.champion_version == newer.version
    # another recipe is judged as before: 0.39 does not beat 0.39 + margin
    other = night(store, fitted("four", 0.39, 0.43, "beef/00000004", "2025-03-22"))
    assert other.alias == CHALLENGER and other.champion_ndcg == pytest.approx(0.39)


def test_a_champion_of_another_recipe_is_judged_by_tonights_measure_of_its_settings(
    store, tmp_path: Path
) -> None:
    """Another recipe under the same model name: the champion's stored settings measured on
    tonight's sample decide, not the number it was registered with on its own window."""
    from dataclasses import replace

    def fitted(label: str, tonight: dict[str, float], key: str, measured: tuple[str, str] | None):
        night_outcome = outcome(tmp_path, label, "ranker", tonight["ranker"], tonight)
        return replace(
            night_outcome,
            model_key=f"2025-03-31/{key}/0001",
            fitted_as_of="2025-03-31",
            champion_measured=measured,
        )

    first = night(store, fitted("one", {"ranker": 0.45}, "cafe", None))
    # registered with 0.45; its settings score 0.35 on tonight's sample, below tonight's 0.40
    won = night(
        store,
        fitted("two", {"ranker": 0.40, CHAMPION_RECIPE: 0.35}, "beef", (first.version, CHAMPION_RECIPE)),
    )
    assert won.alias == CHAMPION and won.champion_ndcg == pytest.approx(0.40)
    # its settings score 0.42 tonight: above tonight's 0.41 + margin? no: 0.41 < 0.42 + 0.01
    lost = night(
        store,
        fitted("three", {"ranker": 0.41, CHAMPION_RECIPE: 0.42}, "f00d", (won.version, CHAMPION_RECIPE)),
    )
    assert lost.alias == CHALLENGER and lost.champion_ndcg == pytest.approx(0.42)
    # a night between refits carries its fitting night's numbers, that measure included
    carried = replace(
        fitted("five", {"ranker": 0.41, CHAMPION_RECIPE: 0.42}, "f00d", (won.version, CHAMPION_RECIPE)),
        reused=True,
    )
    assert night(store, carried).champion_ndcg == pytest.approx(0.42)
    # a measure of another version's settings is not the champion's: its registered 0.40 counts
    stale = night(
        store,
        fitted("four", {"ranker": 0.405, CHAMPION_RECIPE: 0.10}, "d00d", (first.version, CHAMPION_RECIPE)),
    )
    assert stale.alias == CHALLENGER and stale.champion_ndcg == pytest.approx(0.40)


def test_the_champions_settings_come_from_its_stored_model_when_tonights_recipe_differs(
    store, tmp_path: Path
) -> None:
    from dataclasses import replace

    config, work, _ = store
    assert champion_recipe(config, tmp_path / "fresh", "beef") is None  # no store: nothing registered yet
    assert not (tmp_path / "fresh" / "mlflow.db").exists()
    stored = tmp_path / "stored"
    stored.mkdir()
    params = {"scope": "global", "window_days": 7}
    (stored / "model.json").write_text(json.dumps({"format": 1, "kind": "popularity", "params": params}))
    first = night(
        store,
        replace(
            outcome(tmp_path, "one", "ranker", 0.45, {"ranker": 0.45}),
            model_key="2025-03-31/cafe/0001",
            fitted_as_of="2025-03-31",
            stored_model=stored,
        ),
    )
    recipe = champion_recipe(config, work, "beef")
    assert recipe == ChampionRecipe(first.version, "popularity", params)
    assert champion_recipe(config, work, "cafe") is None  # tonight's recipe is the champion's
    night(
        store,
        replace(outcome(tmp_path, "two", "ranker", 0.50, {"ranker": 0.50}), model_key="2025-03-31/beef/0001"),
    )
    assert champion_recipe(config, work, "f00d") is None  # the new champion has no stored model


def test_tonights_evaluation_measures_the_champions_settings_once() -> None:
    recommend = RecommendConfig()
    names = ["ranker", "popularity_global"]
    ranker = recommend.models["ranker"]

    def measured(kind: str, params: dict) -> tuple[list[str], str | None]:
        config, evaluated, name = measure_champion(recommend, names, ChampionRecipe("3", kind, params))
        if name == CHAMPION_RECIPE:
            assert config.models[CHAMPION_RECIPE].params == params and CHAMPION_RECIPE not in recommend.models
        return evaluated, name

    other_ranker = {**ranker.params, "candidates_per_model": 20}
    assert measured("ranker", other_ranker) == ([*names, CHAMPION_RECIPE], CHAMPION_RECIPE)
    popularity = recommend.models["popularity_global"]
    assert measured("popularity", popularity.build().get_params()) == (names, "popularity_global")
    assert measured("ranker", ranker.build().get_params()) == (names, None)  # tonight's production settings
    assert measured("no_such_kind", {}) == (names, None)
    assert measure_champion(recommend, names, None)[1:] == (names, None)
    with pytest.raises(ValueError, match="champion_recipe"):
        RecommendConfig(models={**recommend.models, CHAMPION_RECIPE: popularity})
