"""The Spark feature engine: a Spark session from the config, and a connection the builders take.

``spark_session(config, work_dir)`` starts a ``SparkSession`` (UI off, session time zone UTC,
spill folder under the work folder, Arrow transfers on) and stops it at the end of the block,
also on error, together with the JVM pyspark launched for it (``stop_jvm``); ``start_spark``
gives the same as a ``SparkRun`` to stop later (the nightly's engine tasks).
``SparkConnection(spark, tables)`` registers the contract tables (Parquet files or folders, or
pandas frames) as temporary views (orders cached at its first query), adds the engine's shared views
(``features.engine.SHARED_VIEWS``) and answers the part of DuckDB's connection API the feature
builders use: ``execute(sql, params)`` returning a result with ``df()``, ``fetchone()``,
``fetchall()`` and ``to_arrow_table()``, ``has_table`` and ``cursor`` (a handle for another
thread). ``COPY (query) TO 'file' (FORMAT parquet)`` is written by Spark as a Parquet folder, and
``current_setting('temp_directory')`` answers the spill folder. The SQL a builder hands it is its
DuckDB SQL, transpiled on the way in (``features.transpile``): one definition, two engines.

A table macro call (``order_baskets($end)``) becomes a cached temporary view per distinct
argument; ``CREATE TEMP TABLE`` a cached temporary view, dropped (and uncached) by ``DROP TABLE``.
Nothing is fetched at run time: ``spark.jars.packages`` and its kin are refused in the config.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.columns import Table
from features.engine import MATERIALIZED, SHARED_VIEWS, TABLE_MACROS, TableSource, count_table_read
from features.errors import SiyuError
from features.progress import Progress, progress

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# pyspark and SQLGlot (features.transpile) are imported where a Spark run needs them, so that the
# config model here costs a DuckDB night nothing at start.

logger = logging.getLogger(__name__)

DEFAULT_SPILL_FOLDER = "spark_tmp"
_MEMORY = re.compile(r"^\d+[kmgtp]b?$", re.IGNORECASE)
_MASTER = re.compile(r"^(local(\[(\*|\d+)(,\s*\d+)?\])?|yarn|(spark|k8s|mesos)://\S+)$")
# Keys the named fields set: giving them under ``conf`` too would leave two sources of truth.
_NAMED_KEYS = {
    "spark.master": "master",
    "spark.app.name": "app_name",
    "spark.driver.memory": "driver_memory",
    "spark.executor.memory": "executor_memory",
    "spark.sql.shuffle.partitions": "shuffle_partitions",
}
# Keys that make Spark download jars at start: a nightly must run with what is installed.
_FETCHING_KEYS = (
    "spark.jars.packages",
    "spark.jars.repositories",
    "spark.jars.ivy",
    "spark.jars.ivySettings",
)


class SparkConfig(BaseModel):
    """The Spark session of a run (``engine.kind: spark``): master, memory, partitions, extra conf."""

    model_config = ConfigDict(extra="forbid")

    master: str = Field(
        "local[*]", description="Spark master: local[N], local[*], yarn, spark://host:port or k8s://url."
    )
    app_name: str = Field("siyu", min_length=1, description="Application name shown by the cluster.")
    driver_memory: str = Field("4g", description="spark.driver.memory, e.g. 4g or 512m.")
    executor_memory: str = Field("4g", description="spark.executor.memory, e.g. 4g or 512m.")
    shuffle_partitions: int = Field(8, gt=0, description="spark.sql.shuffle.partitions.")
    conf: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Further Spark settings, key: value (keys start with 'spark.'), e.g. spark.local.dir.",
    )

    @field_validator("master")
    @classmethod
    def _known_master(cls, value: str) -> str:
        if not _MASTER.match(value.strip()):
            raise ValueError(
                f"{value!r} is not a Spark master URL "
                "fix: write local[2], local[*], yarn, spark://host:7077 or k8s://https://host:443"
            )
        return value.strip()

    @field_validator("driver_memory", "executor_memory")
    @classmethod
    def _memory_amount(cls, value: str) -> str:
        if not _MEMORY.match(value.strip()):
            raise ValueError(
                f"{value!r} is not a Spark amount of memory fix: write a number and a unit, e.g. 4g or 512m"
            )
        return value.strip()

    @field_validator("conf")
    @classmethod
    def _extra_settings(cls, conf: dict[str, Any]) -> dict[str, Any]:
        for key in conf:
            if not key.startswith("spark."):
                raise ValueError(f"{key!r} is not a Spark setting fix: Spark settings start with 'spark.'")
            if key in _NAMED_KEYS:
                field = _NAMED_KEYS[key]
                raise ValueError(
                    f"{key} has a key of its own in this section, {field} "
                    f"fix: set spark.{field} and remove {key} from spark.conf"
                )
            if key == "spark.sql.session.timeZone":
                raise ValueError(
                    f"{key} is UTC: the contract's times carry no zone and are read as they are "
                    f"fix: remove {key} from spark.conf"
                )
            if key in _FETCHING_KEYS:
                raise ValueError(
                    f"{key} makes Spark download jars at start, and a nightly runs offline "
                    "fix: remove it; put the jars on the machine and name them in spark.jars"
                )
        return conf

    def settings(self, spill_dir: Path | None = None) -> dict[str, str]:
        """Every Spark setting this config makes, as strings (what MLflow records)."""
        settings = {
            "spark.master": self.master,
            "spark.app.name": self.app_name,
            "spark.driver.memory": self.driver_memory,
            "spark.executor.memory": self.executor_memory,
            "spark.sql.shuffle.partitions": str(self.shuffle_partitions),
            # The night brings the interaction data to the driver (the fits run there); Spark's
            # default of 1g stopped a 30M-line night (docs/spark.md). spark.conf may set another.
            "spark.driver.maxResultSize": self.driver_memory,
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.sql.legacy.parquet.nanosAsLong": "true",
        }
        if spill_dir is not None:
            settings["spark.local.dir"] = str(spill_dir)
        settings.update({key: _setting(value) for key, value in self.conf.items()})
        return settings


class SparkUnavailableError(SiyuError):
    """Spark cannot start here: pyspark or a Java runtime is missing."""


class SparkFailed(SiyuError):
    """A Spark job failed; the message is Spark's own, read while the session's JVM was up.

    A Py4J or PySpark error reads its message from the JVM each time it is printed, and a run stops
    its session (the JVM with it) before its error is reported: printed then, the error would say
    "Connection refused" instead of what failed. ``SparkRun.readable`` makes this in time."""


_JAVA_FRAME = re.compile(r"^\s*(at |\.\.\. \d+ more)")
_SUMMARY_LINES = 12


@contextmanager
def spark_session(config: SparkConfig, work_dir: Path) -> Iterator[SparkSession]:
    """A Spark session for a run, stopped at the end of the block (also on error), its JVM with it;
    its spill folder ``<work_dir>/spark_tmp`` (unless ``conf`` names ``spark.local.dir``) is removed then.
    A Spark error leaves the block as ``SparkFailed`` (``SparkRun.readable``)."""
    run = start_spark(config, work_dir)
    try:
        yield run.spark
    except BaseException as error:
        raise_readable(error, run)
        raise
    finally:
        run.stop()


def raise_readable(error: BaseException, run: SparkRun | None) -> None:
    """Raise ``run.readable(error)`` in place of ``error`` when it is a Spark error (call it in an
    ``except`` block, before the session stops); return otherwise, for the caller to re-raise."""
    readable = run.readable(error) if run is not None else None
    if readable is not None:
        raise readable from None


def known_fix(text: str, spill: Path | str = "spark.local.dir", driver_memory: str = "") -> str | None:
    """What to do about a Spark failure whose message names a cause that fails the same way again
    (a full spill disk, a full heap, results over ``spark.driver.maxResultSize``); None otherwise."""
    if "No space left on device" in text:
        return (
            f"Spark's spill folder {spill} (spark.local.dir) ran out of disk: free space "
            "there, or set spark.conf 'spark.local.dir' to a folder on a larger disk"
        )
    if "OutOfMemoryError" in text or "Java heap space" in text:
        return (
            f"the JVM ran out of heap: raise spark.driver_memory (now {driver_memory or 'unset'}; "
            "in local mode the tasks run in the driver) or spark.shuffle_partitions, so that "
            "each task holds less"
        )
    if "spark.driver.maxResultSize" in text:
        return (
            "the rows brought to the driver (e.g. the interaction data, which the model fits read "
            "there: docs/spark.md) are over spark.driver.maxResultSize (spark.driver_memory unless "
            "spark.conf sets it): raise spark.driver_memory, or set spark.conf "
            "'spark.driver.maxResultSize' (0: no limit)"
        )
    return None


def fails_again(error: BaseException) -> bool:
    """Whether ``error`` is a Spark failure whose cause ``known_fix`` names: a retry would meet it
    again. Read while the session's JVM is up (a Py4J error reads its message from it)."""
    from py4j.protocol import Py4JError
    from pyspark.errors.exceptions.captured import CapturedException

    if not isinstance(error, Py4JError | CapturedException):
        return False
    try:
        return known_fix(str(error)) is not None
    except Exception:  # the JVM is gone: nothing more to read
        return False


