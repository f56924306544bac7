"""The nightly flow as a Prefect user sees it: named runs, resumable nights, one run per folder,
MLflow runs closed however the flow ends, module logs and link artifacts in the UI, and
segmentation and the quality gate side by side giving what one after the other gives.

One tiny night is run three times into one work directory (tests run in file order): it fails in
registration, is rerun and resumes, then is rerun once finished. What Prefect recorded is read
from the temporary API's SQLite database under the work directory.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from uuid import uuid4

import mlflow
import pytest
import yaml

import pipelines.flow as flow_module
from features import engine
from features.catalog import StepFile
from features.errors import SiyuError
from pipelines import champion, resume
from pipelines.config import NightlyConfig
from pipelines.flow import run_nightly
from pipelines.publish import current_export, read_manifest, sha256_of
from pipelines.runtime import FlowConfig, forward_module_logs, mlflow_run_link
from pipelines.steps.quality import run_quality
from pipelines.steps.segment import run_segmentation
from pipelines.steps.validate import load_and_validate
from pipelines.tracking import TrackingConfig, start_nightly_run, using_tracking
from pipelines.workdir import LOCK
from sources.simulator import SimulationConfig, simulate
from tests.cli import run_cli

REPO = Path(__file__).resolve().parents[2]
CONFIG = {
    "tracking": {"experiment": "test-prefect"},
    "segmentation": {"clv": {"enabled": False}},
    "recommend": {"evaluation": {"models": ["ranker", "popularity_global"]}},
    "flow": {"concurrent_steps": True},
}
HOLDER = """
import sys
from pathlib import Path
from pipelines.workdir import claim
with claim(Path(sys.argv[1]), "nightly"):
    print("held", flush=True)
    sys.stdin.read()
