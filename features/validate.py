"""Row-level validation: type every column, set bad rows aside with their reasons, keep the rest.

For each table the raw values are coerced to the contract's types, then the table's
pandera schema (``features.contract.row_schema``) is run lazily; every failing check
names a quarantine reason. Rows with at least one reason go to the table's quarantine
frame *as they were read*, with ``source_row`` (1 = first data row of the file) and
``quarantine_reason`` (reasons joined by ``;``). The run goes on with the good rows and
fails only when a table's quarantined share exceeds the configured limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd
import pandera.pandas as pa
from pydantic import BaseModel, ConfigDict, Field

from features.columns import Col, Table
from features.contract import (
    CONTRACT,
    REFERENCES,
    UNKNOWN_CATEGORY,
    VALIDATION_ORDER,
    ColumnSpec,
    TableSpec,
    dtype_of,
    reason_missing,
    row_schema,
    typed_schema,
)
from features.errors import ContractError, QuarantineLimitExceeded
from features.reader import RawTable

logger = logging.getLogger(__name__)

DUPLICATE_ROW = "duplicate_row"
_PANDERA_UNIQUE = "multiple_fields_uniqueness"
_KIND_WORDS = {"integer": "a whole number", "money": "a number", "timestamp": "a date/time"}


class ValidationConfig(BaseModel):
    """How much quarantine a run tolerates before it stops."""

    model_config = ConfigDict(extra="forbid")

    max_quarantine_share: float = Field(0.05, ge=0.0, le=1.0)
    max_quarantine_share_by_table: dict[str, float] = Field(default_factory=dict)

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
class ValidatedTable:
    """A table split into its clean rows (typed) and its quarantined rows (as read)."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame
    report: TableReport


@dataclass(frozen=True)
class ValidationResult:
    """Every table of a data set after validation, as of a date."""

    as_of: date
    tables: dict[str, ValidatedTable] = field(default_factory=dict)

    @property
    def reports(self) -> list[TableReport]:
        return [t.report for t in self.tables.values()]

    def over_limit(self, config: ValidationConfig) -> list[TableReport]:
        """Reports of the tables whose quarantined share exceeds their limit."""
        return [r for r in self.reports if r.quarantined_share > config.limit_for(r.table)]


def validate_dataset(raw_tables: dict[str, RawTable], as_of: date) -> ValidationResult:
    """Validate every table read, references first (products before orders before complaints)."""
    as_of_end = pd.Timestamp(as_of + timedelta(days=1))
    result = ValidationResult(as_of)
    for table in VALIDATION_ORDER:
        if table not in raw_tables:
            continue
        known = _known_references(table, result)
        result.tables[table] = validate_table(raw_tables[table], as_of_end, known)
        report = result.tables[table].report
        logger.info(
            "validated %s: %d kept, %d quarantined %s",
            table,
            report.rows_kept,
            report.rows_quarantined,
            report.reasons or "",
        )
    return result


