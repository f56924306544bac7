"""The Prefect runtime a nightly run needs: task options, a local API that dies with its run, a tidy log.

With no ``PREFECT_API_URL``, Prefect would start its own temporary API server in a child
process and stop it at exit (``atexit``). A ``kill -9`` of the run skips ``atexit``: the
child is reparented to pid 1 and keeps ``<work_dir>/prefect`` (its SQLite database) open.
Prefect offers no setting against that, so ``local_prefect`` starts the same server
itself (as Prefect's ``SubprocessASGIServer`` does: the same command and start-up checks) behind a
small launcher whose watchdog thread ends the server as soon as its parent process is
gone (its parent pid changes). ``PREFECT_API_URL`` then points at it for the block, and the
server is stopped when the block ends. The launcher migrates Prefect's database (seconds of CPU
on a fresh work dir) in a fork of itself while it imports the server app, instead of after it.

``terminate_as_interrupt`` turns SIGTERM (systemd, ``kill``, a scheduler's timeout) into an
exception, so that Prefect marks the flow run CRASHED and runs its ``on_crashed`` hooks
(the MLflow run is marked FAILED) instead of the process vanishing mid-step.

``FlowConfig`` (the config's ``flow:`` section) holds the flow's and the tasks' timeouts, whether a
failed night resumes, and whether segmentation and the quality gate run side by side;
``TaskLimits`` applies it to a task. ``forward_module_logs`` sends the log lines of siyu's own
modules (features, models, pipelines, ...) to the flow run in the Prefect UI as well.

``timed`` and ``RunClock`` time every task of a flow run (seconds per task, wall, peak RSS, the
Parquet reads of each table, and each task's peak memory against ``flow.step_memory_budget``
through ``pipelines.memory.MemoryWatch``), for ``run_timings.json``; ``ProgressArtifacts`` turns the
``features.progress`` updates of a flow run into Prefect progress artifacts (one per step,
updated at most every ``ARTIFACT_EVERY_SECONDS``), for a person following a deployment in the UI.
"""

from __future__ import annotations

import contextvars
import functools
import gc
import logging
import os
import queue
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ByteSize, ConfigDict, Field

from features.catalog import Folder
from features.columns import Table
from features.engine import table_reads
from features.errors import SiyuError
from features.progress import ProgressUpdate, add_listener
from pipelines import store_templates
from pipelines.memory import MemoryWatch

logger = logging.getLogger(__name__)

EPHEMERAL_STARTUP_SECONDS = 180
# siyu's own packages: their module loggers reach the Prefect UI during a flow run.
SIYU_PACKAGES = ("features", "sources", "models", "artifact", "reporting", "pipelines")

# Runs uvicorn (argv[5:]) and exits as soon as the process that started it (argv[1]) is gone.
# With argv[2] == "migrate" (#18) it first brings Prefect's database up to date as the server's start
# would (its lifespan's run_migrations: the database interface's create_db) in a fork of itself,
# while it imports the rest of the server app, and serves only once the fork has succeeded (else it
# exits with the fork's code). The fork shares the modules both need, imported once before it.
# argv[3]: the database file; argv[4]: where the fork keeps the migrated new database as this
# installation's template (pipelines.store_templates), or "-".
_LAUNCHER = """
import os, sys, threading, time
def watch(parent):
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
threading.Thread(target=watch, args=(int(sys.argv[1]),), daemon=True).start()
if sys.argv[2] == "migrate":
    from prefect.server.database import provide_database_interface
    launcher = os.getpid()
    migration = os.fork()
    if migration == 0:
        threading.Thread(target=watch, args=(launcher,), daemon=True).start()
        try:
            import asyncio
            asyncio.run(provide_database_interface().create_db())
            if sys.argv[4] != "-":
                from pipelines.store_templates import save
                from pathlib import Path
                save(Path(sys.argv[3]), Path(sys.argv[4]))
        except BaseException:
            import traceback
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    import prefect.server.api.server
    code = os.waitstatus_to_exitcode(os.waitpid(migration, 0)[1])
    if code:
        sys.exit(code if code > 0 else 1)
from uvicorn.main import main
sys.argv = ["uvicorn", *sys.argv[5:]]
main()
"""


