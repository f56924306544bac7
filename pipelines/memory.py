"""The memory of a night's steps: each task's peak RSS of the run's processes, against a budget.

``MemoryWatch`` samples the RSS of the run's process tree (the nightly and its children, the
local Prefect server included) in a daemon thread, charges it to every task running at the
time, warns once per task that goes over ``flow.step_memory_budget`` and, with
``flow.enforce_memory_budget``, fails such a task as it ends (``MemoryBudgetExceeded``). The
same thread writes a line when a task has run ``SILENCE_SECONDS`` with nothing logged, naming
the steps open inside it (``features.progress.open_steps``: a fit, a query, a write, with their
counts and seconds), so no stretch of a night is silent. ``pipelines.runtime.RunClock`` owns one
per flow run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from features.errors import SiyuError
from features.progress import ProgressUpdate, duration, open_steps

logger = logging.getLogger(__name__)

MEMORY_EVERY_SECONDS = 1.0
# A log quiet this long while a task runs gets a line with the task's time and memory.
SILENCE_SECONDS = 9.0
_GIB = 2**30


class MemoryBudgetExceeded(SiyuError):
    """A task went over ``flow.step_memory_budget`` while ``flow.enforce_memory_budget`` is on."""


def process_tree_rss() -> int:
    """The summed RSS of this process and its descendants (the local Prefect server included; pages
    they share count once per process, as the benchmark counts them)."""
    import psutil

    root = psutil.Process()
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        processes = [root]
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:  # a child that ended meanwhile
            continue
    return total


class MemoryWatch:
    """The peak RSS of the process tree while each task runs, sampled every ``every`` seconds in a
    daemon thread (and as each task begins and ends), checked against ``budget`` bytes.

    Tasks running side by side share the process, so each is charged the tree's RSS while it ran.
    The first sample over the budget logs a warning naming the task; ``check`` fails the task as it
    ends when ``enforce`` is on (the step is not stopped midway: its memory is already in use).
    While a task runs and the log has been quiet for ``silence`` seconds (a long fit, a big write),
    the watch logs the task's time and memory and the open steps (``steps``), so no stretch of a
    night is silent.
    """

    def __init__(
        self,
        budget: int | None = None,
        enforce: bool = False,
        every: float = MEMORY_EVERY_SECONDS,
        silence: float = SILENCE_SECONDS,
        sample: Callable[[], int] = process_tree_rss,
        clock: Callable[[], float] = time.monotonic,
        steps: Callable[[], list[ProgressUpdate]] = open_steps,
    ) -> None:
        self.budget, self.enforce = budget, enforce
        self.peaks: dict[str, int] = {}
        self.over: dict[str, int] = {}
        self._every, self._silence = every, silence
        self._sample, self._clock, self._steps = sample, clock, steps
        self._running: dict[str, float] = {}
        self._last_line = clock()
        self._lock = threading.Lock()

    def begin(self, task: str) -> None:
        with self._lock:
            self._running[task] = self._clock()
        self.sample_now()

    def end(self, task: str) -> None:
        self.sample_now()
        with self._lock:
            self._running.pop(task, None)

    def heard(self) -> None:
        """A log line was written (the silence starts again)."""
        self._last_line = self._clock()

    def sample_now(self) -> int:
        """Charge the tree's RSS now to every running task; warn once per task over the budget."""
        rss = self._sample()
        newly_over: list[str] = []
        with self._lock:
            for task in self._running:
                self.peaks[task] = max(self.peaks.get(task, 0), rss)
                if self.budget is not None and rss > self.budget:
                    if task not in self.over:
                        newly_over.append(task)
                    self.over[task] = max(self.over.get(task, 0), rss)
        for task in newly_over:
            logger.warning(
                "%s: the run's processes use %.2f GiB, over flow.step_memory_budget %.2f GiB%s",
                task,
                rss / _GIB,
                (self.budget or 0) / _GIB,
                " (the night fails when the step ends)" if self.enforce else "",
            )
        return rss

    def tick(self) -> None:
        """One sample; a line with the running tasks' time and memory after ``silence`` quiet seconds."""
        rss = self.sample_now()
        now = self._clock()
        with self._lock:
            running = [(task, now - began, self.peaks.get(task, 0)) for task, began in self._running.items()]
        if running and now - self._last_line >= self._silence:
            tasks = ", ".join(
                f"{task} {duration(age)} (peak {peak / _GIB:.2f} GiB)" for task, age, peak in running
            )
            inside = "; ".join(update.line() for update in self._steps())
            logger.info(
                "still running: %s; the run's processes use %.2f GiB now%s",
                tasks,
                rss / _GIB,
                f"; in progress: {inside}" if inside else "",
            )
            self.heard()

    def check(self, task: str) -> None:
        """Fail ``task`` when it went over the budget and the budget is enforced."""
        if not self.enforce or task not in self.over:
            return
        raise MemoryBudgetExceeded(
            f"{task}: the run's processes used {self.over[task] / _GIB:.2f} GiB, over "
            f"flow.step_memory_budget {(self.budget or 0) / _GIB:.2f} GiB"
            "\n  fix: give the step more memory (flow.step_memory_budget), lower engine.memory_limit, "
            "or set flow.enforce_memory_budget: false to only warn"
        )

    def summary(self) -> dict[str, Any]:
        """``task_peak_rss_bytes``, ``memory_budget_bytes`` and ``tasks_over_memory_budget`` (peaks)."""
        with self._lock:
            return {
                "task_peak_rss_bytes": dict(sorted(self.peaks.items())),
                "memory_budget_bytes": self.budget,
                "tasks_over_memory_budget": dict(sorted(self.over.items())),
            }

    @contextmanager
    def watching(self) -> Iterator[MemoryWatch]:
        """Sample in a daemon thread, and hear the log's lines, for the block."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(self._every):
                try:
                    self.tick()
                except Exception:  # the watch never breaks the run it watches
                    logger.debug("memory watch failed", exc_info=True)

        ear = _LineHeard(self)
        logging.getLogger().addHandler(ear)
        thread = threading.Thread(target=loop, name="siyu-memory-watch", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=5)
            logging.getLogger().removeHandler(ear)


class _LineHeard(logging.Handler):
    """Tells a ``MemoryWatch`` that a line reached the log."""

    def __init__(self, watch: MemoryWatch) -> None:
        super().__init__(level=logging.INFO)
        self._watch = watch

    def emit(self, record: logging.LogRecord) -> None:
        self._watch.heard()
