"""The run's engine session, chosen by ``engine.kind``: DuckDB (one machine) or Spark (docs/spark.md).

``open_engine_run`` opens what the night's steps query: a DuckDB connection over the clean
tables (``features.engine.connect``: orders read once, shared views, ``engine:`` memory limit
and spill folder), or a Spark session (``spark:``) and a ``features.spark_engine.SparkConnection``
over the same files. The steps take either as ``con`` and run the same SQL on it (the feature
builders' DuckDB SQL, transpiled for Spark). ``EngineRun.close`` closes the connection, stops
the Spark session and its JVM, and removes the spill folder; it may be called twice.
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
    """One night's engine: the connection the steps share and what closing it must undo."""

    kind: str
    con: Any
    spill: Path | None
    spark: SparkRun | None = None

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


def open_engine_run(validated: Validated, settings: NightlyConfig, work: Path) -> EngineRun:
    """The night's engine over ``validated``'s clean tables, as ``settings.engine.kind`` says."""
    if settings.engine.kind == "spark":
        return _open_spark(validated, settings, work)
    spill = settings.engine.spill_dir(work)
    logger.info(
        "engine session: DuckDB, memory limit %s, spill folder %s", settings.engine.memory_limit, spill
    )
    con = engine.connect(validated.clean_paths, config=settings.engine, temp_directory=spill)
    return EngineRun("duckdb", con, spill)


def _open_spark(validated: Validated, settings: NightlyConfig, work: Path) -> EngineRun:
    from features.spark_engine import SparkConnection, start_spark

    spark = start_spark(settings.spark, work)
    try:
        con = SparkConnection(spark.spark, validated.clean_paths, spill_dir=spark.spill)
    except BaseException:
        spark.stop()
        raise
    logger.info("engine session: Spark %s, spill folder %s", settings.spark.master, spark.spill)
    return EngineRun("spark", con, spark.spill, spark)


def engine_record(run: EngineRun) -> dict[str, str]:
    """MLflow tags of the night's engine: its kind, and on Spark the running session's settings."""
    tags = {ENGINE_TAG: run.kind}
    if run.spark is not None and run.spark.spark is not None:
        from features.spark_engine import session_settings

        settings = session_settings(run.spark.spark)
        tags.update({f"{SPARK_CONF_PREFIX}{key}": value[:5000] for key, value in sorted(settings.items())})
    return tags
