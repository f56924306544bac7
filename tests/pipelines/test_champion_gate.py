"""The champion gate compares on tonight's sample when tonight measured the champion's model."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from pipelines.champion import MODEL_TAG, SAMPLE_TAG, RecommenderOutcome, promote, register_recommender
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
