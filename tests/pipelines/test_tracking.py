"""MLflow tracking: data manifest, config params, registration and the champion gate on a real store."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from artifact.loader import sha256_of
from pipelines.champion import RecommenderOutcome, promote, register_recommender
from pipelines.tracking import (
    ARTIFACT_KEY,
    CHALLENGER,
    CHAMPION,
    ENDED_TAG,
    TrackingConfig,
    alias_version,
    data_manifest,
    download_model_artifact,
    fail_abandoned_runs,
    flatten,
    log_config,
    start_nightly_run,
    using_tracking,
)


class EchoRecommender(mlflow.pyfunc.PythonModel):
    """A stand-in pyfunc: returns the ids it gets. Only its artifact matters to the gate."""

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return model_input


def log_echo_model(artifact_dir: Path) -> str:
    """The model logger interface the flow expects: log a pyfunc with the artifact, return its URI."""
    info = mlflow.pyfunc.log_model(
        name="recommender",
        python_model=EchoRecommender(),
        artifacts={ARTIFACT_KEY: str(artifact_dir)},
        pip_requirements=["pandas"],
    )
    return info.model_uri


def candidate(tmp_path: Path, label: str, ndcg: float) -> RecommenderOutcome:
    """A trained model as the recommender step would hand it on: an artifact and its validation NDCG."""
    artifact = tmp_path / label / "artifact"
    artifact.mkdir(parents=True)
    (artifact / "model.json").write_text(json.dumps({"label": label}))
    return RecommenderOutcome(
        artifact_dir=artifact,
        validation_ndcg=ndcg,
        metrics={"all_items.ranker.ndcg": ndcg},
        model=label,
        log_model=log_echo_model,
    )


@pytest.fixture
def store(tmp_path: Path):
    config = TrackingConfig(champion_margin=0.01)
    work = tmp_path / "work"
    with using_tracking(config, work) as client:
        yield config, work, client


def nightly(store, tmp_path: Path, label: str, ndcg: float):
    """One night's run that trains ``label`` and sends it through registration and the gate."""
    config, work, client = store
    run_id = start_nightly_run(client, config, work, date(2025, 3, 31), {})
    decision = register_recommender(candidate(tmp_path, label, ndcg), config, work, run_id)
    promote(decision, config, work)  # the flow publishes in between
    return decision


def test_store_defaults_to_sqlite_under_the_work_dir(tmp_path: Path) -> None:
    config = TrackingConfig()
    assert config.tracking_uri(tmp_path) == f"sqlite:///{tmp_path.absolute().as_posix()}/mlflow.db"
    assert config.artifact_location(tmp_path) == (tmp_path / "mlartifacts").absolute().as_uri()
    assert TrackingConfig(uri="http://mlflow:5000").tracking_uri(tmp_path) == "http://mlflow:5000"


def test_champion_gate_keeps_the_champion_against_a_worse_model(store, tmp_path: Path) -> None:
    config, _, client = store
    first = nightly(store, tmp_path, "good", 0.30)
    assert first.alias == CHAMPION and first.promoted and first.previous_champion is None

    worse = nightly(store, tmp_path, "worse", 0.20)
    assert worse.alias == CHALLENGER and not worse.promoted
    assert worse.champion_version == first.version and worse.champion_ndcg == pytest.approx(0.30)
    assert alias_version(client, config.model_name, CHAMPION) == first.version
    assert alias_version(client, config.model_name, CHALLENGER) == worse.version

    # within the margin is not enough
    close = nightly(store, tmp_path, "close", 0.305)
    assert close.alias == CHALLENGER and close.champion_version == first.version

    better = nightly(store, tmp_path, "better", 0.32)
    assert better.alias == CHAMPION and better.previous_champion == first.version
    assert alias_version(client, config.model_name, CHAMPION) == better.version


def test_the_champions_artifact_is_what_gets_published(store, tmp_path: Path) -> None:
    config, _, client = store
    first = nightly(store, tmp_path, "good", 0.30)
    worse = nightly(store, tmp_path, "worse", 0.10)
    artifact = download_model_artifact(client, config.model_name, worse.champion_version, tmp_path / "dl")
    assert json.loads((artifact / "model.json").read_text()) == {"label": "good"}
    assert first.version == worse.champion_version


def test_data_manifest_counts_rows_and_hashes_inputs(tmp_path: Path) -> None:
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id\nO1\n")
    report = tmp_path / "validation.json"
    report.write_text(
        json.dumps(
            {
                "as_of": "2025-03-31",
                "tables": [
                    {
                        "table": "orders",
                        "source": str(orders),
                        "rows_read": 5,
                        "rows_kept": 4,
                        "rows_quarantined": 1,
                        "reasons": {"unit_price_not_positive": 1},
                    }
                ],
            }
        )
    )
    manifest = data_manifest(report)
    assert manifest["tables"] == [
        {
            "table": "orders",
            "file": "orders.csv",
            "path": str(orders),
            "sha256": sha256_of(orders),
            "files_sha256": [sha256_of(orders)],
            "columns": {},  # no clean table beside the report
            "rows_read": 5,
            "rows_kept": 4,
            "rows_quarantined": 1,
            "reasons": {"unit_price_not_positive": 1},
        }
    ]


def test_config_is_logged_whole_and_as_dotted_params(store) -> None:
    config, work, client = store
    run_id = start_nightly_run(client, config, work, date(2025, 3, 31), {})
    settings = {"quality": {"window_days": 30, "category_thresholds": {}}, "work_dir": "work"}
    log_config(client, run_id, settings)
    params = client.get_run(run_id).data.params
    assert params == {"quality.window_days": "30", "quality.category_thresholds": "{}", "work_dir": "work"}
    assert flatten({"a": {"b": {"c": 1}}}) == {"a.b.c": 1}
    logged = client.download_artifacts(run_id, "config.json", str(work))
    assert json.loads(Path(logged).read_text()) == settings


def test_registration_moves_no_alias_and_leaves_the_run_running(store, tmp_path: Path) -> None:
    config, work, client = store
    nightly(store, tmp_path, "good", 0.30)
    run_id = start_nightly_run(client, config, work, date(2025, 4, 1), {})
    decision = register_recommender(candidate(tmp_path, "better", 0.40), config, work, run_id)
    assert decision.alias == CHAMPION and decision.version == "2"
    assert alias_version(client, config.model_name, CHAMPION) == "1", "the alias waits for the publish"
    assert client.get_run(run_id).info.status == "RUNNING", "a kill now must not leave it FINISHED"
    promote(decision, config, work)
    assert alias_version(client, config.model_name, CHAMPION) == "2"


def test_runs_a_kill_left_running_are_failed_by_the_next_run(store, tmp_path: Path) -> None:
    config, work, client = store
    killed = start_nightly_run(client, config, work, date(2025, 3, 31), {})
    elsewhere = start_nightly_run(client, config, tmp_path / "other", date(2025, 3, 31), {})
    assert fail_abandoned_runs(client, config, work) == [killed]
    run = client.get_run(killed)
    assert run.info.status == "FAILED" and run.data.tags[ENDED_TAG].startswith("abandoned")
    assert client.get_run(elsewhere).info.status == "RUNNING", "another work dir's run is not touched"
