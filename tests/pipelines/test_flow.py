"""The nightly flow end to end on a tiny simulated set: Prefect's local API, MLflow and exports in tmp.

One module-scoped run feeds several checks; a rerun must publish identical files, a run
killed (``kill -9``) in the middle of publishing must leave ``exports/current`` on the
previous export and no Prefect server behind, a run that fails must end FAILED in MLflow
with the champion alias where it was, and a table the previous run read must not go missing
silently. (Tests run in file order and share the work directory.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

import pipelines.nightly_steps as nightly_steps
from features.catalog import RunFile
from features.errors import SiyuError
from features.vocabulary import ReasonCode
from models.recommenders.store import read_stored
from models.recommenders.training import CHAMPION_RECIPE
from pipelines.champion import champion_lists
from pipelines.cli import main
from pipelines.config import NightlyConfig, load_config
from pipelines.deployment import build_deployment
from pipelines.flow import run_nightly
from pipelines.publish import (
    CURRENT_FILE,
    RUN_FIELDS,
    current_export,
    read_manifest,
    refuse_older_night,
    sha256_of,
    verify_export,
)
from pipelines.runtime import local_prefect
from pipelines.schedule import ScheduleConfig, build_schedule
from pipelines.tracking import (
    ENDED_TAG,
    TrackingConfig,
    alias_version,
    download_model_artifact,
    download_stored_model,
    using_tracking,
)
from sources.simulator import SimulationConfig, simulate

pytestmark = pytest.mark.usefixtures("shared_prefect_server")  # its nights share one (tests/conftest.py)

REPO = Path(__file__).resolve().parents[2]
# Small and fast: the flow's plumbing is under test here, not the models. CLV is off because
# compiling its PyMC models costs ~15 s per process even on this tiny set (it has its own tests).
CONFIG = {
    "tracking": {"experiment": "test-nightly", "champion_margin": 0.001},
    "publish": {"keep_last": 5},
    "segmentation": {"clv": {"enabled": False}},
    # the production model and one baseline are enough to gate on; every model has its own tests
    "recommend": {"evaluation": {"models": ["ranker", "popularity_global"]}},
    # segmentation and the quality gate side by side, whatever memory the test machine has
    "flow": {"concurrent_steps": True},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A simulated set (300 consumers, 50 products, 120 days), its config file and one completed run."""
    root = tmp_path_factory.mktemp("nightly")
    data = root / "data"
    simulate(data, SimulationConfig(consumers=300, distributors=10, products=50, days=120, seed=7))
    config_path = root / "nightly.yaml"
    config_path.write_text(yaml.safe_dump(CONFIG))
    work = root / "work"
    summary = run_nightly(config_path=config_path, data_dir=data, out_dir=work)
    return {"root": root, "data": data, "config": config_path, "work": work, "summary": summary}


def exported(export_dir: Path) -> dict[str, str]:
    """SHA-256 of every file in an export, manifest included."""
    return {
        p.relative_to(export_dir).as_posix(): sha256_of(p)
        for p in sorted(export_dir.rglob("*"))
        if p.is_file()
    }


def test_flow_publishes_a_checked_export_and_switches_current(tiny: dict) -> None:
    summary, work = tiny["summary"], tiny["work"]
    exports = work / "exports"
    assert summary.export_dir == exports / summary.as_of.isoformat()
    assert current_export(exports) == summary.export_dir
    assert (exports / CURRENT_FILE).read_text() == os.readlink(summary.export_dir) + "\n"
    verify_export(summary.export_dir)
    manifest = read_manifest(summary.export_dir)
    names = {entry["path"] for entry in manifest["files"]}
    assert {"quality_alerts.csv", "quality_suppliers.csv"} <= names
    assert names == {
        p.relative_to(work / "outputs").as_posix() for p in (work / "outputs").rglob("*") if p.is_file()
    }
    assert (
        manifest["run"]["mlflow_run_id"] == summary.mlflow_run_id and manifest["run"]["prefect_flow_run_id"]
    )
    assert manifest["versions"]["prefect"] and manifest["as_of"] == summary.as_of.isoformat()
    assert sum(summary.quality_levels.values()) == 50
    assert manifest["tables"] == sorted(p.stem for p in tiny["data"].glob("*.parquet"))


