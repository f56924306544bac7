"""The run's engine (pipelines.run_engine) without Spark: closing undoes everything, once, whatever fails;
starting and connecting are two stages (a Spark night validates on the started session)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from features.columns import Table
from pipelines.config import NightlyConfig
from pipelines.run_engine import ENGINE_TAG, EngineRun, engine_record, start_engine_run
from tests.data import orders_frame


class _Closing:
    def __init__(self, fails: bool = False) -> None:
        self.closed = 0
        self.fails = fails

    def close(self) -> None:
        self.closed += 1
        if self.fails:
            raise OSError("the connection was already gone")


class _SparkRun:
    def __init__(self, spark: object = None) -> None:
        self.stopped = 0
        self.spark = spark

    def stop(self) -> None:
        self.stopped += 1
        self.spark = None


def test_closing_a_spark_engine_stops_the_session_even_when_the_connection_fails_to_close() -> None:
    con, spark = _Closing(fails=True), _SparkRun()
    run = EngineRun("spark", con, Path("spill"), spark)  # type: ignore[arg-type]
    with pytest.raises(OSError, match="already gone"):
        run.close()
    assert con.closed == 1 and spark.stopped == 1
    run.close()  # the flow closes again when its close task could not run: harmless
    assert con.closed == 1 and spark.stopped == 2  # SparkRun.stop is itself idempotent


def test_the_duckdb_engine_starts_nothing_then_connects_over_the_clean_tables_once(tmp_path: Path) -> None:
    """DuckDB validates without the engine: starting it opens nothing, connecting (after validation)
    opens the connection, a second connect (a retried task) gets the same one, and its spill
    folder goes with it."""
    clean = tmp_path / "clean"
    clean.mkdir()
    orders = clean / "orders.parquet"
    frame = orders_frame()
    frame.to_parquet(orders)
    validated = SimpleNamespace(clean_paths={Table.ORDERS: orders})

    run = start_engine_run(NightlyConfig(), tmp_path)
    assert run.kind == "duckdb" and run.session is None and not run.is_open
    con = run.connect(validated, NightlyConfig(), tmp_path)  # type: ignore[arg-type]
    assert run.connect(validated, NightlyConfig(), tmp_path) is con  # type: ignore[arg-type]
    assert engine_record(run) == {ENGINE_TAG: "duckdb"}
    assert con.execute("SELECT count(*) FROM orders").fetchone() == (len(frame),)
    assert run.spill is not None and run.spill.is_dir()
    run.close()
    run.close()
    assert not run.is_open and not run.spill.exists()


def test_a_started_spark_engine_is_open_before_it_connects_and_closing_stops_it() -> None:
    """What a failed validation leaves: a session and no connection; closing stops the session."""
    spark = _SparkRun(spark=object())
    run = EngineRun("spark", spill=Path("spill"), spark=spark)  # type: ignore[arg-type]
    assert run.is_open and run.session is spark.spark and run.con is None
    run.close()
    assert spark.stopped == 1 and not run.is_open and run.session is None


def test_a_spark_error_leaves_the_nights_engine_block_with_its_message_and_fix(
    tmp_path: Path, monkeypatch
) -> None:
    """A Py4J error reads its message from the JVM whenever it is printed, and the night stops the
    JVM before Prefect reports the error: it leaves ``night_engine`` as a SparkFailed whose message
    was read in time (here: the disk under the spill folder ran out), the engine closed."""
    from py4j.protocol import Py4JError

    import pipelines.flow as flow
    from features.spark_engine import SparkFailed, SparkRun
    from pipelines.runtime import TaskLimits

    spark = SparkRun(None, tmp_path / "spark_tmp", own_spill=False, driver_memory="2g")
    stopped: list[bool] = []
    monkeypatch.setattr(spark, "stop", lambda: stopped.append(True))
    monkeypatch.setattr(flow, "start_engine_run", lambda settings, work: EngineRun("spark", spark=spark))
    failure = Py4JError(
        "An error occurred while calling o91.collectToPython.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 3 in stage 131.0 failed\n"
        "\tat org.apache.spark.storage.DiskBlockObjectWriter.commitAndGet(DiskBlockObjectWriter.scala:171)\n"
        "Caused by: java.io.IOException: No space left on device\n"
        "\tat java.base/java.io.FileOutputStream.writeBytes(Native Method)\n"
        "\t... 12 more"
    )
    with (
        pytest.raises(SparkFailed) as caught,
        flow.night_engine(NightlyConfig(), tmp_path, TaskLimits(60.0, tmp_path / "results")),
    ):
        raise failure
    message = str(caught.value)
    assert message.startswith("Spark failed: An error occurred while calling o91.collectToPython.")
    assert "Caused by: java.io.IOException: No space left on device" in message and "\tat " not in message
    assert f"fix: Spark's spill folder {tmp_path / 'spark_tmp'} (spark.local.dir) ran out of disk" in message
    assert caught.value.__cause__ is None and stopped == [True]


def test_results_over_the_drivers_limit_name_the_setting_to_raise(tmp_path: Path) -> None:
    from py4j.protocol import Py4JError

    from features.spark_engine import SparkRun

    spark = SparkRun(None, tmp_path / "spark_tmp", own_spill=False, driver_memory="6g")
    failure = Py4JError(
        "An error occurred while calling o51903.getResult.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: Total size of serialized "
        "results of 10 tasks (1080.9 MiB) is bigger than spark.driver.maxResultSize (1024.0 MiB)"
    )
    message = str(spark.readable(failure))
    assert "bigger than spark.driver.maxResultSize (1024.0 MiB)" in message
    assert (
        "fix: the rows brought to the driver" in message
        and "'spark.driver.maxResultSize' (0: no limit)" in message
    )


def test_any_other_error_leaves_the_nights_engine_block_as_it_is(tmp_path: Path, monkeypatch) -> None:
    import pipelines.flow as flow
    from features.spark_engine import SparkRun
    from pipelines.runtime import TaskLimits

    spark = SparkRun(None, tmp_path / "spark_tmp", own_spill=False)
    monkeypatch.setattr(flow, "start_engine_run", lambda settings, work: EngineRun("spark", spark=spark))
    failure = ValueError("a step's own error")
    with (
        pytest.raises(ValueError) as caught,
        flow.night_engine(NightlyConfig(), tmp_path, TaskLimits(60.0, tmp_path)),
    ):
        raise failure
    assert caught.value is failure
