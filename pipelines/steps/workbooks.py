"""The workbooks step: marketing.xlsx, quality.xlsx and the distributor share kit, built from the
files a run is about to publish.

It runs after the exports are chosen, so the share kit follows the lists that are published
(the champion's when the new model lost the gate), and it adds its files to them. The sheets
are the exported CSVs, typed (``reporting.workbook_sheets``); the consumers sheet holds the
first ``workbooks.consumer_rows`` rows of consumer_tiers.csv (whose order is segment priority,
then value) and the share kit workbook the first ``workbooks.share_kit_rows`` rows of
share_kit.csv: the CSVs keep every row, the data dictionary says when a sheet is cut.

marketing.xlsx and quality.xlsx show only the segmentation's and the quality gate's files, so
the nightly has them written by ``segment_workbooks`` in a child process while the recommenders
train (XlsxWriter is pure Python: in a thread it would hold the GIL against the scoring pass),
and ``run_workbooks`` writes only the share kit, while the child may still be at work (on the
next night at 1M the child ends after the recommenders). Their bytes are the same as when
``run_workbooks`` writes them itself.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import logging.handlers
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, cast

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from features.catalog import ShareKitCol, StepFile, WorkbookSheet, export_file
from features.columns import Col
from features.engine import counted_query
from features.errors import SiyuError
from features.messages import DEFAULT_LOCALE, Messages
from features.sql import ident
from features.vocabulary import ConsumerCol, DistributorListCol, RecCol
from reporting.excel import read_history, twin_path, write_excel_csv
from reporting.share_kit import SHARE_KIT_COLUMNS, home_of, share_kit
from reporting.workbook import WorkbookConfig, write_workbook
from reporting.workbook_sheets import SheetPart, read_export_csv, workbook_sheets

logger = logging.getLogger(__name__)

# (sheet, exported file it shows) per workbook, in tab order
MARKETING_SHEETS: tuple[tuple[str, str], ...] = (
    (WorkbookSheet.CONSUMERS, StepFile.CONSUMER_TIERS),
    (WorkbookSheet.SEGMENTS, StepFile.RFM_SEGMENTS),
    (WorkbookSheet.MEMBER_TIERS, StepFile.MEMBER_TIERS),
    (WorkbookSheet.TIER_MIGRATION, StepFile.TIER_MIGRATION),
    (WorkbookSheet.DISTRIBUTORS, StepFile.DISTRIBUTOR_TIERS),
    (WorkbookSheet.COACHING, StepFile.DISTRIBUTOR_COACHING),
)
QUALITY_SHEETS: tuple[tuple[str, str], ...] = (
    (WorkbookSheet.ALERTS, StepFile.QUALITY_ALERTS),
    (WorkbookSheet.SUPPLIERS, StepFile.QUALITY_SUPPLIERS),
)
_FIX = "rerun the nightly into this work directory"
_PACKAGES = ("features", "reporting", "pipelines")  # whose log records a child process sends back
_CONSUMER, _PRODUCT, _DISTRIBUTOR = (
    ident(RecCol.CONSUMER_ID),
    ident(RecCol.PRODUCT_ID),
    ident(Col.DISTRIBUTOR_ID),
)
_LIKELY_BUYERS_SQL = f"""
SELECT h.{_DISTRIBUTOR}, l.{_PRODUCT}, count(*) AS {ident(ShareKitCol.LIKELY_BUYERS)}
FROM read_parquet(?) l
JOIN homes h ON h.{_CONSUMER} = l.{_CONSUMER}
JOIN pushed p ON p.{_PRODUCT} = l.{_PRODUCT}
GROUP BY 1, 2
"""


def run_workbooks(
    sources: Mapping[str, Path],
    outputs: Path,
    config: WorkbookConfig | None = None,
    locale: str = DEFAULT_LOCALE,
    books: Mapping[str, Path] | None = None,
) -> dict[str, Path]:
    """Write the workbooks and the share kit into ``outputs``; ``sources`` with them added.

    ``sources``: export name -> path of what the run publishes (``choose_exports``). A workbook
    whose files are all absent (a step that did not run) is not written. ``books``: marketing.xlsx
    and quality.xlsx written elsewhere, added to what is returned (the nightly hands ``{}`` and
    adds them itself once ``segment_workbooks``, beside, is done); None: written here.
    """
    config = config or WorkbookConfig()
    messages = Messages.load(locale)
    # the share kit's likely buyers are counted by DuckDB (off the GIL) while the sheets are written;
    # the share kit's files are written after them (one progress bar at a time). The side thread
    # runs in this thread's context (the Prefect task run's): its log lines and progress counts
    # reach the task run as this thread's do.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="siyu-share-kit") as side:
        context = contextvars.copy_context()
        kit = side.submit(context.run, build_share_kit, sources, messages) if _has_lists(sources) else None
        written = dict(write_books(sources, outputs, config, locale) if books is None else books)
        kit_frame = None if kit is None else kit.result()
    written.update(write_share_kit(sources, outputs, config, messages, kit_frame))
    return {**sources, **written}


def write_books(
    sources: Mapping[str, Path], outputs: Path, config: WorkbookConfig, locale: str
) -> dict[str, Path]:
    """marketing.xlsx and quality.xlsx from the files of ``sources`` they show (name -> path)."""
    messages = Messages.load(locale)
    written: dict[str, Path] = {}
    books = (
        (StepFile.MARKETING_WORKBOOK, MARKETING_SHEETS, {StepFile.CONSUMER_TIERS: config.consumer_rows}),
        (StepFile.QUALITY_WORKBOOK, QUALITY_SHEETS, {}),
    )
    for name, sheets, caps in books:
        parts = [
            _part(code, name, sources[file], caps.get(file), messages)
            for code, file in sheets
            if file in sources
        ]
        if parts:
            written[name] = write_workbook(workbook_sheets(parts, messages), outputs / name)
    return written


def segment_workbooks(
    outputs: Path,
    config: WorkbookConfig | None = None,
    locale: str = DEFAULT_LOCALE,
    child: ChildProcess | None = None,
) -> dict[str, Path]:
    """marketing.xlsx and quality.xlsx from the segmentation's and the quality gate's files in
    ``outputs``, written by a child process (``write_books``, the same bytes); name -> path.

    The nightly runs this beside the recommenders, which need both cores' worth of Python: the
    child holds its own GIL, and runs ``BESIDE_NICENESS`` steps nicer than the night, so it takes
    the CPU the recommenders leave idle (the first night's single-threaded fits) and little of
    what they use (the scoring pass on both cores). Its log lines and progress counts are logged
    here as they come. ``child``: a process started earlier for this call (``ChildProcess``),
    used when it has not been called yet (a retried task starts a new one).
    """
    shown = {file for _, file in MARKETING_SHEETS + QUALITY_SHEETS}
    sources = {file: outputs / file for file in sorted(shown) if (outputs / file).is_file()}
    books = config or WorkbookConfig()
    call = (write_books, sources, outputs, books, locale)
    if child is not None and child.waiting:
        return child.call(*call, niceness=BESIDE_NICENESS)
    return in_child_process(*call, niceness=BESIDE_NICENESS)


# How much nicer than the night the side workbooks' process runs (``os.nice``). Measured at 10M
# (session 10): at the night's own priority the child's ~30 s of CPU slowed the next night's
# scoring pass, which keeps both cores busy, as much as it saved on the first night.
BESIDE_NICENESS = 10


def in_child_process(fn: Callable[..., Any], *args: Any, niceness: int = 0) -> Any:
    """``fn(*args)`` in a fresh Python process (``ChildProcess``): its result, or its exception
    raised here. ``niceness``: added to the child's CPU niceness (``os.nice``) before it runs."""
    with ChildProcess() as child:
        return child.call(fn, *args, niceness=niceness)


class ChildProcess:
    """A fresh Python process that imports this module at once, then waits for one call.

    Started ahead of its call, it spends its interpreter start and imports (about 0.6 s of CPU)
    while the night has a core to spare (the nightly starts it before segmentation, whose Python
    holds one core). ``call`` runs ``fn(*args)`` there: the child's log records are handled by
    this process's loggers, in the calling thread, as they arrive (so a Prefect task run receives
    them), and its result is returned or its exception raised here. ``fn`` and ``args`` are
    pickled: a module-level function, plain values. ``close`` (or leaving a ``with`` block) ends
    a child that was never called, or kills one still at work (a night that failed meanwhile).

    A new interpreter (``subprocess``), not ``multiprocessing``: the flow runs threads, so it must
    not fork, and a spawned ``multiprocessing`` child would first run the caller's ``__main__``
    script again (a script without an ``if __name__ == "__main__"`` guard would start itself).
    The child imports from this process's ``sys.path``; it reports on a pipe of its own.
    """

    def __init__(self) -> None:
        read_end, write_end = os.pipe()
        environment = {**os.environ, "SIYU_PROGRESS": "log"}  # progress as log lines, never a terminal bar
        command = [sys.executable, "-P", "-c", _CHILD_BOOT, str(write_end)]  # -P: no cwd on sys.path
        try:
            self._process = subprocess.Popen(
                command, stdin=subprocess.PIPE, pass_fds=(write_end,), env=environment
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        self._reports = os.fdopen(read_end, "rb")
        self._call = cast(BinaryIO, self._process.stdin)
        self._lock = threading.Lock()
        self._state = _WAITING
        try:
            pickle.dump(sys.path, self._call)
            self._call.flush()
        except OSError:  # it died at once: its call raises, saying how it ended
            self._process.wait()

    @property
    def waiting(self) -> bool:
        """Whether the child still waits for its call (not called, not closed, not dead)."""
        return self._state == _WAITING and self._process.poll() is None

    def call(self, fn: Callable[..., Any], *args: Any, niceness: int = 0) -> Any:
        """``fn(*args)`` in the child, once: its result, or its exception raised here."""
        with self._lock:
            if self._state != _WAITING:
                raise RuntimeError(f"this child process cannot take a call ({self._state})")
            self._state = _WORKING
        level = min(logging.getLogger(name).getEffectiveLevel() for name in ("siyu", *_PACKAGES))
        try:
            try:
                pickle.dump((level, niceness, fn, args), self._call)
            finally:
                self._call.close()  # the child reads its call to the end
            outcome = _relay(self._reports)
        except BrokenPipeError:  # the child died before its call was read
            outcome = None
        finally:
            self._reports.close()
            with self._lock:
                self._state = _DONE
            self._end(kill=False)
        if outcome is None:
            ended = f"exit {self._process.returncode}"
            raise RuntimeError(f"{fn.__qualname__}: the child process ended ({ended}) without a result")
        kind, value = outcome
        if kind == _FAILED:
            raise value
        return value

    def close(self) -> None:
        """End the child: one never called stops when its call's pipe closes; one still at work
        (a night that failed meanwhile, closing it from another thread) is killed, and its
        caller's ``call`` raises. Safe to call more than once."""
        with self._lock:
            state, self._state = self._state, _DONE
        if state == _WAITING:
            # the child sees the end of its call's pipe and stops (one already dead: nothing to tell)
            with contextlib.suppress(OSError):
                self._call.close()
            self._reports.close()
            self._end(kill=False)
        elif state == _WORKING:
            self._end(kill=True)  # the caller's relay then reads the end of the pipe

    def _end(self, kill: bool) -> None:
        if kill:
            self._process.kill()
        try:
            self._process.wait(timeout=_CLOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_WAITING, _WORKING, _DONE = "waiting for its call", "at work", "done"
_CLOSE_WAIT_S = 5  # how long a closed child may take to exit before it is killed

# The child's first lines: this process's import path, then ``_child_main``.
_CHILD_BOOT = (
    "import pickle, sys; sys.path[:] = pickle.load(sys.stdin.buffer); "
    "from pipelines.steps.workbooks import _child_main; _child_main(int(sys.argv[1]))"
)
_LOGGED, _RETURNED, _FAILED = "log", "returned", "failed"


class _Reports:
    """The child's end of the pipe: (kind, value) messages, pickled one after another."""

    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "wb")
        self._lock = threading.Lock()

    def put_nowait(self, record: logging.LogRecord) -> None:  # what QueueHandler calls
        self.send(_LOGGED, record)

    def send(self, kind: str, value: object) -> None:
        with self._lock:
            pickle.dump((kind, value), self._file)
            self._file.flush()


def _child_main(fd: int) -> None:
    """In the child: wait for the call (none: the parent closed the pipe, stop), log to the pipe,
    run it, send its result or its exception."""
    try:
        level, niceness, fn, args = pickle.load(sys.stdin.buffer)
    except EOFError:
        return
    if niceness:
        os.nice(niceness)
    reports = _Reports(fd)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(reports)]  # type: ignore[arg-type]
    root.setLevel(level)
    try:
        reports.send(_RETURNED, fn(*args))
    except Exception as error:  # every failure goes back to the caller
        reports.send(_FAILED, _picklable(error))


def _picklable(error: Exception) -> Exception:
    """``error`` when it survives pickling, else one of its kind's nearest picklable stand-ins."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # an exception whose __init__ takes other arguments
        kind = SiyuError if isinstance(error, SiyuError) else RuntimeError
        return kind(str(error))


def _relay(reports: BinaryIO) -> tuple[str, Any] | None:
    """Handle the child's log records here until its outcome (None: it ended without one)."""
    while True:
        try:
            kind, value = pickle.load(reports)
        except EOFError:
            return None
        if kind != _LOGGED:
            return kind, value
        logger_of = logging.getLogger(value.name)
        if logger_of.isEnabledFor(value.levelno):
            logger_of.handle(value)


def _part(code: str, workbook: str, path: Path, max_rows: int | None, messages: Messages) -> SheetPart:
    source = export_file(path.name)
    frame, docs = read_export_csv(path, source, messages, max_rows)
    total = _row_count(path) if max_rows is not None and len(frame) >= max_rows else None
    if total is not None and total > len(frame):
        logger.info("%s: the %s sheet shows the first %d of %d rows", workbook, code, len(frame), total)
    return SheetPart(code, workbook, source, frame, docs, total)


def _row_count(csv_path: Path) -> int:
    """Data rows of an exported CSV: from its Parquet twin's metadata when there is one."""
    twin = twin_path(csv_path)
    if twin.is_file():
        return pq.ParquetFile(twin).metadata.num_rows
    with csv_path.open("rb") as file:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b"")) - 1


