"""Progress a person can follow on a long step: counts, rate and ETA, on a terminal or in a log.

Every long loop (validation chunks, model fits, score blocks, list writing) reports through
one mechanism::

    with progress("validating orders", total=rows, unit="rows") as bar:
        for chunk in chunks:
            ...
            bar.advance(len(chunk))

On a terminal (stderr is a TTY) the bar is a ``rich.progress`` bar; otherwise a plain log
line (``logging`` at INFO) is written at most every ``LOG_EVERY_SECONDS`` and at the end,
so that no stretch of a long step is silent in a log file or a Prefect run's logs. Extra
observers (the nightly flow registers one that updates a Prefect progress artifact under a
deployment) are added with ``add_listener``; this floor imports nothing above it.

A step that cannot count (one library call: a model fit, one SQL query) is still a step:
``progress("fitting X")`` with no total and no ``advance`` logs its seconds when it ends, and
``open_steps`` lists every step open at the moment, on any thread, so the nightly's watch
(``pipelines.memory``) can say what is running when the log has been quiet.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

logger = logging.getLogger("siyu.progress")

# At most this long between log lines while updates arrive: a loop whose steps take up to ~5 s
# (an ALS iteration at 10M lines) then leaves no stretch over ~10 s without a line (issue 18).
LOG_EVERY_SECONDS = 5.0
# The unit of the loops over consumers (scoring, tuning, lists).
CONSUMERS = "consumers"  # vocabulary: a value, not a column


@dataclass(frozen=True)
class ProgressUpdate:
    """One observation of a step's progress, as a listener receives it."""

    step: str
    done: float
    total: float | None
    unit: str
    elapsed: float
    finished: bool
    # Units done and seconds passed since the first ``advance``: the ETA's rate. The time before
    # the first advance (opening files, planning a query) is not a rate, and counting it made the
    # first lines' ETAs hours long for steps of seconds. None: the rate over ``elapsed``.
    rate_done: float | None = None
    rate_seconds: float | None = None

    @property
    def fraction(self) -> float | None:
        """Share done in [0, 1], or None when the total is unknown."""
        if not self.total:
            return None
        return min(1.0, self.done / self.total)

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the rate so far, or None without a total, when finished, or before there
        is a rate (no progress yet; with ``rate_done``, none since the first advance)."""
        fraction = self.fraction
        if fraction is None or fraction <= 0 or self.finished or self.total is None:
            return None
        if self.rate_done is None or self.rate_seconds is None:
            return self.elapsed * (1.0 - fraction) / fraction
        if self.rate_done <= 0:
            return None
        return self.rate_seconds * max(0.0, self.total - self.done) / self.rate_done

    def line(self) -> str:
        """``validating orders: 3,000,000 / 10,000,000 rows (30%), 12s, ETA 28s``."""
        done = f"{self.done:,.0f}"
        if self.total:
            share = 100 * (self.fraction or 0)
            text = f"{self.step}: {done} / {self.total:,.0f} {self.unit} ({share:.0f}%), "
        elif self.done:
            text = f"{self.step}: {done} {self.unit}, "
        else:  # a step that does not count: its time only
            text = f"{self.step}: "
        text += duration(self.elapsed)
        if self.finished:
            return text + ", done"
        eta = self.eta_seconds
        return text + (f", ETA {duration(eta)}" if eta is not None else "")


Listener = Callable[[ProgressUpdate], None]
_LISTENERS: list[Listener] = []
_OPEN: list[Progress] = []  # the steps open now, oldest first, on every thread
_LOCK = threading.Lock()


def open_steps() -> list[ProgressUpdate]:
    """Where every open step stands now (oldest first), whichever thread runs it."""
    with _LOCK:
        handles = list(_OPEN)
    return [handle._update(finished=False) for handle in handles]


def add_listener(listener: Listener) -> Callable[[], None]:
    """Call ``listener`` on every update (throttled like the log lines); returns its remover."""
    with _LOCK:
        _LISTENERS.append(listener)

    def remove() -> None:
        with _LOCK:
            if listener in _LISTENERS:
                _LISTENERS.remove(listener)

    return remove


@dataclass
class Progress:
    """The handle ``progress`` yields: ``advance(n)`` as work gets done, ``total`` may be set late."""

    step: str
    total: float | None
    unit: str
    _started: float = field(default_factory=lambda: time.perf_counter())
    _done: float = 0.0
    _last_report: float | None = None  # when the last line was written; None: not yet
    _first: tuple[float, float] | None = None  # (time, units done) at the first advance
    _bar: object | None = None
    _task: object | None = None

    def advance(self, amount: float = 1) -> None:
        self._done += amount
        if self._first is None:
            self._first = (time.perf_counter(), self._done)
        if self._bar is not None:
            self._bar.update(self._task, advance=amount)  # type: ignore[attr-defined]
        now = time.perf_counter()
        complete = self.total is not None and self._done >= self.total  # the done line says it
        due = self._last_report is None or now - self._last_report >= LOG_EVERY_SECONDS
        if due and not complete:
            self._last_report = now
            self._report(finished=False, log=self._bar is None)

    def set_total(self, total: float | None) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total)  # type: ignore[attr-defined]

    @property
    def done(self) -> float:
        return self._done

    def _update(self, finished: bool) -> ProgressUpdate:
        now = time.perf_counter()
        rate_done = rate_seconds = None
        if self._first is not None:
            rate_seconds, rate_done = now - self._first[0], self._done - self._first[1]
        return ProgressUpdate(
            self.step,
            self._done,
            self.total,
            self.unit,
            now - self._started,
            finished,
            rate_done,
            rate_seconds,
        )

    def _report(self, finished: bool, log: bool) -> None:
        update = self._update(finished)
        if log:
            logger.info(update.line())
        with _LOCK:
            listeners = list(_LISTENERS)
        for listener in listeners:
            try:
                listener(update)
            except Exception:  # an observer never breaks the step it watches
                logger.debug("progress listener failed", exc_info=True)


@contextmanager
def progress(step: str, total: float | None = None, unit: str = "items") -> Iterator[Progress]:
    """Report the progress of ``step`` (see the module docstring); the last line says it is done."""
    handle = Progress(step, total, unit)
    with _LOCK:
        _OPEN.append(handle)
    try:
        bar = _terminal_bar()
        if bar is None or not _TERMINAL.acquire(blocking=False):  # one live bar at a time: others log
            yield from _run(handle, log=True)
            return
        try:
            with bar:
                handle._bar = bar
                handle._task = bar.add_task(step, total=total)
                yield from _run(handle, log=False)
        finally:
            _TERMINAL.release()
    finally:
        with _LOCK:
            _OPEN.remove(handle)


_TERMINAL = threading.Lock()  # held by the step whose bar the terminal shows


def _run(handle: Progress, log: bool) -> Iterator[Progress]:
    yield handle
    handle._report(finished=True, log=True)


def _terminal_bar() -> object | None:
    """A rich progress bar when stderr is an interactive terminal (and ``SIYU_PROGRESS`` isn't ``log``)."""
    if os.environ.get("SIYU_PROGRESS", "").lower() == "log" or not sys.stderr.isatty():
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import (
        Progress as RichProgress,
    )

    return RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=True,
    )


def duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``1h02m`` (``?`` when unknown)."""
    if seconds is None:
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