class SparkRun:
    """A started Spark session and what stopping it must undo: the session, its JVM, the spill folder.

    ``start_spark`` makes one; ``stop`` (idempotent) stops the session, ends the JVM that pyspark
    launched for it (``stop_jvm``: pyspark keeps it alive for the next session otherwise) and
    removes the spill folder when the run made it. The nightly's engine tasks hold one
    (``pipelines.run_engine``); ``spark_session`` is the same as a block."""

    def __init__(
        self, spark: SparkSession | None, spill: Path, own_spill: bool, driver_memory: str = ""
    ) -> None:
        self.spark = spark
        self.spill = spill
        self.own_spill = own_spill
        self.driver_memory = driver_memory
        self.watch: SparkTaskWatch | None = None

    def readable(self, error: BaseException) -> SparkFailed | None:
        """``error`` as a ``SparkFailed`` holding Spark's message and what to do, when it reads its
        message from the JVM (a Py4J or PySpark error: call this while the session runs); None
        for any other error, which prints as it is."""
        from py4j.protocol import Py4JError
        from pyspark.errors.exceptions.captured import CapturedException

        if not isinstance(error, Py4JError | CapturedException):
            return None
        try:
            text = str(error)
        except Exception:  # the JVM is already gone: its message with it
            text = f"{type(error).__name__} (Spark's message was lost with its JVM)"
        message = text.split("JVM stacktrace:")[0].splitlines()
        kept = [line for line in message if line.strip() and not _JAVA_FRAME.match(line)]
        summary = "\n  ".join(kept[:_SUMMARY_LINES])
        fix = known_fix(text, self.spill, self.driver_memory)
        fix = fix or "the Spark log above holds the failed task's whole trace; fix what it names"
        return SparkFailed(f"Spark failed: {summary}\n  fix: {fix}")

    def stop(self) -> None:
        """Stop the session and its JVM, remove the run's own spill folder."""
        spark, self.spark = self.spark, None
        watch, self.watch = self.watch, None
        try:
            if watch is not None:
                watch.stop()  # before the JVM it asks goes
            if spark is not None:
                spark.stop()
                stop_jvm()
        finally:
            if self.own_spill:
                shutil.rmtree(self.spill, ignore_errors=True)