def latest_order_date(raw_tables: dict[str, RawTable], today: date | None = None) -> date:
    """The default as-of date: the day of the latest readable order, but never after today."""
    today = today or date.today()
    ordered_at = _to_timestamp(raw_tables[Table.ORDERS].frame[Col.ORDERED_AT])
    latest = ordered_at[ordered_at < pd.Timestamp(today + timedelta(days=1))].max()
    if pd.isna(latest):
        raise ContractError(
            raw_tables[Table.ORDERS].path,
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


def validate_table(raw: RawTable, as_of_end: pd.Timestamp, known: dict[str, pd.Index]) -> ValidatedTable:
    """Split one table into clean typed rows and quarantined raw rows with reasons."""
    spec = CONTRACT[raw.name]
    source = raw.frame.reset_index(drop=True)
    typed, unparseable = coerce_table(spec, source, raw.path)
    reasons = _failed_checks(row_schema(spec, list(typed.columns), as_of_end, known), typed)
    for column, mask in unparseable.items():
        reasons = _add_reason(reasons, mask, f"unparseable_{column}", drop=reason_missing(column))
    bad = reasons.notna()
    clean = _finalise_clean(spec, typed.loc[~bad].reset_index(drop=True))
    quarantine = source.loc[bad].copy()
    quarantine.insert(0, Col.SOURCE_ROW, quarantine.index + 1)
    quarantine[Col.QUARANTINE_REASON] = reasons[bad]
    report = TableReport(
        table=raw.name,
        source=str(raw.path),
        rows_read=len(source),
        rows_kept=len(clean),
        rows_quarantined=int(bad.sum()),
        reasons=_count_reasons(reasons[bad]),
    )
    return ValidatedTable(clean, quarantine.reset_index(drop=True), report)


def coerce_table(
    spec: TableSpec, frame: pd.DataFrame, path: object
) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Cast each column to its contract kind; return the typed frame and, per column,
    the rows whose non-empty value could not be read. A column none of whose values can
    be read is a file-level error."""
    typed = pd.DataFrame(index=frame.index)
    unparseable: dict[str, pd.Series] = {}
    for name in frame.columns:
        column = spec.column(name)
        values = _coerce(column, frame[name])
        failed = frame[name].notna() & values.isna()
        if column.kind in _KIND_WORDS and failed.any():
            if failed.sum() == frame[name].notna().sum():
                example = frame[name][failed].iloc[0]
                raise ContractError(
                    path,
                    f"no value can be read as {_KIND_WORDS[column.kind]} (e.g. {example!r})",
                    f"check that this is the right column, or map the right one in the config "
                    f"(data.columns.{spec.name})",
                    column=name,
                )
            unparseable[name] = failed
        typed[name] = values
    return typed, unparseable


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


def _failed_checks(schema: pa.DataFrameSchema, typed: pd.DataFrame) -> pd.Series:
    """Per row, the names of the checks it fails joined by ';' (NA when it passes all)."""
    try:
        schema.validate(typed, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.dropna(subset=["index"])
        cases = cases.assign(reason=cases["check"].replace({_PANDERA_UNIQUE: DUPLICATE_ROW}))
        per_row = (
            cases[["index", "reason"]]
            .drop_duplicates()
            .groupby("index")["reason"]
            .agg(lambda names: ";".join(sorted(names)))
        )
        per_row.index = per_row.index.astype("int64")
        reasons = per_row.reindex(typed.index)
        return _drop_key_duplicates_of_exact_duplicates(reasons)
    return pd.Series(pd.NA, index=typed.index, dtype="object")


def _drop_key_duplicates_of_exact_duplicates(reasons: pd.Series) -> pd.Series:
    """An exact duplicate row also repeats its key; report it once, as duplicate_row."""

    def tidy(text: object) -> object:
        if not isinstance(text, str) or DUPLICATE_ROW not in text:
            return text
        return ";".join(r for r in text.split(";") if not r.startswith("duplicate_") or r == DUPLICATE_ROW)

    return reasons.map(tidy)


def _add_reason(reasons: pd.Series, mask: pd.Series, reason: str, drop: str) -> pd.Series:
    def merge(existing: object) -> str:
        kept = [r for r in str(existing).split(";") if r != drop] if isinstance(existing, str) else []
        return ";".join(sorted([*kept, reason]))

    updated = reasons.copy().astype("object")
    updated[mask] = reasons[mask].map(merge)
    return updated


def _count_reasons(reasons: pd.Series) -> dict[str, int]:
    counts = reasons.str.split(";").explode().value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items())}


def _finalise_clean(spec: TableSpec, clean: pd.DataFrame) -> pd.DataFrame:
    for name in clean.columns:
        clean[name] = clean[name].astype(dtype_of(spec.column(name).kind))
    return typed_schema(spec, list(clean.columns)).validate(clean)


def _known_references(table: str, done: ValidationResult) -> dict[str, pd.Index]:
    known: dict[str, pd.Index] = {}
    for (referencing, column), (referenced, key) in REFERENCES.items():
        if referencing == table and referenced in done.tables:
            known[column] = pd.Index(done.tables[referenced].clean[key].unique())
    return known
