"""Validation on Spark (issue #11 point 3): the same checks, reasons and files as ``features.store``.

``spark_validate(spark, raw_tables, as_of, out_dir, config, now)`` validates the tables
``features.reader.read_dataset`` opened (the driver reads only headers and Parquet footers;
Spark reads the rows: every Parquet part of a table in one scan, Hive folders such as
``orders/dt=…/part-*.parquet`` included, or a CSV file) and writes what ``write_validated``
writes: ``clean/<table>.parquet/`` (typed rows in file order, the contract's dtypes),
``quarantine/<table>.csv`` (rows as read, ``source_row``, ``quarantine_reason``) and
``validation.json``, so the rest of the night cannot tell which engine validated.

One definition of each rule: the row rules are ``features.contract.row_checks`` (the list the
pandera schema of the DuckDB/pandas path is made from), rendered as SQL predicates
(``RowCheck.sql``), one ``CASE WHEN NOT <passes> THEN '<reason>'`` each. What spans rows is SQL
over the whole table, with the same meaning as ``features.validate``'s hashes:

- ``source_row``: the row's index in its file (Parquet's row index; a CSV file is read whole by
  one task, in order) plus the rows of the parts before it (parts in path order, their row
  counts from the Parquet footers);
- duplicates: a row whose typed values (or key, or order line) equal an earlier row's, earlier
  meaning a smaller ``source_row`` (``min(source_row) OVER (PARTITION BY …)``);
- inconsistent orders: the orders whose usable, in-window lines have more than one
  (consumer, distributor, time), over the whole table;
- references: a join with the referenced table's clean ids (validated first, in
  ``VALIDATION_ORDER``); ``product_not_on_order`` a join with the clean order lines.

Not done here: the per-file validation cache (every run validates everything) and the
coercion of the rarer date texts pandas' ``format="mixed"`` reads (docs/spark.md lists them).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.asof import AsOf
from features.catalog import Folder, StepFile
from features.columns import Col, Table
from features.contract import (
    CONTRACT,
    DUPLICATE_ORDER_LINE,
    DUPLICATE_ROW,
    ORDER_INCONSISTENT,
    PRODUCT_NOT_ON_ORDER,
    REFERENCES,
    UNKNOWN_CATEGORY,
    VALIDATION_ORDER,
    ColumnSpec,
    RowCheck,
    RowRules,
    TableSpec,
    dtype_of,
    reason_duplicate_key,
    reason_unknown_reference,
    reason_unparseable,
    row_checks,
)
from features.engine import count_table_read
from features.errors import ContractError
from features.files import atomic_path
from features.reader import RawTable, TableInput
from features.store import log_report, staged_folder
from features.validate import (
    _DAY_MONTH,
    _KIND_WORDS,
    _OFFSET,
    TableReport,
    ValidationConfig,
    ValidationResult,
)
from features.vocabulary import ValidationKey

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

CLEAN_PART_NAME = "part-{:06d}.parquet"
# Helper columns of the scan (never a contract name): the file, its split, the scan's row id.
_FILE, _ROW_ID = "_siyu_file", "_siyu_row_id"
_REASONS = "_siyu_reasons"
_IN_WINDOW = "_siyu_in_window"
_TRIM = r"(?U)^\s+|\s+$"
# Spark lists more paths than this with a job (one task per path) instead of on the driver.
_LISTED_IN_A_JOB_ABOVE = "spark.sql.sources.parallelPartitionDiscovery.threshold"
# A quarantine reason and the SQL condition under which a row gets it.
_Case = tuple[str, str]


def spark_validate(
    spark: SparkSession,
    raw_tables: Mapping[str, TableInput],
    as_of: AsOf | date,
    out_dir: Path,
    config: ValidationConfig | None = None,
    now: datetime | None = None,
) -> ValidationResult:
    """Validate every table read, references first, on ``spark``; write the clean tables, the
    quarantine files and validation.json under ``out_dir`` (all moved into place together
    once every table is done). ``now``: the run's wall-clock time, as in ``write_validated``."""
    as_of = AsOf.of(as_of)
    config = config or ValidationConfig()
    rules = config.rules(now)
    present = [t for t in VALIDATION_ORDER if t in raw_tables]
    clean: dict[str, DataFrame] = {}  # per table, the clean values later tables check against
    reports: list[TableReport] = []
    with _Staging() as staging:
        for table in present:
            logger.info("validating %s on Spark", table)
            job = _TableJob(spark, raw_tables[table], as_of, config, rules, clean)
            report, read_later = job.run(
                staging.folder(out_dir / Folder.CLEAN / f"{table}.parquet"),
                staging.partial(out_dir / Folder.QUARANTINE / f"{table}.csv"),
            )
            if read_later is not None:
                clean[table] = read_later
            reports.append(report)
            log_report(report)
        document = {
            ValidationKey.AS_OF: as_of.isoformat(),
            ValidationKey.TABLES: [asdict(r) for r in reports],
        }
        staging.partial(out_dir / StepFile.VALIDATION_REPORT).write_text(
            json.dumps(document, indent=2) + "\n"
        )
    for frame in clean.values():
        frame.unpersist()
    return ValidationResult(as_of, reports)