class SparkTaskWatch:
    """The session's running Spark jobs as one progress step a person can follow (issue 18):
    ``Spark tasks: 1,234 / 1,600 tasks (77%), 2m3s, ETA 37s`` in the log and in the nightly's
    heartbeat, where the step running them (a validation, a feature query, the scoring pass) would
    otherwise say nothing for minutes at 10M lines.

    A thread asks Spark's status tracker every ``every`` seconds. The step opens when a job runs
    and closes once no job has run for ``idle`` seconds, so a run of short queries is one step; its
    tasks are those of every stage that has started meanwhile (a stage Spark skips, its shuffle
    output reused, never starts and is not counted), so the total grows as jobs come: the ETA is
    for the stages known so far."""

    STEP = "Spark tasks"

    def __init__(self, tracker: Any, every: float = 2.0, idle: float = 10.0) -> None:
        self._tracker = tracker
        self._every, self._idle = every, idle
        self._stages: dict[int, tuple[int, int]] = {}  # stage id: (tasks, completed)
        self._step: ExitStack | None = None
        self._bar: Progress | None = None
        self._last_busy = 0.0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spark-task-watch", daemon=True)

    def start(self) -> SparkTaskWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the watch (its step says done) and wait for its thread."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def poll(self, now: float) -> None:
        """One look at the running stages: open, advance or close the step."""
        active = list(self._tracker.getActiveStageIds())
        for stage in {*active, *self._stages}:
            info = self._tracker.getStageInfo(stage)
            if info is not None:
                self._stages[stage] = (info.numTasks, info.numCompletedTasks)
        if active:
            self._last_busy = now
            if self._bar is None:
                self._step = ExitStack()
                self._bar = self._step.enter_context(progress(self.STEP, unit="tasks"))
        if self._bar is None:
            return
        self._bar.set_total(sum(tasks for tasks, _ in self._stages.values()))
        self._bar.advance(sum(done for _, done in self._stages.values()) - self._bar.done)
        if not active and now - self._last_busy >= self._idle:
            self._close()

    def _close(self) -> None:
        step, self._step, self._bar = self._step, None, None
        self._stages.clear()
        if step is not None:
            step.close()

    def _run(self) -> None:
        try:
            while not self._stopped.wait(self._every):
                self.poll(time.monotonic())
        except Exception:  # the session is going: progress never breaks the run it watches
            logger.debug("the Spark task watch stopped", exc_info=True)
        finally:
            self._close()