def test_mlflow_run_holds_config_data_manifest_and_counts(tiny: dict) -> None:
    summary, work = tiny["summary"], tiny["work"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work.absolute()}/mlflow.db")
    run = client.get_run(summary.mlflow_run_id)
    assert run.info.status == "FINISHED" and run.data.tags["as_of"] == summary.as_of.isoformat()
    assert client.get_experiment(run.info.experiment_id).name == "test-nightly"
    validation = json.loads((work / "validated" / "validation.json").read_text())
    orders = next(t for t in validation["tables"] if t["table"] == "orders")
    assert run.data.metrics["data/orders/rows_read"] == orders["rows_read"]
    assert run.data.metrics["data/orders/rows_kept"] == orders["rows_kept"]
    assert run.data.tags["data.orders.sha256"] == sha256_of(tiny["data"] / "orders.parquet")
    assert run.data.params["tracking.experiment"] == "test-nightly"
    assert run.data.params["data.dir"] == str(tiny["data"].absolute())  # --data, not the config's empty value
    assert sum(v for k, v in run.data.metrics.items() if k.startswith("quality/")) == 50
    if summary.segments:
        assert sum(v for k, v in run.data.metrics.items() if k.startswith("segments/size/")) == sum(
            summary.segments.values()
        )
    artifacts = {a.path for a in client.list_artifacts(summary.mlflow_run_id)}
    assert {"config.json", "data_manifest.json", "export"} <= artifacts


def test_run_timings_name_every_task_and_the_orders_are_read_at_most_five_times(tiny: dict) -> None:
    """run_timings.json (the benchmark reads it) and the time.<task> metrics; the steps share one
    engine session, so validation's passes plus the engine's reads of orders stay within 5."""
    summary, work = tiny["summary"], tiny["work"]
    timings = json.loads((work / RunFile.RUN_TIMINGS).read_text())
    assert {"tasks", "wall_seconds", "peak_rss_bytes", "orders_scans", "table_reads", "rows"} <= set(timings)
    tasks = timings["tasks"]
    assert {"load and validate", "open engine session", "segmentation", "quality gate", "publish"} <= set(
        tasks
    )
    assert all(seconds >= 0 for seconds in tasks.values())
    assert max(tasks.values()) <= timings["wall_seconds"]
    assert timings["peak_rss_bytes"] > 50 * 2**20
    reads = timings["task_reads"]
    assert reads["open engine session"] == {"orders": 1}
    # segmentation, the quality gate, evaluation and the production lists all ran on the session
    assert not {"segmentation", "quality gate", "train and evaluate recommenders"} & set(reads)
    assert timings["orders_scans"] <= 5
    assert timings["orders_scans"] == sum(counts.get("orders", 0) for counts in reads.values())
    validation = json.loads((work / "validated" / "validation.json").read_text())
    orders = next(t for t in validation["tables"] if t["table"] == "orders")
    assert timings["rows"]["orders"] == orders["rows_kept"]
    assert not (work / "duckdb_tmp").exists()  # the spill folder goes with the session
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work.absolute()}/mlflow.db")
    metrics = client.get_run(summary.mlflow_run_id).data.metrics
    assert metrics["time/segmentation"] == tasks["segmentation"]
    assert metrics["run/orders_scans"] == timings["orders_scans"]
    # every task's peak RSS of the process tree, against the default budget (8 GB: none over)
    peaks = timings["task_peak_rss_bytes"]
    assert set(peaks) == set(tasks) and min(peaks.values()) > 50 * 2**20
    assert max(peaks.values()) <= timings["memory_budget_bytes"] and timings["tasks_over_memory_budget"] == {}
    assert metrics["memory/segmentation"] == peaks["segmentation"]
    assert metrics["run/tasks_over_memory_budget"] == 0


def test_the_first_model_is_registered_as_champion_with_its_artifact_published(tiny: dict) -> None:
    summary, work = tiny["summary"], tiny["work"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work.absolute()}/mlflow.db")
    model = summary.model
    assert model.version == "1" and model.promoted and model.champion_version == "1"
    version = client.get_model_version_by_alias("siyu-recommender", "champion")
    assert str(version.version) == "1" and float(version.tags["validation_ndcg"]) == model.validation_ndcg
    assert client.get_run(version.run_id).data.tags["mlflow.parentRunId"] == summary.mlflow_run_id
    names = {entry["path"] for entry in read_manifest(summary.export_dir)["files"]}
    assert {
        "consumer_recommendations.parquet",
        "distributor_recommendations.parquet",
        "evaluation.json",
    } <= names
    assert "artifact/manifest.json" in names
    with using_tracking(TrackingConfig(), work):
        loaded = mlflow.pyfunc.load_model("models:/siyu-recommender@champion")
    lists = loaded.predict(pd.DataFrame({"consumer_id": ["nobody"]}), params={"k": 3})
    assert len(lists) == 3  # an unknown consumer still gets the fallback list
    run = client.get_run(summary.mlflow_run_id)
    assert run.data.metrics["champion_gate/validation_ndcg"] == pytest.approx(model.validation_ndcg)
    assert "report.html" in {a.path for a in client.list_artifacts(summary.mlflow_run_id)}


