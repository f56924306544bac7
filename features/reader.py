"""Reading a data directory: find each contract table's file, open it, map its column names.

``read_dataset`` opens every table's file and checks what can be checked without reading
the rows: a missing required table, two files for one table, an empty or unreadable file,
a missing or duplicated column, a directory or a broken link where a file should be, a
number column stored as true/false. The rows are then read lazily, in chunks of a bounded size
(``RawTable.chunks``), so a table never has to fit in memory at once. Everything that
makes a *file* unusable stops with a ``ContractError`` naming the file, the column and the
fix, also when it is found in a later chunk (a CSV that is not UTF-8 or has a ragged row).
Row-level problems are left to ``features.validate``.

**Partitioned tables.** A table may also be a directory of Parquet files, as a data lake
lands it: ``orders/dt=2025-12-31/part-0.parquet`` (Hive-style), or a plain directory of
parts (``orders/`` or ``orders.parquet/``). Its parts are every ``*.parquet`` file below
the directory, in path order (so daily ``dt=YYYY-MM-DD`` folders read oldest first);
names starting with ``.`` or ``_`` (``_SUCCESS``, ``.crc`` files) are skipped, and parts
with no rows are left out. The partition values in folder names (``dt=...``) are not
read: they are not contract columns, and each row is placed in time by its own event
time (a lake's ``dt`` is often a UTC or load date). Each part is opened and checked as a
file of its own (``PartitionedTable.parts``), so validation can keep results per part.

Each chunk has the pandas dtypes the whole file would have read as: CSV cells are text,
a Parquet text column reads as Arrow-backed strings (``string[pyarrow]``), and a Parquet
integer (or boolean) column that holds an empty cell anywhere in the file reads as float
(or object) in every chunk, as ``pyarrow.Table.to_pandas`` reads the file.
"""

from __future__ import annotations

import codecs
import collections
import csv
import dataclasses
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from features.columns import Table
from features.contract import CONTRACT
from features.engine import count_table_read
from features.errors import ContractError

logger = logging.getLogger(__name__)

# a table the column mapping may name (a config with another is refused, naming the key)
TableName = Literal[tuple(Table.ALL)]  # type: ignore[valid-type]

SUFFIXES = (".parquet", ".csv")
_BLOCK_BYTES = 1 << 22
# Parquet text reads as Arrow-backed strings, which validation works on (``features.validate``):
# no Python string is made per cell only to be turned back into Arrow.
_ARROW_TEXT = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}
_CSV_OPTIONS: dict[str, object] = {
    "dtype": str,
    "keep_default_na": False,
    "na_values": [""],
    "encoding": "utf-8-sig",
}


class DataSourceConfig(BaseModel):
    """Where the tables come from and how their columns are named.

    ``columns`` maps a table to ``{your column name: contract column name}``, e.g.
    ``{"orders": {"buyer": "consumer_id"}}``.
    """

    model_config = ConfigDict(extra="forbid")

    columns: dict[TableName, dict[str, str]] = Field(default_factory=dict)


