"""Validating a data set table by table, file by file, a chunk at a time, and writing what comes out.

Layout under ``out_dir``::

    clean/<table>.parquet/       typed rows that passed every check: a folder of Parquet parts,
                                 ``part-000000.parquet`` onwards, one per input file in file
                                 order (hard links to the cache's files), read as one table
    quarantine/<table>.csv       rows set aside, as read, with source_row and quarantine_reason
    validation.json              rows read / kept / quarantined / out of the window per table,
                                 quarantine reasons and flagged references
    cache/<table>/...            each input file's outcome, reused by later runs
                                 (``features.validation_cache``)

A table's files (one file, or the parts of a directory) are taken in path order, each from
the cache when nothing it depends on changed; the files that are not are validated together,
their rows gathered into chunks of at most ``chunk_rows`` rows across files
(``TableValidator.check_files``), each file's outcome kept in a cache folder of its own. The
clean folder is then linked from the files' outcomes and the quarantine file joined from
them. Per table, a few chunks are in memory at a time (the one checked, the next being read,
at most two being written: ``chunks_of_parts``, ``_Writes``), plus the 64-bit hashes
``features.validate`` keeps between chunks and files (of rows and keys met, and of the clean
ids other tables refer to); ``validation.tables_at_once`` tables are validated side by side
(``_Tables``). Every output is written beside its final name (``.partial``) and all are renamed into
place only when every table has been validated: a run stopped by a file-level error leaves
no half-written output, replaces none of an earlier run's, and removes the cache folders it
made.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import secrets
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from functools import partial
from pathlib import Path
from types import TracebackType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.asof import AsOf
from features.catalog import Folder, StepFile
from features.columns import Col, Table
from features.contract import CONTRACT, REFERENCES, VALIDATION_ORDER, TableSpec
from features.files import atomic_path, move_into_place, partial_path
from features.progress import Progress, progress
from features.reader import TableInput, chunks_of_parts
from features.validate import (
    ORDER_LINE_COLUMNS,
    ORDER_LINE_IDS,
    CheckedPieces,
    ColumnHashes,
    ColumnNotes,
    KnownIds,
    OrderHeaders,
    PartFacts,
    SeenHashes,
    SeenRows,
    TableReport,
    TableValidator,
    ValidationConfig,
    ValidationResult,
    headers_of_parts,
    known_references,
    referenced_keys,
    unique_hashes,
)
from features.validation_cache import (
    CLEAN_PART,
    QUARANTINE_PART,
    FileEntry,
    PartOutcome,
    ResultEntry,
    chain,
    prune,
    references_digest,
    run_key,
    window_of,
)
from features.vocabulary import ValidationKey

logger = logging.getLogger(__name__)


CLEAN_PART_NAME = "part-{:06d}.parquet"


def clean_path(out_dir: Path, table: str) -> Path:
    """Where ``write_validated`` puts the clean rows of ``table``: a folder of Parquet parts
    (``CLEAN_PART_NAME``, one per input file, in file order) that DuckDB, pyarrow and pandas
    read as one table."""
    return out_dir / Folder.CLEAN / f"{table}.parquet"


def quarantine_path(out_dir: Path, table: str) -> Path:
    """Where ``write_validated`` puts the quarantined rows of ``table``."""
    return out_dir / Folder.QUARANTINE / f"{table}.csv"


def write_validated(
    raw_tables: Mapping[str, TableInput],
    as_of: AsOf | date,
    out_dir: Path,
    chunk_rows: int | None = None,
    config: ValidationConfig | None = None,
    now: datetime | None = None,
) -> ValidationResult:
    """Validate every table read, references first (products before orders before complaints),
    and write its clean rows, its quarantine file and the report under ``out_dir``.

    ``chunk_rows`` overrides ``config.chunk_rows``; ``now`` is the run's wall-clock time
    (naive, in ``config.timezone``; default: the clock), the bound of an impossible future.
    Each file's outcome is kept in ``out_dir/cache`` and reused by a later run when nothing it
    depends on changed (``features.validation_cache``).
    """
    as_of = AsOf.of(as_of)
    config = config or ValidationConfig()
    clean_ids: dict[tuple[str, str], SeenHashes] = {}
    order_lines = SeenHashes() if Table.COMPLAINTS in raw_tables else None
    reports: list[TableReport] = []
    fresh_cache = not cache_root(out_dir).exists()
    with (
        _Staging() as staging,
        _forget_on_error(cache_root(out_dir), fresh_cache) as used,
        _Tables(config.tables_at_once) as tables,
    ):
        run = _Run(as_of, config, chunk_rows or config.chunk_rows, now, out_dir, staging, used)
        present = [t for t in VALIDATION_ORDER if t in raw_tables]
        for table in present:
            for referenced in _referenced_tables(table, present):
                report, ids = tables.result(referenced)
                clean_ids.update({(referenced, key): seen for key, seen in ids.items()})
            known = known_references(table, clean_ids, config.references)
            if table == Table.COMPLAINTS:
                known = KnownIds(known.quarantine, known.flag, order_lines)
            lines = order_lines if table == Table.ORDERS else None
            tables.start(table, partial(_validate_table, raw_tables[table], known, run, lines))
        for table in present:
            report, _ = tables.result(table)
            reports.append(report)
            log_report(report)
        result = ValidationResult(as_of, reports)
        document = {
            ValidationKey.AS_OF: as_of.isoformat(),
            ValidationKey.TABLES: [asdict(r) for r in reports],
        }
        run.staging.partial(out_dir / StepFile.VALIDATION_REPORT).write_text(
            json.dumps(document, indent=2) + "\n"
        )
    prune(cache_root(out_dir), run.used)
    return result


def _referenced_tables(table: str, present: list[str]) -> list[str]:
    """The tables among ``present`` whose clean ids ``table``'s rows are checked against."""
    return sorted(
        {referenced for (referencing, _), (referenced, _) in REFERENCES.items() if referencing == table}
        & set(present),
        key=present.index,
    )


