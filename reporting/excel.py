"""CSV files that marketing opens in Excel (UTF-8 with BOM, injection-safe, deterministic), and
the Parquet twins that the pipeline itself reads back.

The formula guard quotes text cells that Excel would run (``=HYPERLINK(…)``, ``+86…``,
``-2``), and a CSV reader turns ids such as ``NA`` or ``null`` into missing values: a CSV
cannot give a later run its ids back exactly. So the files whose rows a later run reads
again (``StepFile.TWINS``: previous tiers, quality history, communities) are also written as
a Parquet *twin* beside the CSV, holding the exact frame, and ``read_history`` reads the twin.
"""

from __future__ import annotations

import codecs
import logging
import shutil
from pathlib import Path

import duckdb
import pandas as pd

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
        text = series.astype("string")
        risky = text.str.startswith(_FORMULA_PREFIXES).fillna(False)
        if risky.any():
            return text.mask(risky, _GUARD + text)
    return None


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
    times less CPU than pandas), when every column is integers or text; False (nothing written)
    for any other frame. DuckDB quotes as pandas does (only a text with a comma, a quote or a
    line end) except the empty text, which it quotes to tell it from a missing value: empty texts
    go to DuckDB as missing, and both are written as nothing, as pandas writes them."""
    if not frame.columns.is_unique or not all(map(_integers_or_text, (frame[c] for c in frame.columns))):
        return False
    body = partial.with_name(partial.name + ".body")
    # a count per column guarded, one for the file: no silent stretch over millions of rows
    with progress(step, total=frame.shape[1] + 1, unit="columns") as bar:
        safe = frame.copy(deep=False)  # a column that changes is replaced here, not in ``frame``
        for column in frame.columns:
            if not pd.api.types.is_integer_dtype(frame[column]):
                guarded = _guarded(frame[column])
                text = frame[column] if guarded is None else guarded
                empty = (text == "").to_numpy(dtype=bool, na_value=False)
                if guarded is not None or empty.any():
                    safe[column] = text.mask(empty) if empty.any() else text
            bar.advance()
        try:
            with duckdb.connect() as con:
                quiet_progress_bar(con)  # the column counts above and below replace DuckDB's bar
                con.register("frame", safe)
                con.execute(f"COPY frame TO {literal(str(body))} (HEADER)")
            with partial.open("wb") as out, body.open("rb") as rows:
                out.write(codecs.BOM_UTF8)
                shutil.copyfileobj(rows, out, 1 << 20)
        finally:
            body.unlink(missing_ok=True)
        bar.advance()
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
        text = plain[column].astype("string")
        quoted = text.str.startswith(_GUARD).fillna(False)
        if not quoted.any():  # most columns: one pass, no string copies
            continue
        guarded = quoted & text.str[1:].str.startswith(_FORMULA_PREFIXES).fillna(False)
        if guarded.any():
            plain[column] = text.mask(guarded, text.str[1:]).astype(object)
    return plain