def start_spark(config: SparkConfig, work_dir: Path) -> SparkRun:
    """Start the run's Spark session (``config.settings``, spill folder under ``work_dir`` unless
    ``conf`` names ``spark.local.dir``); on a failed start the spill folder is removed again."""
    spill = Path(config.conf["spark.local.dir"]) if "spark.local.dir" in config.conf else None
    own_spill = spill is None
    spill = spill or work_dir / DEFAULT_SPILL_FOLDER
    spill.mkdir(parents=True, exist_ok=True)
    run = SparkRun(None, spill, own_spill, config.driver_memory)
    try:
        run.spark = _start(config.settings(spill))
        run.watch = SparkTaskWatch(run.spark.sparkContext.statusTracker()).start()
    except BaseException:
        run.stop()
        raise
    return run


def stop_jvm(timeout: float = 30.0) -> None:
    """End the JVM pyspark launched (its gateway), so that no Java child outlives the session.

    ``SparkSession.stop`` stops Spark but keeps the gateway JVM alive, a child of this process,
    for the next session. The gateway server exits when its stdin closes (PySpark's
    ``PythonGatewayServer`` watches it); if it has not within ``timeout`` seconds it is killed.
    The next session launches a new one. A JVM that pyspark did not launch (a ``spark-submit``
    driver: no ``proc``) is left to its owner."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:
        return
    process = getattr(gateway, "proc", None)
    try:
        gateway.shutdown()
    except Exception:
        logger.debug("the Spark gateway was already closed", exc_info=True)
    SparkContext._gateway = None
    SparkContext._jvm = None
    if process is None:
        return
    if process.stdin is not None:
        process.stdin.close()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        logger.warning("the Spark JVM (pid %s) did not exit in %.0f s: killing it", process.pid, timeout)
        process.kill()
        process.wait(timeout=timeout)


def session_settings(spark: SparkSession) -> dict[str, str]:
    """The running session's Spark settings (``spark.*`` keys), for MLflow's run record."""
    return {key: value for key, value in spark.sparkContext.getConf().getAll() if key.startswith("spark.")}


def _start(settings: Mapping[str, str]) -> SparkSession:
    if shutil.which("java") is None and not _java_home():
        raise SparkUnavailableError(
            "engine.kind spark: no Java runtime found (java is not on PATH and JAVA_HOME is unset)\n"
            "  fix: install Java 17 (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    try:
        from pyspark.sql import SparkSession
    except ImportError as error:
        raise SparkUnavailableError(
            "engine.kind spark: pyspark is not installed\n  fix: pip install -r requirements.lock"
        ) from error
    if settings["spark.master"].startswith("local"):
        # Python workers (validation's clean-table writer, the scoring pass's mapInPandas) run this
        # interpreter, whose environment has siyu's packages (pyspark's default is whatever `python3`
        # is on PATH); on a cluster the executors' Python, with siyu installed, is set there
        # (PYSPARK_PYTHON or spark.pyspark.python).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    for key, value in settings.items():
        builder = builder.config(key, value)
    logger.info(
        "starting Spark (%s, driver memory %s)", settings["spark.master"], settings["spark.driver.memory"]
    )
    return builder.getOrCreate()


def _java_home() -> bool:
    home = os.environ.get("JAVA_HOME")
    return bool(home) and (Path(home) / "bin" / "java").exists()


def _setting(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- the connection the builders take ------------------------------------------------------------


class SparkResult:
    """The rows of one query, in the shapes the builders ask DuckDB's results for."""

    def __init__(self, frame: DataFrame | None) -> None:
        self._frame = frame

    def frame(self) -> DataFrame:
        """The Spark frame of the rows (for writing them without collecting them)."""
        if self._frame is None:
            raise ValueError("this statement returns no rows")
        return self._frame

    def df(self) -> pd.DataFrame:
        """The rows as a pandas frame (through Arrow)."""
        return self._frame.toPandas() if self._frame is not None else pd.DataFrame()

    def to_arrow_table(self) -> pa.Table:
        """The rows as an Arrow table; timestamps in nanoseconds, as DuckDB gives the contract's."""
        if self._frame is None:
            return pa.table({})
        table = self._frame.toArrow()
        fields = [
            pa.field(field.name, pa.timestamp("ns", field.type.tz))
            if pa.types.is_timestamp(field.type)
            else field
            for field in table.schema
        ]
        return table.cast(pa.schema(fields))

    def fetchall(self) -> list[tuple[Any, ...]]:
        """Every row as a tuple."""
        return [tuple(row) for row in self._frame.collect()] if self._frame is not None else []

    def fetchone(self) -> tuple[Any, ...] | None:
        """The first row as a tuple, or None."""
        if self._frame is None:
            return None
        rows = self._frame.take(1)
        return tuple(rows[0]) if rows else None