class _Tables:
    """Tables validated side by side on ``at_once`` threads, each as soon as the tables it refers
    to are done (events need only products, so they run beside consumers and orders): reading,
    hashing, sorting and writing release the GIL, so two tables share two cores. The outcome
    does not depend on it: a table's checks read only its own rows and the finished tables'
    ids. On an error the tables not yet started are dropped and the running ones finish."""

    def __init__(self, at_once: int) -> None:
        self._pool = (
            ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="siyu-validate")
            if at_once > 1
            else None
        )
        self._running: dict[str, Future[tuple[TableReport, dict[str, SeenHashes]]]] = {}

    def __enter__(self) -> _Tables:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: BaseException | TracebackType | None) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=kind is not None)

    def start(self, table: str, validate: Callable[[], tuple[TableReport, dict[str, SeenHashes]]]) -> None:
        """Validate ``table`` on a thread of the pool (one table at a time: here and now)."""
        if self._pool is not None:
            # The caller's context goes along (a Prefect task's run context: progress listeners
            # that report to Prefect are slow, and warn, outside of one).
            self._running[table] = self._pool.submit(contextvars.copy_context().run, validate)
            return
        done: Future[tuple[TableReport, dict[str, SeenHashes]]] = Future()
        done.set_result(validate())
        self._running[table] = done

    def result(self, table: str) -> tuple[TableReport, dict[str, SeenHashes]]:
        """The table's report and clean ids, once it is validated (its error, if it failed)."""
        return self._running[table].result()


@contextmanager
def _forget_on_error(root: Path, fresh: bool) -> Iterator[set[Path]]:
    """The set of cache folders a run uses; when the run fails, the ones it created are removed
    (all of ``root`` when the run created it), so a failed run leaves nothing behind."""
    existed = set(root.glob("*/*")) | set(root.glob("*/*/*"))
    used: set[Path] = set()
    try:
        yield used
    except BaseException:
        if fresh:
            shutil.rmtree(root, ignore_errors=True)
        else:
            created = (set(root.glob("*/*")) | set(root.glob("*/*/*"))) - existed
            for path in sorted(created, reverse=True):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
        raise


