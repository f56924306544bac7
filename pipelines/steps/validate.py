"""The validate step: find the data (or simulate the demo), validate it, write clean tables.

Like every module in ``pipelines.steps``, a plain function over paths that the CLI commands
and the flow call: it reads its inputs from disk, calls the pure core and writes its outputs,
returning paths and small summaries (never large frames).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from features.asof import AsOf
from features.catalog import StepFile
from features.columns import Table
from features.reader import TableInput, read_dataset
from features.store import clean_path, write_validated
from features.validate import (
    ValidationResult,
    check_orders_before_as_of,
    check_quarantine_limits,
    latest_order_date,
)
from pipelines.config import NightlyConfig
from sources.simulator import simulate

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Validated:
    """The outcome of load + validate: the as-of, where the clean tables are, what was set aside
    (small: counts per table and reason). The flow's tasks hand this on."""

    as_of: AsOf
    out_dir: Path
    clean_paths: dict[str, Path]
    result: ValidationResult

    @property
    def clean_dir(self) -> Path:
        return next(iter(self.clean_paths.values())).parent

    @property
    def report_path(self) -> Path:
        return self.out_dir / StepFile.VALIDATION_REPORT

    @property
    def tables(self) -> list[str]:
        """The input tables this run read."""
        return sorted(self.clean_paths)


def resolve_data_dir(config: NightlyConfig, data_dir: Path | None) -> Path:
    """The data directory to read: the one given, the configured one, or the demo set.

    The demo set is simulated into ``config.data.demo_dir`` the first time it is needed.
    """
    chosen = data_dir or config.data.dir
    if chosen is not None:
        return chosen
    demo_dir = config.data.demo_dir
    if not (demo_dir / f"{Table.ORDERS}.parquet").exists():
        logger.info("no data directory given: simulating the demo data set into %s", demo_dir)
        simulate(demo_dir, config.demo)
    return demo_dir


def load_and_validate(
    data_dir: Path,
    as_of: AsOf | date | None,
    config: NightlyConfig,
    out_dir: Path,
    spark: SparkSession | None = None,
) -> Validated:
    """Read ``data_dir``, quarantine bad rows, write clean tables under ``out_dir``.

    ``as_of`` defaults to the day of the latest order. With ``engine.kind: spark`` the rows are
    read, checked and written by Spark (``validate_on_spark``) on ``spark``, the night's running
    session, or on a session of its own when none is given, with the same outputs; on DuckDB
    tables are read and validated ``config.validation.chunk_rows`` rows at a time (``spark`` is
    not used). Rows after the as-of date are left out of the clean tables (counted, not
    quarantined). Raises ``QuarantineLimitExceeded`` after writing, so the quarantine files can
    be read.
    """
    raw = read_dataset(data_dir, config.data)
    settings = config.validation
    if as_of is None:
        as_of = latest_order_date(raw, chunk_rows=settings.chunk_rows, timezone=settings.timezone)
    run_as_of = AsOf.of(as_of)
    if config.engine.kind == "spark":
        result = validate_on_spark(raw, run_as_of, config, out_dir, spark)
    else:
        result = write_validated(raw, run_as_of, out_dir, config=settings)
    clean_paths = {report.table: clean_path(out_dir, report.table) for report in result.reports}
    check_orders_before_as_of(result)
    check_quarantine_limits(result, settings)
    return Validated(run_as_of, out_dir, clean_paths, result)


def validate_on_spark(
    raw: dict[str, TableInput],
    as_of: AsOf,
    config: NightlyConfig,
    out_dir: Path,
    spark: SparkSession | None = None,
) -> ValidationResult:
    """Validate on ``spark`` (the nightly's engine session, which the night's steps then use: a
    Spark night starts Spark once), writing what ``write_validated`` writes
    (``features.spark_validate``). Without one (``siyu validate`` and the other single-step
    commands) on a session of its own from ``config.spark``, stopped with its JVM at the end."""
    from features.spark_engine import spark_session
    from features.spark_validate import spark_validate

    if spark is not None:
        return spark_validate(spark, raw, as_of, out_dir, config=config.validation)
    with spark_session(config.spark, out_dir) as own:
        return spark_validate(own, raw, as_of, out_dir, config=config.validation)