# --- SQL pieces ------------------------------------------------------------------------------------


def quote(name: str) -> str:
    """A column name as Spark SQL."""
    return f"`{name}`"


def typed_name(name: str) -> str:
    """The typed value of contract column ``name`` (the raw value keeps the contract name)."""
    return f"_t_{name}"


def literal(value: object) -> str:
    """A Python value as a Spark SQL literal."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, pd.Timestamp | datetime):
        return f"TIMESTAMP_NTZ '{pd.Timestamp(value).isoformat(sep=' ')}'"
    if isinstance(value, int | float):
        return f"double({value!r})" if isinstance(value, float) else str(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _stripped_name(name: str) -> str:
    """The column holding contract column ``name``'s raw text stripped (``stripped_sql``)."""
    return f"_s_{name}"


def _stripped(name: str) -> str:
    return quote(_stripped_name(name))


def _typed_quote(name: str) -> str:
    return quote(typed_name(name))


def stripped_sql(raw: str) -> str:
    """``raw`` as text, stripped of white space at both ends (as pandas' ``str.strip``), empty as NULL."""
    return f"nullif(regexp_replace(CAST({raw} AS STRING), {literal(_TRIM)}, ''), '')"


def coerce_sql(
    column: ColumnSpec, raw: str, kind: str, timezone: str, zone_of_file: str | None, text: str | None = None
) -> str:
    """The typed value of ``raw`` (a column read as Spark type ``kind``: ``string``, ``long``,
    ``double``, ``nanos`` (a Parquet nanosecond time, read as a long), ``timestamp``,
    ``timestamp_ntz``), as ``features.validate._coerce`` types it: numbers as doubles (whole ones
    for integers), times as naive times in ``timezone``, text stripped, empty as NULL. ``text``:
    a column already holding ``raw`` stripped (``stripped_sql``), read instead of stripping again."""
    text = text or stripped_sql(raw)
    if column.kind in ("integer", "money"):
        number = f"try_cast({raw} AS DOUBLE)" if kind != "double" else raw
        number = f"CASE WHEN isnan({number}) THEN NULL ELSE {number} END"
        if column.kind == "integer":
            return f"CASE WHEN round({number}) = {number} THEN {number} END"
        return number
    if column.kind == "timestamp":
        return _timestamp_sql(raw, kind, timezone, zone_of_file, text)
    if column.kind == "id" and kind == "double":
        return stripped_sql(
            f"CASE WHEN round({raw}) = {raw} THEN CAST(try_cast({raw} AS BIGINT) AS STRING) END"
        )
    if column.kind == "choice":
        return f"lower({text})"
    if column.kind == "category":  # vocabulary: a value, not a column
        return f"coalesce({text}, {literal(UNKNOWN_CATEGORY)})"
    return text


def _in_zone(naive_utc: str, timezone: str) -> str:
    return f"convert_timezone('UTC', {literal(timezone)}, {naive_utc})"


def _timestamp_sql(raw: str, kind: str, timezone: str, zone_of_file: str | None, text: str) -> str:
    if kind == "nanos":
        instant = f"CAST(timestamp_micros(div({raw}, 1000)) AS TIMESTAMP_NTZ)"
        return _in_zone(instant, timezone) if zone_of_file else instant
    if kind == "timestamp":  # an instant: its UTC wall clock (session zone UTC), then the platform's
        return _in_zone(f"CAST({raw} AS TIMESTAMP_NTZ)", timezone)
    if kind == "timestamp_ntz":
        return raw
    if kind != "string":
        return "CAST(NULL AS TIMESTAMP_NTZ)"
    aware = f"{text} RLIKE {literal('(?i)' + _OFFSET)}"
    as_instant = _in_zone(f"CAST(try_cast({text} AS TIMESTAMP) AS TIMESTAMP_NTZ)", timezone)
    return (
        f"CASE WHEN {text} IS NULL THEN NULL WHEN {aware} THEN {as_instant} "
        f"ELSE coalesce(try_cast({text} AS TIMESTAMP_NTZ), {_day_month_sql(text)}) END"
    )