@dataclass(frozen=True)
class RawTable:
    """A contract table's file, opened and its header checked; rows are read by ``chunks``.

    ``columns`` maps each contract column the file has (in contract order) to its name in
    the file; ``rows`` is the number of data rows when the file states it (Parquet), else
    None. ``float_columns`` / ``object_columns`` are the Parquet columns read as float /
    object in every chunk because the whole file has an empty cell in them.
    """

    name: str
    path: Path
    columns: dict[str, str]
    rows: int | None = None
    float_columns: tuple[str, ...] = ()
    object_columns: tuple[str, ...] = ()
    share: float = 1.0  # this file's share of its table's rows (a part of a directory table: < 1)

    @property
    def parts(self) -> tuple[RawTable, ...]:
        """The files the table is made of: this one."""
        return (self,)

    def chunks(self, chunk_rows: int, only: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """The file's rows, ``chunk_rows`` at a time, with contract column names.

        ``only`` restricts the read to these contract columns. A chunk's index is a
        RangeIndex starting at 0.
        """
        count_table_read(self.name, self.share)
        wanted = {c: f for c, f in self.columns.items() if only is None or c in only}
        renames = {file_name: contract for contract, file_name in wanted.items()}
        if self.path.suffix == ".parquet":
            batches = self._parquet_chunks(chunk_rows, list(wanted.values()))
        else:
            batches = self._csv_chunks(chunk_rows, list(wanted.values()) if only is not None else None)
        for batch in batches:
            yield batch.rename(columns=renames)[list(wanted)]

    def _parquet_chunks(self, chunk_rows: int, file_columns: list[str]) -> Iterator[pd.DataFrame]:
        with _parquet_errors(self.path), pq.ParquetFile(self.path) as parquet:
            for batch in parquet.iter_batches(batch_size=chunk_rows, columns=file_columns):
                frame = pa.Table.from_batches([batch]).to_pandas(types_mapper=_ARROW_TEXT.get)
                for name in set(self.float_columns) & set(file_columns):
                    frame[name] = frame[name].astype("float64")
                for name in set(self.object_columns) & set(file_columns):
                    frame[name] = frame[name].astype(object)
                yield frame

    def _csv_chunks(self, chunk_rows: int, file_columns: list[str] | None) -> Iterator[pd.DataFrame]:
        positions = None
        if file_columns is not None:
            header = _csv_header(self.path)
            positions = [header.index(name) for name in file_columns]
        with (
            _csv_errors(self.path),
            pd.read_csv(self.path, chunksize=chunk_rows, usecols=positions, **_CSV_OPTIONS) as reader,
        ):
            yield from reader


@dataclass(frozen=True)
class PartitionedTable:
    """A contract table landed as a directory of Parquet parts, each opened as a ``RawTable``.

    ``columns`` are the contract columns any part has (contract order); ``chunks`` reads
    the parts one after the other (a column a part lacks is left out of its chunks).
    """

    name: str
    path: Path
    parts: tuple[RawTable, ...]

    @property
    def rows(self) -> int:
        return sum(part.rows or 0 for part in self.parts)

    @property
    def columns(self) -> dict[str, str]:
        present = {name for part in self.parts for name in part.columns}
        return {name: name for name in CONTRACT[self.name].column_names if name in present}

    def chunks(self, chunk_rows: int, only: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """Every part's rows in path order, ``chunk_rows`` (or fewer) at a time."""
        for part in self.parts:
            wanted = None if only is None else [name for name in only if name in part.columns]
            yield from part.chunks(chunk_rows, wanted)


TableInput = RawTable | PartitionedTable


def chunks_of_parts(
    parts: Sequence[RawTable], chunk_rows: int, only: list[str] | None = None
) -> Iterator[tuple[list[tuple[int, pd.DataFrame]], list[int]]]:
    """The rows of consecutive files gathered into chunks of at most ``chunk_rows`` rows, so that
    many small files are handled a chunk at a time rather than a file at a time.

    Yields ``(pieces, finished)``: ``pieces`` are (index in ``parts``, that file's next rows)
    in file order, all with the same columns and dtypes (a file that reads otherwise starts a
    new chunk); ``finished`` are the files whose last rows are among these pieces or earlier.
    """
    pieces: list[tuple[int, pd.DataFrame]] = []
    finished: list[int] = []
    rows = 0
    with _read_ahead(_chunks_in_order(parts, chunk_rows, only), chunk_rows) as read:
        for index, chunk in read:
            if chunk is None:  # the file's last rows are behind
                finished.append(index)
                continue
            if pieces and (rows + len(chunk) > chunk_rows or not _same_shape(pieces[0][1], chunk)):
                yield pieces, finished
                pieces, finished, rows = [], [], 0
            pieces.append((index, chunk))
            rows += len(chunk)
    if pieces or finished:
        yield pieces, finished


def _chunks_in_order(
    parts: Sequence[RawTable], chunk_rows: int, only: list[str] | None
) -> Iterator[tuple[int, pd.DataFrame | None]]:
    """Each file's chunks as (index, rows), then (index, None) once the file is read."""
    for index, part in enumerate(parts):
        for chunk in part.chunks(chunk_rows, only):
            yield index, chunk
        yield index, None


@contextmanager
def _read_ahead(
    items: Iterator[tuple[int, pd.DataFrame | None]], limit_rows: int
) -> Iterator[Iterator[tuple[int, pd.DataFrame | None]]]:
    """``items``, read on a thread of their own while the caller works on the ones before:
    Parquet decoding releases the GIL, so reading and checking share the machine's cores. At
    most ``limit_rows`` rows (or one chunk, if larger) wait; an error of the reading thread is
    raised where its item would have come, and leaving early stops the thread."""
    ahead = _ReadAhead(limit_rows)
    reader = threading.Thread(target=ahead.fill, args=(items,), name="siyu-read-ahead", daemon=True)
    reader.start()
    try:
        yield ahead.drain()
    finally:
        ahead.stop()
        reader.join()


class _ReadAhead:
    """The items one thread has read and another not yet taken, bounded by their rows."""

    def __init__(self, limit_rows: int) -> None:
        self._limit = limit_rows
        self._waiting: collections.deque[object] = collections.deque()
        self._rows = 0
        self._stopped = False
        self._changed = threading.Condition()

    def fill(self, items: Iterator[tuple[int, pd.DataFrame | None]]) -> None:
        """Read every item (on the reading thread); then the end, or the error met."""
        outcome: object = _DONE
        try:
            for item in items:
                if not self._put(item):
                    return
        except BaseException as error:  # raised on the taking thread, where the item would be
            outcome = error
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        with self._changed:
            self._waiting.append(outcome)
            self._changed.notify_all()

    def _put(self, item: tuple[int, pd.DataFrame | None]) -> bool:
        size = _rows_of(item)
        with self._changed:
            self._changed.wait_for(
                lambda: self._stopped or not self._rows or self._rows + size <= self._limit
            )
            if self._stopped:
                return False
            self._waiting.append(item)
            self._rows += size
            self._changed.notify_all()
        return True

    def drain(self) -> Iterator[tuple[int, pd.DataFrame | None]]:
        """The items in order (on the taking thread)."""
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._waiting))
                item = self._waiting.popleft()
                if isinstance(item, tuple):
                    self._rows -= _rows_of(item)
                    self._changed.notify_all()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()