def cache_root(out_dir: Path) -> Path:
    """Where ``write_validated`` keeps each file's outcome for later runs."""
    return out_dir / Folder.VALIDATION_CACHE


@dataclass(frozen=True)
class _Run:
    """What every table of one validation run shares (``used``: the cache folders it read or wrote)."""

    as_of: AsOf
    config: ValidationConfig
    chunk_rows: int
    now: datetime | None
    out_dir: Path
    staging: _Staging
    used: set[Path]
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def latest(self) -> pd.Timestamp:
        return self.config.rules(self.now).latest

    def use(self, *paths: Path) -> None:
        """Note cache folders this run read or wrote (tables run on threads of their own)."""
        with self.lock:
            self.used.update(paths)


def log_report(report: TableReport) -> None:
    """The log lines of one validated table (both engines' validation write them)."""
    logger.info(
        "validated %s: %d kept, %d quarantined %s",
        report.table,
        report.rows_kept,
        report.rows_quarantined,
        report.reasons or "",
    )
    if report.rows_out_of_window:
        logger.info("%s: %d rows after the as-of date, not used", report.table, report.rows_out_of_window)
    if report.flagged:
        logger.warning("%s: kept rows naming unknown ids: %s", report.table, report.flagged)


# Per table, the clean ids other tables may refer to (whichever tables a run has): each file's
# outcome keeps them, so a cached file serves a run that adds a referencing table.
_REFERENCED_KEYS = referenced_keys(list(Table.ALL))


def _validate_table(
    raw: TableInput, known: KnownIds, run: _Run, order_lines: SeenHashes | None
) -> tuple[TableReport, dict[str, SeenHashes]]:
    """Validate one table file by file, reusing each file's cached outcome when its run key
    matches, and write its clean and quarantine files; return the report and its clean ids
    (hashed, per key other tables refer to). ``order_lines`` collects the clean order lines.

    Files that are not reused wait, in order, until the next reused one (or the end), and are
    then validated together (``_validate_parts``); a file after a waiting file that was never
    validated cannot be looked up (its run key needs that file's facts) and waits too.
    """
    spec = CONTRACT[raw.name]
    root = cache_root(run.out_dir) / raw.name
    entries = [FileEntry(root, part, run.config) for part in raw.parts]
    inconsistent = _inconsistent_orders(entries, run) if raw.name == Table.ORDERS else None
    tally = _TableTally(spec, _REFERENCED_KEYS.get(raw.name, []), order_lines)
    checks = _Checks(known, inconsistent)
    earlier, lookahead = "", ""
    waiting: list[FileEntry] = []
    with progress(f"validating {raw.name}", total=raw.rows, unit="rows") as bar:
        for entry in entries:
            found = _cached(entry, lookahead, checks, run) if lookahead is not None else None
            if found is None:
                waiting.append(entry)
                facts = entry.facts()
                window = window_of(facts, run.as_of.end_timestamp, run.latest) if facts is not None else None
                lookahead = chain(lookahead, entry.key, window) if lookahead is not None and window else None
                continue
            if waiting:
                earlier = _validate_parts(waiting, checks, tally, run, earlier, bar)
                waiting = []
            result, window = found
            outcome = result.load(with_seen=False)
            tally.add_cached(result, outcome)
            bar.advance(outcome.report.rows_read)
            run.use(entry.path, result.path)
            earlier = lookahead = chain(earlier, entry.key, window)
        if waiting:
            _validate_parts(waiting, checks, tally, run, earlier, bar)
    tally.log(raw.name)
    tally.notes.check(spec, str(raw.path))
    _write_table(raw, tally, run)
    return tally.report(raw.name, str(raw.path)), tally.finish()


@dataclass(frozen=True)
class _Checks:
    """What a table's files are checked against beyond their own rows."""

    known: KnownIds
    inconsistent: SeenHashes | None


def _cached(entry: FileEntry, earlier: str, checks: _Checks, run: _Run) -> tuple[ResultEntry, str] | None:
    """The file's kept outcome under this run's key, and its window, when there is one."""
    facts = entry.facts()
    if facts is None:
        return None
    window = window_of(facts, run.as_of.end_timestamp, run.latest)
    references = references_digest(facts, checks.known, checks.inconsistent)
    result = entry.result(run_key(entry.settings, window, earlier, references))
    return (result, window) if result.exists else None


