"""The run's engine (pipelines.run_engine) without Spark: closing undoes everything, once, whatever fails."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from features.columns import Table
from pipelines.config import NightlyConfig
from pipelines.run_engine import ENGINE_TAG, EngineRun, engine_record, open_engine_run
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
    def __init__(self) -> None:
        self.stopped = 0
        self.spark = None

    def stop(self) -> None:
        self.stopped += 1


def test_closing_a_spark_engine_stops_the_session_even_when_the_connection_fails_to_close() -> None:
    con, spark = _Closing(fails=True), _SparkRun()
    run = EngineRun("spark", con, Path("spill"), spark)  # type: ignore[arg-type]
    with pytest.raises(OSError, match="already gone"):
        run.close()
    assert con.closed == 1 and spark.stopped == 1
    run.close()  # the flow closes again when its close task could not run: harmless
    assert con.closed == 1 and spark.stopped == 2  # SparkRun.stop is itself idempotent


def test_the_duckdb_engine_opens_over_the_clean_tables_and_its_spill_folder_goes(tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    clean.mkdir()
    orders = clean / "orders.parquet"
    frame = orders_frame()
    frame.to_parquet(orders)
    validated = SimpleNamespace(clean_paths={Table.ORDERS: orders})

    run = open_engine_run(validated, NightlyConfig(), tmp_path)  # type: ignore[arg-type]
    assert run.kind == "duckdb" and engine_record(run) == {ENGINE_TAG: "duckdb"}
    assert run.con.execute("SELECT count(*) FROM orders").fetchone() == (len(frame),)
    assert run.spill is not None and run.spill.is_dir()
    run.close()
    run.close()
    assert not run.spill.exists()
