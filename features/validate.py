"""Row-level validation, chunk by chunk: type every column, set bad rows aside with their reasons.

A table is validated in chunks of bounded size by a ``TableValidator``. For each chunk the
raw values are coerced to the contract's types, then the table's pandera schema
(``features.contract.row_schema``) is run lazily; every failing check names a quarantine
reason. What spans chunks is remembered by the validator, so the outcome does not depend
on the chunk size:

- duplicates: a 64-bit hash of every typed row (and of every key value) met so far is
  kept, so the first copy in the file is kept and every later copy is quarantined as
  ``duplicate_row`` (or ``duplicate_<key>``), whichever chunk the first copy was in;
- ``source_row`` numbering (1 = first data row of the file) continues across chunks;
- a column none of whose values in the whole file can be read is a file-level error,
  raised by ``TableValidator.report`` once the last chunk has been seen.

Rows with at least one reason go to quarantine *as they were read*, with ``source_row``
and ``quarantine_reason`` (reasons joined by ``;``). The run goes on with the good rows and
fails only when a table's quarantined share exceeds the configured limit.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pydantic import BaseModel, ConfigDict, Field

from features.columns import Col, Table
from features.contract import (
    CONTRACT,
    DUPLICATE_ROW,
    REFERENCES,
    UNKNOWN_CATEGORY,
    ColumnSpec,
    TableSpec,
    dtype_of,
    reason_duplicate_key,
    reason_missing,
    row_schema,
    typed_schema,
)
from features.errors import ContractError, QuarantineLimitExceeded
from features.reader import RawTable

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 500_000
_KIND_WORDS = {"integer": "a whole number", "money": "a number", "timestamp": "a date/time"}


class ValidationConfig(BaseModel):
    """How much quarantine a run tolerates before it stops, and how many rows it holds at once."""

    model_config = ConfigDict(extra="forbid")

    max_quarantine_share: float = Field(0.05, ge=0.0, le=1.0)
    max_quarantine_share_by_table: dict[str, float] = Field(default_factory=dict)
    chunk_rows: int = Field(DEFAULT_CHUNK_ROWS, ge=1)

    def limit_for(self, table: str) -> float:
        return self.max_quarantine_share_by_table.get(table, self.max_quarantine_share)


@dataclass(frozen=True)
class TableReport:
    """What validation did to one table."""

    table: str
    source: str
    rows_read: int
    rows_kept: int
    rows_quarantined: int
    reasons: dict[str, int]

    @property
    def quarantined_share(self) -> float:
        return self.rows_quarantined / self.rows_read if self.rows_read else 0.0


@dataclass(frozen=True)
class ValidationResult:
    """What validation did to every table of a data set, as of a date (in validation order)."""

    as_of: date
    reports: list[TableReport]

    def over_limit(self, config: ValidationConfig) -> list[TableReport]:
        """Reports of the tables whose quarantined share exceeds their limit."""
        return [r for r in self.reports if r.quarantined_share > config.limit_for(r.table)]


@dataclass(frozen=True)
class CheckedChunk:
    """One chunk split into its clean rows (typed) and its quarantined rows (as read)."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame


class SeenHashes:
    """The 64-bit hashes met so far, kept sorted: tells which of a chunk's values came before.

    Two different values share a hash with probability 2**-64, so among n distinct values
    the chance that any pair collides (and a row is wrongly called a duplicate) is about
    n**2 / 2**65: 3e-6 for 10 million rows, 2e-5 for 28 million.
    """

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._sorted)

    def repeats(self, hashes: np.ndarray) -> np.ndarray:
        """Per hash, whether it was met before (in an earlier chunk or earlier in this one);
        remembers the new ones."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        repeated = pd.Series(hashes).duplicated(keep="first").to_numpy()
        if len(self._sorted):
            position = np.minimum(np.searchsorted(self._sorted, hashes), len(self._sorted) - 1)
            repeated |= self._sorted[position] == hashes
        new = np.sort(hashes[~repeated])
        self._sorted = np.insert(self._sorted, np.searchsorted(self._sorted, new), new)
        return repeated


class TableValidator:
    """Validates one table chunk by chunk, in file order.

    ``as_of`` is the as-of date (timestamps must fall on or before it) and ``known`` maps a
    referencing column to the ids it may take. Call ``check`` on every chunk, then
    ``report``.
    """

    def __init__(self, table: str, source: str, as_of: date, known: dict[str, pd.Index]) -> None:
        self.spec = CONTRACT[table]
        self.source = source
        self._as_of_end = pd.Timestamp(as_of + timedelta(days=1))
        self._known = known
        self._rows_read = 0
        self._rows_kept = 0
        self._reasons: Counter[str] = Counter()
        self._seen_rows = SeenHashes()
        self._seen_keys = {key: SeenHashes() for key in self.spec.key}
        self._readable: set[str] = set()
        self._unreadable_example: dict[str, object] = {}

    def check(self, chunk: pd.DataFrame) -> CheckedChunk:
        """Split one chunk (the next rows of the file, as read) into clean and quarantined rows."""
        source = chunk.reset_index(drop=True)
        typed, unparseable = coerce_table(self.spec, source)
        self._note_readability(source, unparseable)
        schema = row_schema(self.spec, list(typed.columns), self._as_of_end, self._known)
        reasons = _failed_checks(schema, typed, self._duplicates(typed))
        for column, mask in unparseable.items():
            if mask.any():
                reasons = _add_reason(reasons, mask, f"unparseable_{column}", drop=reason_missing(column))
        bad = reasons.notna()
        clean = _finalise_clean(self.spec, typed.loc[~bad].reset_index(drop=True))
        quarantine = source.loc[bad].copy()
        quarantine.insert(0, Col.SOURCE_ROW, quarantine.index + self._rows_read + 1)
        quarantine[Col.QUARANTINE_REASON] = reasons[bad]
        self._rows_read += len(source)
        self._rows_kept += len(clean)
        self._reasons.update(reasons[bad].str.split(";").explode().tolist() if bad.any() else [])
        return CheckedChunk(clean, quarantine.reset_index(drop=True))

    @property
    def rows_read(self) -> int:
        return self._rows_read

    def report(self) -> TableReport:
        """What was done to the table; fails when a column has no readable value in the whole file."""
        for name in self.spec.column_names:
            if name in self._unreadable_example and name not in self._readable:
                example = self._unreadable_example[name]
                raise ContractError(
                    self.source,
                    f"no value can be read as {_KIND_WORDS[self.spec.column(name).kind]} (e.g. {example!r})",
                    f"check that this is the right column, or map the right one in the config "
                    f"(data.columns.{self.spec.name})",
                    column=name,
                )
        return TableReport(
            table=self.spec.name,
            source=self.source,
            rows_read=self._rows_read,
            rows_kept=self._rows_kept,
            rows_quarantined=self._rows_read - self._rows_kept,
            reasons=dict(sorted(self._reasons.items())),
        )

    def _note_readability(self, source: pd.DataFrame, unparseable: dict[str, pd.Series]) -> None:
        for name, failed in unparseable.items():
            if name in self._readable:
                continue
            if (source[name].notna() & ~failed).any():
                self._readable.add(name)
            elif failed.any() and name not in self._unreadable_example:
                self._unreadable_example[name] = source[name][failed].iloc[0]

    def _duplicates(self, typed: pd.DataFrame) -> dict[str, np.ndarray]:
        """Per duplicate reason, the rows that repeat an earlier row (or key) of the file.
        A row that repeats a whole earlier row is reported once, as duplicate_row."""
        exact = self._seen_rows.repeats(_row_hashes(typed))
        found = {DUPLICATE_ROW: exact}
        for key, seen in self._seen_keys.items():
            present = typed[key].notna().to_numpy()
            repeated = np.zeros(len(typed), dtype=bool)
            repeated[present] = seen.repeats(_row_hashes(typed.loc[present, [key]]))
            found[reason_duplicate_key(key)] = repeated & ~exact
        return found


def latest_order_date(
    raw_tables: dict[str, RawTable], today: date | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> date:
    """The default as-of date: the day of the latest readable order, but never after today.

    Reads only the ``ordered_at`` column, a chunk at a time.
    """
    today = today or date.today()
    end = pd.Timestamp(today + timedelta(days=1))
    orders = raw_tables[Table.ORDERS]
    latest = pd.NaT
    for chunk in orders.chunks(chunk_rows, only=[Col.ORDERED_AT]):
        ordered_at = _to_timestamp(chunk[Col.ORDERED_AT])
        chunk_latest = ordered_at[ordered_at < end].max()
        if pd.notna(chunk_latest) and (pd.isna(latest) or chunk_latest > latest):
            latest = chunk_latest
    if pd.isna(latest):
        raise ContractError(
            orders.path,
            "no order has a readable date up to today",
            "pass --as-of, or fix the dates",
            column=Col.ORDERED_AT,
        )
    return latest.date()


def check_quarantine_limits(result: ValidationResult, config: ValidationConfig) -> None:
    """Stop the run when a table lost more rows to quarantine than the config allows."""
    failed = result.over_limit(config)
    if failed:
        lines = [
            f"{r.source}: {r.rows_quarantined:,} of {r.rows_read:,} rows quarantined "
            f"({r.quarantined_share:.1%} > limit {config.limit_for(r.table):.1%}); top reasons: "
            + ", ".join(f"{k}={v:,}" for k, v in sorted(r.reasons.items(), key=lambda kv: -kv[1])[:3])
            for r in failed
        ]
        raise QuarantineLimitExceeded(
            "too many bad rows:\n  "
            + "\n  ".join(lines)
            + "\n  fix: read the quarantine files for the reasons and correct the export, or raise "
            "validation.max_quarantine_share in the config if this is expected"
        )


def referenced_keys(tables: list[str]) -> dict[str, list[str]]:
    """Per table, the key columns other tables among ``tables`` refer to (their clean ids are
    needed to check those references)."""
    needed: dict[str, list[str]] = {}
    for (referencing, _), (referenced, key) in REFERENCES.items():
        if referencing in tables and referenced in tables and key not in needed.get(referenced, []):
            needed.setdefault(referenced, []).append(key)
    return needed


def known_references(table: str, clean_ids: dict[tuple[str, str], pd.Index]) -> dict[str, pd.Index]:
    """For ``table``, each referencing column -> the clean ids of the table it refers to."""
    known: dict[str, pd.Index] = {}
    for (referencing, column), referenced in REFERENCES.items():
        if referencing == table and referenced in clean_ids:
            known[column] = clean_ids[referenced]
    return known


def coerce_table(spec: TableSpec, frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Cast each column to its contract kind; return the typed frame and, per number or
    timestamp column, the rows whose non-empty value could not be read."""
    typed = pd.DataFrame(index=frame.index)
    unparseable: dict[str, pd.Series] = {}
    for name in frame.columns:
        column = spec.column(name)
        values = _coerce(column, frame[name])
        if column.kind in _KIND_WORDS:
            unparseable[name] = frame[name].notna() & values.isna()
        typed[name] = values
    return typed, unparseable