def _inconsistent_orders(entries: list[FileEntry], run: _Run) -> SeenHashes:
    """The orders whose in-window lines disagree, over every file (each file's distinct
    headers are read once and kept in its cache folder)."""
    frames = {entry.key: entry.headers() for entry in entries}
    missing = [entry for entry in entries if frames[entry.key] is None]
    total = sum(entry.part.rows or 0 for entry in missing)
    with progress("reading order headers", total=total or None, unit="rows") as bar:
        parts = [entry.part for entry in missing]
        for entry, headers in zip(
            missing, headers_of_parts(parts, run.config, run.chunk_rows, bar), strict=True
        ):
            entry.save_headers(headers)
            frames[entry.key] = headers
    return OrderHeaders(frames.values()).conflicting(run.as_of.end_timestamp, run.latest)


def _validate_parts(
    entries: list[FileEntry], checks: _Checks, tally: _TableTally, run: _Run, earlier: str, bar: Progress
) -> str:
    """Validate consecutive files of a table into new cache folders, the rows of several small
    files checked in one go (``TableValidator.check_files``, at most ``chunk_rows`` rows at a
    time); each file is committed once its last rows are checked (its run key is known once its
    facts are). Returns the ``earlier`` part of the next file's run key."""
    tally.feed_pending()
    table = entries[0].part.name
    validator = TableValidator(
        table, "", run.as_of, run.config, checks.known, checks.inconsistent, run.now, tally.seen
    )
    with _Writes() as writes, ExitStack() as open_files:
        files = [open_files.enter_context(_PartRun(entry, validator, writes)) for entry in entries]
        for pieces, finished in chunks_of_parts([entry.part for entry in entries], run.chunk_rows):
            if pieces:
                checked = validator.check_files([(files[k].tally, chunk) for k, chunk in pieces])
                clean, ids = _clean_arrow(checked, table)
                for piece, (k, chunk) in enumerate(pieces):
                    rows = slice(checked.clean_at[piece], checked.clean_at[piece + 1])
                    files[k].write(clean.slice(rows.start, rows.stop - rows.start), checked.quarantine[piece])
                    files[k].add_ids({name: hashes[rows] for name, hashes in ids.items()})
                    bar.advance(len(chunk))
            for k in finished:
                result, facts = files[k].commit(run, checks, earlier)
                tally.add_fresh(result, files[k].outcome)
                run.use(entries[k].path, result.path)
                earlier = chain(
                    earlier, entries[k].key, window_of(facts, run.as_of.end_timestamp, run.latest)
                )
            writes.settle()
    return earlier


def _clean_arrow(checked: CheckedPieces, table: str) -> tuple[pa.Table, dict[str, np.ndarray]]:
    """Clean rows as Arrow (converted once for all the pieces they hold), and per row the hash of
    each id other tables refer to (and, for orders, of each order line), from the hashes the
    checks made."""
    hashes = checked.hashes or ColumnHashes(checked.clean)
    ids = {column: hashes.of([column]) for column in _REFERENCED_KEYS.get(table, [])}
    if table == Table.ORDERS:
        ids[ORDER_LINE_IDS] = hashes.of(ORDER_LINE_COLUMNS)
    return pa.Table.from_pandas(checked.clean, preserve_index=False), ids