class SparkConnection:
    """The contract tables as Spark temporary views, queried with the builders' DuckDB SQL.

    The views live in a new session of ``spark`` (``newSession``: the same Spark context and
    cache), so each connection sees only its own tables."""

    def __init__(
        self, spark: SparkSession, tables: Mapping[str, TableSource], spill_dir: Path | None = None
    ) -> None:
        unknown = set(tables) - set(Table.ALL)
        if unknown:
            raise ValueError(f"not contract tables: {sorted(unknown)}; expected some of {Table.ALL}")
        # A session of its own (same SparkContext and cache, own temporary views), so that two
        # connections, e.g. with and without the optional tables, do not see each other's views.
        self.spark = spark.newSession()
        # DuckDB settings the builders read (current_setting): where a query may write scratch files
        self.settings = {"temp_directory": str(spill_dir) if spill_dir is not None else ""}
        self._lock = threading.Lock()  # cursors of one connection create macro views from two threads
        self._views: set[str] = set()
        self._cached: set[str] = set()
        for name, source in tables.items():
            self._register(name, source)
        if Table.ORDERS in tables:
            from features.transpile import to_spark

            for name, select in SHARED_VIEWS.items():
                self.spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {name} AS {to_spark(select)}")

    def execute(self, sql: str, params: Mapping[str, object] | list[object] | None = None) -> SparkResult:
        """Run one DuckDB statement on Spark (transpiled, parameters bound as literals).

        ``COPY (query) TO 'path' (FORMAT parquet)`` writes the query's rows as a Parquet folder at
        ``path``, which a later ``read_parquet('path')`` reads back."""
        from features.transpile import copy_target, to_spark

        copy = copy_target(sql)
        if copy is not None:
            query, path = copy
            self.execute(query, params).frame().write.mode("overwrite").parquet(path)
            return SparkResult(None)
        spark_sql = to_spark(
            sql, params, macros=TABLE_MACROS, macro_view=self._macro_view, settings=self.settings
        )
        statement = spark_sql.lstrip().upper()
        if statement.startswith("CREATE TEMPORARY VIEW"):
            return self._create_cached_view(spark_sql)
        if statement.startswith("DROP TABLE"):
            return self._drop(spark_sql)
        return SparkResult(self.spark.sql(spark_sql))

    def cursor(self) -> _Cursor:
        """A handle for another thread (DuckDB's ``cursor``): Spark sessions take queries from
        several threads, so its queries go to this connection, and closing it closes nothing."""
        return _Cursor(self)

    def has_table(self, table: str) -> bool:
        """Whether a contract table of that name was registered."""
        return table in self._views

    def close(self) -> None:
        """Uncache and drop this connection's views (the session itself belongs to ``spark_session``)."""
        for name in self._cached:
            self.spark.catalog.uncacheTable(name)
        for name in {*self._views, *self._cached}:
            self.spark.catalog.dropTempView(name)
        self._cached.clear()
        self._views.clear()

    def _register(self, name: str, source: TableSource) -> None:
        if isinstance(source, pd.DataFrame):
            frame = self.spark.createDataFrame(source)
        else:
            frame = self.spark.read.parquet(str(source))
            frame = _nanos_as_timestamps(frame, _nanosecond_columns(Path(source)))
        frame.createOrReplaceTempView(name)
        self._views.add(name)
        if name in MATERIALIZED and not isinstance(source, pd.DataFrame):
            # as DuckDB's connect reads orders once into a table: cached at the first query
            self.spark.catalog.cacheTable(name)
            self._cached.add(name)
            count_table_read(name)

    def _macro_view(self, macro: str, arguments: list[str]) -> str:
        digest = hashlib.sha1("\x1f".join(arguments).encode()).hexdigest()[:12]
        name = f"{macro}__{digest}"
        with self._lock:
            if name not in self._cached:
                self._create_macro_view(name, macro, arguments)
        return name

    def _create_macro_view(self, name: str, macro: str, arguments: list[str]) -> None:
        from features.transpile import substitute

        definition = TABLE_MACROS[macro]
        select = substitute(definition.select, dict(zip(definition.params, arguments, strict=True)))
        self.spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {name} AS {select}")
        self.spark.catalog.cacheTable(name)
        self._cached.add(name)

    def _create_cached_view(self, spark_sql: str) -> SparkResult:
        self.spark.sql(spark_sql)
        name = spark_sql.split()[3]
        self.spark.catalog.cacheTable(name)
        self._cached.add(name)
        return SparkResult(None)

    def _drop(self, spark_sql: str) -> SparkResult:
        name = spark_sql.split()[-1]
        if name in self._cached:
            self.spark.catalog.uncacheTable(name)
            self._cached.discard(name)
        self.spark.catalog.dropTempView(name)
        return SparkResult(None)