def _rows_of(item: tuple[int, pd.DataFrame | None]) -> int:
    return 0 if item[1] is None else len(item[1])


_DONE = object()


def _same_shape(first: pd.DataFrame, other: pd.DataFrame) -> bool:
    """Whether two frames have the same columns with the same dtypes (they concatenate unchanged)."""
    return list(first.columns) == list(other.columns) and first.dtypes.equals(other.dtypes)


def find_table_files(data_dir: Path) -> dict[str, Path]:
    """The file (or directory of Parquet parts) of each contract table present in ``data_dir``;
    fails on a missing required one."""
    if not data_dir.is_dir():
        raise ContractError(
            data_dir,
            "data directory not found",
            "pass --data with a directory that holds orders.parquet/.csv and products.parquet/.csv",
        )
    found: dict[str, Path] = {}
    for table in Table.ALL:
        names = [f"{table}{suffix}" for suffix in SUFFIXES] + [table]
        candidates = [
            _usable_source(data_dir / name)
            for name in names
            if (data_dir / name).exists() or (data_dir / name).is_symlink()
        ]
        if len(candidates) > 1:
            raise ContractError(
                candidates[1],
                f"table '{table}' has two files: {', '.join(c.name for c in candidates)}",
                "keep only one of them",
            )
        if candidates:
            found[table] = candidates[0]
        elif table in Table.REQUIRED:
            raise ContractError(
                data_dir / f"{table}.parquet",
                f"required table '{table}' is missing",
                f"add {table}.parquet or {table}.csv (or a directory {table}/ of Parquet parts) "
                f"to {data_dir}",
            )
    return found