class _PartRun:
    """One file being validated: its tally, and its clean and quarantined rows written into a
    scratch folder of its cache entry, moved into place by ``commit`` (removed on an error).
    Every file operation goes through ``writes``, in order, on the writing thread."""

    def __init__(self, entry: FileEntry, validator: TableValidator, writes: _Writes) -> None:
        self.entry = entry
        self.tally = validator.start_file(str(entry.part.path))
        self.outcome: PartOutcome | None = None
        self._ids: dict[str, list[np.ndarray]] = {
            column: [] for column in _REFERENCED_KEYS.get(entry.part.name, [])
        }
        if entry.part.name == Table.ORDERS:
            self._ids[ORDER_LINE_IDS] = []
        self._writes = writes
        self._scratch = entry.path / f".validating-{secrets.token_hex(4)}"
        writes.submit(partial(self._scratch.mkdir, parents=True))
        self._clean = _CleanWriter(self._scratch / CLEAN_PART)
        self._quarantine = _QuarantineParts(self._scratch)

    def __enter__(self) -> _PartRun:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: BaseException | TracebackType | None) -> None:
        self._writes.submit(self._clean.close)
        if kind is not None:
            self._writes.submit(partial(shutil.rmtree, self._scratch, ignore_errors=True))

    def write(self, clean: pa.Table, quarantine: pd.DataFrame) -> None:
        self._writes.submit(partial(self._clean.write, clean))
        if len(quarantine):
            self._writes.submit(partial(self._quarantine.write, quarantine))

    def add_ids(self, ids: dict[str, np.ndarray]) -> None:
        for name, hashes in ids.items():
            self._ids[name].append(hashes)

    def commit(self, run: _Run, checks: _Checks, earlier: str) -> tuple[ResultEntry, PartFacts]:
        """Move the file's outcome into the cache under its run key (on the writing thread);
        return it and the file's facts."""
        facts = self.tally.facts()
        window = window_of(facts, run.as_of.end_timestamp, run.latest)
        references = references_digest(facts, checks.known, checks.inconsistent)
        result = self.entry.result(run_key(self.entry.settings, window, earlier, references))
        kept = {column: unique_hashes(_concat(arrays)) for column, arrays in self._ids.items()}
        self.outcome = PartOutcome(
            self.tally.report(check_columns=False), self.tally.notes, self.tally.met(), kept
        )
        self._writes.submit(self._clean.close)
        self._writes.submit(partial(self.entry.save_facts, facts))
        self._writes.submit(partial(result.commit, self._scratch, self.outcome))
        return result, facts