"""


def _counting(calls: Counter, name: str, fn):
    def counted(*args, **kwargs):
        calls[name] += 1
        return fn(*args, **kwargs)

    return counted


def _night(paths: dict, patches: dict | None = None) -> tuple[Counter, object]:
    """Run the tiny night, counting the calls of the three resumable steps; (calls, summary or error)."""
    import pipelines.steps.evaluate as evaluate_step
    import pipelines.steps.segment as segment_step

    calls: Counter = Counter()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(segment_step, "run_segmentation", _counting(calls, "segmentation", run_segmentation))
        patch.setattr(flow_module, "run_quality", _counting(calls, "quality gate", run_quality))
        evaluation = _counting(calls, "evaluation", evaluate_step.run_evaluation)
        patch.setattr(evaluate_step, "run_evaluation", evaluation)
        for (owner, name), value in (patches or {}).items():
            patch.setattr(owner, name, value)
        try:
            outcome = run_nightly(paths["config"], paths["data"], None, paths["work"])
        except SiyuError as error:
            outcome = error
    return calls, outcome


@pytest.fixture(autouse=True, scope="module")
def _own_server(own_prefect_server: None) -> None:
    """Every night here starts its own server: what lives under the work dir's Prefect home is tested."""


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A night that fails in registration, its rerun (resumes), and a rerun of the finished night."""
    root = tmp_path_factory.mktemp("prefect")
    data = root / "data"
    simulate(data, SimulationConfig(consumers=300, distributors=10, products=50, days=120, seed=11))
    config = root / "nightly.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    paths = {"data": data, "config": config, "work": root / "work"}

    def broken(*args, **kwargs):
        raise SiyuError("boom: registration broke\n  fix: none, a test")

    failed = _night(paths, {(champion, "register_recommender"): broken})
    resumed = _night(paths)
    again = _night(paths)
    return {**paths, "failed": failed, "resumed": resumed, "again": again}


def _prefect_db(work: Path) -> sqlite3.Connection:
    return sqlite3.connect(work / "prefect" / "prefect.db")


def test_a_night_that_failed_late_resumes_at_the_failed_task(nights: dict) -> None:
    failed_calls, error = nights["failed"]
    assert isinstance(error, SiyuError) and "boom" in str(error)
    assert failed_calls == {"segmentation": 1, "quality gate": 1, "evaluation": 1}
    resumed_calls, summary = nights["resumed"]
    assert not isinstance(summary, Exception), summary
    assert resumed_calls == {}, "segmentation, quality gate and recommenders were cached"
    assert current_export(nights["work"] / "exports") == summary.export_dir
    assert summary.model is not None and summary.model.alias == "champion"
    cached = _prefect_db(nights["work"]).execute(
        "select name from task_run where state_name = 'Cached' order by name"
    )
    names = sorted({row[0].rsplit("-", 1)[0] for row in cached})
    assert names == ["quality gate", "segmentation", "train and evaluate recommenders"]


def test_a_finished_night_is_computed_again_and_publishes_the_same_files(nights: dict) -> None:
    calls, summary = nights["again"]
    assert calls == {"segmentation": 1, "quality gate": 1, "evaluation": 1}
    before, after = nights["resumed"][1].export_dir, summary.export_dir
    files = [entry["path"] for entry in read_manifest(after)["files"]]
    assert files == [entry["path"] for entry in read_manifest(before)["files"]]
    assert all(sha256_of(after / name) == sha256_of(before / name) for name in files)


def test_flow_runs_are_named_after_the_night(nights: dict) -> None:
    summary = nights["again"][1]
    name = f"nightly-{summary.as_of}"
    assert read_manifest(summary.export_dir)["run"]["prefect_flow_run_name"] == name
    names = [row[0] for row in _prefect_db(nights["work"]).execute("select name from flow_run")]
    assert names == [name] * 3


def test_the_failed_nights_mlflow_run_ended_failed(nights: dict) -> None:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{nights['work'].absolute()}/mlflow.db")
    experiment = client.get_experiment_by_name("test-prefect")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    runs = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]  # the nights, not their models
    assert [run.info.status for run in runs] == ["FAILED", "FINISHED", "FINISHED"]
    assert "boom" in runs[0].data.tags["siyu.ended"]


def test_module_logs_and_link_artifacts_reach_the_prefect_ui(nights: dict) -> None:
    db = _prefect_db(nights["work"])
    loggers = {row[0] for row in db.execute("select distinct name from log")}
    assert {"pipelines.nightly_steps", "pipelines.tracking"} <= loggers
    assert any(name.startswith(("features.", "models.")) for name in loggers)
    summary = nights["again"][1]
    rows = db.execute("select key, type, description, data from artifact where key like 'siyu-%'")
    artifacts = {key: (kind, description, data) for key, kind, description, data in rows}
    # Prefect stores a link artifact as the markdown link [text](link)
    export = summary.export_dir.absolute()
    assert artifacts["siyu-export"][2] == f'"[export {export}]({export.as_uri()})"'
    assert artifacts["siyu-report"][2].endswith(f'({(nights["work"] / "report.html").absolute().as_uri()})"')
    assert summary.mlflow_run_id in artifacts["siyu-mlflow-run"][2]
    assert artifacts["siyu-nightly-summary"][1] == f"siyu nightly, as of {summary.as_of}"
    assert any(kind == "progress" for kind, _, _ in artifacts.values())


def test_a_crashed_night_ends_its_mlflow_run_killed(nights: dict) -> None:
    import pipelines.steps.evaluate as evaluate_step

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt("Ctrl+C in a test")

    with pytest.MonkeyPatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(evaluate_step, "run_evaluation", interrupted)
        run_nightly(nights["config"], nights["data"], None, nights["work"])
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{nights['work'].absolute()}/mlflow.db")
    experiment = client.get_experiment_by_name("test-prefect")
    latest = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert latest.info.status == "KILLED" and "CRASHED" in latest.data.tags["siyu.ended"]


def test_a_cancelled_nights_hook_finds_its_mlflow_run_by_tag_and_ends_it_killed(tmp_path: Path) -> None:
    """Prefect runs cancellation hooks in the runner, not in the flow's process: no run is known
    there, so the hook finds the RUNNING MLflow run tagged with the flow run id."""
    config = tmp_path / "nightly.yaml"
    config.write_text(yaml.safe_dump({"tracking": {"experiment": "test-cancel"}}))
    work = tmp_path / "work"
    flow_run_id = str(uuid4())
    with using_tracking(TrackingConfig(experiment="test-cancel"), work) as client:
        tags = {"prefect_flow_run_id": flow_run_id}
        mine = start_nightly_run(client, TrackingConfig(experiment="test-cancel"), work, "2025-01-02", tags)
        other = start_nightly_run(client, TrackingConfig(experiment="test-cancel"), work, "2025-01-02", {})
    flow_run = SimpleNamespace(id=flow_run_id, parameters={"config_path": str(config), "out_dir": str(work)})
    state = SimpleNamespace(type=SimpleNamespace(value="CANCELLING"), message="cancelled in the UI")
    flow_module._mlflow_run_cancelled(None, flow_run, state)
    with using_tracking(TrackingConfig(experiment="test-cancel"), work) as client:
        assert client.get_run(mine).info.status == "KILLED"
        assert client.get_run(mine).data.tags["siyu.ended"] == "CANCELLING: cancelled in the UI"
        assert client.get_run(other).info.status == "RUNNING"


def test_a_second_nightly_into_the_same_out_is_refused_naming_lock_and_holder(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    work = tmp_path / "work"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(work)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline().strip() == b"held"
        status = run_cli(monkeypatch, "nightly", "--data", str(tmp_path / "nowhere"), "--out", str(work))
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert f"another siyu run is in progress in {work} since " in err
    assert f"(pid {holder.pid} on {socket.gethostname()}): siyu nightly" in err
    assert f"it holds the lock {work / LOCK}" in err and "fix: wait for it to finish" in err
    assert not (work / "prefect").exists(), "the refused run started nothing"


# --- the pure parts ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("steps")
    simulate(root / "data", SimulationConfig(consumers=200, distributors=8, products=40, days=100, seed=5))
    settings = NightlyConfig.model_validate({"segmentation": {"clv": {"enabled": False}}})
    return load_and_validate(root / "data", None, settings, root / "validated"), settings, root


def _files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256_of(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_segmentation_and_quality_gate_give_the_same_files_side_by_side_and_in_either_order(
    validated,
) -> None:
    clean, settings, root = validated

    def segment(con, out: Path) -> None:
        run_segmentation(clean.clean_paths, clean.as_of, settings.segmentation, out, None, con)

    def grade(con, out: Path) -> None:
        run_quality(clean.clean_paths, clean.as_of, settings, out, None, con)

    produced = {}
    for order in ("segment first", "quality first", "side by side"):
        out = root / order.replace(" ", "_")
        out.mkdir()
        con = engine.connect(clean.clean_paths)
        if order == "side by side":
            cursors = [con.cursor(), con.cursor()]
            threads = [
                threading.Thread(target=segment, args=(cursors[0], out)),
                threading.Thread(target=grade, args=(cursors[1], out)),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:
            steps = [segment, grade] if order == "segment first" else [grade, segment]
            for step in steps:
                step(con, out)
        con.close()
        produced[order] = _files(out)
    assert {StepFile.QUALITY_ALERTS, StepFile.RFM_SEGMENTS} <= set(produced["segment first"])
    assert produced["quality first"] == produced["segment first"]
    assert produced["side by side"] == produced["segment first"]


def test_a_night_resumes_only_its_own_unfinished_generation(tmp_path: Path) -> None:
    cleared = []

    def clear() -> None:
        cleared.append(True)

    assert resume.begin_night(tmp_path, "night-a", True, clear) is False
    generation = resume.read_stamp(tmp_path)["generation"]
    assert resume.begin_night(tmp_path, "night-a", True, clear) is True  # failed, rerun: resumes
    assert resume.read_stamp(tmp_path)["generation"] == generation and len(cleared) == 1
    assert resume.begin_night(tmp_path, "night-a", False, clear) is False  # flow.resume: false
    assert resume.read_stamp(tmp_path)["generation"] != generation and len(cleared) == 2
    assert resume.begin_night(tmp_path, "night-b", True, clear) is False  # another night
    resume.end_night(tmp_path)
    assert resume.begin_night(tmp_path, "night-b", True, clear) is False  # it finished
    assert len(cleared) == 4


def test_cache_keys_follow_the_generation_and_never_without_an_open_night(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    task = SimpleNamespace(task=SimpleNamespace(name="segmentation", fn=run_segmentation))
    assert resume.cache_key(task, {"outputs": outputs, "con": object()}) is None  # no night open
    resume.begin_night(tmp_path, "night-a", True, lambda: None)
    first = resume.cache_key(task, {"outputs": outputs, "con": object(), "previous": None})
    assert first and first.startswith("siyu-segmentation-")
    assert resume.cache_key(task, {"outputs": outputs, "con": object(), "previous": None}) == first
    other = SimpleNamespace(task=SimpleNamespace(name="quality gate", fn=run_quality))
    assert resume.cache_key(other, {"outputs": outputs, "previous": None}) != first
    resume.begin_night(tmp_path, "night-b", True, lambda: None)
    assert resume.cache_key(task, {"outputs": outputs, "previous": None}) != first
    resume.end_night(tmp_path)
    assert resume.cache_key(task, {"outputs": outputs, "previous": None}) is None


def test_the_night_key_follows_data_config_and_as_of_not_timeouts_or_export_folder(tmp_path: Path) -> None:
    orders = tmp_path / "orders.parquet"
    orders.write_bytes(b"one")
    config = NightlyConfig().model_dump(mode="json")
    key = resume.night_key("2025-01-02", config, {"orders": orders})
    slower = NightlyConfig.model_validate({"flow": {"timeout_minutes": 1}}).model_dump(mode="json")
    assert resume.night_key("2025-01-02", slower, {"orders": orders}) == key
    elsewhere = NightlyConfig.model_validate({"publish": {"exports_dir": "/srv/exports"}})
    assert resume.night_key("2025-01-02", elsewhere.model_dump(mode="json"), {"orders": orders}) == key
    assert resume.night_key("2025-01-03", config, {"orders": orders}) != key
    stricter = NightlyConfig.model_validate({"quality": {"floor": 0.02}}).model_dump(mode="json")
    assert resume.night_key("2025-01-02", stricter, {"orders": orders}) != key
    orders.write_bytes(b"two")
    assert resume.night_key("2025-01-02", config, {"orders": orders}) != key


def test_side_by_side_follows_the_switch_or_the_free_memory() -> None:
    assert FlowConfig(concurrent_steps=True).side_by_side(available_bytes=0) is True
    assert FlowConfig(concurrent_steps=False).side_by_side(available_bytes=2**40) is False
    auto = FlowConfig(concurrent_min_free_gb=8)
    assert auto.side_by_side(available_bytes=9 * 2**30) is True
    assert auto.side_by_side(available_bytes=7 * 2**30) is False


def test_flow_config_refuses_a_bad_switch(tmp_path: Path) -> None:
    from pipelines.config import load_config

    bad = tmp_path / "bad.yaml"
    bad.write_text("flow:\n  concurrent_steps: sometimes\n  timeout_minutes: 0\n")
    with pytest.raises(SiyuError) as error:
        load_config(bad)
    assert "flow.concurrent_steps" in str(error.value) and "flow.timeout_minutes" in str(error.value)


def test_module_logs_go_to_the_api_inside_a_run_once_on_the_console_and_quietly_outside(
    monkeypatch, caplog
) -> None:
    import logging
    import warnings

    import prefect.logging.handlers as handlers

    sent = []
    monkeypatch.setattr(handlers, "emit_api_log", sent.append)
    caplog.set_level(logging.INFO)
    log = logging.getLogger("models.quality")
    run_id = uuid4()
    with forward_module_logs(), warnings.catch_warnings():
        warnings.simplefilter("error")  # no "attempted to send logs to the API without a flow run id"
        log.info("graded %d products", 5, extra={"flow_run_id": run_id})
        log.info("outside any run")
    assert [(entry["name"], entry["message"], entry["flow_run_id"]) for entry in sent] == [
        ("models.quality", "graded 5 products", str(run_id))
    ]
    assert [r.getMessage() for r in caplog.records if r.name == "models.quality"] == [
        "graded 5 products",
        "outside any run",
    ]
    assert logging.getLogger("models").handlers == []
    log.info("after the block")
    assert len(sent) == 1


def test_mlflow_links_point_at_the_ui_or_the_store() -> None:
    link, text = mlflow_run_link("http://127.0.0.1:5000/", "3", "abc")
    assert link == "http://127.0.0.1:5000/#/experiments/3/runs/abc" and "abc" in text
    link, text = mlflow_run_link("sqlite:////srv/work/mlflow.db", "3", "abc")
    assert link == "file:///srv/work/mlflow.db" and text == "MLflow run abc in /srv/work/mlflow.db"


def test_flow_deadline_applies_the_config_only_to_a_flow_that_carries_another_timeout(monkeypatch) -> None:
    """A served run loads the flow with the module's default timeout: the config's is applied inside."""
    from contextlib import contextmanager

    import prefect.utilities.timeout as timeouts
    from prefect.context import FlowRunContext

    from pipelines.runtime import NightTimedOut, flow_deadline

    entered = []

    @contextmanager
    def recording(seconds, exc_type):
        entered.append((seconds, exc_type))
        yield

    monkeypatch.setattr(timeouts, "timeout", recording)
    running = SimpleNamespace(flow=SimpleNamespace(timeout_seconds=360 * 60))
    monkeypatch.setattr(FlowRunContext, "get", lambda: running)
    with flow_deadline(FlowConfig()):
        pass
    assert entered == []
    with flow_deadline(FlowConfig(timeout_minutes=1)):
        pass
    assert entered == [(60, NightTimedOut)]


def test_task_limits_give_a_copy_the_task_timeout_and_the_work_dirs_result_storage(tmp_path: Path) -> None:
    from pipelines.flow import segment
    from pipelines.runtime import TaskLimits

    limits = TaskLimits(90.0, resume.results_dir(tmp_path))
    limited = limits(segment)
    assert limited.timeout_seconds == 90.0 and limited.result_storage == tmp_path / "prefect" / "task_results"
    assert limited.cache_key_fn is resume.cache_key and limited.persist_result is True
    assert segment.timeout_seconds is None, "the module's task is left as it is"
    assert limits.in_thread(segment).timeout_seconds is None