def _retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry file trouble, never a ``SiyuError`` (bad data or config fails the same way again) nor
    a Spark failure whose cause is known to fail again (``features.spark_engine.fails_again``)."""
    try:
        state.result()
    except SiyuError:
        return False
    except Exception as error:
        if "py4j" in sys.modules:  # a Spark session may have raised it
            from features.spark_engine import fails_again

            return not fails_again(error)
        return True
    return True


def file_task() -> dict[str, Any]:
    """Options of a task that touches files: two retries 5 s apart, none on a user error, no cache."""
    from prefect.cache_policies import NO_CACHE

    return {
        "retries": 2,
        "retry_delay_seconds": 5,
        "retry_condition_fn": _retry_unless_user_error,
        "cache_policy": NO_CACHE,
    }


def resumable_task() -> dict[str, Any]:
    """Options of a long task that writes files into ``outputs/``: retried like ``file_task``, its
    result persisted and cached for the night (``pipelines.resume.cache_key``), so that a retried
    or rerun night skips it once it has completed."""
    from pipelines.resume import cache_key

    options = file_task()
    del options["cache_policy"]
    return {**options, "cache_key_fn": cache_key, "persist_result": True}


def pure_task() -> dict[str, Any]:
    """Options of a task that must run exactly once: no retries, no cache."""
    from prefect.cache_policies import NO_CACHE

    return {"cache_policy": NO_CACHE}


class FlowConfig(BaseModel):
    """How the nightly flow is driven (``flow:``): timeouts, resuming, concurrency."""

    model_config = ConfigDict(extra="forbid")

    timeout_minutes: float = Field(
        360, gt=0, description="The whole flow run stops (TimedOut) after this many minutes."
    )
    task_timeout_minutes: float = Field(
        120, gt=0, description="Any one task stops (TimedOut) after this many minutes."
    )
    resume: bool = Field(
        True,
        description="A rerun of a failed night (same as-of, data, config, work dir) skips the steps "
        "that completed (segmentation, quality gate, recommenders).",
    )
    concurrent_steps: bool | Literal["auto"] = Field(
        "auto",
        description="Run segmentation and the quality gate side by side: true, false, or auto "
        "(when at least concurrent_min_free_gb of memory is available).",
    )
    concurrent_min_free_gb: float = Field(
        8.0, ge=0, description="auto: the memory that must be available to run the two side by side."
    )
    # --- step memory budget (#18) ---
    step_memory_budget: ByteSize | None = Field(
        ByteSize(8_000_000_000),
        description="Each task's peak RSS of the run's process tree (e.g. 8GB, 6GiB; empty = no "
        "budget): a task that goes over is named in the log, run_timings.json and MLflow.",
    )
    enforce_memory_budget: bool = Field(
        False, description="A task that went over step_memory_budget fails the night when it ends."
    )
    # --- end step memory budget ---

    @property
    def timeout_seconds(self) -> float:
        return self.timeout_minutes * 60

    @property
    def task_timeout_seconds(self) -> float:
        return self.task_timeout_minutes * 60

    def side_by_side(self, available_bytes: int | None = None) -> bool:
        """Whether segmentation and the quality gate run concurrently now."""
        if self.concurrent_steps != "auto":
            return bool(self.concurrent_steps)
        if available_bytes is None:
            import psutil

            available_bytes = psutil.virtual_memory().available
        return available_bytes >= self.concurrent_min_free_gb * 2**30


@dataclass(frozen=True)
class TaskLimits:
    """The options a night gives every task it calls: the task timeout (``flow.task_timeout_minutes``)
    and, for the results it persists, storage under the work directory."""

    timeout_seconds: float
    result_storage: Path

    def __call__(self, task: Any) -> Any:
        """``task`` with these options (a copy; the module-level task is not changed)."""
        return task.with_options(timeout_seconds=self.timeout_seconds, result_storage=self.result_storage)

    def in_thread(self, task: Any) -> Any:
        """``task`` for a worker thread: the result storage, no timeout (a thread cannot be interrupted)."""
        return task.with_options(result_storage=self.result_storage)


class NightTimedOut(TimeoutError):
    """The night ran past ``flow.timeout_minutes`` (Prefect marks the flow run TimedOut)."""


@contextmanager
def flow_deadline(config: FlowConfig) -> Iterator[None]:
    """``flow.timeout_minutes`` for a flow run whose flow object carries another timeout.

    ``run_nightly`` sets the flow's own ``timeout_seconds`` from the config; a deployment served by
    ``siyu serve`` runs the flow as its module defines it (the default timeout), so the config's
    limit is enforced here, with Prefect's timeout helper, for such runs only.
    """
    from prefect.context import FlowRunContext
    from prefect.utilities.timeout import timeout

    context = FlowRunContext.get()
    if context is None or context.flow is None or context.flow.timeout_seconds == config.timeout_seconds:
        yield
        return
    with timeout(config.timeout_seconds, NightTimedOut):
        yield


def mlflow_run_link(tracking_uri: str, experiment_id: str, run_id: str) -> tuple[str, str]:
    """(link, text) to an MLflow run: its page when ``tracking_uri`` is a server, else the store file."""
    if tracking_uri.startswith(("http://", "https://")):
        link = f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        return link, f"MLflow run {run_id}"
    if tracking_uri.startswith("sqlite:///"):
        store = Path(tracking_uri.removeprefix("sqlite:///"))
        if not store.is_absolute():
            store = store.absolute()
        return store.as_uri(), f"MLflow run {run_id} in {store}"
    return tracking_uri, f"MLflow run {run_id} in {tracking_uri}"


def run_link_artifacts(
    as_of: object,
    tracking_uri: str,
    experiment_id: str,
    run_id: str,
    outputs: Path,
    report: Path,
    export_dir: Path,
) -> None:
    """The flow run's artifacts: links to its MLflow run, its HTML report and its export folder, and a
    summary titled with the as-of date (headline numbers and the same links)."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    from reporting.report import summary_table

    mlflow_link, mlflow_text = mlflow_run_link(tracking_uri, experiment_id, run_id)
    links = {
        "siyu-mlflow-run": (mlflow_link, mlflow_text, "The night's MLflow run"),
        "siyu-report": (report.absolute().as_uri(), f"report {report.absolute()}", "The night's HTML report"),
        "siyu-export": (export_dir.absolute().as_uri(), f"export {export_dir.absolute()}", "The export"),
    }
    for key, (link, text, description) in links.items():
        create_link_artifact(link=link, link_text=text, key=key, description=f"{description}, as of {as_of}")
    headlines = summary_table(outputs)
    lines = [f"# siyu nightly, as of {as_of}", "", "| area | measure | value |", "|---|---|---|"]
    lines += [f"| {row['area']} | {row['measure']} | {row['value']} |" for row in headlines]
    lines += ["", *(f"- [{text}]({link})" for link, text, _ in links.values())]
    create_markdown_artifact(
        "\n".join(lines) + "\n", key="siyu-nightly-summary", description=f"siyu nightly, as of {as_of}"
    )
    create_table_artifact(
        headlines, key="siyu-nightly-headlines", description=f"headline numbers, as of {as_of}"
    )


