"""The run's engine, chosen by ``engine.kind``: DuckDB (one machine) or Spark (docs/spark.md).

A night's engine lives in two stages. ``start_engine_run`` starts what must run before
validation: on Spark the session (``spark:``; the JVM launch is the expensive part), which
validation then runs on; on DuckDB nothing (DuckDB validates without it). ``EngineRun.connect``
opens, over the clean tables validation wrote, what the night's steps query: a DuckDB
connection (``features.engine.connect``: orders read once, shared views, ``engine:`` memory
limit and spill folder) or a ``features.spark_engine.SparkConnection`` on the same running
Spark session. So a Spark night starts Spark once. The steps take either as ``con`` and run
the same SQL on it (the feature builders' DuckDB SQL, transpiled for Spark). ``EngineRun.close``
closes the connection, stops the Spark session and its JVM, and removes the spill folder; it
may be called twice (the session is stopped once).
``engine_record`` is what the MLflow run records about the engine: the kind, and on Spark every
setting of the running session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features import engine

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from features.spark_engine import SparkRun
    from pipelines.config import NightlyConfig
    from pipelines.steps.validate import Validated

logger = logging.getLogger(__name__)

ENGINE_TAG = "siyu.engine"
"""MLflow tag of the night's engine kind (duckdb or spark)."""
SPARK_CONF_PREFIX = "spark_conf."
"""MLflow tags ``spark_conf.<key>``: the running Spark session's settings (``spark.*``)."""


@dataclass
class EngineRun:
    """One night's engine: the started backend (on Spark its session), the connection the steps
    share once ``connect`` has opened it, and what closing them must undo."""

    kind: str
    con: Any = None
    spill: Path | None = None
    spark: SparkRun | None = None

    @property
    def session(self) -> SparkSession | None:
        """The running Spark session (validation runs on it); None on DuckDB or once stopped."""
        return self.spark.spark if self.spark is not None else None

    @property
    def is_open(self) -> bool:
        """Whether anything is open that ``close`` must undo: a connection or a Spark session."""
        return self.con is not None or self.session is not None

    def connect(self, validated: Validated, settings: NightlyConfig, work: Path) -> Any:
        """Open the steps' connection over ``validated``'s clean tables: on Spark over the running
        session, on DuckDB a new connection with its spill folder under ``work``. Once connected it
        returns the same connection (a retried task that connected before)."""
        if self.con is not None:
            return self.con
        if self.spark is not None:
            self.con = _spark_connection(self.spark, validated)
            return self.con
        spill = settings.engine.spill_dir(work)
        logger.info(
            "engine session: DuckDB, memory limit %s, spill folder %s", settings.engine.memory_limit, spill
        )
        self.con = engine.connect(validated.clean_paths, config=settings.engine, temp_directory=spill)
        self.spill = spill
        return self.con

    def close(self) -> None:
        """Close the connection; on Spark stop the session and its JVM (idempotent)."""
        con, self.con = self.con, None
        try:
            if con is not None and self.spark is None:
                engine.close(con, self.spill)
            elif con is not None:
                con.close()
        finally:
            if self.spark is not None:
                self.spark.stop()


def start_engine_run(settings: NightlyConfig, work: Path) -> EngineRun:
    """The night's engine before validation, as ``settings.engine.kind`` says: on Spark the session
    is started now (spill folder under ``work``), on DuckDB nothing starts until ``connect``."""
    if settings.engine.kind != "spark":
        return EngineRun(settings.engine.kind)
    from features.spark_engine import start_spark

    spark = start_spark(settings.spark, work)
    logger.info("engine: Spark %s started, spill folder %s", settings.spark.master, spark.spill)
    return EngineRun("spark", spill=spark.spill, spark=spark)


def _spark_connection(spark: SparkRun, validated: Validated) -> Any:
    from features.spark_engine import SparkConnection

    if spark.spark is None:
        raise RuntimeError("the night's Spark session was stopped before the steps could connect")
    con = SparkConnection(spark.spark, validated.clean_paths, spill_dir=spark.spill)
    logger.info("engine session: Spark, spill folder %s", spark.spill)
    return con


def engine_record(run: EngineRun) -> dict[str, str]:
    """MLflow tags of the night's engine: its kind, and on Spark the running session's settings."""
    tags = {ENGINE_TAG: run.kind}
    if run.session is not None:
        from features.spark_engine import session_settings

        settings = session_settings(run.session)
        tags.update({f"{SPARK_CONF_PREFIX}{key}": value[:5000] for key, value in sorted(settings.items())})
    return tags
