"""CSV files that marketing opens in Excel (UTF-8 with BOM, injection-safe, deterministic), and
the Parquet twins that the pipeline itself reads back.

The formula guard quotes text cells that Excel would run (``=HYPERLINK(…)``, ``+86…``,
``-2``), and a CSV reader turns ids such as ``NA`` or ``null`` into missing values: a CSV
cannot give a later run its ids back exactly. So the files whose rows a later run reads
again (``StepFile.TWINS``: previous tiers, quality history, communities) are also written as
a Parquet *twin* beside the CSV, holding the exact frame, and ``read_history`` reads the twin.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.catalog import StepFile
from features.engine import quiet_progress_bar
from features.errors import SiyuError
from features.files import atomic_path, write_parquet_atomically
from features.progress import progress
from features.sql import literal

logger = logging.getLogger(__name__)

# A cell starting with one of these is run as a formula by Excel (CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_GUARD = "'"
_BOM = "utf-8-sig"  # UTF-8 with a byte order mark: Excel then reads the file as UTF-8
_QUOTED_MARKS = (",", '"', "\n", "\r")  # a CSV field holding one of these is quoted
CSV_BLOCK_ROWS = 250_000  # a longer CSV is formatted this many rows at a time, with progress counts


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy where text cells that Excel would run as a formula are prefixed with a quote.

    Only text columns are touched: a negative number stays a number.
    """
    safe = frame.copy()
    for column in safe.columns:
        guarded = _guarded(safe[column])
        if guarded is not None:
            safe[column] = guarded
    return safe


def _guarded(series: pd.Series) -> pd.Series | None:
    """``series`` with its formula-like texts quoted, or None when it has none (or is not text)."""
    if pd.api.types.is_string_dtype(series) or series.dtype == object:
        risky, _ = _text_marks(series)
        if risky.any():
            return _quoted(series, risky)
    return None


def _quoted(series: pd.Series, risky: np.ndarray) -> pd.Series:
    text = series.astype("string")
    return text.mask(risky, _GUARD + text)


