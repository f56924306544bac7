"""Validating a data set table by table, a chunk at a time, and writing what comes out.

Layout under ``out_dir``::

    clean/<table>.parquet        typed rows that passed every check
    quarantine/<table>.csv       rows set aside, as read, with source_row and quarantine_reason
    validation.json              rows read / kept / quarantined / out of the window per table,
                                 quarantine reasons and flagged references

Only one chunk of a table (plus the 64-bit hashes ``features.validate`` keeps between
chunks: of rows and keys met, and of the clean ids other tables refer to) is in memory at
a time: clean rows are appended to a Parquet file, and quarantined rows to a spool that is
rendered as CSV once the table is done (so that a
date column is formatted the same way in every row, as pandas would format the whole
quarantine). Every file is written beside its final name (``.partial``) and all are
renamed into place only when every table has been validated: a run stopped by a
file-level error leaves no half-written file and replaces none of an earlier run's.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from types import TracebackType

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.asof import AsOf
from features.catalog import Folder, StepFile
from features.columns import Col, Table
from features.contract import VALIDATION_ORDER
from features.files import atomic_path
from features.reader import RawTable
from features.validate import (
    KnownIds,
    SeenHashes,
    TableReport,
    TableValidator,
    ValidationConfig,
    ValidationResult,
    find_inconsistent_orders,
    id_hashes,
    known_references,
    order_line_hashes,
    referenced_keys,
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
    raw_tables: dict[str, RawTable],
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
    """
    as_of = AsOf.of(as_of)
    config = config or ValidationConfig()
    needed_keys = referenced_keys(list(raw_tables))
    clean_ids: dict[tuple[str, str], SeenHashes] = {}
    order_lines = SeenHashes() if Table.COMPLAINTS in raw_tables else None
    reports: list[TableReport] = []
    with _Staging() as staging:
        run = _Run(as_of, config, chunk_rows or config.chunk_rows, now, out_dir, staging)
        for table in (t for t in VALIDATION_ORDER if t in raw_tables):
            known = known_references(table, clean_ids, config.references)
            if table == Table.COMPLAINTS:
                known = KnownIds(known.quarantine, known.flag, order_lines)
            lines = order_lines if table == Table.ORDERS else None
            report, ids = _validate_table(raw_tables[table], known, run, needed_keys.get(table, []), lines)
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
    return result


@dataclass(frozen=True)
class _Run:
    """What every table of one validation run shares."""

    as_of: AsOf
    config: ValidationConfig
    chunk_rows: int
    now: datetime | None
    out_dir: Path
    staging: _Staging


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


def _validate_table(
    raw: RawTable,
    known: KnownIds,
    run: _Run,
    id_columns: list[str],
    order_lines: SeenHashes | None,
) -> tuple[TableReport, dict[str, SeenHashes]]:
    """Stream one table through its validator into its clean and quarantine files; return
    the report and the clean values of ``id_columns``, hashed (for the tables that refer to them).
    ``order_lines``, when given, collects the clean order lines (for complaints)."""
    inconsistent = None
    if raw.name == Table.ORDERS:
        inconsistent = find_inconsistent_orders(raw, run.as_of, run.config, run.now, run.chunk_rows)
    validator = TableValidator(raw.name, str(raw.path), run.as_of, run.config, known, inconsistent, run.now)
    quarantine_columns = [Col.SOURCE_ROW, *raw.columns, Col.QUARANTINE_REASON]
    ids = {column: SeenHashes() for column in id_columns}
    out_dir, staging = run.out_dir, run.staging
    spool = staging.scratch(quarantine_path(out_dir, raw.name).with_suffix(".spool"))
    quarantine_file = staging.partial(quarantine_path(out_dir, raw.name))
    with (
        _CleanWriter(staging.partial(clean_path(out_dir, raw.name))) as clean,
        _QuarantineWriter(quarantine_file, spool, quarantine_columns) as bad,
    ):
        for chunk in raw.chunks(run.chunk_rows):
            checked = validator.check(chunk)
            clean.write(checked.clean)
            bad.write(checked.quarantine)
            for column, seen in ids.items():
                seen.repeats(id_hashes(checked.clean[column]))
            if order_lines is not None:
                order_lines.repeats(order_line_hashes(checked.clean))
            _log_progress(raw, validator.rows_read, run.chunk_rows)
        report = validator.report()
        bad.render()
    return report, ids


def _log_progress(raw: RawTable, done: int, chunk_rows: int) -> None:
    if raw.rows is not None and raw.rows <= chunk_rows:
        return
    total = f" of {raw.rows:,} ({done / raw.rows:.0%})" if raw.rows else ""
    logger.info("%s: %s rows validated%s", raw.name, f"{done:,}", total)


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