@contextmanager
def forward_module_logs(packages: tuple[str, ...] = SIYU_PACKAGES) -> Iterator[None]:
    """Send the log records of ``packages`` to the flow run in the Prefect API for the block.

    Prefect's ``PREFECT_LOGGING_EXTRA_LOGGERS`` does the same but is read once at ``import prefect``;
    this adds Prefect's API handler to the package loggers directly (records still reach the
    console through the root logger, once). Lines logged outside a run's context (a thread of
    siyu's own) stay on the console only. A package logger left at NOTSET under a WARNING root
    (a served run, where no CLI set the level) is set to INFO for the block.
    """
    handler = _ApiHandlerOutsideRunsQuiet()
    changed: list[tuple[logging.Logger, int]] = []
    for name in packages:
        package_logger = logging.getLogger(name)
        package_logger.addHandler(handler)
        if package_logger.level == logging.NOTSET and package_logger.getEffectiveLevel() > logging.INFO:
            changed.append((package_logger, package_logger.level))
            package_logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for name in packages:
            logging.getLogger(name).removeHandler(handler)
        for package_logger, level in changed:
            package_logger.setLevel(level)


def _api_handler_class() -> type[logging.Handler]:
    from prefect.logging.handlers import APILogHandler

    return APILogHandler


class _ApiHandlerOutsideRunsQuiet(logging.Handler):
    """Prefect's ``APILogHandler``, silent (no warning) for a record made outside a run's context."""

    def __init__(self) -> None:
        super().__init__()
        self._api = _api_handler_class()()

    def emit(self, record: logging.LogRecord) -> None:
        from prefect.exceptions import MissingContextError

        try:
            from prefect.context import get_settings_context

            if not get_settings_context().settings.logging.to_api.enabled:
                return
            from prefect.logging.handlers import emit_api_log

            emit_api_log(self._api.prepare(record))
        except MissingContextError:
            return
        except Exception:
            self.handleError(record)