def _text_marks(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Which texts of ``series`` Excel would run as a formula (they start with one of
    ``_FORMULA_PREFIXES``) and which are empty; a missing value is neither. Found by Arrow's
    string kernels on ``CSV_BLOCK_ROWS`` rows at a time (an Arrow copy of one block alive at once)."""
    risky, empty = np.zeros(len(series), dtype=bool), np.zeros(len(series), dtype=bool)
    for start, text in _arrow_blocks(series):
        risky[start : start + len(text)] = _arrow_starts_with(text, _FORMULA_PREFIXES)
        empty[start : start + len(text)] = pc.equal(text, "").fill_null(False).to_numpy(zero_copy_only=False)
    return risky, empty


def _starts_with(series: pd.Series, prefixes: tuple[str, ...]) -> np.ndarray:
    """Which values of ``series`` are texts starting with one of ``prefixes`` (Arrow's kernels)."""
    found = np.zeros(len(series), dtype=bool)
    for start, text in _arrow_blocks(series):
        found[start : start + len(text)] = _arrow_starts_with(text, prefixes)
    return found


def _arrow_blocks(series: pd.Series) -> Iterator[tuple[int, pa.Array]]:
    """(first row, Arrow text) of ``CSV_BLOCK_ROWS`` rows of ``series`` at a time (one copy alive)."""
    for start in range(0, len(series), CSV_BLOCK_ROWS):
        yield start, _arrow_text(series.iloc[start : start + CSV_BLOCK_ROWS])


def _arrow_starts_with(text: pa.Array, prefixes: tuple[str, ...]) -> np.ndarray:
    found = functools.reduce(pc.or_, (pc.starts_with(text, prefix) for prefix in prefixes))
    return found.fill_null(False).to_numpy(zero_copy_only=False)


def _arrow_text(series: pd.Series) -> pa.Array:
    """``series`` as Arrow text, missing values null (other objects as ``astype("string")`` gives them)."""
    try:
        return pa.array(series, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # numbers or other objects among the texts
        return pa.array(series.astype("string"), type=pa.large_string(), from_pandas=True)


def twin_path(csv_path: Path) -> Path:
    """The Parquet twin of an export CSV: the catalog's name for it, else the same stem ``.parquet``."""
    name = StepFile.TWINS.get(csv_path.name, csv_path.with_suffix(".parquet").name)
    return csv_path.with_name(name)


def write_excel_csv(
    frame: pd.DataFrame, path: Path, sort_by: list[str] | None = None, twin: bool = False
) -> Path:
    """Write ``frame`` for Excel: UTF-8 with BOM, formulas neutralised, rows in a fixed order.

    With ``twin`` the same rows, unquoted and with their dtypes, also go to ``twin_path(path)``.
    Each file appears whole or not at all: it is written beside its target and renamed.
    """
    ordered = (frame.sort_values(sort_by, kind="mergesort") if sort_by else frame).reset_index(drop=True)
    with atomic_path(path) as partial:
        if len(ordered) <= CSV_BLOCK_ROWS:
            neutralise_formulas(ordered).to_csv(partial, index=False, encoding=_BOM, lineterminator="\n")
        elif not _write_with_duckdb(ordered, partial, f"writing {path.name}"):
            _write_blocks(ordered, partial, f"writing {path.name}")
    if twin:
        write_parquet_atomically(ordered, twin_path(path))
    return path


def _write_with_duckdb(frame: pd.DataFrame, partial: Path, step: str) -> bool:
    """``frame`` as ``write_excel_csv`` writes it, by DuckDB's CSV writer (several threads, about 4
    times less CPU than pandas), when every column is integers or text and the first column's
    name needs no quotes; False (nothing written) for any other frame. DuckDB quotes as pandas
    does (only a text with a comma, a quote or a line end) except the empty text, which it quotes
    to tell it from a missing value: empty texts go to DuckDB as missing, and both are written as
    nothing, as pandas writes them. The formula-like and empty texts are found by Arrow's string
    kernels (``_text_marks``); the BOM goes in as the first character of the first name."""
    names = [str(column) for column in frame.columns]
    if not frame.columns.is_unique or not all(map(_integers_or_text, (frame[c] for c in frame.columns))):
        return False
    if not names or any(mark in names[0] for mark in _QUOTED_MARKS):
        return False  # the BOM goes in as the start of the first name, which DuckDB must not quote
    # a count per column guarded, one for the file: no silent stretch over millions of rows
    with progress(step, total=frame.shape[1] + 1, unit="columns") as bar:
        safe = frame.copy(deep=False)  # a column that changes is replaced here, not in ``frame``
        for column in frame.columns:
            if not pd.api.types.is_integer_dtype(frame[column]):
                risky, empty = _text_marks(frame[column])
                text = _quoted(frame[column], risky) if risky.any() else frame[column]
                if risky.any() or empty.any():
                    safe[column] = text.mask(empty) if empty.any() else text
            bar.advance()
        # the BOM as the first name's first character: DuckDB writes it first, the file in one pass
        safe.columns = ["\ufeff" + names[0], *names[1:]]
        with duckdb.connect() as con:
            quiet_progress_bar(con)  # the column counts above and below replace DuckDB's bar
            con.register("frame", safe)
            con.execute(f"COPY frame TO {literal(str(partial))} (HEADER)")
        bar.advance()
    pa.default_memory_pool().release_unused()  # Arrow's allocator keeps freed blocks otherwise
    return True


def _integers_or_text(series: pd.Series) -> bool:
    """Whether ``series`` holds integers (not booleans) or only texts, missing values aside."""
    if pd.api.types.is_integer_dtype(series):
        return True
    text_dtype = series.dtype == object or pd.api.types.is_string_dtype(series)
    return bool(text_dtype and pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"))


def _write_blocks(frame: pd.DataFrame, partial: Path, step: str) -> None:
    """``frame`` as ``write_excel_csv`` writes it, ``CSV_BLOCK_ROWS`` rows at a time with a
    progress count: the same bytes (the header once, the BOM once), no silent stretch on a
    file of millions of rows (the share kit at 300,000 distributors: 6 million)."""
    with (
        partial.open("w", encoding=_BOM, newline="") as out,
        progress(step, total=len(frame), unit="rows") as bar,
    ):
        for start in range(0, len(frame), CSV_BLOCK_ROWS):
            block = frame.iloc[start : start + CSV_BLOCK_ROWS]
            neutralise_formulas(block).to_csv(out, index=False, header=start == 0, lineterminator="\n")
            bar.advance(len(block))


def read_history(csv_path: Path, columns: list[str], fix: str) -> pd.DataFrame:
    """``columns`` of an earlier run's export, ids exactly as that run had them.

    Reads the Parquet twin of ``csv_path``; an export made before twins existed has only the
    CSV, which is read instead (text only, only empty cells missing, the formula guard's
    quote taken off again) with a logged note. A file that cannot be read, or lacks one of
    ``columns``, raises a ``SiyuError`` naming it, with ``fix``.
    """
    twin = twin_path(csv_path)
    source = twin if twin.is_file() else csv_path
    try:
        if source == twin:
            return _checked(pd.read_parquet(twin), columns, twin, fix)
        logger.warning(
            "%s: no Parquet twin %s (an export made before twins existed); reading the CSV, whose "
            "formula-guarded ids are unquoted again",
            csv_path,
            twin.name,
        )
        text = pd.read_csv(csv_path, encoding="utf-8-sig", dtype=str, keep_default_na=False, na_values=[""])
        return _unguarded(_checked(text, columns, csv_path, fix))
    except (ValueError, OSError) as error:  # UnicodeDecodeError, ParserError and ArrowInvalid among them
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SiyuError(f"{source}: cannot be read ({reason[:200]})\n  fix: {fix}") from None


def _checked(frame: pd.DataFrame, columns: list[str], path: Path, fix: str) -> pd.DataFrame:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise SiyuError(f"{path}: missing column(s) {missing}\n  fix: {fix}")
    return frame[columns]


def unguard_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """The inverse of ``neutralise_formulas``: text as it was before the CSV quoted it (workbooks)."""
    return _unguarded(frame)


def _unguarded(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells with the formula guard's quote taken off (the inverse of ``neutralise_formulas``)."""
    plain = frame.copy()
    for column in plain.columns:
        quoted = _starts_with(plain[column], (_GUARD,))
        if not quoted.any():  # most columns: one pass by Arrow's kernels, no string copies
            continue
        text = plain[column].astype("string")
        guarded = quoted & text.str[1:].str.startswith(_FORMULA_PREFIXES).fillna(False).to_numpy(bool)
        if guarded.any():
            plain[column] = text.mask(guarded, text.str[1:]).astype(object)
    return plain
