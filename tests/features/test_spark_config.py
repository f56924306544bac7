"""The ``engine.kind`` and ``spark:`` config (features.spark_engine.SparkConfig): no Spark needed."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from features import spark_engine
from features.spark_engine import SparkConfig, SparkUnavailableError, spark_session
from pipelines.config import ConfigError, NightlyConfig, load_config, with_engine

pytestmark = pytest.mark.usefixtures("shared_prefect_server")  # its nights share one (tests/conftest.py)


def test_defaults_run_duckdb_and_describe_a_local_spark() -> None:
    config = NightlyConfig()
    assert config.engine.kind == "duckdb"
    settings = config.spark.settings(Path("/scratch/spark_tmp"))
    assert settings["spark.master"] == "local[*]"
    assert settings["spark.sql.shuffle.partitions"] == "8"
    assert settings["spark.ui.enabled"] == "false"
    assert settings["spark.sql.session.timeZone"] == "UTC"
    assert settings["spark.local.dir"] == "/scratch/spark_tmp"
    # the interaction data come to the driver: Spark's 1g default stopped a 30M-line night
    assert settings["spark.driver.maxResultSize"] == settings["spark.driver.memory"] == "4g"


def test_extra_conf_is_passed_as_strings_and_may_override_the_defaults() -> None:
    config = SparkConfig(
        conf={"spark.sql.adaptive.enabled": False, "spark.ui.enabled": True, "spark.driver.maxResultSize": 0}
    )
    settings = config.settings()
    assert settings["spark.sql.adaptive.enabled"] == "false"
    assert settings["spark.ui.enabled"] == "true"
    assert settings["spark.driver.maxResultSize"] == "0"


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"master": "locl[2]"}, "not a Spark master URL"),
        ({"driver_memory": "lots"}, "not a Spark amount of memory"),
        ({"executor_memory": "4 GB"}, "not a Spark amount of memory"),
        ({"shuffle_partitions": 0}, "greater than 0"),
        ({"conf": {"sql.adaptive.enabled": "false"}}, "not a Spark setting"),
        ({"conf": {"spark.master": "yarn"}}, "has a key of its own in this section, master"),
        ({"conf": {"spark.jars.packages": "org.example:lib:1.0"}}, "download jars"),
        ({"conf": {"spark.sql.session.timeZone": "Asia/Shanghai"}}, "is UTC"),
        ({"app": "siyu"}, "Extra inputs"),
    ],
)
def test_a_bad_spark_setting_is_refused(fields, says) -> None:
    with pytest.raises(ValidationError, match=says):
        SparkConfig(**fields)


@pytest.mark.parametrize(
    "master", ["local", "local[2]", "local[*]", "local[4,2]", "yarn", "spark://h:7077", "k8s://https://h:443"]
)
def test_the_usual_masters_are_accepted(master) -> None:
    assert SparkConfig(master=master).master == master


def test_a_config_file_error_names_the_key_and_the_fix(tmp_path) -> None:
    path = tmp_path / "nightly.yaml"
    path.write_text("spark:\n  driver_memory: 4 gigs\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert "spark.driver_memory" in message and "'4 gigs'" in message
    assert "fix: write a number and a unit, e.g. 4g or 512m" in message


def test_the_nightly_takes_the_spark_engine_and_the_cli_flag_overrides_the_config(tmp_path) -> None:
    path = tmp_path / "nightly.yaml"
    path.write_text("engine:\n  kind: spark\n  memory_limit: 2GB\n")
    settings = load_config(path)
    assert settings.engine.kind == "spark"
    back = with_engine(settings, "duckdb")
    assert back.engine.kind == "duckdb" and back.engine.memory_limit == "2GB"  # only the kind moves
    assert with_engine(settings, None) is settings
    with pytest.raises(ConfigError, match=r"--engine 'dask': not an engine[\s\S]*fix: pass --engine duckdb"):
        with_engine(settings, "dask")


def test_both_shipped_configs_carry_the_engine_and_spark_sections() -> None:
    for name in ("configs/nightly.yaml", "configs/rfm_zh_cn.yaml"):
        config = load_config(Path(name))
        assert config.engine.kind == "duckdb"
        assert config.spark == SparkConfig()


def test_without_java_the_session_fails_with_the_fix(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(spark_engine.shutil, "which", lambda name: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with (
        pytest.raises(SparkUnavailableError, match=r"no Java runtime found[\s\S]*fix: install Java 17"),
        spark_session(SparkConfig(), tmp_path),
    ):
        pass
    assert not (tmp_path / "spark_tmp").exists()


class _FakeSession:
    def __init__(self) -> None:
        self.stopped = False
        self.sparkContext = SimpleNamespace(statusTracker=_Tracker)  # nothing runs

    def stop(self) -> None:
        self.stopped = True


def test_the_session_stops_and_its_spill_folder_goes_even_on_error(tmp_path, monkeypatch) -> None:
    started: list[tuple[_FakeSession, dict[str, str]]] = []
    jvm_stops: list[bool] = []

    def start(settings: dict[str, str]) -> _FakeSession:
        started.append((_FakeSession(), dict(settings)))
        return started[-1][0]

    monkeypatch.setattr(spark_engine, "_start", start)
    monkeypatch.setattr(spark_engine, "stop_jvm", lambda: jvm_stops.append(True))  # not this worker's JVM
    with (
        pytest.raises(RuntimeError, match="a step failed"),
        spark_session(SparkConfig(master="local[2]"), tmp_path),
    ):
        assert (tmp_path / "spark_tmp").is_dir()
        raise RuntimeError("a step failed")
    session, settings = started[0]
    assert session.stopped and jvm_stops == [True]
    assert settings["spark.local.dir"] == str(tmp_path / "spark_tmp")
    assert not (tmp_path / "spark_tmp").exists()


def test_a_spill_folder_named_in_conf_is_used_and_kept(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(spark_engine, "_start", lambda settings: _FakeSession())
    monkeypatch.setattr(spark_engine, "stop_jvm", lambda: None)  # not this worker's JVM
    own = tmp_path / "scratch"
    with spark_session(SparkConfig(conf={"spark.local.dir": str(own)}), tmp_path / "work"):
        pass
    assert own.is_dir() and not (tmp_path / "work" / "spark_tmp").exists()


def test_siyu_nightly_engine_flag_reaches_the_flow_and_a_bad_one_is_one_message(
    tmp_path, monkeypatch, capsys
) -> None:
    import pipelines.flow as flow
    from features.errors import SiyuError
    from tests.cli import run_cli

    seen: list[str] = []

    def run_nightly(config, data, day, work, settings) -> None:
        seen.append(settings.engine.kind)
        raise SiyuError("stopped here: the flow itself is tests/pipelines/test_flow_spark.py's")

    monkeypatch.setattr(flow, "run_nightly", run_nightly)
    out = str(tmp_path / "work")
    assert run_cli(monkeypatch, "nightly", "--engine", "spark", "--out", out) == 2
    assert run_cli(monkeypatch, "nightly", "--out", out) == 2  # the shipped config's kind
    assert seen == ["spark", "duckdb"]
    assert run_cli(monkeypatch, "nightly", "--engine", "dask", "--out", out) == 2
    err = capsys.readouterr().err
    assert "--engine 'dask': not an engine" in err and "fix: pass --engine duckdb or --engine spark" in err
    assert seen == ["spark", "duckdb"] and "Traceback" not in err


class _Stage:
    def __init__(self, tasks: int, done: int) -> None:
        self.numTasks, self.numCompletedTasks = tasks, done


class _Tracker:
    """Spark's status tracker as the watch asks it: the running stage ids, a stage's task counts."""

    def __init__(self) -> None:
        self.active: list[int] = []
        self.stages: dict[int, _Stage] = {}

    def getActiveStageIds(self) -> list[int]:
        return self.active

    def getStageInfo(self, stage: int) -> _Stage | None:
        return self.stages.get(stage)


def test_running_spark_jobs_are_one_step_with_their_task_counts_until_spark_is_idle() -> None:
    from features.progress import ProgressUpdate, add_listener, open_steps

    # a shared Spark session's own watch (tests.spark) closes its step 10 s after an earlier
    # module's last job: wait for that, so that the one "Spark tasks" step below is this watch's
    deadline = time.monotonic() + 30
    while [s for s in open_steps() if s.step == "Spark tasks"] and time.monotonic() < deadline:
        time.sleep(0.5)
    seen: list[ProgressUpdate] = []
    remove = add_listener(seen.append)
    tracker = _Tracker()
    watch = spark_engine.SparkTaskWatch(tracker, every=60.0, idle=10.0)
    try:
        watch.poll(0.0)  # nothing runs: no step
        assert not [s for s in open_steps() if s.step == "Spark tasks"]
        tracker.active, tracker.stages = [1], {1: _Stage(8, 2), 7: _Stage(50, 0)}  # 7: skipped, never runs
        watch.poll(1.0)
        (step,) = [s for s in open_steps() if s.step == "Spark tasks"]
        assert (step.done, step.total, step.unit) == (2, 8, "tasks")
        # the next stage
        tracker.active, tracker.stages[1], tracker.stages[2] = [2], _Stage(8, 8), _Stage(4, 1)
        watch.poll(2.0)
        (step,) = [s for s in open_steps() if s.step == "Spark tasks"]
        assert (step.done, step.total) == (9, 12)
        tracker.active, tracker.stages[2] = [], _Stage(4, 4)
        watch.poll(5.0)  # idle for less than 10 s: the same step, its last counts
        (step,) = [s for s in open_steps() if s.step == "Spark tasks"]
        assert (step.done, step.total) == (12, 12)
        watch.poll(12.5)
        assert not [s for s in open_steps() if s.step == "Spark tasks"]
        assert seen[-1].step == "Spark tasks" and seen[-1].finished and seen[-1].done == 12
    finally:
        remove()
        watch.stop()


def test_a_watch_whose_spark_is_gone_ends_quietly() -> None:
    class _Gone:
        def getActiveStageIds(self) -> list[int]:
            raise ConnectionRefusedError("the JVM is gone")

    watch = spark_engine.SparkTaskWatch(_Gone(), every=0.01).start()
    watch._thread.join(timeout=5)
    assert not watch._thread.is_alive()
    watch.stop()
