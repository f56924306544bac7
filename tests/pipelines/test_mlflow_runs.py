"""MLflow as its users expect it, checked on a real SQLite store: the experiment's kind, the runs'
source / user / commit tags, one nested run per evaluated model, input datasets, grouped and
sanitised metric keys, and the registered version linked to its logged model and metrics."""

from __future__ import annotations

import getpass
import json
import sqlite3
import subprocess
from datetime import date
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from artifact.mlflow_model import log_recommender_model
from features.store import clean_path
from models.evaluation import EVALUATION_COLUMNS, metrics_by_name
from pipelines import nightly_steps, tracking
from pipelines.champion import RecommenderOutcome, register_recommender
from pipelines.config import NightlyConfig
from pipelines.publish import Published
from pipelines.steps.segment import SegmentationOutcome
from tests.artifact.test_writer import write_sample

REPO = Path(__file__).resolve().parents[2]
AS_OF = date(2025, 3, 31)
# What validation's cache folder says the orders file hashes to: not the file's real hash, so a
# manifest that shows it proves the hash was read from the cache, not computed again.
CACHED_SHA = "ab" * 32
MODELS = {
    "ranker": {"kind": "ranker", "params": {"regularization": 1.0}},
    "popularity_global": {"kind": "popularity", "params": {"scope": "global"}},
}


@pytest.fixture
def store(tmp_path: Path):
    config = tracking.TrackingConfig(champion_margin=0.01)
    work = tmp_path / "work"
    with tracking.using_tracking(config, work) as client:
        yield config, work, client


def validated(tmp_path: Path) -> Path:
    """A validation folder as the nightly leaves it: report, clean orders, the cache's file key."""
    source = tmp_path / "data" / "orders.csv"
    source.parent.mkdir(parents=True)
    source.write_text("order_id,quantity\nO1,2\nO2,1\n")
    folder = tmp_path / "validated"
    clean = clean_path(folder, "orders")
    clean.parent.mkdir(parents=True)
    pd.DataFrame({"order_id": ["O1", "O2"], "quantity": [2, 1]}).to_parquet(clean)
    (folder / "cache" / "orders" / f"{CACHED_SHA}-0123456789abcdef").mkdir(parents=True)
    table = {"table": "orders", "source": str(source), "rows_read": 2, "rows_kept": 2}
    table |= {"rows_quarantined": 0, "reasons": {}}
    report = {"as_of": str(AS_OF), "tables": [table]}
    (folder / "validation.json").write_text(json.dumps(report))
    return folder


def evaluation_metrics() -> dict[str, float]:
    """The evaluator's numbers for two models and both protocols (metrics_by_name's names)."""
    rows = []
    for position, model in enumerate(MODELS):
        for protocol in ("all_items", "new_items"):
            row = {column: 0.1 * (position + 1) for column in EVALUATION_COLUMNS}
            row |= {"model": model, "protocol": protocol, "consumers": 40, "ndcg": 0.5 - 0.1 * position}
            row |= {"ndcg_ci_low": 0.4 - 0.1 * position, "fit_seconds": 3.0}
            rows.append(row)
    return metrics_by_name(pd.DataFrame(rows, columns=list(EVALUATION_COLUMNS)))


def open_night(store, tmp_path: Path) -> str:
    """The nightly run as open_run leaves it: config params, data manifest and datasets."""
    config, work, client = store
    run_id = tracking.start_nightly_run(client, config, work, AS_OF, {})
    settings = {"recommend": {"evaluation": {"k": 10}, "models": MODELS}}
    tracking.log_config(client, run_id, settings)
    tracking.log_data_manifest(
        client, run_id, tracking.data_manifest(validated(tmp_path) / "validation.json")
    )
    return run_id