def _day_month_sql(text: str) -> str:
    """A numeric d/m/y date whose day and month cannot be mixed up (one above 12, or both equal),
    as pandas' mixed-format parser reads it; an ambiguous one stays NULL (``unparseable``)."""
    pattern = literal(_DAY_MONTH)
    first, second, year = (f"int(regexp_extract({text}, {pattern}, {k}))" for k in (1, 2, 3))
    full_year = f"CASE WHEN {year} < 100 THEN {year} + 2000 ELSE {year} END"
    month = f"CASE WHEN {first} > 12 THEN {second} ELSE {first} END"
    day = f"CASE WHEN {first} > 12 THEN {first} ELSE {second} END"
    clear = f"({first} > 12 OR {second} > 12 OR {first} = {second})"
    rest = f"regexp_replace({text}, {pattern}, '')"
    ymd = f"lpad({full_year}, 4, '0'), '-', lpad({month}, 2, '0'), '-', lpad({day}, 2, '0')"
    iso = f"concat({ymd}, ' ', {rest})"
    return f"CASE WHEN {text} RLIKE {pattern} AND {clear} THEN try_cast(trim({iso}) AS TIMESTAMP_NTZ) END"


# --- one table -------------------------------------------------------------------------------------


class _TableJob:
    """One table: scan, type, judge, split into clean and quarantined rows, write them."""

    def __init__(
        self,
        spark: SparkSession,
        raw: TableInput,
        as_of: AsOf,
        config: ValidationConfig,
        rules: RowRules,
        clean: Mapping[str, DataFrame],
    ) -> None:
        self.spark = spark
        self.raw = raw
        self.spec: TableSpec = CONTRACT[raw.name]
        self.config = config
        self.rules = rules
        self.end = as_of.end_timestamp
        self.clean = clean
        self.columns = list(raw.columns)

    def run(self, clean_folder: Path, quarantine_file: Path) -> tuple[TableReport, DataFrame | None]:
        """Validate the table, write its clean rows and quarantine file; its report and, cached,
        the clean values later tables check against (``_read_later``; None if none)."""
        scanned = self._scan()
        texts = self._texts()
        staged = scanned.selectExpr("*", *[f"{stripped_sql(quote(n))} AS {_stripped(n)}" for n in texts])
        typed = staged.selectExpr("*", *self._typed_columns(texts))
        # the stripped texts are typing's input; of them only the day/month check reads times again
        typed = typed.drop(*[_stripped_name(n) for n in texts if self.spec.column(n).kind != "timestamp"])
        typed = typed.withColumn(_IN_WINDOW, _expr(self._in_window_sql())).persist()
        self._all_typed = typed
        read, out_of_window = self._count_and_check(typed)  # the typed rows are cached from here
        judged = self._judged(typed.where(_IN_WINDOW)).persist()
        # the clean rows are not cached: the write reads them from the judged rows
        clean_rows = judged.where(f"{_REASONS} IS NULL")
        kept = _write_clean(
            clean_rows.selectExpr(*self._clean_columns()), self.spec, self.columns, clean_folder
        )
        flagged = self._flagged(clean_rows)
        reasons = self._write_quarantine(judged.where(f"{_REASONS} IS NOT NULL"), quarantine_file)
        read_later = self._read_later(clean_rows)
        typed.unpersist()
        judged.unpersist()
        quarantined = int(read) - kept - int(out_of_window)
        report = TableReport(
            table=self.spec.name,
            source=str(self.raw.path),
            rows_read=int(read),
            rows_kept=kept,
            rows_quarantined=quarantined,
            rows_out_of_window=int(out_of_window),
            reasons=dict(sorted(reasons.items())),
            flagged=dict(sorted(flagged.items())),
        )
        return report, read_later

    # -- reading --

    def _scan(self) -> DataFrame:
        """Every row of the table's files with ``source_row`` (1 = the first row of the first
        part, counted on across parts in path order), raw columns under contract names."""
        parts = list(self.raw.parts)
        count_table_read(self.raw.name)  # one scan of every part; the typed rows are cached
        csv = parts[0].path.suffix == ".csv"
        frame = self._read_csv(parts[0]) if csv else self._read_parquet(parts)
        return self._numbered(frame, parts)

    def _read_csv(self, part: RawTable) -> DataFrame:
        from features.reader import _csv_header

        header = _csv_header(part.path)
        frame = (
            self.spark.read.option("header", True)
            .option("multiLine", True)
            .option("escape", '"')
            .option("encoding", "UTF-8")
            .option("mode", "PERMISSIVE")
            .csv(str(part.path))
        )
        frame = frame.toDF(*[f"_c{i}" for i in range(len(frame.columns))])
        positions = {name: header.index(file_name) for name, file_name in part.columns.items()}
        self._kinds = dict.fromkeys(part.columns, "string")
        self._zones: dict[str, str | None] = dict.fromkeys(part.columns)
        self._files = frame.inputFiles()
        # multiLine: the file is not split, one task reads it whole, so the row id is its index
        return frame.selectExpr(
            *[f"_c{positions[name]} AS {quote(name)}" for name in part.columns],
            *_row_position("monotonically_increasing_id()"),
        )

    def _read_parquet(self, parts: list[RawTable]) -> DataFrame:
        schemas = [pq.read_schema(part.path) for part in parts]
        self._kinds, self._zones = {}, {}
        for part, schema in zip(parts, schemas, strict=True):
            for name, file_name in part.columns.items():
                kind, zone = _spark_kind(schema.field(file_name).type)
                self._kinds.setdefault(name, kind)
                self._zones.setdefault(name, zone)
        mappings = {tuple(sorted(part.columns.items())) for part in parts}
        if len(mappings) > 1:
            raise ContractError(
                self.raw.path,
                "the parts name their columns differently",
                "write every part with the same column names",
            )
        # the driver has opened every part (read_dataset): above 32 paths Spark would check them
        # again as a job of one task per file (365 for a year of day files), so not here
        with _session_setting(self.spark, _LISTED_IN_A_JOB_ABOVE, str(max(len(parts), 32))):
            frame = (
                self.spark.read.option("mergeSchema", len({s.remove_metadata() for s in schemas}) > 1)
                .option("recursiveFileLookup", False)
                .parquet(*[str(part.path) for part in parts])
            )
        selected = []
        for name in self.columns:
            file_name = parts[0].columns.get(name, name)
            if file_name in frame.columns:
                selected.append(f"{quote(file_name)} AS {quote(name)}")
            else:
                selected.append(f"NULL AS {quote(name)}")
        self._files = frame.inputFiles()
        return frame.selectExpr(*selected, *_row_position("_metadata.row_index"))

    def _numbered(self, frame: DataFrame, parts: list[RawTable]) -> DataFrame:
        """``source_row``: the row's index in its file plus the rows of the parts before it (the
        parts' row counts from their Parquet footers, ``RawTable.rows``), so numbering reads
        no row twice."""
        index = {_file_key(part.path): k for k, part in enumerate(parts)}
        rows = [part.rows or 0 for part in parts]
        before = [sum(rows[:k]) for k in range(len(parts))]
        files = [(uri, before[index[_file_key(uri)]]) for uri in self._files]
        offsets = self.spark.createDataFrame(files, f"{_FILE} string, before long")
        numbered = frame.join(_broadcast(offsets), [_FILE])
        return numbered.selectExpr(*self.columns, f"{_ROW_ID} + before + 1 AS {quote(Col.SOURCE_ROW)}")

    # -- typing and judging --

    def _texts(self) -> list[str]:
        """The columns read as text: each is stripped once, typing reads the stripped value (a
        number or time read as such is typed from its value; any other is stripped where used)."""
        return [name for name in self.columns if self._kinds[name] == "string"]

    def _typed_columns(self, texts: list[str]) -> list[str]:
        return [
            coerce_sql(
                self.spec.column(name),
                quote(name),
                self._kinds[name],
                self.config.timezone,
                self._zones[name],
                _stripped(name) if name in texts else None,
            )
            + f" AS {_typed_quote(name)}"
            for name in self.columns
        ]

    def _unparseable_columns(self) -> list[str]:
        return [name for name in self.columns if self.spec.column(name).kind in _KIND_WORDS]

    def _count_and_check(self, typed: DataFrame) -> tuple[int, int]:
        """The rows read and those out of the window, in one pass with the file-level errors of
        ``ColumnNotes.check``: a number or time column none of whose values can be read; a time
        column written only as day/month dates."""
        names = self._unparseable_columns()
        aggregates = ["count(*)", f"count_if(NOT {_IN_WINDOW})"]
        for name in names:
            raw, value = quote(name), _typed_quote(name)
            failed = f"{raw} IS NOT NULL AND {value} IS NULL"
            aggregates += [
                f"count_if({raw} IS NOT NULL AND {value} IS NOT NULL)",
                f"min_by(CAST({raw} AS STRING), CASE WHEN {failed} THEN {quote(Col.SOURCE_ROW)} END)",
            ]
            if self.spec.column(name).kind == "timestamp" and self._kinds[name] == "string":
                text = _stripped(name)
                aggregates += [
                    f"count_if({text} IS NOT NULL AND NOT {text} RLIKE {literal(_DAY_MONTH)})",
                    f"min_by({text}, CASE WHEN {text} RLIKE {literal(_DAY_MONTH)} "
                    f"AND {_typed_quote(name)} IS NULL THEN {quote(Col.SOURCE_ROW)} END)",
                ]
            else:
                aggregates += ["1", "CAST(NULL AS STRING)"]
        row = typed.selectExpr(*aggregates).first()
        for k, name in enumerate(names):
            readable, example, other_forms, day_month = row[2 + 4 * k : 6 + 4 * k]
            if not other_forms and day_month is not None:
                raise ContractError(
                    self.raw.path,
                    f"dates are written day/month or month/day (e.g. {day_month!r}), "
                    "which cannot be read without guessing",
                    "write dates as ISO 8601: YYYY-MM-DD or YYYY-MM-DD HH:MM:SS",
                    column=name,
                )
            if not readable and example is not None:
                raise ContractError(
                    self.raw.path,
                    f"no value can be read as {_KIND_WORDS[self.spec.column(name).kind]} (e.g. {example!r})",
                    f"check that this is the right column, or map the right one in the config "
                    f"(data.columns.{self.spec.name})",
                    column=name,
                )
        return int(row[0]), int(row[1])

    def _in_window_sql(self) -> str:
        column = self.spec.event_time
        if column is None or column not in self.columns:
            return "TRUE"
        value = _typed_quote(column)
        return (
            f"NOT coalesce({value} >= {literal(self.end)} AND {value} <= {literal(self.rules.latest)}, FALSE)"
        )

    def _references(self) -> dict[str, tuple[str, str, str]]:
        """Per referencing column, (referenced table, its key, what an unknown id does)."""
        found = {}
        for (table, column), (referenced, key) in REFERENCES.items():
            if table == self.spec.name and referenced in self.clean and column in self.columns:
                found[column] = (referenced, key, self.config.references.action_for(referenced))
        return found

    def _judged(self, typed: DataFrame) -> DataFrame:
        """The in-window rows with ``_siyu_reasons``: their reasons sorted and joined by ';' (NULL: none)."""
        references = self._references()
        for column, (referenced, key, _) in references.items():
            typed = self._with_known(typed, column, self.clean[referenced], [key])
        quarantined = {c for c, (_, _, action) in references.items() if action == "quarantine"}
        checks = row_checks(self.spec, self.columns, self.rules, quarantined)
        cases = [self._case(check) for check in checks] + self._unparseable_cases()
        cases += self._duplicate_cases()
        typed, more = self._cross_row(typed)
        cases += more
        # each case gives one fixed reason or NULL: in reason order, concat_ws (which skips NULLs)
        # joins a row's reasons sorted, without building and sorting an array per row
        joined = ", ".join(
            f"CASE WHEN {condition} THEN {literal(reason)} END" for reason, condition in sorted(cases)
        )
        return typed.withColumn(_REASONS, _expr(f"nullif(concat_ws(';', {joined}), '')"))

    def _case(self, check: RowCheck) -> _Case:
        passes = check.sql(_typed_quote, literal)
        if check.test == "present" and check.column in self._unparseable_columns():
            # a value that is there but cannot be read is unparseable_<column>, not missing_<column>
            return check.reason, f"{quote(check.column)} IS NULL AND NOT ({passes})"
        return check.reason, f"NOT ({passes})"

    def _unparseable_cases(self) -> list[_Case]:
        """unparseable_<column>: a number or time that is there but cannot be read."""
        return [
            (reason_unparseable(name), f"{quote(name)} IS NOT NULL AND {_typed_quote(name)} IS NULL")
            for name in self._unparseable_columns()
        ]

    def _duplicate_cases(self) -> list[_Case]:
        """duplicate_row for a repeat of an earlier row; duplicate_<key> / duplicate_order_line for
        a repeat of an earlier key that is not a repeat of the whole row."""
        order = quote(Col.SOURCE_ROW)
        values = ", ".join(_hashable(self.spec.column(n)) for n in self.columns)
        exact = f"(min({order}) OVER (PARTITION BY {values}) < {order})"
        cases = [(DUPLICATE_ROW, exact)]
        keys = [(key,) for key in self.spec.key] + ([self.spec.line_key] if self.spec.line_key else [])
        for key in keys:
            if not set(key) <= set(self.columns):
                continue
            present = " AND ".join(f"{_typed_quote(n)} IS NOT NULL" for n in key)
            by = ", ".join(_typed_quote(n) for n in key)
            repeat = f"(min({order}) OVER (PARTITION BY {by}) < {order})"
            reason = DUPLICATE_ORDER_LINE if key == self.spec.line_key else reason_duplicate_key(key[0])
            cases.append((reason, f"{present} AND {repeat} AND NOT {exact}"))
        return cases

    def _cross_row(self, typed: DataFrame) -> tuple[DataFrame, list[_Case]]:
        """Rules over several rows or tables: inconsistent orders, complaints about a product
        their order does not hold."""
        cases = []
        if self.spec.name == Table.ORDERS:
            # few orders: broadcast, so the wide lines are not shuffled and sorted for a join
            bad_orders = _broadcast(self._inconsistent_orders())
            typed = _with_member(typed, "_bad_order", bad_orders, [Col.ORDER_ID])
            cases.append((ORDER_INCONSISTENT, _known("_bad_order")))
        if self.spec.name == Table.COMPLAINTS and Table.ORDERS in self.clean:
            orders = self.clean[Table.ORDERS]
            line = [Col.ORDER_ID, Col.PRODUCT_ID]
            typed = _with_member(typed, "_order", _ids(orders, [Col.ORDER_ID]), [Col.ORDER_ID])
            typed = _with_member(typed, "_line", _ids(orders, line), line)
            present = " AND ".join(f"{_typed_quote(n)} IS NOT NULL" for n in line)
            missing = f"{present} AND {_known('_order')} AND NOT {_known('_line')}"
            cases.append((PRODUCT_NOT_ON_ORDER, missing))
        return typed, cases

    def _with_known(self, typed: DataFrame, column: str, referenced: DataFrame, keys: list[str]) -> DataFrame:
        """``typed`` with ``known_<column>``: whether its id is among ``referenced``'s clean ``keys``."""
        return _with_member(typed, column, _ids(referenced, keys), [column])

    def _inconsistent_orders(self) -> DataFrame:
        """The order ids whose usable in-window lines have more than one header (see
        ``features.validate.find_inconsistent_orders``)."""
        header = [Col.CONSUMER_ID, Col.DISTRIBUTOR_ID, Col.ORDERED_AT]
        ids = [Col.ORDER_ID, Col.CONSUMER_ID, Col.DISTRIBUTOR_ID]
        conditions = [f"{_typed_quote(n)} IS NOT NULL" for n in [Col.ORDER_ID, *header]]
        for name in ids:
            conditions += [
                RowCheck("", "not_null_marker", name, tuple(self.rules.null_markers)).sql(
                    _typed_quote, literal
                ),
                RowCheck("", "no_control_character", name).sql(_typed_quote, literal),
            ]
        at = _typed_quote(Col.ORDERED_AT)
        conditions += [
            f"{at} >= {literal(pd.Timestamp(self.config.earliest))}",
            f"{at} < {literal(self.end)}",
            f"{at} <= {literal(self.rules.latest)}",
        ]
        heads = ", ".join(_typed_quote(n) for n in header)
        lines = self._all_typed.where(" AND ".join(f"({c})" for c in conditions))
        return (
            lines.groupBy(typed_name(Col.ORDER_ID))
            .agg(_expr(f"count(DISTINCT {heads})").alias("_siyu_headers"))
            .where("_siyu_headers > 1")
            .selectExpr(f"{_typed_quote(Col.ORDER_ID)} AS _siyu_k0")
        )

    def _clean_columns(self) -> list[str]:
        return [self._clean_value(n) for n in self.columns] + [quote(Col.SOURCE_ROW)]

    def _clean_value(self, name: str) -> str:
        return _clean_cast(self.spec.column(name), _typed_quote(name)) + f" AS {quote(name)}"

    def _read_later(self, clean_rows: DataFrame) -> DataFrame | None:
        """The clean values of the columns later tables check against (the keys ``REFERENCES``
        names; the order lines for complaints' ``product_not_on_order``), cached: a narrow copy,
        filled before the judged rows leave the cache."""
        read = {key for (_, _), (referenced, key) in REFERENCES.items() if referenced == self.spec.name}
        if self.spec.name == Table.ORDERS:
            read |= set(self.spec.line_key or ())
        names = [n for n in self.columns if n in read]
        if not names:
            return None
        values = clean_rows.selectExpr(*[self._clean_value(n) for n in names]).persist()
        values.count()
        return values

    def _flagged(self, clean_rows: DataFrame) -> dict[str, int]:
        flagged = [c for c, (_, _, action) in self._references().items() if action == "flag"]
        if not flagged:
            return {}
        row = clean_rows.selectExpr(
            *[f"count_if({_typed_quote(c)} IS NOT NULL AND NOT {_known(c)})" for c in flagged]
        ).first()
        return {reason_unknown_reference(c): int(n) for c, n in zip(flagged, row, strict=True) if n}

    def _write_quarantine(self, bad: DataFrame, target: Path) -> Counter[str]:
        """The quarantined rows, as read, in ``source_row`` order: pandas writes them as the
        DuckDB path does (same dtypes, same text). Returns the count of each reason."""
        columns = [Col.SOURCE_ROW, *self.columns, Col.QUARANTINE_REASON]
        frame = (
            bad.selectExpr(
                quote(Col.SOURCE_ROW),
                *[quote(n) for n in self.columns],
                f"{_REASONS} AS {quote(Col.QUARANTINE_REASON)}",
            )
            .orderBy(Col.SOURCE_ROW)
            .toPandas()
        )
        frame = frame.reindex(columns=columns)
        for name in self.columns:
            frame[name] = self._as_read(name, frame[name])
        frame[Col.SOURCE_ROW] = frame[Col.SOURCE_ROW].astype("int64")
        frame.to_csv(target, index=False)
        return Counter(frame[Col.QUARANTINE_REASON].str.split(";").explode().dropna().tolist())

    def _as_read(self, name: str, values: pd.Series) -> pd.Series:
        """Raw values with the dtype the pandas reader gives them (``features.reader``)."""
        kind = self._kinds[name]
        if kind == "nanos":
            times = pd.to_datetime(values.astype("Int64").astype("float64"), unit="ns")
            zone = self._zones[name]
            return times.dt.tz_localize("UTC").dt.tz_convert(zone) if zone else times
        if kind == "long":
            floats = any(
                name in part.float_columns or part.columns.get(name) in part.float_columns
                for part in self.raw.parts
            )
            return values.astype("float64") if floats or values.isna().any() else values.astype("int64")
        if kind == "string":
            return values.astype(pd.StringDtype("pyarrow"))
        return values

    # assigned by _scan's readers
    _kinds: dict[str, str]
    _zones: dict[str, str | None]
    _all_typed: DataFrame
    _files: list[str]