def test_rerun_on_the_same_inputs_publishes_identical_files(tiny: dict, monkeypatch, capsys) -> None:
    summary, work = tiny["summary"], tiny["work"]
    before = exported(summary.export_dir)
    manifest_before = read_manifest(summary.export_dir)
    notes = work / "outputs" / "precious.txt"  # an operator's file in siyu's own folder
    notes.write_text("keep me")
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "siyu",
            "nightly",
            "--config",
            str(tiny["config"]),
            "--data",
            str(tiny["data"]),
            "--as-of",
            summary.as_of.isoformat(),
            "--out",
            str(work),
        ],
    )
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "nightly done: as of" in out and f"to {summary.export_dir}" in out
    after = exported(summary.export_dir)
    manifest_after = read_manifest(summary.export_dir)
    # Only the manifest's run fields (run ids, publish time) may differ between the two runs.
    assert {k: v for k, v in after.items() if k != RunFile.MANIFEST} == {
        k: v for k, v in before.items() if k != RunFile.MANIFEST
    }
    strip = lambda m: {k: v for k, v in m.items() if k not in RUN_FIELDS}  # noqa: E731
    assert strip(manifest_after) == strip(manifest_before)
    assert manifest_after["run"]["mlflow_run_id"] != manifest_before["run"]["mlflow_run_id"]
    assert notes.read_text() == "keep me" and "precious.txt" not in after  # left alone, not exported


def test_a_worse_model_stays_challenger_and_the_champions_model_scores_tonights_lists(
    tiny: dict, tmp_path
) -> None:
    summary, work = tiny["summary"], tiny["work"]
    worse_config = tmp_path / "worse.yaml"
    worse = {**CONFIG, "recommend": {**CONFIG["recommend"], "production": "popularity_global"}}
    worse_config.write_text(yaml.safe_dump(worse))
    worse_run = run_nightly(
        config_path=worse_config, data_dir=tiny["data"], as_of=summary.as_of, out_dir=work
    )
    gate = worse_run.model
    assert gate.validation_ndcg < summary.model.validation_ndcg, "precondition: the model must be worse"
    assert gate.alias == "challenger" and gate.champion_version == "1" and gate.version != "1"
    with using_tracking(TrackingConfig(), work) as client:
        assert str(client.get_model_version_by_alias("siyu-recommender", "champion").version) == "1"
        challenger = download_model_artifact(client, "siyu-recommender", gate.version, tmp_path / "new")
        # each version keeps the stored model that scored its lists, for a later night to score with
        stored = download_stored_model(client, "siyu-recommender", "1", tmp_path / "stored")
    assert stored is not None and read_stored(stored).configured == "ranker"
    published = worse_run.export_dir
    assert read_manifest(published / "artifact")["meta"]["model"] == "ranker"  # not the new popularity model
    assert sha256_of(published / "artifact" / "manifest.json") != sha256_of(challenger / "manifest.json")
    # tonight's scoring pass, so every column, reason and filter of a normal night
    lists = pd.read_parquet(published / "consumer_recommendations.parquet")
    first = pd.read_parquet(summary.export_dir / "consumer_recommendations.parquet")
    assert list(lists.columns) == list(first.columns) and len(lists) == len(first)
    assert set(lists["reason_code"]) <= set(ReasonCode.CONSUMER)
    outreach = pd.read_parquet(published / "distributor_outreach.parquet")
    pushed = pd.read_parquet(published / "distributor_recommendations.parquet")
    keys = ["distributor_id", "product_id"]
    assert len(outreach) and len(outreach.merge(pushed[keys], on=keys)) == len(outreach)
    run = read_manifest(published)["run"]
    assert run["model_alias"] == "challenger" and run["published_model_version"] == "1"