@contextmanager
def local_prefect(work: Path, meanwhile: Callable[[], object] | None = None) -> Iterator[None]:
    """With no PREFECT_API_URL: Prefect's home under ``work/prefect`` and a temporary API server
    that ends with this process; no telemetry; a quiet log.

    The server takes seconds to come up in its own process; ``meanwhile`` (work the run would do
    anyway, e.g. imports and opening the MLflow store) runs in this process while it does. It is
    only a head start: an error in it is logged at DEBUG and left for the step that needs it.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    quiet_prefect_client()
    if PREFECT_API_URL.value():
        _head_start(meanwhile)
        yield
        return
    home = Path(os.environ.get("PREFECT_HOME") or work / Folder.PREFECT).absolute()
    home.mkdir(parents=True, exist_ok=True)
    updates = {
        "home": home,
        "server.analytics_enabled": False,
        # The first start creates Prefect's database (about 15 s on 2 idle cores); Prefect's
        # default of 20 s is too tight on a busy machine.
        "server.ephemeral.startup_timeout_seconds": EPHEMERAL_STARTUP_SECONDS,
    }
    with (
        temporary_settings(updates=updates),
        _server_of_this_process(meanwhile) as api_url,
        temporary_settings(updates={"api.url": api_url}),
    ):
        yield


@contextmanager
def _server_of_this_process(meanwhile: Callable[[], object] | None = None) -> Iterator[str]:
    """Prefect's temporary API server, started behind the parent-death launcher; yields its API URL.

    Started as Prefect's ``SubprocessASGIServer`` starts it (the same uvicorn command, a free
    port, a new port if the server exits at once, then polling ``/health`` until
    ``server.ephemeral.startup_timeout_seconds``), but without importing that module, which loads
    the whole server app (FastAPI, its database models: seconds) into a process that only talks
    to it over HTTP. ``meanwhile`` runs while the server comes up in its own process."""
    server = _LocalServer.launch()
    try:
        _head_start(meanwhile)
        server.until_healthy()
        yield server.api_url
    finally:
        _flush_run_logs()
        server.stop()


def _head_start(meanwhile: Callable[[], object] | None) -> None:
    """Run ``meanwhile``; an error is the business of the step that needs the work (it meets it again)."""
    if meanwhile is None:
        return
    started = time.perf_counter()
    try:
        meanwhile()
    except Exception:
        logger.debug("head start while the Prefect server starts failed", exc_info=True)
    logger.debug("head start while the Prefect server starts: %.1fs", time.perf_counter() - started)


@contextmanager
def paused_collection() -> Iterator[None]:
    """No automatic garbage collection in the block, for imports: they create hundreds of
    thousands of objects that live as long as the process, so the full collections they trigger
    find almost nothing (eight of them during a nightly's imports). Restored however the block ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def freeze_long_lived() -> None:
    """Collect what is garbage now, then move every object still alive (the imported modules,
    classes and functions: about half a million objects once pandas, Prefect, MLflow and PyMC are
    in) to the collector's permanent generation, for the rest of the process.

    Without it every full collection of the night walks that heap again, and so does the
    interpreter's last collection at exit: on a busy 2-core machine a 2,000-consumer night spent
    20 s in 13 full collections and 28 s exiting. Objects created afterwards are collected as
    before; a frozen object is still freed when its last reference goes, only a frozen reference
    cycle that becomes garbage stays (imports do not become garbage).
    """
    gc.collect()
    gc.freeze()


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class _LocalServer:
    """The temporary API server's process and port."""

    process: subprocess.Popen[Any]
    port: int

    @classmethod
    def launch(cls) -> _LocalServer:
        port = _free_port()
        return cls(_launch_server(port), port)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def until_healthy(self, tries: int = 3) -> None:
        """Wait until the server answers ``/health``; relaunch on a new port when it exits at once
        (the port was taken meanwhile)."""
        import httpx
        from prefect.settings import get_current_settings

        timeout = get_current_settings().server.ephemeral.startup_timeout_seconds
        deadline = time.monotonic() + timeout
        with httpx.Client() as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    tries -= 1
                    if tries <= 0:
                        raise RuntimeError(
                            f"the local Prefect API server exited with code {self.process.returncode}"
                        )
                    self.port = _free_port()
                    self.process = _launch_server(self.port)
                try:
                    if client.get(f"{self.api_url}/health", timeout=5).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"the local Prefect API server did not answer within {timeout:.0f} s")

    def stop(self) -> None:
        """Stop the server as Prefect stops its own: terminate, then kill after 5 s."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _flush_run_logs() -> None:
    """Send the run's queued log lines to the API while it still runs (else: "Error logging to API")."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    try:
        APILogWorker.drain_all(timeout=5)
        EventsWorker.drain_all(timeout=5)
    except Exception as error:  # the run's own log is on stderr already
        logging.getLogger(__name__).debug("cannot flush Prefect's run logs: %s", error)