@pytest.fixture
def night(store, tmp_path: Path) -> dict:
    """One night through registration: the ranker is production, popularity a baseline."""
    config, work, client = store
    run_id = open_night(store, tmp_path)
    outcome = RecommenderOutcome(
        artifact_dir=write_sample(tmp_path / "artifact"),
        validation_ndcg=0.5,
        metrics=evaluation_metrics(),
        model="ranker",
        log_model=lambda artifact: log_recommender_model(artifact).model_uri,
        configured="ranker",
        sample="2025-03-01..2025-03-31, 40 of 90 consumers, seed 0",
    )
    decision = register_recommender(outcome, config, work, run_id)
    children = client.search_runs(
        [client.get_run(run_id).info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
    )
    return {"run_id": run_id, "decision": decision, "children": {r.info.run_name: r for r in children}}


# --- the experiment and the run's tags ---------------------------------------------------------


def test_the_experiment_is_marked_custom_model_development(store) -> None:
    config, work, client = store
    tracking.start_nightly_run(client, config, work, AS_OF, {})
    tags = client.get_experiment_by_name(config.experiment).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"


def test_an_older_experiment_gets_the_kind_and_a_chosen_kind_stays(store, tmp_path: Path) -> None:
    config, work, client = store
    client.create_experiment(config.experiment, artifact_location=(tmp_path / "old").as_uri())
    tracking.start_nightly_run(client, config, work, AS_OF, {})
    assert client.get_experiment_by_name(config.experiment).tags["mlflow.experimentKind"] == (
        "custom_model_development"
    )
    chosen = config.model_copy(update={"experiment": "chosen"})
    experiment = client.create_experiment("chosen", tags={"mlflow.experimentKind": "genai_development"})
    tracking.start_nightly_run(client, chosen, work, AS_OF, {})
    assert client.get_experiment(experiment).tags["mlflow.experimentKind"] == "genai_development"


def test_runs_carry_source_user_and_the_git_commit(store) -> None:
    config, work, client = store
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("siyu's code is not a git checkout here")
    tags = client.get_run(tracking.start_nightly_run(client, config, work, AS_OF, {})).data.tags
    assert tags["mlflow.source.name"] == "siyu nightly" and tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.user"] == getpass.getuser()
    assert tags["mlflow.source.git.commit"] == head.stdout.strip()
    assert tags["mlflow.source.git.dirty"] in ("true", "false")


def test_outside_a_git_checkout_there_is_no_commit_and_no_failure(tmp_path: Path) -> None:
    assert tracking.git_tags(tmp_path) == {}


# --- metric keys --------------------------------------------------------------------------------


def test_key_parts_keep_letters_and_turn_the_rest_into_underscores() -> None:
    assert tracking.key_part("Hibernating/Lost") == "Hibernating_Lost"
    assert tracking.key_part("Potential loyalist") == "Potential_loyalist"
    assert tracking.key_part("沉睡/流失") == "沉睡_流失"  # Unicode letters are allowed by MLflow
    assert tracking.key_part("（VIP）: gold") == "_VIP___gold"
    assert tracking.key_part("..") == "_" and tracking.key_part("") == "_"
    assert tracking.metric_key("segments", "size", "Hibernating/Lost") == "segments/size/Hibernating_Lost"


def test_record_run_groups_counts_and_a_slash_in_a_name_opens_no_group(store, tmp_path: Path) -> None:
    config, work, client = store
    settings = NightlyConfig(tracking=config)
    run_id = tracking.start_nightly_run(client, config, work, AS_OF, {})
    segments = SegmentationOutcome(
        paths={},
        consumers=9,
        buyers=9,
        segment_counts={"Champions": 2, "Hibernating/Lost": 3, "沉睡/流失": 4},
        tier_counts={"gold": 5},
        movement_counts={"up": 1},
        distributor_tier_counts={"A": 2},
        coaching=0,
        clusters=None,
        clv_set_aside=None,
        churn_metrics={"churn_validation.churn.logistic.auc": 0.71},
    )
    manifest, report = tmp_path / "manifest.json", tmp_path / "report.html"
    manifest.write_text("{}")
    report.write_text("<html></html>")
    published = Published(tmp_path / "export", manifest, (), None)
    nightly_steps.record_run(settings, work, run_id, segments, {"normal": 5}, published, report, [])
    metrics = client.get_run(run_id).data.metrics
    assert metrics == {
        "quality/normal": 5,
        "segments/size/Champions": 2,
        "segments/size/Hibernating_Lost": 3,
        "segments/size/沉睡_流失": 4,
        "tiers/member/gold": 5,
        "tiers/movement/up": 1,
        "tiers/distributor/A": 2,
        "churn_validation/churn/logistic/auc": 0.71,
    }


def test_names_that_would_share_a_key_keep_a_key_each(store) -> None:
    config, work, client = store
    run_id = tracking.start_nightly_run(client, config, work, AS_OF, {})
    tracking.log_metrics(client, run_id, tracking.grouped({"A/B": 1, "A&B": 2, "C": 3}, "segments"))
    metrics = client.get_run(run_id).data.metrics
    assert len(metrics) == 3 and sorted(metrics.values()) == [1, 2, 3]
    assert all(key.startswith("segments/A_B_") for key, value in metrics.items() if value < 3)


# --- datasets -----------------------------------------------------------------------------------


def test_each_input_table_is_a_dataset_whose_digest_is_its_files_sha256(store, tmp_path: Path) -> None:
    _, work, client = store
    run = client.get_run(open_night(store, tmp_path))
    (found,) = run.inputs.dataset_inputs
    assert found.dataset.name == "orders" and found.dataset.digest == CACHED_SHA[:36]
    assert {(tag.key, tag.value) for tag in found.tags} == {("mlflow.data.context", "training")}
    profile = json.loads(found.dataset.profile)
    assert profile == {"sha256": CACHED_SHA, "files_sha256": [CACHED_SHA], "rows_read": 2}
    schema = json.loads(found.dataset.schema)["mlflow_colspec"]
    assert [(column["name"], column["type"]) for column in schema] == [
        ("order_id", "string"),
        ("quantity", "long"),
    ]
    assert json.loads(found.dataset.source)["uri"] == str(tmp_path / "data" / "orders.csv")
    assert run.data.metrics["data/orders/rows_read"] == 2
    with sqlite3.connect(work / "mlflow.db") as db:  # the store itself, as the UI reads it
        rows = db.execute(
            "SELECT d.name, d.digest FROM inputs i JOIN datasets d ON d.dataset_uuid = i.source_id "
            "WHERE i.destination_id = ?",
            (run.info.run_id,),
        ).fetchall()
    assert rows == [("orders", CACHED_SHA[:36])]


# --- nested model runs, the logged model and the registered version ------------------------------


def test_every_evaluated_model_has_a_nested_run_with_params_and_metrics(night: dict) -> None:
    children = night["children"]
    assert set(children) == {"ranker-2025-03-31", "popularity_global-2025-03-31"}
    ranker, popularity = children["ranker-2025-03-31"], children["popularity_global-2025-03-31"]
    assert all(run.info.status == "FINISHED" for run in children.values())
    assert ranker.data.params == {"kind": "ranker", "params.regularization": "1.0"}
    assert popularity.data.params == {"kind": "popularity", "params.scope": "global"}
    assert ranker.data.metrics["all_items/ndcg_at_10"] == pytest.approx(0.5)
    assert ranker.data.metrics["all_items/ndcg_at_10_ci_low"] == pytest.approx(0.4)
    assert ranker.data.metrics["new_items/consumers"] == 40
    assert ranker.data.metrics["time/fit_seconds"] == 3.0
    assert popularity.data.metrics["all_items/ndcg_at_10"] == pytest.approx(0.4)
    assert (
        ranker.data.tags["siyu.production"] == "true" and popularity.data.tags["siyu.production"] == "false"
    )
    assert ranker.data.tags["mlflow.source.name"] == "siyu nightly"
    (dataset,) = ranker.inputs.dataset_inputs
    assert dataset.dataset.name == "orders" and dataset.tags[0].value == "evaluation"


def test_the_nightly_run_holds_every_models_headline_numbers(night: dict, store) -> None:
    _, _, client = store
    run = client.get_run(night["run_id"])
    metrics = run.data.metrics
    assert metrics["eval/ranker/ndcg_at_10"] == pytest.approx(0.5)
    assert metrics["eval_new_items/popularity_global/ndcg_at_10"] == pytest.approx(0.4)
    assert metrics["champion_gate/validation_ndcg"] == 0.5
    assert run.info.status == "RUNNING", "the nightly run stays open until the flow closes it"


def test_the_registered_version_is_linked_to_its_logged_model_and_its_metrics(night: dict, store) -> None:
    config, _, client = store
    version = client.get_model_version(config.model_name, night["decision"].version)
    ranker = night["children"]["ranker-2025-03-31"]
    model_id = mlflow.last_logged_model().model_id
    assert version.source == f"models:/{model_id}" and version.run_id == ranker.info.run_id
    assert version.tags["as_of"] == "2025-03-31" and version.tags["siyu.model"] == "ranker"
    assert "ranker" in version.description and "2025-03-31" in version.description
    logged = client.get_logged_model(model_id)
    assert logged.source_run_id == ranker.info.run_id
    registered = json.loads(logged.tags["mlflow.modelVersions"])
    assert registered == [{"name": config.model_name, "version": version.version}]
    shown = {metric.key: metric.value for metric in logged.metrics or []}
    assert shown["all_items/ndcg_at_10"] == pytest.approx(0.5)
    assert not [key for key in shown if key.startswith("data/")], "row counts are not model metrics"
    assert logged.params["kind"] == "ranker" and logged.tags["mlflow.source.name"] == "siyu nightly"
    with tracking.using_tracking(config, Path(client.tracking_uri.removeprefix("sqlite:///")).parent):
        served = mlflow.pyfunc.load_model(f"models:/{config.model_name}/{version.version}")
    assert len(served.predict(pd.DataFrame({"distributor_id": ["D1"]}), params={"k": 2})) == 2


def test_a_retried_registration_makes_no_second_model_runs(store, tmp_path: Path) -> None:
    _, _, client = store
    run_id = open_night(store, tmp_path)
    first = tracking.log_model_runs(client, run_id, evaluation_metrics(), "ranker")
    again = tracking.log_model_runs(client, run_id, evaluation_metrics(), "ranker")
    assert again == first and len(first) == 2
    experiment = client.get_run(run_id).info.experiment_id
    children = client.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    assert len(children) == 2