def test_another_ranker_recipe_meets_the_champions_settings_measured_on_tonights_sample(
    tiny: dict, tmp_path
) -> None:
    """The champion (version 1, the default ranker) is measured again on tonight's folds and sample
    from its stored settings when tonight's ranker has other settings under the same name."""
    summary, work = tiny["summary"], tiny["work"]
    models = {
        "ranker": {"kind": "ranker", "params": {"candidates_per_model": 20}},
        "popularity_global": {"kind": "popularity", "params": {"scope": "global", "window_days": 30}},
    }
    other = {**CONFIG, "recommend": {**CONFIG["recommend"], "models": models}}
    other_config = tmp_path / "other.yaml"
    other_config.write_text(yaml.safe_dump(other))
    night = run_nightly(config_path=other_config, data_dir=tiny["data"], as_of=summary.as_of, out_dir=work)
    results = json.loads((night.export_dir / "evaluation.json").read_text())["results"]
    ndcg = {(row["model"], row["protocol"]): row["ndcg"] for row in results}
    champion_again = ndcg[(CHAMPION_RECIPE, "all_items")]
    # the same settings on the same folds and sample as version 1's night: its number again
    assert champion_again == pytest.approx(summary.model.validation_ndcg)
    gate = night.model
    assert gate.previous_champion == "1" or gate.champion_version == "1"
    if gate.alias == "challenger":
        assert gate.champion_ndcg == pytest.approx(champion_again)
    else:
        assert gate.validation_ndcg > champion_again + CONFIG["tracking"]["champion_margin"]


def test_a_night_older_than_a_published_export_is_refused(tiny: dict, tmp_path) -> None:
    exports = tiny["work"] / "exports"
    published = tiny["summary"].as_of.date
    refuse_older_night(exports, published)  # a rerun of the newest date is fine
    with pytest.raises(SiyuError, match=rf"(?s)holds exports dated {published}, after .*--out"):
        refuse_older_night(exports, published - timedelta(days=1))


def test_a_champion_registered_without_its_model_has_its_lists_rebuilt_from_its_artifact(
    tiny: dict, tmp_path
) -> None:
    with using_tracking(TrackingConfig(), tiny["work"]) as client:
        artifact = download_model_artifact(client, "siyu-recommender", "1", tmp_path / "champion")
    outputs = tiny["summary"].export_dir  # this run's lists and quality levels
    rebuilt = champion_lists(artifact, outputs, tmp_path / "lists")
    lists = pd.read_parquet(rebuilt["consumer_recommendations.parquet"])
    ours = pd.read_parquet(outputs / "consumer_recommendations.parquet")
    assert lists.groupby("consumer_id").size().equals(ours.groupby("consumer_id").size())
    assert len(lists) and lists["reason"].str.startswith("champion: ").all()


KILL_SCRIPT = """
import sys, time
from datetime import date
from pathlib import Path

import pipelines.publish as publish

data, work, config, marker, as_of = sys.argv[1:6]
copy = publish.copy_file


def copy_then_stall(source, target, relative, bar=None):
    entry = copy(source, target, relative, bar)
    Path(marker).touch()
    time.sleep(300)
    return entry


publish.copy_file = copy_then_stall
from pipelines.flow import run_nightly

run_nightly(Path(config), Path(data), date.fromisoformat(as_of), Path(work))
"""


def test_a_run_killed_mid_publish_leaves_current_on_the_previous_export(tiny: dict) -> None:
    work, previous = tiny["work"], tiny["summary"].export_dir
    exports = work / "exports"
    before = exported(previous)
    marker = tiny["root"] / "publishing.marker"
    later = (tiny["summary"].as_of.date + timedelta(days=1)).isoformat()  # older nights are refused
    env = {
        **os.environ,
        "PREFECT_HOME": str(work / "prefect"),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    args = [str(tiny["data"]), str(work), str(tiny["config"]), str(marker), later]
    process = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, *args],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the run never reached publishing"
            time.sleep(0.2)
        children = _children(process.pid)
        assert children, "the run started its Prefect server"
        os.kill(process.pid, signal.SIGKILL)  # the run only: its server must end by itself
        process.wait()
        deadline = time.monotonic() + 60
        while alive := [pid for pid in children if _running(pid)]:
            assert time.monotonic() < deadline, f"processes {alive} outlived the killed run"
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # whatever is left, should the test fail
    assert current_export(exports) == previous
    assert (exports / CURRENT_FILE).read_text().strip() == os.readlink(previous)
    assert exported(previous) == before
    verify_export(previous)
    assert not (exports / later).exists()
    assert [p.name for p in exports.glob(f".{later}.staging-*")], "the kill did not land mid-publish"


