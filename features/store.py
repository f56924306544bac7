"""Validating a data set table by table, file by file, a chunk at a time, and writing what comes out.

Layout under ``out_dir``::

    clean/<table>.parquet        typed rows that passed every check (one file per table, also
                                 when the table was read from a directory of parts)
    quarantine/<table>.csv       rows set aside, as read, with source_row and quarantine_reason
    validation.json              rows read / kept / quarantined / out of the window per table,
                                 quarantine reasons and flagged references
    cache/<table>/...            each input file's outcome, reused by later runs
                                 (``features.validation_cache``)

A table is validated file by file in path order (one file, or the parts of a directory),
each file either validated into a new cache folder or, when nothing it depends on changed,
taken from the cache; the clean file and the quarantine file are then joined from the
files' outcomes. Only one chunk of a file (plus the 64-bit hashes ``features.validate``
keeps between chunks and files: of rows and keys met, and of the clean ids other tables
refer to) is in memory at a time: clean rows are appended to a Parquet file, and
quarantined rows to a spool that is rendered as CSV once the table is done (so that a date
column is formatted the same way in every row, as pandas would format the whole
quarantine). Every output file is written beside its final name (``.partial``) and all are
renamed into place only when every table has been validated: a run stopped by a
file-level error leaves no half-written file, replaces none of an earlier run's, and
removes the cache folders it made.
"""

from __future__ import annotations