def _launch_server(port: int) -> subprocess.Popen[Any]:
    """Prefect's uvicorn command (as ``SubprocessASGIServer`` runs it) through ``_LAUNCHER``.

    When Prefect would migrate its database as the server starts (``server.database.migrate_on_start``,
    the default), the launcher runs the same migrations (the database interface's ``create_db``, as
    the server's start would) in a fork of itself while it imports the rest of the server app, and
    the server starts with ``migrate_on_start`` off: on a fresh work dir each takes seconds of CPU,
    which two cores now spend side by side instead of one after the other (on Linux).

    A new database is copied from this installation's template when there is one, and then not
    migrated at all; else the fork keeps the database it migrated as the template
    (``pipelines.store_templates``)."""
    import prefect
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    uvicorn_args = [
        *("--app-dir", str(prefect.__module_path__.parent)),
        *("--factory", "prefect.server.api.server:create_app"),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--log-level", "error", "--lifespan", "on"),
    ]
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **settings.to_environment_variables(exclude_unset=True),
    }
    database, template = _database_template(settings)
    seeded = store_templates.seed(database, template) if database is not None else False
    # a fork after imports is safe on Linux; elsewhere (macOS) the server migrates as it starts
    migrate = settings.server.database.migrate_on_start and sys.platform == "linux" and not seeded
    if migrate or seeded:
        env["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] = "false"
    keep = template if migrate and database is not None and not database.exists() else None
    launcher = [_LAUNCHER, str(os.getpid()), "migrate" if migrate else "-", str(database), str(keep or "-")]
    # -P: the current folder stays off sys.path, so a file there named like a module (inspect.py,
    # say, in the folder cron starts from) cannot shadow the standard library in the server
    return subprocess.Popen([sys.executable, "-P", "-c", *launcher, *uvicorn_args], env=env)


def _database_template(settings: Any) -> tuple[Path | None, Path | None]:
    """The Prefect server's SQLite file (None: another database) and the installation's template
    of it (``pipelines.store_templates``; None: templates off)."""
    import prefect

    url = settings.server.database.connection_url
    database = store_templates.sqlite_file(url.get_secret_value()) if url is not None else None
    if database is None:
        return None, None
    migrations = Path(prefect.__module_path__) / "server" / "database" / "_migrations" / "versions" / "sqlite"
    return database, store_templates.template_path("prefect", prefect.__version__, migrations)


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises ``KeyboardInterrupt`` in the main thread for the block (Prefect: CRASHED)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"terminated by signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def quiet_prefect_client() -> None:
    """Keep the log to what the run does: no line per API request, no temporary-server notes,
    task names on task lines, and no traceback for a user error (the CLI prints its message)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    _add_filter_once(logging.getLogger("prefect"), _DropTemporaryServerNotes)
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        _add_filter_once(logging.getLogger(name), _TidyRunRecords)


def _add_filter_once(target: logging.Logger, kind: type[logging.Filter]) -> None:
    if not any(isinstance(existing, kind) for existing in target.filters):
        target.addFilter(kind())


class _TidyRunRecords(logging.Filter):
    """Prefix a task's lines with its name; drop the traceback of a ``SiyuError``."""

    def filter(self, record: logging.LogRecord) -> bool:
        task_name = getattr(record, "task_name", None)
        if task_name and not getattr(record, "_siyu_named", False):
            record.msg = f"{task_name}: {record.msg}"
            record._siyu_named = True
        if record.exc_info and isinstance(record.exc_info[1], SiyuError):
            record.exc_info, record.exc_text = None, None
        return True


class _DropTemporaryServerNotes(logging.Filter):
    """Hide Prefect's 'Starting/Stopping temporary server' notes (logged straight to ``prefect``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "temporary server" not in record.getMessage()


# --- seconds per task, peak memory and Parquet reads of one flow run -----------------------------------

Fn = TypeVar("Fn", bound=Callable[..., Any])


@dataclass
class RunClock:
    """What one flow run spent: seconds per task (retries included), since when, and the reads of
    each table's files counted by ``features.engine.count_table_read`` since it started."""

    started: float = field(default_factory=time.perf_counter)
    started_at: float = field(default_factory=time.time)  # the same moment, as a Unix time
    reads_before: dict[str, float] = field(default_factory=table_reads)
    tasks: dict[str, float] = field(default_factory=dict)
    task_reads: dict[str, dict[str, float]] = field(default_factory=dict)
    memory: MemoryWatch = field(default_factory=lambda: MemoryWatch())

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, task_name: str, seconds: float, reads: dict[str, float] | None = None) -> None:
        """Add ``seconds`` (and the table ``reads`` made meanwhile) to ``task_name``'s account
        (tasks running side by side each count the reads made while they ran)."""
        with self._lock:
            self.tasks[task_name] = round(self.tasks.get(task_name, 0.0) + seconds, 3)
            for table, count in (reads or {}).items():
                if count:
                    counted = self.task_reads.setdefault(task_name, {})
                    counted[table] = round(counted.get(table, 0) + count, 3)

    def reads(self) -> dict[str, float]:
        """Passes over each table's files since the run started (validation's and the engine's;
        reading one part of a directory table counts its share of the rows)."""
        now = table_reads()
        counted = {table: round(now[table] - self.reads_before.get(table, 0), 3) for table in now}
        return {table: count for table, count in sorted(counted.items()) if count}

    def summary(self, rows: dict[str, int]) -> dict[str, Any]:
        """The content of ``run_timings.json``: tasks, wall_seconds, started_at (the clock's start as
        a Unix time: a benchmark outside the process tells the start-up by it), peak_rss_bytes, ..."""
        reads = self.reads()
        return {
            "tasks": dict(self.tasks),
            "wall_seconds": round(time.perf_counter() - self.started, 3),
            "started_at": round(self.started_at, 3),
            "peak_rss_bytes": peak_rss_bytes(),
            "orders_scans": reads.get(Table.ORDERS, 0),
            "table_reads": reads,
            "task_reads": {name: dict(counts) for name, counts in self.task_reads.items()},
            "rows": dict(sorted(rows.items())),
            **self.memory.summary(),
        }