class _Writes:
    """File operations done in order on a thread of their own, so that writing a chunk's files
    overlaps checking the next chunk (Parquet encoding and file I/O release the GIL).

    ``settle`` after each chunk waits for the chunk before it: at most two chunks' rows wait to
    be written. Leaving waits for every operation; the first that failed is raised."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="siyu-write")
        self._chunks: list[list[Future[object]]] = [[]]
        self._failed = False

    def __enter__(self) -> _Writes:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: BaseException | TracebackType | None) -> None:
        self._pool.shutdown(wait=True)
        if kind is None:
            for future in (future for chunk in self._chunks for future in chunk):
                future.result()

    def submit(self, operation: Callable[[], object]) -> None:
        self._chunks[-1].append(self._pool.submit(self._unless_failed, operation))

    def _unless_failed(self, operation: Callable[[], object]) -> object:
        """Run ``operation`` unless one before it failed (nothing half-written is moved into place)."""
        if self._failed:
            return None
        try:
            return operation()
        except BaseException:
            self._failed = True
            raise

    def settle(self) -> None:
        """Wait for the writes of the chunk before the last; raise the first that failed."""
        if len(self._chunks) > 1:
            for future in self._chunks.pop(0):
                future.result()
        self._chunks.append([])


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.empty(0, dtype=np.uint64), *arrays]).astype(np.uint64)


class _TableTally:
    """What a table's files add up to, in file order: counts, notes, clean ids, and the row and
    key hashes met (a cached file's are read only when a later file is validated)."""

    def __init__(self, spec: TableSpec, id_columns: list[str], order_lines: SeenHashes | None) -> None:
        self.seen = SeenRows(spec)
        self.notes = ColumnNotes()
        self.order_lines = order_lines
        self._ids: dict[str, list[np.ndarray]] = {column: [] for column in id_columns}
        self._lines: list[np.ndarray] = []
        self.parts: list[tuple[ResultEntry, TableReport]] = []
        self._pending: list[ResultEntry] = []
        self.cached_rows = 0
        self.cached_files = 0

    def add_cached(self, result: ResultEntry, outcome: PartOutcome) -> None:
        self._pending.append(result)
        self.cached_rows += outcome.report.rows_read
        self.cached_files += 1
        self._add(result, outcome)

    def add_fresh(self, result: ResultEntry, outcome: PartOutcome) -> None:
        self._add(result, outcome)

    def feed_pending(self) -> None:
        """Remember the rows of the cached files before a file that is validated again."""
        named = self.seen.named()
        gathered: dict[str, list[np.ndarray]] = {name: [] for name in named}
        for result in self._pending:
            for name, hashes in result.seen().items():
                gathered[name].append(hashes)
        for name, arrays in gathered.items():
            named[name].add(_concat(arrays), runs=True)  # one merge of the files' sorted hashes
        self._pending.clear()

    def _add(self, result: ResultEntry, outcome: PartOutcome) -> None:
        self.parts.append((result, outcome.report))
        self.notes.merge(outcome.notes)
        for column, arrays in self._ids.items():
            arrays.append(outcome.ids[column])
        if self.order_lines is not None and ORDER_LINE_IDS in outcome.ids:
            self._lines.append(outcome.ids[ORDER_LINE_IDS])

    def finish(self) -> dict[str, SeenHashes]:
        """The table's clean ids (per key other tables refer to), each set built in one go; the
        clean order lines added to ``order_lines``."""
        if self.order_lines is not None and self._lines:
            self.order_lines.add(_concat(self._lines))
        return {column: SeenHashes(_concat(arrays)) for column, arrays in self._ids.items()}

    def report(self, table: str, source: str) -> TableReport:
        reports = [report for _, report in self.parts]
        reasons: Counter[str] = Counter()
        flagged: Counter[str] = Counter()
        for report in reports:
            reasons.update(report.reasons)
            flagged.update(report.flagged)
        return TableReport(
            table=table,
            source=source,
            rows_read=sum(r.rows_read for r in reports),
            rows_kept=sum(r.rows_kept for r in reports),
            rows_quarantined=sum(r.rows_quarantined for r in reports),
            rows_out_of_window=sum(r.rows_out_of_window for r in reports),
            reasons=dict(sorted(reasons.items())),
            flagged=dict(sorted(flagged.items())),
        )

    def log(self, table: str) -> None:
        if self.cached_files:
            logger.info(
                "%s: %d of %d file(s) unchanged since an earlier run, their results reused (%s rows)",
                table,
                self.cached_files,
                len(self.parts),
                f"{self.cached_rows:,}",
            )


def _write_table(raw: TableInput, tally: _TableTally, run: _Run) -> None:
    """The table's clean file and quarantine file, from its files' outcomes in file order."""
    _link_clean(
        [result.clean for result, _ in tally.parts], run.staging.folder(clean_path(run.out_dir, raw.name))
    )
    columns = [Col.SOURCE_ROW, *raw.columns, Col.QUARANTINE_REASON]
    _write_quarantine(tally.parts, columns, run.staging.partial(quarantine_path(run.out_dir, raw.name)))


def _write_quarantine(parts: list[tuple[ResultEntry, TableReport]], columns: list[str], target: Path) -> None:
    """One CSV of the files' quarantined rows in file order, ``source_row`` counted across files.

    pandas writes a date/time column as dates only when every value is at midnight, and with
    as many decimals as its most precise value needs; a first pass over the rows finds each
    column's precision, so that the CSV formats every row as the whole quarantine would have
    been formatted."""
    precision: dict[str, int] = {}
    for result, _ in parts:
        for frame in result.quarantined():
            for name in frame.columns:
                if name in columns and _is_naive_datetime(frame[name]):
                    precision[name] = max(precision.get(name, 0), _precision(frame[name]))
    with target.open("w", encoding="utf-8", newline="") as handle:
        pd.DataFrame(columns=columns).to_csv(handle, index=False)
        offset = 0
        for result, report in parts:
            for frame in result.quarantined():
                frame[Col.SOURCE_ROW] += offset
                frame = frame.reindex(columns=columns)
                for name, digits in precision.items():
                    frame[name] = _format_datetimes(frame[name], digits)
                frame.to_csv(handle, index=False, header=False)
            offset += report.rows_read


def _link_clean(parts: list[Path], folder: Path) -> None:
    """The clean table as a folder of the files' clean parts in file order (``part-NNNNNN.parquet``),
    each a hard link to the cache's file (a copy across file systems): an unchanged file costs
    nothing a later night. A part whose columns differ from the table's (a file lacking an
    optional column) is written again with the table's schema, so that every part reads alike."""
    schemas = [pq.read_schema(part) for part in parts]
    schema = pa.unify_schemas(schemas) if len(parts) > 1 else schemas[0]
    for index, (part, own) in enumerate(zip(parts, schemas, strict=True)):
        target = folder / CLEAN_PART_NAME.format(index)
        if own.equals(schema, check_metadata=False):
            _link(part, target)
            continue
        table = pq.read_table(part)
        for column in schema:
            if column.name not in table.column_names:
                table = table.append_column(column, pa.nulls(len(table), column.type))
        pq.write_table(table.select(schema.names).cast(schema), target)


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system: a copy holds the same bytes
        shutil.copyfile(source, target)


class _Staging:
    """Files written beside their final names (``features.files.atomic_path``) and renamed into
    place together when the staging closes without an error, all removed when it closes with
    one."""

    def __init__(self) -> None:
        self._finals = ExitStack()
        self._lock = threading.Lock()

    def __enter__(self) -> _Staging:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._finals.__exit__(kind, error, trace)

    def partial(self, final: Path) -> Path:
        with self._lock:
            return self._finals.enter_context(atomic_path(final))

    def folder(self, final: Path) -> Path:
        """A new, empty folder beside ``final`` (``<final>.partial``), moved into its place
        (``features.files.move_into_place``) when the staging closes without an error."""
        with self._lock:
            return self._finals.enter_context(staged_folder(final))


@contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """A fresh folder beside ``final`` to write into; moved into place as ``final`` when the block
    ends, removed when it fails (both engines' validation write their outputs through it)."""
    partial = partial_path(final)
    if partial.exists():  # left by a run that was killed
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    move_into_place(partial, final, secrets.token_hex(4))


class _CleanWriter:
    """Appends clean rows to one Parquet file; the schema is the first rows'."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._writer: pq.ParquetWriter | None = None

    def write(self, clean: pa.Table) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._path, clean.schema)
        if clean.num_rows:
            self._writer.write_table(clean)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _QuarantineParts:
    """Writes a file's quarantined chunks as numbered Parquet files (each with its own dtypes,
    as read: a column may be empty in one chunk and text in the next)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._written = 0

    def write(self, quarantine: pd.DataFrame) -> None:
        quarantine.to_parquet(self._folder / QUARANTINE_PART.format(self._written), index=False)
        self._written += 1