import json
import logging
import pickle
import secrets
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from types import TracebackType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.asof import AsOf
from features.catalog import Folder, StepFile
from features.columns import Col, Table
from features.contract import CONTRACT, VALIDATION_ORDER, TableSpec
from features.files import atomic_path
from features.progress import Progress, progress
from features.reader import TableInput
from features.validate import (
    ORDER_LINE_IDS,
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
    id_hashes,
    known_references,
    order_headers,
    order_line_hashes,
    referenced_keys,
)
from features.validation_cache import (
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


def clean_path(out_dir: Path, table: str) -> Path:
    """Where ``write_validated`` puts the clean rows of ``table``."""
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
    with _Staging() as staging, _forget_on_error(cache_root(out_dir), fresh_cache) as used:
        run = _Run(as_of, config, chunk_rows or config.chunk_rows, now, out_dir, staging, used)
        for table in (t for t in VALIDATION_ORDER if t in raw_tables):
            known = known_references(table, clean_ids, config.references)
            if table == Table.COMPLAINTS:
                known = KnownIds(known.quarantine, known.flag, order_lines)
            lines = order_lines if table == Table.ORDERS else None
            report, ids = _validate_table(raw_tables[table], known, run, lines)
            clean_ids.update({(table, key): seen for key, seen in ids.items()})
            reports.append(report)
            _log_report(report)
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

    @property
    def latest(self) -> pd.Timestamp:
        return self.config.rules(self.now).latest


def _log_report(report: TableReport) -> None:
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
    (hashed, per key other tables refer to). ``order_lines`` collects the clean order lines."""
    spec = CONTRACT[raw.name]
    root = cache_root(run.out_dir) / raw.name
    entries = [FileEntry(root, part, run.config) for part in raw.parts]
    inconsistent = _inconsistent_orders(entries, run) if raw.name == Table.ORDERS else None
    tally = _TableTally(spec, _REFERENCED_KEYS.get(raw.name, []), order_lines)
    earlier = ""
    with progress(f"validating {raw.name}", total=raw.rows, unit="rows") as bar:
        for entry in entries:
            facts = entry.facts()
            window = window_of(facts, run.as_of.end_timestamp, run.latest) if facts is not None else None
            result = None
            if facts is not None and window is not None:
                references = references_digest(facts, known, inconsistent)
                result = entry.result(run_key(entry.settings, window, earlier, references))
            if result is not None and result.exists:
                outcome = result.load(with_seen=False)
                tally.add_cached(result, outcome)
                bar.advance(outcome.report.rows_read)
            else:
                tally.feed_pending()
                outcome, result, facts = _validate_part(
                    entry, known, inconsistent, tally.seen, run, earlier, bar
                )
                window = window_of(facts, run.as_of.end_timestamp, run.latest)
                tally.add_fresh(result, outcome)
            run.used.update({entry.path, result.path})
            earlier = chain(earlier, entry.key, window)
    tally.log(raw.name)
    tally.notes.check(spec, str(raw.path))
    _write_table(raw, tally, run)
    return tally.report(raw.name, str(raw.path)), tally.ids


def _inconsistent_orders(entries: list[FileEntry], run: _Run) -> SeenHashes:
    """The orders whose in-window lines disagree, over every file (each file's distinct
    headers are read once and kept in its cache folder)."""
    frames = {entry.key: entry.headers() for entry in entries}
    missing = [entry for entry in entries if frames[entry.key] is None]
    total = sum(entry.part.rows or 0 for entry in missing)
    with progress("reading order headers", total=total or None, unit="rows") as bar:
        for entry in missing:
            headers = order_headers(entry.part, run.config, run.chunk_rows, bar).distinct()
            entry.save_headers(headers)
            frames[entry.key] = headers
    return OrderHeaders(frames.values()).conflicting(run.as_of.end_timestamp, run.latest)


def _validate_part(
    entry: FileEntry,
    known: KnownIds,
    inconsistent: SeenHashes | None,
    seen: SeenRows,
    run: _Run,
    earlier: str,
    bar: Progress,
) -> tuple[PartOutcome, ResultEntry, PartFacts]:
    """Validate one file into a new cache folder (its run key is known once its facts are)."""
    part = entry.part
    validator = TableValidator(
        part.name, str(part.path), run.as_of, run.config, known, inconsistent, run.now, seen
    )
    id_columns = _REFERENCED_KEYS.get(part.name, [])
    ids = {column: [] for column in id_columns}
    lines: list[np.ndarray] = []
    scratch = entry.path / f".validating-{secrets.token_hex(4)}"
    scratch.mkdir(parents=True)
    try:
        with (
            _CleanWriter(scratch / "clean.parquet") as clean,
            (scratch / "quarantine.pkl").open("wb") as spool,
        ):
            for chunk in part.chunks(run.chunk_rows):
                checked = validator.check(chunk)
                bar.advance(len(chunk))
                clean.write(checked.clean)
                if len(checked.quarantine):
                    pickle.dump(checked.quarantine, spool, protocol=pickle.HIGHEST_PROTOCOL)
                for column in id_columns:
                    ids[column].append(id_hashes(checked.clean[column].drop_duplicates()))
                if part.name == Table.ORDERS:
                    lines.append(order_line_hashes(checked.clean))
        facts = validator.facts()
        entry.save_facts(facts)
        window = window_of(facts, run.as_of.end_timestamp, run.latest)
        result = entry.result(
            run_key(entry.settings, window, earlier, references_digest(facts, known, inconsistent))
        )
        kept = {column: np.unique(_concat(arrays)) for column, arrays in ids.items()}
        if part.name == Table.ORDERS:
            kept[ORDER_LINE_IDS] = np.unique(_concat(lines))
        outcome = PartOutcome(validator.report(check_columns=False), validator.notes, validator.met(), kept)
        result.commit(scratch, outcome)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return outcome, result, facts


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.empty(0, dtype=np.uint64), *arrays]).astype(np.uint64)


class _TableTally:
    """What a table's files add up to, in file order: counts, notes, clean ids, and the row and
    key hashes met (a cached file's are read only when a later file is validated)."""

    def __init__(self, spec: TableSpec, id_columns: list[str], order_lines: SeenHashes | None) -> None:
        self.seen = SeenRows(spec)
        self.notes = ColumnNotes()
        self.ids = {column: SeenHashes() for column in id_columns}
        self.order_lines = order_lines
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
            named[name].add(_concat(arrays))  # one sort for all of them
        self._pending.clear()

    def _add(self, result: ResultEntry, outcome: PartOutcome) -> None:
        self.parts.append((result, outcome.report))
        self.notes.merge(outcome.notes)
        for column, seen in self.ids.items():
            seen.add(outcome.ids[column])
        if self.order_lines is not None and ORDER_LINE_IDS in outcome.ids:
            self.order_lines.add(outcome.ids[ORDER_LINE_IDS])

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
    target = run.staging.partial(clean_path(run.out_dir, raw.name))
    _join_clean([result.clean for result, _ in tally.parts], target)
    quarantine_columns = [Col.SOURCE_ROW, *raw.columns, Col.QUARANTINE_REASON]
    spool = run.staging.scratch(quarantine_path(run.out_dir, raw.name).with_suffix(".spool"))
    quarantine_file = run.staging.partial(quarantine_path(run.out_dir, raw.name))
    with _QuarantineWriter(quarantine_file, spool, quarantine_columns) as bad:
        offset = 0
        for result, report in tally.parts:
            for frame in result.quarantined():
                frame[Col.SOURCE_ROW] += offset
                bad.write(frame.reindex(columns=quarantine_columns))
            offset += report.rows_read
        bad.render()


def _join_clean(parts: list[Path], target: Path) -> None:
    """One Parquet file of the clean parts in order (a single part is copied as it is).

    Not a hard link: renaming a link onto another link of the same file does nothing (POSIX
    rename), which would leave the ``.partial`` behind and share the cache's file.
    """
    target.unlink(missing_ok=True)
    if len(parts) == 1:
        shutil.copyfile(parts[0], target)
        return
    schema = pa.unify_schemas([pq.read_schema(part) for part in parts])
    with pq.ParquetWriter(target, schema) as writer:
        for part in parts:
            table = pq.read_table(part)
            for field in schema:
                if field.name not in table.column_names:
                    table = table.append_column(field, pa.nulls(len(table), field.type))
            writer.write_table(table.select(schema.names).cast(schema))


class _Staging:
    """Files written beside their final names (``features.files.atomic_path``) and renamed into
    place together when the staging closes without an error, all removed when it closes with
    one; scratch files are removed either way."""

    def __init__(self) -> None:
        self._finals = ExitStack()
        self._scratch: list[Path] = []

    def __enter__(self) -> _Staging:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            self._finals.__exit__(kind, error, trace)
        finally:
            for path in self._scratch:
                path.unlink(missing_ok=True)

    def partial(self, final: Path) -> Path:
        return self._finals.enter_context(atomic_path(final))

    def scratch(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._scratch.append(path)
        return path


class _CleanWriter:
    """Appends clean chunks to one Parquet file; the schema is the first chunk's."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._schema: pa.Schema | None = None
        self._writer: pq.ParquetWriter | None = None

    def write(self, clean: pd.DataFrame) -> None:
        if self._writer is None:
            self._schema = pa.Schema.from_pandas(clean, preserve_index=False)
            self._writer = pq.ParquetWriter(self._path, self._schema)
        if len(clean):
            self._writer.write_table(pa.Table.from_pandas(clean, schema=self._schema, preserve_index=False))

    def __enter__(self) -> _CleanWriter:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._writer is not None:
            self._writer.close()


class _QuarantineWriter:
    """Spools quarantined chunks, then renders them as one CSV (``render``).

    pandas writes a date/time column as dates only when every value is at midnight, and
    with as many decimals as its most precise value needs; each chunk's precision is noted
    so that the CSV formats every row as the whole quarantine would have been formatted.
    """

    def __init__(self, path: Path, spool: Path, columns: list[str]) -> None:
        self._path = path
        self._spool_path = spool
        self._spool = spool.open("wb")
        self._columns = columns
        self._precision: dict[str, int] = {}

    def write(self, quarantine: pd.DataFrame) -> None:
        if quarantine.empty:
            return
        for name in quarantine.columns:
            if _is_naive_datetime(quarantine[name]):
                self._precision[name] = max(self._precision.get(name, 0), _precision(quarantine[name]))
        pickle.dump(quarantine, self._spool, protocol=pickle.HIGHEST_PROTOCOL)

    def render(self) -> None:
        self._spool.close()
        with self._path.open("w", encoding="utf-8", newline="") as handle:
            pd.DataFrame(columns=self._columns).to_csv(handle, index=False)
            for frame in self._unspool():
                for name, precision in self._precision.items():
                    frame[name] = _format_datetimes(frame[name], precision)
                frame.to_csv(handle, index=False, header=False)

    def _unspool(self) -> Iterator[pd.DataFrame]:
        with self._spool_path.open("rb") as spool:
            while True:
                try:
                    yield pickle.load(spool)  # our own spool, written just above
                except EOFError:
                    return

    def __enter__(self) -> _QuarantineWriter:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._spool.close()


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