def test_without_a_server_prefect_lives_under_the_work_dir(tmp_path: Path, monkeypatch) -> None:
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    monkeypatch.delenv("PREFECT_HOME", raising=False)
    seen: list[Path] = []

    def meanwhile() -> None:  # the run's head start, while the server comes up; its error is not fatal
        seen.append(get_current_settings().home)
        raise OSError("a head start that fails")

    before = set(_children(os.getpid()))  # e.g. a JVM an earlier Spark test left to this process
    with temporary_settings(restore_defaults={PREFECT_API_URL}), local_prefect(tmp_path, meanwhile):
        settings = get_current_settings()
        assert settings.home == (tmp_path / "prefect").absolute() and seen == [settings.home]
        assert settings.server.analytics_enabled is False
        assert settings.server.ephemeral.startup_timeout_seconds >= 120
        assert settings.api.url.startswith("http://127.0.0.1:")  # the server this process started
        assert (tmp_path / "prefect" / "prefect.db").exists()  # started (on a thread) with these settings
        server = [pid for pid in _children(os.getpid()) if pid not in before]
        assert server
    assert not [pid for pid in server if _running(pid)], "the server stops with the block"
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}), local_prefect(tmp_path):
        assert get_current_settings().home != (tmp_path / "prefect").absolute()


def test_serve_builds_the_cron_deployment_from_config() -> None:
    schedule = ScheduleConfig(cron="30 1 * * *", timezone="UTC", deployment_name="nightly-test")
    assert build_schedule(schedule).cron == "30 1 * * *" and build_schedule(schedule).timezone == "UTC"
    deployment = build_deployment(schedule, {"config_path": "/srv/siyu/configs/nightly.yaml"})
    assert deployment.name == "nightly-test" and deployment.flow_name == "siyu-nightly"
    assert [s.schedule.cron for s in deployment.schedules] == ["30 1 * * *"]
    assert deployment.schedules[0].schedule.timezone == "UTC"
    assert deployment.parameters == {"config_path": "/srv/siyu/configs/nightly.yaml"}
    assert deployment.concurrency_limit == 1, "one night at a time"


def test_schedule_config_refuses_bad_cron_and_timezone(tmp_path: Path) -> None:
    from features.errors import SiyuError

    bad = tmp_path / "bad.yaml"
    bad.write_text("schedule:\n  cron: '0 2 * *'\n  timezone: Mars/Olympus\n")
    with pytest.raises(SiyuError) as error:
        load_config(bad)
    assert "schedule.cron" in str(error.value) and "schedule.timezone" in str(error.value)
    assert NightlyConfig().schedule.cron == "0 2 * * *"
    # five fields but a minute of 61: named when serving starts, before the server is looked for
    with pytest.raises(SiyuError, match="schedule.cron: '61 25 \\* \\* \\*' is not a cron line"):
        build_schedule(ScheduleConfig(cron="61 25 * * *"))