def _usable_source(path: Path) -> Path:
    """``path``, once it is a readable file or a directory of Parquet parts (``<table>/``,
    ``<table>.parquet/``)."""
    if path.is_dir() and path.suffix != ".csv":
        return path
    return _usable_file(path)


def _usable_file(path: Path) -> Path:
    """``path`` itself, once it is known to be a readable file (not a broken link, not a directory)."""
    if path.is_symlink() and not path.exists():
        raise ContractError(
            path,
            f"a broken link to {os.readlink(path)} (that file does not exist)",
            f"point the link at the table's file, or replace {path.name} with the file itself",
        )
    if path.is_dir():
        raise ContractError(
            path,
            "a directory, not a file",
            f"put the table in one file named {path.name} (or Parquet parts in a directory "
            f"{path.stem}/), or move the directory out of {path.parent}",
        )
    return path


def read_dataset(data_dir: Path, config: DataSourceConfig | None = None) -> dict[str, TableInput]:
    """Open every contract table in ``data_dir`` and map its column names to the contract's."""
    config = config or DataSourceConfig()
    tables = {}
    for table, path in find_table_files(data_dir).items():
        mapping = config.columns.get(table, {})
        opened: TableInput = (
            open_table_dir(table, path, mapping) if path.is_dir() else open_table_file(table, path, mapping)
        )
        tables[table] = opened
        rows = opened.rows
        logger.info(
            "opened %s: %s rows in %s (%d file%s)",
            table,
            f"{rows:,}" if rows is not None else "?",
            path.name,
            len(opened.parts),
            "" if len(opened.parts) == 1 else "s",
        )
    return tables


def open_table_dir(table: str, directory: Path, mapping: dict[str, str] | None = None) -> PartitionedTable:
    """Open every Parquet part below ``directory`` (see the module docstring); parts without
    rows are left out, a directory without any row is refused."""
    files = _part_files(directory)
    opened = [open_table_file(table, path, mapping, allow_empty=True) for path in files]
    parts = tuple(part for part in opened if part.rows)
    if not parts:
        raise ContractError(
            directory,
            f"the directory has no rows in any Parquet part ({len(files)} part file(s) found)",
            f"land the table's parts as <name>.parquet files under {directory.name}/ "
            "(e.g. dt=2025-12-31/part-0.parquet)",
        )
    total = sum(part.rows or 0 for part in parts)
    parts = tuple(dataclasses.replace(part, share=(part.rows or 0) / total) for part in parts)
    return PartitionedTable(table, directory, parts)


def _part_files(directory: Path) -> list[Path]:
    """The Parquet files below ``directory`` in path order, skipping names starting with . or _."""
    found: list[Path] = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).parts
        if any(name.startswith((".", "_")) for name in relative) or path.is_dir():
            continue
        if path.suffix != ".parquet":
            raise ContractError(
                path,
                "a file that is not a Parquet part inside a partitioned table's directory",
                "keep only .parquet files there (names starting with '.' or '_' are skipped), "
                "or move the file out",
            )
        found.append(_usable_file(path))
    return found


def open_table_file(
    table: str, path: Path, mapping: dict[str, str] | None = None, allow_empty: bool = False
) -> RawTable:
    """Open one Parquet or CSV file of ``table``: check it has rows (unless ``allow_empty``, for a
    part of a partitioned table) and the contract's columns."""
    path = _usable_file(path)
    boolean_fields: list[str] = []
    if path.suffix == ".parquet":
        header, rows, float_columns, object_columns, boolean_fields = _inspect_parquet(path)
    else:
        header, rows, float_columns, object_columns = _inspect_csv(path), None, (), ()
    _refuse_duplicated_names(path, header)
    if rows == 0 and not allow_empty:
        raise ContractError(
            path,
            "the file has no data rows",
            "export the table again, or remove the file if the table is optional",
        )
    columns = _map_columns(table, path, header, mapping or {})
    _refuse_boolean_numbers(table, path, columns, boolean_fields)
    return RawTable(table, path, columns, rows, float_columns, object_columns)