def _expr(sql: str) -> object:
    from pyspark.sql import functions

    return functions.expr(sql)


def _broadcast(frame: DataFrame) -> DataFrame:
    from pyspark.sql import functions

    return functions.broadcast(frame)


def _known(name: str) -> str:
    """The boolean column a ``known`` rule on ``name`` reads (``RowCheck.sql``: ``known_<name>``)."""
    return _typed_quote(f"known_{name}")


def _ids(clean: DataFrame, keys: list[str]) -> DataFrame:
    """The distinct values of ``keys`` in a clean table, as ``_siyu_k0``, ``_siyu_k1``, ..."""
    return clean.selectExpr(*[f"{quote(k)} AS _siyu_k{i}" for i, k in enumerate(keys)]).distinct()


def _with_member(typed: DataFrame, name: str, ids: DataFrame, own: list[str]) -> DataFrame:
    """``typed`` with the boolean ``known_<name>``: whether the row's typed ``own`` values are a row
    of ``ids`` (``_siyu_k0``, ...); a row with an empty one is not."""
    hits = ids.withColumn("_siyu_hit", _expr("TRUE"))
    condition = [typed[typed_name(o)] == hits[f"_siyu_k{i}"] for i, o in enumerate(own)]
    joined = typed.join(hits, condition, "left")
    return joined.selectExpr(
        *[quote(c) for c in typed.columns], f"coalesce(_siyu_hit, FALSE) AS {_known(name)}"
    )