_CLOCKS: dict[str, RunClock] = {}
_CLOCKS_LOCK = threading.Lock()


@contextmanager
def run_clock(flow_run_id: str, config: FlowConfig | None = None) -> Iterator[RunClock]:
    """Time the tasks (``timed``) of flow run ``flow_run_id`` for the block, and watch their memory
    against ``config``'s step memory budget (``MemoryWatch``)."""
    config = config or FlowConfig()
    budget = int(config.step_memory_budget) if config.step_memory_budget else None
    clock = RunClock(memory=MemoryWatch(budget, config.enforce_memory_budget))
    with _CLOCKS_LOCK:
        _CLOCKS[flow_run_id] = clock
    try:
        with clock.memory.watching():
            yield clock
    finally:
        with _CLOCKS_LOCK:
            _CLOCKS.pop(flow_run_id, None)


def timed(task_name: str, fn: Fn) -> Fn:
    """``fn`` adding its seconds, the table reads it made and its peak memory to its flow run's
    ``RunClock`` as ``task_name`` (when one is open); with ``flow.enforce_memory_budget`` a task
    that went over the budget fails as it ends (``MemoryBudgetExceeded``)."""

    @functools.wraps(fn)
    def timed_call(*args: Any, **kwargs: Any) -> Any:
        clock = _clock_of_this_run()
        if clock is not None:
            clock.memory.begin(task_name)
        started, reads_before = time.perf_counter(), table_reads()
        try:
            result = fn(*args, **kwargs)
        finally:
            if clock is not None:
                clock.memory.end(task_name)
                reads = {table: n - reads_before.get(table, 0) for table, n in table_reads().items()}
                clock.add(task_name, time.perf_counter() - started, reads)
        if clock is not None:
            clock.memory.check(task_name)
        return result

    return timed_call  # type: ignore[return-value]