def _row_hashes(typed: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of each row's typed values; equal rows (NaN equal to NaN, 0.0 to -0.0)
    hash alike, whatever chunk they are in."""
    hashable = typed.copy()
    for name in hashable.columns:
        if pd.api.types.is_float_dtype(hashable[name]):
            hashable[name] = hashable[name].where(hashable[name].notna()) + 0.0
    return pd.util.hash_pandas_object(hashable, index=False).to_numpy()


def _coerce(column: ColumnSpec, values: pd.Series) -> pd.Series:
    if column.kind == "integer":
        numbers = pd.to_numeric(values, errors="coerce")
        return numbers.where(numbers.round() == numbers).astype("float64")
    if column.kind == "money":
        return pd.to_numeric(values, errors="coerce").astype("float64")
    if column.kind == "timestamp":
        return _to_timestamp(values)
    if column.kind == "id":
        return _to_id(values)
    text = values.astype("string").str.strip().replace("", pd.NA)
    if column.kind == "choice":
        return text.str.lower()
    if column.kind == "category":
        return text.fillna(UNKNOWN_CATEGORY)
    return text


def _to_id(values: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(values):
        whole = values.where(values.round() == values)
        values = whole.astype("Int64")
    return values.astype("string").str.strip().replace("", pd.NA)


def _to_timestamp(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert(None).astype("datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.astype("datetime64[ns]")
    if not (pd.api.types.is_string_dtype(values) or values.dtype == object):
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    parsed = pd.to_datetime(values, errors="coerce", format="ISO8601", utc=True)
    retry = values.notna() & parsed.isna()
    if retry.any():
        parsed[retry] = pd.to_datetime(values[retry], errors="coerce", format="mixed", utc=True)
    return parsed.dt.tz_convert(None).astype("datetime64[ns]")


def _failed_checks(
    schema: pa.DataFrameSchema, typed: pd.DataFrame, duplicates: dict[str, np.ndarray]
) -> pd.Series:
    """Per row, the names of the checks it fails joined by ';' (NA when it passes all)."""
    cases = [pd.DataFrame({"index": np.flatnonzero(mask), "reason": r}) for r, mask in duplicates.items()]
    try:
        schema.validate(typed, lazy=True)
    except pa.errors.SchemaErrors as errors:
        failures = errors.failure_cases.dropna(subset=["index"])
        cases.append(pd.DataFrame({"index": failures["index"].astype("int64"), "reason": failures["check"]}))
    cases = [c for c in cases if len(c)]
    if not cases:
        return pd.Series(pd.NA, index=typed.index, dtype="object")
    per_row = (
        pd.concat(cases, ignore_index=True)
        .drop_duplicates()
        .groupby("index")["reason"]
        .agg(lambda names: ";".join(sorted(names)))
    )
    return per_row.reindex(typed.index).astype("object")


def _add_reason(reasons: pd.Series, mask: pd.Series, reason: str, drop: str) -> pd.Series:
    def merge(existing: object) -> str:
        kept = [r for r in str(existing).split(";") if r != drop] if isinstance(existing, str) else []
        return ";".join(sorted([*kept, reason]))

    updated = reasons.copy().astype("object")
    updated[mask] = reasons[mask].map(merge)
    return updated


def _finalise_clean(spec: TableSpec, clean: pd.DataFrame) -> pd.DataFrame:
    for name in clean.columns:
        clean[name] = clean[name].astype(dtype_of(spec.column(name).kind))
    return typed_schema(spec, list(clean.columns)).validate(clean)
