"""The Prefect runtime a nightly run needs: task options, a local API that dies with its run, a tidy log.

With no ``PREFECT_API_URL``, Prefect would start its own temporary API server in a child
process and stop it at exit (``atexit``). A ``kill -9`` of the run skips ``atexit``: the
child is reparented to pid 1 and keeps ``<work_dir>/prefect`` (its SQLite database) open.
Prefect offers no setting against that, so ``local_prefect`` starts the same server
itself (Prefect's ``SubprocessASGIServer``, the same command and start-up checks) behind a
small launcher whose watchdog thread ends the server as soon as its parent process is
gone (its parent pid changes). ``PREFECT_API_URL`` then points at it for the block, and the
server is stopped when the block ends.

``terminate_as_interrupt`` turns SIGTERM (systemd, ``kill``, a scheduler's timeout) into an
exception, so that Prefect marks the flow run CRASHED and runs its ``on_crashed`` hooks
(the MLflow run is marked FAILED) instead of the process vanishing mid-step.

``timed`` and ``RunClock`` time every task of a flow run (seconds per task, wall, peak RSS and
the Parquet reads of each table), for ``run_timings.json``; ``ProgressArtifacts`` turns the
``features.progress`` updates of a flow run into Prefect progress artifacts (one per step,
updated at most every ``ARTIFACT_EVERY_SECONDS``), for a person following a deployment in the UI.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from features.catalog import Folder
from features.columns import Table
from features.engine import table_reads
from features.errors import SiyuError
from features.progress import ProgressUpdate, add_listener

EPHEMERAL_STARTUP_SECONDS = 180

# Runs uvicorn (argv[2:]) and exits as soon as the process that started it (argv[1]) is gone.
_LAUNCHER = """
import os, sys, threading, time
parent = int(sys.argv[1])
def watch():
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
from uvicorn.main import main
sys.argv = ["uvicorn", *sys.argv[2:]]
main()
"""


def _retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry file trouble, never a ``SiyuError`` (bad data or config fails the same way again)."""
    try:
        state.result()
    except SiyuError:
        return False
    except Exception:
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


def pure_task() -> dict[str, Any]:
    """Options of a task that must run exactly once: no retries, no cache."""
    from prefect.cache_policies import NO_CACHE

    return {"cache_policy": NO_CACHE}


@contextmanager
def local_prefect(work: Path) -> Iterator[None]:
    """With no PREFECT_API_URL: Prefect's home under ``work/prefect`` and a temporary API server
    that ends with this process; no telemetry; a quiet log."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    quiet_prefect_client()
    if PREFECT_API_URL.value():
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
        _server_of_this_process() as api_url,
        temporary_settings(updates={"api.url": api_url}),
    ):
        yield


@contextmanager
def _server_of_this_process() -> Iterator[str]:
    """Prefect's temporary API server, started behind the parent-death launcher; yields its API URL."""
    from prefect.server.api.server import SubprocessASGIServer

    class ServerOfThisProcess(SubprocessASGIServer):
        """Prefect's server with its start-up checks and port retries; only the command differs."""

        _instances: ClassVar[dict[int | None, SubprocessASGIServer]] = {}

        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            return _launch_server(self.port)

    server = ServerOfThisProcess()
    server.start()
    try:
        yield server.api_url
    finally:
        _flush_run_logs()
        server.stop()


def _flush_run_logs() -> None:
    """Send the run's queued log lines to the API while it still runs (else: "Error logging to API")."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    try:
        APILogWorker.drain_all(timeout=5)
        EventsWorker.drain_all(timeout=5)
    except Exception as error:  # the run's own log is on stderr already
        logging.getLogger(__name__).debug("cannot flush Prefect's run logs: %s", error)


def _launch_server(port: int | None) -> subprocess.Popen[Any]:
    """Prefect's uvicorn command (as ``SubprocessASGIServer`` runs it) through ``_LAUNCHER``."""
    import prefect
    from prefect.settings import get_current_settings

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
        **get_current_settings().to_environment_variables(exclude_unset=True),
    }
    return subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(os.getpid()), *uvicorn_args], env=env)


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
    reads_before: dict[str, float] = field(default_factory=table_reads)
    tasks: dict[str, float] = field(default_factory=dict)
    task_reads: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, task_name: str, seconds: float, reads: dict[str, float] | None = None) -> None:
        """Add ``seconds`` (and the table ``reads`` made meanwhile) to ``task_name``'s account."""
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
        """The content of ``run_timings.json``: tasks, wall_seconds, peak_rss_bytes, orders_scans, ..."""
        reads = self.reads()
        return {
            "tasks": dict(self.tasks),
            "wall_seconds": round(time.perf_counter() - self.started, 3),
            "peak_rss_bytes": peak_rss_bytes(),
            "orders_scans": reads.get(Table.ORDERS, 0),
            "table_reads": reads,
            "task_reads": {name: dict(counts) for name, counts in self.task_reads.items()},
            "rows": dict(sorted(rows.items())),
        }


_CLOCKS: dict[str, RunClock] = {}
_CLOCKS_LOCK = threading.Lock()


@contextmanager
def run_clock(flow_run_id: str) -> Iterator[RunClock]:
    """Time the tasks (``timed``) of flow run ``flow_run_id`` for the block."""
    clock = RunClock()
    with _CLOCKS_LOCK:
        _CLOCKS[flow_run_id] = clock
    try:
        yield clock
    finally:
        with _CLOCKS_LOCK:
            _CLOCKS.pop(flow_run_id, None)


def timed(task_name: str, fn: Fn) -> Fn:
    """``fn`` adding its seconds and the table reads it made to its flow run's ``RunClock`` as
    ``task_name`` (when one is open; tasks of one run run one after the other)."""

    @functools.wraps(fn)
    def timed_call(*args: Any, **kwargs: Any) -> Any:
        started, reads_before = time.perf_counter(), table_reads()
        try:
            return fn(*args, **kwargs)
        finally:
            clock = _clock_of_this_run()
            if clock is not None:
                reads = {table: n - reads_before.get(table, 0) for table, n in table_reads().items()}
                clock.add(task_name, time.perf_counter() - started, reads)

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

    ``create`` and ``update`` are Prefect's ``create_progress_artifact`` and
    ``update_progress_artifact`` unless given (tests pass fakes). A step without a total shows 0%
    until it finishes.
    """

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
        self._artifacts: dict[str, tuple[UUID, float]] = {}
        self._lock = threading.Lock()

    def __call__(self, update: ProgressUpdate) -> None:
        percent = 100.0 if update.finished else round(100.0 * (update.fraction or 0.0), 1)
        now = self._clock()
        with self._lock:
            known = self._artifacts.get(update.step)
            if known is None:
                artifact_id = self._create(
                    progress=percent, key=artifact_key(update.step), description=update.line()
                )
            elif update.finished or now - known[1] >= self._every:
                artifact_id = self._update(known[0], progress=percent, description=update.line())
            else:
                return
            self._artifacts[update.step] = (artifact_id, now)


def artifact_key(step: str) -> str:
    """A Prefect artifact key for ``step``: lowercase letters, digits and dashes only."""
    slug = re.sub(r"[^a-z0-9]+", "-", step.lower()).strip("-")
    return f"siyu-progress-{slug or 'step'}"


@contextmanager
def progress_artifacts(listener: ProgressArtifacts | None = None) -> Iterator[None]:
    """Mirror every ``features.progress`` update into Prefect progress artifacts for the block."""
    remove = add_listener(listener or ProgressArtifacts())
    try:
        yield
    finally:
        remove()