class _Cursor:
    """``SparkConnection.cursor``: queries go to the connection; ``close`` keeps its views."""

    def __init__(self, connection: SparkConnection) -> None:
        self._connection = connection
        self.spark = connection.spark

    def execute(self, sql: str, params: Mapping[str, object] | list[object] | None = None) -> SparkResult:
        """``SparkConnection.execute`` of the connection."""
        return self._connection.execute(sql, params)

    def has_table(self, table: str) -> bool:
        """``SparkConnection.has_table`` of the connection."""
        return self._connection.has_table(table)

    def cursor(self) -> _Cursor:
        """Another handle on the same connection."""
        return _Cursor(self._connection)

    def close(self) -> None:
        """Nothing to close: the views belong to the connection the cursor came from."""


# pandas writes timestamps in nanoseconds, a Parquet type Spark does not read as a timestamp: the
# session reads such columns as longs (spark.sql.legacy.parquet.nanosAsLong) and the view turns
# them into TIMESTAMP_NTZ at microseconds, DuckDB's TIMESTAMP (the contract's times are whole seconds).


def _nanosecond_columns(source: Path) -> list[str]:
    """Names of the timestamp[ns] columns of a Parquet file, or of the first part of a folder."""
    import pyarrow.parquet as pq

    part = source if source.is_file() else next(iter(sorted(source.rglob("*.parquet"))), None)
    if part is None:
        return []
    schema = pq.read_schema(part)
    return [
        field.name
        for field in schema
        if pa.types.is_timestamp(field.type) and field.type.unit == "ns" and field.type.tz is None
    ]


def _nanos_as_timestamps(frame: DataFrame, columns: list[str]) -> DataFrame:
    if not columns:
        return frame
    from pyspark.sql import functions as F

    return frame.withColumns(
        {
            column: F.timestamp_micros(F.floor(F.col(column) / 1000)).cast("timestamp_ntz")
            for column in columns
        }
    )