# How pandas writes a date/time column: the most precise value decides for all of them.
_PRECISION_BY_LENGTH = {10: 0, 19: 1, 23: 2, 26: 3, 29: 4}  # date, seconds, ms, us, ns
_PRECISION_EXAMPLE = (
    "2000-01-01",
    "2000-01-01 00:00:01",
    "2000-01-01 00:00:00.001",
    "2000-01-01 00:00:00.000001",
    "2000-01-01 00:00:00.000000001",
)


def _is_naive_datetime(values: pd.Series) -> bool:
    return pd.api.types.is_datetime64_dtype(values.dtype)


def _precision(values: pd.Series) -> int:
    """How precisely pandas would write these date/times: 0 (dates only) to 4 (nanoseconds)."""
    present = values.dropna()
    return _PRECISION_BY_LENGTH[len(str(present.astype(str).iloc[0]))] if len(present) else 0


def _format_datetimes(values: pd.Series, precision: int) -> pd.Series:
    """The text pandas would write for ``values`` in a column whose precision is ``precision``.

    An example value of that precision is formatted along with them and dropped."""
    example = pd.Series([pd.Timestamp(_PRECISION_EXAMPLE[precision])]).astype(values.dtype)
    text = pd.concat([example, values], ignore_index=True).astype(str).iloc[1:]
    text.index = values.index
    return text.where(values.notna(), "")