def test_serve_help_and_clear_error_without_a_server(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["siyu", "serve", "--help"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 0 and "prefect server start" in capsys.readouterr().out
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setattr(sys, "argv", ["siyu", "serve", "--config", str(REPO / "configs" / "nightly.yaml")])
    with temporary_settings(restore_defaults={PREFECT_API_URL}), pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2 and "PREFECT_API_URL is not set" in capsys.readouterr().err


class _FailedState:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def result(self) -> None:
        raise self.error


def test_file_tasks_retry_on_io_trouble_but_not_on_user_errors() -> None:
    from features.errors import ContractError
    from pipelines.runtime import _retry_unless_user_error

    assert _retry_unless_user_error(None, None, _FailedState(OSError("disk full"))) is True
    bad_data = ContractError("orders.csv", "column missing", "add it", column="order_id")
    assert _retry_unless_user_error(None, None, _FailedState(bad_data)) is False


def test_a_spark_failure_that_would_fail_again_is_not_retried() -> None:
    """A 30M-line Spark night spent two retries of 5 minutes each on results over
    spark.driver.maxResultSize: a known cause is not retried, an unknown one is."""
    from py4j.protocol import Py4JError

    from pipelines.runtime import _retry_unless_user_error

    too_big = Py4JError(
        ": org.apache.spark.SparkException: Job aborted due to stage failure: Total size of serialized "
        "results of 10 tasks (1080.9 MiB) is bigger than spark.driver.maxResultSize (1024.0 MiB)"
    )
    lost = Py4JError(": org.apache.spark.SparkException: Job aborted: executor 3 lost (heartbeat timed out)")
    assert _retry_unless_user_error(None, None, _FailedState(too_big)) is False
    assert _retry_unless_user_error(None, None, _FailedState(lost)) is True


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_failing_run_ends_failed_and_moves_nothing(tiny: dict, monkeypatch) -> None:
    work = tiny["work"]
    exports = work / "exports"
    current_before = current_export(exports)
    with using_tracking(TrackingConfig(), work) as client:
        champion_before = alias_version(client, "siyu-recommender", "champion")

    def broken(*args, **kwargs):
        raise SiyuError("boom: the recommender step broke\n  fix: none, a test")

    import pipelines.steps.recommend as recommend_step

    # production_model runs every night (a fit, or the stored model carried: refit_every_days)
    monkeypatch.setattr(recommend_step, "production_model", broken)
    with pytest.raises(SiyuError, match="boom"):
        run_nightly(tiny["config"], tiny["data"], tiny["summary"].as_of, work)
    with using_tracking(TrackingConfig(), work) as client:
        experiment = client.get_experiment_by_name("test-nightly")
        latest = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])[0]
        assert latest.info.status == "FAILED" and "boom" in latest.data.tags[ENDED_TAG]
        assert alias_version(client, "siyu-recommender", "champion") == champion_before
    assert current_export(exports) == current_before


def test_an_enforced_memory_budget_stops_the_night_at_the_first_task_over_it(tiny: dict, tmp_path) -> None:
    """A 1 MB budget: the first task is over it, and the night fails naming it before any output."""
    config = {
        **CONFIG,
        "flow": {**CONFIG["flow"], "step_memory_budget": "1MB", "enforce_memory_budget": True},
    }
    config_path = tmp_path / "budget.yaml"
    config_path.write_text(yaml.safe_dump(config))
    work = tmp_path / "work"
    with pytest.raises(
        SiyuError, match=r"prepare data: the run's processes used .* over flow.step_memory_budget"
    ):
        run_nightly(config_path=config_path, data_dir=tiny["data"], out_dir=work)
    assert not (work / "exports").exists() and not (work / "validated").exists()


def test_a_table_the_previous_run_read_cannot_go_missing_silently(
    tiny: dict, tmp_path, monkeypatch, capsys
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for table in tiny["data"].glob("*.parquet"):
        if table.stem != "complaints":
            (data / table.name).symlink_to(table)
    later = (tiny["summary"].as_of.date + timedelta(days=1)).isoformat()
    args = ["nightly", "--config", str(tiny["config"]), "--data", str(data), "--as-of", later]
    monkeypatch.setattr(sys, "argv", ["siyu", *args, "--out", str(tiny["work"])])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert "table(s) complaints were read by the previous run" in err
    assert "data.optional_tables: [complaints]" in err


def test_check_tables_lets_the_config_allow_a_missing_table(tmp_path: Path, caplog) -> None:
    previous = tmp_path / "2025-03-30"
    previous.mkdir()
    (previous / RunFile.MANIFEST).write_text(json.dumps({"tables": ["complaints", "events", "orders"]}))
    assert nightly_steps.check_tables(previous, ["orders", "events", "complaints"], []) == []
    assert nightly_steps.check_tables(previous, ["orders"], ["events", "complaints"]) == [
        "complaints",
        "events",
    ]
    assert "table complaints is missing" in caplog.text
    with pytest.raises(SiyuError, match="table\\(s\\) events were read"):
        nightly_steps.check_tables(previous, ["orders", "complaints"], ["consumers"])
    assert nightly_steps.check_tables(None, ["orders"], []) == []


def test_optional_tables_must_be_optional_contract_tables(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  optional_tables: [orders, event]\n")
    with pytest.raises(SiyuError) as error:
        load_config(bad)
    assert "data.optional_tables" in str(error.value) and "event, orders: not an optional table" in str(
        error.value
    )