def _first_repeat(names: list[str]) -> str | None:
    """The first name that appears a second time in ``names`` (None when all differ)."""
    met: set[str] = set()
    for name in names:
        if name in met:
            return name
        met.add(name)
    return None


def _refuse_duplicated_names(path: Path, header: list[str]) -> None:
    duplicated = _first_repeat([name.strip() for name in header])
    if duplicated is not None:
        raise ContractError(
            path,
            f"the header names column '{duplicated}' more than once",
            "rename or drop the extra copies so that every column name appears once",
            column=duplicated,
        )


def _refuse_boolean_numbers(
    table: str, path: Path, columns: dict[str, str], boolean_fields: list[str]
) -> None:
    """A number column stored as true/false (Parquet boolean) would read as 1/0: refuse it."""
    for name, file_name in columns.items():
        if CONTRACT[table].column(name).kind in ("integer", "money") and file_name in boolean_fields:
            raise ContractError(
                path,
                "the column is stored as true/false, not as numbers",
                "write the column with a number type (int64 or float64); check that it is the right column",
                column=name,
            )


def _inspect_parquet(path: Path) -> tuple[list[str], int, tuple[str, ...], tuple[str, ...], list[str]]:
    with _parquet_errors(path), pq.ParquetFile(path) as parquet:
        schema = parquet.schema_arrow
        _refuse_duplicated_names(path, list(schema.names))
        integers = [f.name for f in schema if pa.types.is_integer(f.type) and _has_nulls(parquet, f.name)]
        booleans = [f.name for f in schema if pa.types.is_boolean(f.type) and _has_nulls(parquet, f.name)]
        num_rows = parquet.metadata.num_rows if schema.names else 0
        every_boolean = [f.name for f in schema if pa.types.is_boolean(f.type)]
    return list(schema.names), num_rows, tuple(integers), tuple(booleans), every_boolean


def _has_nulls(parquet: pq.ParquetFile, name: str) -> bool:
    """Whether a column holds an empty cell, from the statistics when every row group has them."""
    metadata = parquet.metadata
    index = parquet.schema_arrow.get_field_index(name)
    counts = []
    for group in range(metadata.num_row_groups):
        column = metadata.row_group(group).column(index) if index < metadata.num_columns else None
        statistics = column.statistics if column is not None else None
        if statistics is None or not statistics.has_null_count:
            return parquet.read(columns=[name]).column(0).null_count > 0
        counts.append(statistics.null_count)
    return sum(counts) > 0


def _inspect_csv(path: Path) -> list[str]:
    """The header of a CSV file, after checking the whole file is UTF-8, has a first data
    row, and has no row with more fields than the header."""
    _check_utf8(path)
    header = _csv_header(path)
    _refuse_other_separators(path, header)
    _refuse_duplicated_names(path, header)
    with _csv_errors(path):
        first = pd.read_csv(path, nrows=1, **_CSV_OPTIONS)
    if first.empty:
        raise ContractError(
            path,
            "the file has no data rows",
            "export the table again, or remove the file if the table is optional",
        )
    _check_field_counts(path, len(first.columns))
    return [str(c) for c in first.columns]


# separators of other CSV dialects (European Excel writes ';', some exports tabs or '|')
_OTHER_SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "'|' characters"}


def _refuse_other_separators(path: Path, header: list[str]) -> None:
    """A header read as one field that holds another separator: the file is not comma-separated
    (every column would be reported missing, or a row as having too many fields)."""
    if len(header) != 1:
        return
    for separator, name in _OTHER_SEPARATORS.items():
        if separator in header[0]:
            raise ContractError(
                path,
                f"the header is one field separated by {name} ({header[0][:60]!r}): the file is not "
                "comma-separated",
                "save it as comma-separated CSV (Excel: Save As > 'CSV UTF-8 (Comma delimited)'), "
                "with '.' as the decimal mark, or supply the table as Parquet",
            )


def _check_utf8(path: Path) -> None:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    offset = 0
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK_BYTES):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                _raise_not_utf8(path, offset + error.start)
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            _raise_not_utf8(path, offset)