# --- the share kit ---------------------------------------------------------------------------------


def _has_lists(sources: Mapping[str, Path]) -> bool:
    lists_path = sources.get(StepFile.DISTRIBUTOR_LISTS)
    return lists_path is not None and lists_path.is_file()


def write_share_kit(
    sources: Mapping[str, Path],
    outputs: Path,
    config: WorkbookConfig,
    messages: Messages,
    kit: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """share_kit.csv and share_kit.xlsx from the published distributor lists (nothing without them).

    ``kit``: the ``build_share_kit`` frame when it is already built (None: built here).
    """
    if not _has_lists(sources):
        logger.info("no distributor lists to publish: no share kit")
        return {}
    kit = build_share_kit(sources, messages) if kit is None else kit
    csv_path = outputs / StepFile.SHARE_KIT
    shown = kit.rename(columns=messages.headers(list(SHARE_KIT_COLUMNS)))
    write_excel_csv(shown, csv_path)
    source = export_file(StepFile.SHARE_KIT)
    cut = shown.head(config.share_kit_rows)
    docs = tuple(source.columns)
    part = SheetPart(WorkbookSheet.SHARE_KIT, StepFile.SHARE_KIT_WORKBOOK, source, cut, docs, len(shown))
    book = write_workbook(workbook_sheets([part], messages), outputs / StepFile.SHARE_KIT_WORKBOOK)
    return {StepFile.SHARE_KIT: csv_path, StepFile.SHARE_KIT_WORKBOOK: book}


def build_share_kit(sources: Mapping[str, Path], messages: Messages) -> pd.DataFrame:
    """The share kit frame: the published lists, likely buyers from the published consumer lists
    and the communities of consumer_tiers, categories from the quality gate's alerts."""
    lists = pd.read_parquet(sources[StepFile.DISTRIBUTOR_LISTS])
    homes = _homes(sources.get(StepFile.CONSUMER_TIERS))
    consumer_lists = sources.get(StepFile.CONSUMER_LISTS)
    if homes is None or consumer_lists is None or not consumer_lists.is_file():
        buyers = pd.DataFrame({Col.DISTRIBUTOR_ID: [], Col.PRODUCT_ID: [], ShareKitCol.LIKELY_BUYERS: []})
    else:
        pushed = lists[DistributorListCol.PRODUCT_ID].unique().tolist()
        buyers = _likely_buyers(consumer_lists, home_of(homes), pushed)
    return share_kit(lists, buyers, _categories(sources.get(StepFile.QUALITY_ALERTS)), messages)


def _likely_buyers(consumer_lists: Path, home: pd.Series, products: list[object]) -> pd.DataFrame:
    """``distributor_id, product_id, likely_buyers``: per community (``home``: consumer -> home
    distributor), the members whose published list holds the product, for ``products`` only.
    Counted by DuckDB as it scans the consumer lists file (k rows per consumer: 50 million at
    1 million consumers); a consumer without a home counts for no community."""
    homes = home.rename_axis(RecCol.CONSUMER_ID).rename(Col.DISTRIBUTOR_ID).reset_index()
    pushed = pd.DataFrame({RecCol.PRODUCT_ID: pd.unique(pd.Series(products, dtype=object))})
    rows = pq.ParquetFile(consumer_lists).metadata.num_rows
    with duckdb.connect() as con:
        con.register("homes", homes)
        con.register("pushed", pushed)
        step = "share kit: counting likely buyers over the consumer lists"
        return counted_query(con, _LIKELY_BUYERS_SQL, [str(consumer_lists)], step, rows)


def _homes(consumer_tiers: Path | None) -> pd.DataFrame | None:
    """``consumer_id, distributor_id`` (home distributor) of the published consumer tiers, ids exact."""
    if consumer_tiers is None:
        return None
    columns = [Col.CONSUMER_ID, ConsumerCol.HOME_DISTRIBUTOR_ID]
    twin = twin_path(consumer_tiers)
    if twin.is_file():  # only the two columns (read_history reads the whole twin)
        homes = pd.read_parquet(twin, columns=columns)
    else:
        homes = read_history(consumer_tiers, columns, _FIX)
    return homes.rename(columns={ConsumerCol.HOME_DISTRIBUTOR_ID: Col.DISTRIBUTOR_ID}).dropna()


def _categories(quality_alerts: Path | None) -> pd.DataFrame:
    """``product_id, category`` of every graded product (empty without a quality gate run)."""
    if quality_alerts is None:
        return pd.DataFrame({Col.PRODUCT_ID: pd.Series(dtype=object), Col.CATEGORY: pd.Series(dtype=object)})
    return read_history(quality_alerts, [Col.PRODUCT_ID, Col.CATEGORY], _FIX)