@contextmanager
def _session_setting(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """``key`` set to ``value`` in ``spark``'s session for the block, then set back."""
    before = spark.conf.get(key)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        spark.conf.set(key, before)


def _row_position(index: str) -> list[str]:
    """The scan's helper columns: the row's file (as ``inputFiles`` names it) and ``index``, the
    row's 0-based index in that file."""
    return [f"input_file_name() AS {_FILE}", f"{index} AS {_ROW_ID}"]


def _file_key(path: object) -> str:
    """A file's path as Spark's ``input_file_name`` and pathlib agree on it."""
    from urllib.parse import unquote, urlparse

    text = str(path)
    return (
        str(Path(unquote(urlparse(text).path)).resolve())
        if text.startswith("file:")
        else str(Path(text).resolve())
    )


def _spark_kind(arrow: pa.DataType) -> tuple[str, str | None]:
    """How Spark reads a Parquet column of this Arrow type (``coerce_sql``'s ``kind``), and its zone."""
    if pa.types.is_timestamp(arrow):
        if arrow.unit == "ns":
            return "nanos", arrow.tz
        return ("timestamp" if arrow.tz else "timestamp_ntz"), arrow.tz
    if pa.types.is_integer(arrow):
        return "long", None
    if pa.types.is_floating(arrow):
        return "double", None
    return "string", None


def _hashable(column: ColumnSpec) -> str:
    value = _typed_quote(column.name)
    return f"{value} + 0.0" if column.kind in ("integer", "money") else value


def _clean_cast(column: ColumnSpec, value: str) -> str:
    if column.kind == "integer":
        return f"CAST({value} AS BIGINT)"
    return value


# --- writing ---------------------------------------------------------------------------------------


def clean_schema(spec: TableSpec, columns: list[str]) -> pa.Schema:
    """The Arrow schema of a clean table as the DuckDB/pandas path writes it."""
    empty = pd.DataFrame({name: pd.Series(dtype=dtype_of(spec.column(name).kind)) for name in columns})
    return pa.Schema.from_pandas(empty, preserve_index=False)


def _write_clean(clean: DataFrame, spec: TableSpec, columns: list[str], folder: Path) -> int:
    """The clean rows in ``source_row`` order as Parquet parts ``part-NNNNNN.parquet`` written by
    the executors (pyarrow, the clean schema: nanosecond times, Arrow strings); the row count."""
    schema = clean_schema(spec, columns)
    target = str(folder)

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        part = TaskContext.get().partitionId()
        writer, rows = None, 0
        for batch in batches:
            table = pa.Table.from_batches([batch]).drop_columns([Col.SOURCE_ROW]).cast(schema)
            if writer is None:
                writer = pq.ParquetWriter(f"{target}/{CLEAN_PART_NAME.format(part)}", schema)
            writer.write_table(table)
            rows += table.num_rows
        if writer is not None:
            writer.close()
        yield pa.RecordBatch.from_pydict({"rows": [rows]}, schema=pa.schema([("rows", pa.int64())]))

    ordered = clean.orderBy(Col.SOURCE_ROW)
    written = ordered.mapInArrow(write, "rows long").groupBy().sum("rows").first()[0] or 0
    if not any(folder.glob("*.parquet")):
        pq.write_table(schema.empty_table(), folder / CLEAN_PART_NAME.format(0))
    return int(written)


class _Staging:
    """Outputs written beside their final names and moved into place together at a clean exit."""

    def __init__(self) -> None:
        self._stack = ExitStack()

    def __enter__(self) -> _Staging:
        return self

    def __exit__(self, *error: object) -> None:
        self._stack.__exit__(*error)

    def partial(self, final: Path) -> Path:
        return self._stack.enter_context(atomic_path(final))

    def folder(self, final: Path) -> Path:
        return self._stack.enter_context(staged_folder(final))