def _clock_of_this_run() -> RunClock | None:
    from prefect.runtime import flow_run

    run_id = flow_run.id
    with _CLOCKS_LOCK:
        return _CLOCKS.get(str(run_id)) if run_id else None


def peak_rss_bytes() -> int:
    """The largest resident set this process has had (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


# --- Prefect progress artifacts for the long steps ----------------------------------------------------

ARTIFACT_EVERY_SECONDS = 10.0


class ProgressArtifacts:
    """A ``features.progress`` listener: one Prefect progress artifact per step, created at its first
    update and updated at most every ``every`` seconds (and when the step finishes).

    The calls to Prefect's API go out from a thread of their own, in the order they were decided,
    so a step never waits on the API: under load one call took tens of seconds, and a churn
    candidate's thread waited for it before its next fit (session 12). They run in the context of
    the thread that made the listener (the flow's, so the artifacts belong to its run). ``close``
    sends what is queued (at most ``CLOSE_SECONDS``) and stops the thread.

    ``create`` and ``update`` are Prefect's ``create_progress_artifact`` and
    ``update_progress_artifact`` unless given (tests pass fakes). A step without a total shows 0%
    until it finishes.
    """

    CLOSE_SECONDS = 30.0

    def __init__(
        self,
        create: Callable[..., UUID] | None = None,
        update: Callable[..., UUID] | None = None,
        every: float = ARTIFACT_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if create is None or update is None:
            from prefect.artifacts import create_progress_artifact, update_progress_artifact

            create, update = create_progress_artifact, update_progress_artifact
        self._create, self._update = create, update
        self._every, self._clock = every, clock
        self._sent: dict[str, float] = {}  # step -> when its last call was queued
        self._lock = threading.Lock()
        self._calls: queue.SimpleQueue[tuple[str, float, str] | None] = queue.SimpleQueue()
        self._context = contextvars.copy_context()
        self._sender = threading.Thread(target=self._send, name="siyu-progress-artifacts", daemon=True)
        self._sender.start()

    def __call__(self, update: ProgressUpdate) -> None:
        percent = 100.0 if update.finished else round(100.0 * (update.fraction or 0.0), 1)
        now = self._clock()
        with self._lock:
            last = self._sent.get(update.step)
            if last is not None and not update.finished and now - last < self._every:
                return
            self._sent[update.step] = now
        self._calls.put((update.step, percent, update.line()))

    def close(self) -> None:
        """Send what is queued (waiting ``CLOSE_SECONDS`` at most) and stop the sending thread."""
        self._calls.put(None)
        self._sender.join(self.CLOSE_SECONDS)

    def _send(self) -> None:
        artifacts: dict[str, UUID] = {}
        while (call := self._calls.get()) is not None:
            step, percent, text = call
            try:
                if step not in artifacts:
                    artifacts[step] = self._context.run(
                        self._create, progress=percent, key=artifact_key(step), description=text
                    )
                else:
                    self._context.run(self._update, artifacts[step], progress=percent, description=text)
            except Exception:  # the UI's mirror of a step never breaks the night
                logger.debug("progress artifact for %s failed", step, exc_info=True)


def artifact_key(step: str) -> str:
    """A Prefect artifact key for ``step``: lowercase letters, digits and dashes only."""
    slug = re.sub(r"[^a-z0-9]+", "-", step.lower()).strip("-")
    return f"siyu-progress-{slug or 'step'}"


@contextmanager
def progress_artifacts(listener: ProgressArtifacts | None = None) -> Iterator[None]:
    """Mirror every ``features.progress`` update into Prefect progress artifacts for the block."""
    listener = listener or ProgressArtifacts()
    remove = add_listener(listener)
    try:
        yield
    finally:
        remove()
        listener.close()