def _raise_not_utf8(path: Path, byte: int) -> None:
    raise ContractError(
        path,
        f"not UTF-8 text (byte {byte} cannot be decoded)",
        "save the file as UTF-8 (Excel: Save As > 'CSV UTF-8'; or iconv -f GBK -t UTF-8)",
    )


def _check_field_counts(path: Path, fields: int) -> None:
    """Fail on a row with more fields than the header, streaming through the file.

    pandas' chunked CSV reader misses such a row when it is the first of a chunk (it keeps
    it, cut to the header's width: pandas-dev/pandas#11569), so every row is counted here,
    with pyarrow, before the file is read. A row with fewer fields is fine: pandas fills
    the missing cells with empty values.
    """
    names = [f"field_{i}" for i in range(fields)]
    options = {
        "read_options": pa_csv.ReadOptions(skip_rows=1, column_names=names, block_size=_BLOCK_BYTES),
        "parse_options": pa_csv.ParseOptions(
            newlines_in_values=True,
            invalid_row_handler=lambda row: "skip" if row.actual_columns < row.expected_columns else "error",
        ),
        "convert_options": pa_csv.ConvertOptions(
            include_columns=names[:1], column_types={names[0]: pa.binary()}, check_utf8=False
        ),
    }
    try:
        with pa_csv.open_csv(path, **options) as reader:
            for _ in reader:
                pass
    except pa.ArrowInvalid as error:
        raise ContractError(
            path,
            f"not a readable CSV file ({str(error).splitlines()[0]})",
            "check quoting and that every row has as many fields as the header",
        ) from None


def _csv_header(path: Path) -> list[str]:
    """The header's names as written (pandas would rename a repeated ``a`` to ``a.1``)."""
    with _csv_errors(path), path.open(encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), [])


@contextmanager
def _parquet_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except (pa.ArrowException, OSError) as error:
        raise ContractError(
            path,
            f"not a readable Parquet file ({error})",
            "write the file again with a Parquet writer, or supply it as CSV",
        ) from None


@contextmanager
def _csv_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except UnicodeDecodeError as error:
        raise ContractError(
            path,
            f"not UTF-8 text (byte {error.start} cannot be decoded)",
            "save the file as UTF-8 (Excel: Save As > 'CSV UTF-8'; or iconv -f GBK -t UTF-8)",
        ) from None
    except pd.errors.EmptyDataError:
        raise ContractError(path, "the file is empty", "export the table again with a header row") from None
    except (pd.errors.ParserError, OSError) as error:
        raise ContractError(
            path,
            f"not a readable CSV file ({error})",
            "check quoting and that every row has as many fields as the header",
        ) from None


def _map_columns(table: str, path: Path, header: list[str], mapping: dict[str, str]) -> dict[str, str]:
    """Contract column -> name in the file, for the contract columns the file has."""
    spec = CONTRACT[table]
    mapped = [mapping.get(name.strip(), name.strip()) for name in header]
    bad_targets = set(mapping.values()) - set(spec.column_names)
    if bad_targets:
        raise ContractError(
            path,
            f"the column mapping targets {sorted(bad_targets)}, which {table} does not have",
            f"map onto {table} columns: {spec.column_names}",
        )
    duplicated = _first_repeat(mapped)
    if duplicated is not None:
        raise ContractError(
            path, "the header names a column twice (after mapping)", "keep one of them", column=duplicated
        )
    missing = [c for c in spec.required_columns if c not in mapped]
    if missing:
        also = f"; also missing: {', '.join(missing[1:])}" if len(missing) > 1 else ""
        raise ContractError(
            path,
            f"required column missing (the file has: {', '.join(mapped)}){also}",
            f"rename your column to '{missing[0]}', or map it in the config: "
            f"data.columns.{table}: {{<your name>: {missing[0]}}}",
            column=missing[0],
        )
    extra = [c for c in mapped if c not in spec.column_names]
    if extra:
        logger.info("%s: ignoring columns the contract does not use: %s", path.name, extra)
    in_file = dict(zip(mapped, header, strict=True))
    return {c: in_file[c] for c in spec.column_names if c in in_file}
