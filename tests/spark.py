"""The test session's Spark: one quick local[2] configuration, and one session per test worker that
the modules needing Spark share (the ``spark`` fixture in tests/conftest.py).

A session of its own per module cost each module a JVM launch and its warm-up (the first queries
on a cold JVM), 10-25 s apiece on the 2-core test machine. The shared session is started at its
first use and started again when something stopped it (a module that stops sessions on purpose, or
a night run in the same worker: the nightly owns its session and its JVM, see
``own_spark_sessions``)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from features.spark_engine import SparkConfig, SparkRun, start_spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Small and quick: on a few hundred rows Spark's time goes to the JVM warming up and to compiling
# generated code, so the tests run the JVM on its quick compiler only (C1) with the serial
# collector and interpret Spark's expressions (no code generation): about 3x faster here.
TEST_SPARK = SparkConfig(
    master="local[2]",
    driver_memory="1g",
    shuffle_partitions=2,
    conf={
        "spark.sql.codegen.wholeStage": False,
        "spark.sql.codegen.factoryMode": "NO_CODEGEN",
        "spark.sql.adaptive.enabled": False,
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    },
)


class SharedSpark:
    """A test worker's Spark session (``TEST_SPARK``), started when first asked for."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.run: SparkRun | None = None

    def session(self) -> SparkSession:
        """The running session; a new one when there is none or it was stopped meanwhile."""
        if not self._alive():
            self.stop()
            self.run = start_spark(TEST_SPARK, self.work)
        assert self.run is not None and self.run.spark is not None
        return self.run.spark

    def stop(self) -> None:
        """Stop the session and its JVM (when still up) and remove its spill folder."""
        run, self.run = self.run, None
        if run is None:
            return
        if self._alive(run):
            run.stop()
        else:  # stopped by someone else: only the spill folder is left
            shutil.rmtree(run.spill, ignore_errors=True)

    def _alive(self, run: SparkRun | None = None) -> bool:
        from pyspark import SparkContext

        run = run or self.run
        return (
            run is not None
            and run.spark is not None
            and SparkContext._active_spark_context is not None
            and SparkContext._gateway is not None
        )
