"""The data contract: which tables exist, their columns, types and row-level rules.

``CONTRACT`` describes every table once. ``row_checks`` lists a table's row rules as data
(``RowCheck``: reason, test, column, bound); ``row_schema`` renders them as a pandera schema
whose checks are named by the quarantine reason they produce, and Spark renders the same list
as SQL (``RowCheck.sql``, ``features.spark_validate``), so the reasons a user reads in a
quarantine file are the names of the checks declared here, whichever engine validated.
Rules that look beyond a row and its chunk are named here too and applied by
``features.validate``: duplicates across the whole file (``DUPLICATE_ROW``,
``reason_duplicate_key``, ``DUPLICATE_ORDER_LINE``), orders whose lines disagree
(``ORDER_INCONSISTENT``) and complaints about a product their order does not hold
(``PRODUCT_NOT_ON_ORDER``).

A table's ``event_time`` column places each row in time: a row whose event time lies after
the end of the as-of date is *out of the run's window* (not used, not quarantined).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa

from features.columns import Col, EventType, OrderStatus, Table

Kind = Literal["id", "integer", "money", "timestamp", "choice", "category", "text"]


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a contract table.

    ``required`` columns must be present in the file; ``nullable`` ones may hold empty
    cells. A ``category`` column's empty cells read as ``"unknown"``.
    """

    name: str
    kind: Kind
    description: str
    required: bool = True
    nullable: bool = False
    choices: tuple[str, ...] = ()
    scheduled: bool = False
    """A planned time (a sale window) that may lie in the future, unlike an event time."""


@dataclass(frozen=True)
class TableSpec:
    """One table of the contract; ``key`` columns must be unique within the table.

    ``line_key`` is a composite key whose repeats with other values are
    ``DUPLICATE_ORDER_LINE``; ``event_time`` is the column that places a row before or after
    the end of the as-of date.
    """

    name: str
    description: str
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...] = ()
    line_key: tuple[str, ...] = ()
    event_time: str | None = None

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)


UNKNOWN_CATEGORY = "unknown"
DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_EARLIEST = date(2000, 1, 1)
DEFAULT_NULL_MARKERS: tuple[str, ...] = ("NULL", "None", "nan", "NaN", "N/A", "NA", "null", "none", "#N/A")

CONTRACT: dict[str, TableSpec] = {
    Table.ORDERS: TableSpec(
        Table.ORDERS,
        "One row per order line: a consumer bought a product through a distributor.",
        (
            ColumnSpec(Col.ORDER_ID, "id", "Order (basket) id; several lines share it."),
            ColumnSpec(Col.CONSUMER_ID, "id", "The buying consumer."),
            ColumnSpec(Col.DISTRIBUTOR_ID, "id", "The distributor whose share the order came through."),
            ColumnSpec(Col.PRODUCT_ID, "id", "The product bought; must exist in products."),
            ColumnSpec(Col.QUANTITY, "integer", "Units on the line; > 0 on paid lines."),
            ColumnSpec(Col.UNIT_PRICE, "money", "Price paid per unit, > 0."),
            ColumnSpec(Col.ORDERED_AT, "timestamp", "When the order was placed; places the line in time."),
            ColumnSpec(Col.STATUS, "choice", "paid, cancelled or returned.", choices=OrderStatus.ALL),
        ),
        line_key=(Col.ORDER_ID, Col.PRODUCT_ID),
        event_time=Col.ORDERED_AT,
    ),
    Table.PRODUCTS: TableSpec(
        Table.PRODUCTS,
        "One row per product (SKU) listed by a supplier.",
        (
            ColumnSpec(Col.PRODUCT_ID, "id", "Product id, unique."),
            ColumnSpec(Col.SUPPLIER_ID, "id", "The brand or supplier listing it."),
            ColumnSpec(Col.CATEGORY, "category", "Product category; empty reads as 'unknown'."),
            ColumnSpec(Col.LIST_PRICE, "money", "List price, > 0."),
            ColumnSpec(
                Col.SALE_START,
                "timestamp",
                "Start of the flash-sale window; may lie after the as-of date.",
                required=False,
                nullable=True,
                scheduled=True,
            ),
            ColumnSpec(
                Col.SALE_END,
                "timestamp",
                "End of the flash-sale window; may lie after the as-of date.",
                required=False,
                nullable=True,
                scheduled=True,
            ),
        ),
        key=(Col.PRODUCT_ID,),
    ),
    Table.CONSUMERS: TableSpec(
        Table.CONSUMERS,
        "One row per consumer (C).",
        (
            ColumnSpec(Col.CONSUMER_ID, "id", "Consumer id, unique."),
            ColumnSpec(Col.REGISTERED_AT, "timestamp", "Registration time; places the consumer in time."),
            ColumnSpec(Col.DISTRIBUTOR_ID, "id", "Home distributor (the community the consumer belongs to)."),
            ColumnSpec(Col.AGE_BAND, "text", "Age band, e.g. 25-34.", required=False, nullable=True),
            ColumnSpec(Col.GENDER, "text", "Gender.", required=False, nullable=True),
            ColumnSpec(Col.CITY_TIER, "text", "City tier, e.g. tier1.", required=False, nullable=True),
        ),
        key=(Col.CONSUMER_ID,),
        event_time=Col.REGISTERED_AT,
    ),
    Table.DISTRIBUTORS: TableSpec(
        Table.DISTRIBUTORS,
        "One row per distributor (b).",
        (
            ColumnSpec(Col.DISTRIBUTOR_ID, "id", "Distributor id, unique."),
            ColumnSpec(Col.JOINED_AT, "timestamp", "When the distributor joined; places it in time."),
            ColumnSpec(Col.OCCUPATION, "text", "Occupation, e.g. parent.", required=False, nullable=True),
            ColumnSpec(Col.CITY_TIER, "text", "City tier.", required=False, nullable=True),
        ),
        key=(Col.DISTRIBUTOR_ID,),
        event_time=Col.JOINED_AT,
    ),
    Table.EVENTS: TableSpec(
        Table.EVENTS,
        "Browse and share behaviour: one row per event.",
        (
            ColumnSpec(
                Col.CONSUMER_ID, "id", "The consumer (for share events: the sharer's audience member)."
            ),
            ColumnSpec(
                Col.DISTRIBUTOR_ID, "id", "The distributor whose link or group it came from.", nullable=True
            ),
            ColumnSpec(Col.PRODUCT_ID, "id", "The product; must exist in products."),
            ColumnSpec(
                Col.EVENT_TYPE, "choice", "view, click, cart, favorite or share.", choices=EventType.ALL
            ),
            ColumnSpec(Col.EVENT_AT, "timestamp", "When it happened; places the event in time."),
        ),
        event_time=Col.EVENT_AT,
    ),
    Table.COMPLAINTS: TableSpec(
        Table.COMPLAINTS,
        "One row per customer complaint about an order line.",
        (
            ColumnSpec(Col.COMPLAINT_ID, "id", "Complaint id."),
            ColumnSpec(Col.ORDER_ID, "id", "The order complained about; must exist in orders."),
            ColumnSpec(Col.PRODUCT_ID, "id", "The product complained about; must exist in products."),
            ColumnSpec(Col.CONSUMER_ID, "id", "The complaining consumer."),
            ColumnSpec(Col.COMPLAINED_AT, "timestamp", "When it was filed; places the complaint in time."),
            ColumnSpec(Col.REASON, "text", "Free-text or coded reason.", nullable=True),
        ),
        key=(Col.COMPLAINT_ID,),
        event_time=Col.COMPLAINED_AT,
    ),
}

# Reference checks: (table, column) -> (referenced table, referenced column). Checked when the
# referenced table is present, against its clean in-window ids; whether an unknown id is
# quarantined or kept and counted is ``validation.references.<referenced table>``.
REFERENCES: dict[tuple[str, str], tuple[str, str]] = {
    (Table.ORDERS, Col.PRODUCT_ID): (Table.PRODUCTS, Col.PRODUCT_ID),
    (Table.ORDERS, Col.CONSUMER_ID): (Table.CONSUMERS, Col.CONSUMER_ID),
    (Table.ORDERS, Col.DISTRIBUTOR_ID): (Table.DISTRIBUTORS, Col.DISTRIBUTOR_ID),
    (Table.CONSUMERS, Col.DISTRIBUTOR_ID): (Table.DISTRIBUTORS, Col.DISTRIBUTOR_ID),
    (Table.EVENTS, Col.PRODUCT_ID): (Table.PRODUCTS, Col.PRODUCT_ID),
    (Table.COMPLAINTS, Col.PRODUCT_ID): (Table.PRODUCTS, Col.PRODUCT_ID),
    (Table.COMPLAINTS, Col.ORDER_ID): (Table.ORDERS, Col.ORDER_ID),
}

# Tables in the order they must be validated so that references are known first.
VALIDATION_ORDER: tuple[str, ...] = (
    Table.PRODUCTS,
    Table.DISTRIBUTORS,
    Table.CONSUMERS,
    Table.ORDERS,
    Table.EVENTS,
    Table.COMPLAINTS,
)

_DTYPES: dict[str, object] = {
    "id": pd.StringDtype("pyarrow"),
    "integer": "int64",
    "money": "float64",
    "timestamp": "datetime64[ns]",
    "choice": pd.StringDtype("pyarrow"),
    "category": pd.StringDtype("pyarrow"),
    "text": pd.StringDtype("pyarrow"),
}


def dtype_of(kind: Kind) -> object:
    """The pandas dtype a column of this kind has after validation."""
    return _DTYPES[kind]


DUPLICATE_ROW = "duplicate_row"
DUPLICATE_ORDER_LINE = "duplicate_order_line"
ORDER_INCONSISTENT = "order_inconsistent"
PRODUCT_NOT_ON_ORDER = "product_not_on_order"

# Whether each id of a column is among the ids a referenced table holds.
IdMembership = Callable[[pd.Series], pd.Series]

# Integers beyond this magnitude are not exact in float64 (nor safe to sum in int64).
LARGEST_EXACT_INTEGER = 2**53


@dataclass(frozen=True)
class RowRules:
    """The configured bounds a row is judged by (from ``validation:`` and the run's clock).

    ``earliest`` and ``latest`` bound every timestamp (``latest`` = wall-clock time plus the
    tolerance; a scheduled time such as a sale window may lie beyond it); ``max_values``
    caps the magnitude of number columns; ``null_markers`` are id texts that mean "empty"
    (compared without case).
    """

    earliest: pd.Timestamp
    latest: pd.Timestamp
    max_values: dict[str, float]
    null_markers: tuple[str, ...]

    def max_for(self, column: ColumnSpec) -> float | None:
        """The largest magnitude ``column`` may hold (whole numbers never beyond 2**53)."""
        configured = self.max_values.get(column.name)
        if column.kind == "integer":
            return min(configured, LARGEST_EXACT_INTEGER) if configured is not None else LARGEST_EXACT_INTEGER
        return configured


def reason_missing(column: str) -> str:
    return f"missing_{column}"


def reason_unparseable(column: str) -> str:
    return f"unparseable_{column}"


def reason_not_finite(column: str) -> str:
    return f"{column}_not_finite"


def reason_above_max(column: str) -> str:
    return f"{column}_above_max"


def reason_null_marker(column: str) -> str:
    return f"{column}_null_marker"


def reason_control_character(column: str) -> str:
    return f"{column}_control_character"


def reason_in_future(column: str) -> str:
    return f"{column}_in_future"


def reason_before_earliest(column: str) -> str:
    return f"{column}_before_earliest"


def reason_duplicate_key(key: str) -> str:
    return f"duplicate_{key}"


def reason_unknown_reference(column: str) -> str:
    return f"unknown_{column.removesuffix('_id')}"


def row_schema(
    spec: TableSpec,
    present: list[str],
    rules: RowRules,
    known: dict[str, IdMembership],
) -> pa.DataFrameSchema:
    """The pandera schema of ``spec`` whose failing checks name quarantine reasons.

    It judges each row on its own (what spans rows is found by ``features.validate``).
    ``present`` lists the columns the file has, ``rules`` holds the configured bounds, and
    ``known`` maps a referencing column to the test of whether its ids are known. Its checks
    are ``row_checks`` rendered for pandas (``RowCheck.pandas``); Spark renders the same list
    as SQL (``RowCheck.sql``, ``features.spark_validate``).
    """
    checks = row_checks(spec, present, rules, set(known))
    columns = {
        column.name: pa.Column(
            None,
            checks=[c.pandas(known.get(column.name)) for c in checks if c.column == column.name],
            nullable=True,
        )
        for column in spec.columns
        if column.name in present
    }
    table_checks = [c.pandas() for c in checks if c.column is None]
    return pa.DataFrameSchema(columns, checks=table_checks, strict=True)


def typed_schema(spec: TableSpec, present: list[str]) -> pa.DataFrameSchema:
    """The pandera schema of a clean table: contract dtypes and nullability, nothing else."""
    columns = {
        c.name: pa.Column(dtype_of(c.kind), nullable=c.nullable) for c in spec.columns if c.name in present
    }
    return pa.DataFrameSchema(columns, strict=True)


_CONTROL_CHARACTER = r"[\x00-\x1f\x7f]"


def is_null_marker(ids: pd.Series, markers: tuple[str, ...]) -> pd.Series:
    """Whether each id is one of ``markers``, compared without case (empty ids are not).

    Only ids no longer than the longest marker are case-folded (casefolding never shortens a
    text), so the per-cell Python call runs on a few short values instead of every id.
    """
    folded = [m.casefold() for m in markers]
    longest = max((len(m) for m in markers), default=0)
    short = (ids.str.len() <= longest).fillna(False).to_numpy(dtype=bool)
    found = np.zeros(len(ids), dtype=bool)
    if short.any():
        found[short] = ids[short].str.casefold().isin(folded).to_numpy(dtype=bool)
    return pd.Series(found, index=ids.index)


# --- the row rules as data: one definition, rendered for pandera and for SQL ----------------------

Test = Literal[
    "present",
    "not_null_marker",
    "no_control_character",
    "finite",
    "magnitude_at_most",
    "positive",
    "not_before",
    "not_after",
    "one_of",
    "known",
    "quantity_positive_when_paid",
    "sale_ordered",
]


@dataclass(frozen=True)
class RowCheck:
    """One rule a row must pass: the ``test``, on ``column`` (None: a rule over several columns),
    with its bound ``value``, and the quarantine ``reason`` a failing row gets.

    ``pandas`` renders it as a pandera check (the DuckDB/pandas path), ``sql`` as a Spark SQL
    predicate true when the row passes; both say the same thing. A rule on one column judges
    only rows where the column has a value (an empty one is ``missing_<column>``'s business),
    except ``present`` itself."""

    reason: str
    test: Test
    column: str | None = None
    value: object = None

    def pandas(self, known_ids: IdMembership | None = None) -> pa.Check:
        """The pandera check (``known_ids``: the membership test of a ``known`` rule)."""
        if self.test == "present":
            return pa.Check(lambda s: s.notna(), name=self.reason, ignore_na=False)
        if self.test == "known":
            if known_ids is None:
                raise ValueError(f"{self.reason}: a known-id rule needs the ids it may take")
            return pa.Check(known_ids, name=self.reason)
        return pa.Check(_PANDAS_TESTS[self.test](self.value), name=self.reason)

    def sql(self, quote: Callable[[str], str], literal: Callable[[object], str]) -> str:
        """A SQL predicate, true when the row passes (``quote``: a column's name as SQL,
        ``literal``: a value as SQL). ``known`` reads the boolean column ``known_<column>``, which
        the caller computes (a join with the referenced table's ids)."""
        c = quote(self.column) if self.column is not None else ""
        value = self.value
        finite = f"abs({c}) != double('infinity')"
        markers = _listed(literal, [m.casefold() for m in value]) if self.test == "not_null_marker" else ""
        rendered = {
            "present": lambda: f"{c} IS NOT NULL",
            "not_null_marker": lambda: f"lower({c}) NOT IN ({markers})" if value else "TRUE",
            "no_control_character": lambda: f"NOT {c} RLIKE {literal(_CONTROL_CHARACTER)}",
            "finite": lambda: finite,
            "magnitude_at_most": lambda: f"NOT ({finite} AND abs({c}) > {literal(value)})",
            "positive": lambda: f"{c} > 0",
            "not_before": lambda: f"{c} >= {literal(value)}",
            "not_after": lambda: f"{c} <= {literal(value)}",
            "one_of": lambda: f"{c} IN ({_listed(literal, value)})",
            "known": lambda: quote(f"known_{self.column}"),
            "quantity_positive_when_paid": lambda: (
                f"NOT coalesce({quote(Col.STATUS)} = {literal(OrderStatus.PAID)} "
                f"AND {quote(Col.QUANTITY)} <= 0, FALSE)"
            ),
            "sale_ordered": lambda: f"NOT coalesce({quote(Col.SALE_END)} < {quote(Col.SALE_START)}, FALSE)",
        }[self.test]()
        if self.column is None or self.test == "present":
            return rendered
        return f"({c} IS NULL OR {rendered})"


def _listed(literal: Callable[[object], str], values: Iterable[object]) -> str:
    return ", ".join(literal(v) for v in values)


_PANDAS_TESTS: dict[str, Callable[[object], Callable[..., object]]] = {
    "not_null_marker": lambda markers: lambda s: ~is_null_marker(s, markers),
    "no_control_character": lambda _: lambda s: ~s.str.contains(_CONTROL_CHARACTER),
    "finite": lambda _: lambda s: np.isfinite(s),
    "magnitude_at_most": lambda largest: lambda s: ~(np.isfinite(s) & (s.abs() > largest)),
    "positive": lambda _: lambda s: s > 0,
    "not_before": lambda earliest: lambda s: s >= earliest,
    "not_after": lambda latest: lambda s: s <= latest,
    "one_of": lambda allowed: lambda s: s.isin(list(allowed)),
    "quantity_positive_when_paid": lambda _: (
        lambda df: ~((df[Col.STATUS] == OrderStatus.PAID) & (df[Col.QUANTITY] <= 0))
    ),
    "sale_ordered": lambda _: lambda df: ~(df[Col.SALE_END] < df[Col.SALE_START]),
}


def row_checks(spec: TableSpec, present: list[str], rules: RowRules, known: set[str]) -> list[RowCheck]:
    """Every rule a row of ``spec`` is judged by on its own, in order: per present column its
    column rules, then the rules over several columns. ``known``: the referencing columns whose
    ids are checked against a referenced table (``unknown_<table>``)."""
    checks = [
        check
        for column in spec.columns
        if column.name in present
        for check in _column_checks(column, rules, column.name in known)
    ]
    return checks + _table_checks(spec, present)


def _column_checks(column: ColumnSpec, rules: RowRules, checks_references: bool) -> list[RowCheck]:
    checks: list[RowCheck] = []
    name = column.name
    if not column.nullable:
        checks.append(RowCheck(reason_missing(name), "present", name))
    if column.kind == "id":
        checks.append(RowCheck(reason_null_marker(name), "not_null_marker", name, tuple(rules.null_markers)))
        checks.append(RowCheck(reason_control_character(name), "no_control_character", name))
    if column.kind in ("integer", "money"):
        checks.append(RowCheck(reason_not_finite(name), "finite", name))
        largest = rules.max_for(column)
        if largest is not None:
            checks.append(RowCheck(reason_above_max(name), "magnitude_at_most", name, largest))
    if column.kind == "money":
        checks.append(RowCheck(f"{name}_not_positive", "positive", name))
    if column.kind == "timestamp":
        checks.append(RowCheck(reason_before_earliest(name), "not_before", name, rules.earliest))
        if not column.scheduled:
            checks.append(RowCheck(reason_in_future(name), "not_after", name, rules.latest))
    if column.kind == "choice":
        checks.append(RowCheck(f"unknown_{name}", "one_of", name, tuple(column.choices)))
    if checks_references:
        checks.append(RowCheck(reason_unknown_reference(name), "known", name))
    return checks


def _table_checks(spec: TableSpec, present: list[str]) -> list[RowCheck]:
    checks: list[RowCheck] = []
    if spec.name == Table.ORDERS:
        checks.append(RowCheck("quantity_not_positive_on_paid_line", "quantity_positive_when_paid"))
    if {Col.SALE_START, Col.SALE_END} <= set(present):
        checks.append(RowCheck("sale_end_before_sale_start", "sale_ordered"))
    return checks


def contract_markdown() -> str:
    """The contract as Markdown: docs/data_contract.md is this text (a test keeps them equal)."""
    lines = [
        "# The siyu data contract",
        "",
        "<!-- Generated from features/contract.py by `python -m features.contract > docs/data_contract.md`."
        " Do not edit by hand. -->",
        "",
        "A data directory holds one file per table, `<table>.parquet` or `<table>.csv` (UTF-8; a BOM is",
        f"fine). Required tables: {', '.join(Table.REQUIRED)}; optional: {', '.join(Table.OPTIONAL)}.",
        "Your own column names can be mapped onto these in the config (`data.columns`).",
        "",
        *_partitioned_doc(),
        "**Time zone.** Timestamps are read in the platform's time zone, `validation.timezone`",
        f"(default `{DEFAULT_TIMEZONE}`): a time-zone-aware value (a Parquet timestamp with a zone, or a",
        "text such as `2025-03-01T10:00:00+00:00`) is converted to it; a naive value is taken as already",
        "in it. Write dates as ISO 8601 (`YYYY-MM-DD` or `YYYY-MM-DD HH:MM:SS`): a day/month text such",
        "as `03/04/2025` (3 April or 4 March?) is refused, and a column written that way stops the run;",
        "one that reads one way only (`15/04/2025`, `04/15/2025`: 15 April) is read as it is, row by row.",
        "",
        "**As-of date.** A run is as of a date (`--as-of`; default: the day of the latest order) and",
        "uses what happened up to the end of that day. A row whose event time",
        f"({', '.join(f'`{s.name}.{s.event_time}`' for s in CONTRACT.values() if s.event_time)})",
        "lies after the end of the as-of date is *out of the run's window*: it is left out of the clean",
        "tables and counted (`rows_out_of_window` in validation.json), never quarantined, so a run as of",
        "a past date sees exactly what a run on the data of that day would. A sale window",
        "(`sale_start`, `sale_end`) may lie after the as-of date: a product on a flash sale now or",
        "next week is fine. Only impossible times are bad rows: after the run's wall-clock time plus",
        "`validation.future_tolerance_days` (default 1), or before `validation.earliest` (default",
        f"{DEFAULT_EARLIEST.isoformat()}).",
        "",
    ]
    for spec in CONTRACT.values():
        key = f" Unique key: `{', '.join(spec.key)}`." if spec.key else ""
        lines += [
            f"## {spec.name}",
            "",
            spec.description + key,
            "",
            "| column | type | required | empty allowed | meaning |",
            "|---|---|---|---|---|",
        ]
        for c in spec.columns:
            kind = f"{c.kind} ({' / '.join(c.choices)})" if c.choices else c.kind
            lines.append(
                f"| `{c.name}` | {kind} | {'yes' if c.required else 'no'} | "
                f"{'yes' if c.nullable or c.kind == 'category' else 'no'} | {c.description} |"
            )
        lines.append("")
    return "\n".join(lines + _quarantine_doc())


# Every quarantine reason, as a pattern and its rule: the docs list exactly these.
QUARANTINE_REASONS: tuple[tuple[str, str], ...] = (
    ("missing_<column>", "an id or required value is empty"),
    (
        "unparseable_<column>",
        "a number, whole number or date/time cannot be read; a day/month date such as 03/04/2025 "
        "is refused as ambiguous (fix: use ISO 8601, YYYY-MM-DD)",
    ),
    ("<column>_not_finite", "a number is infinite (`inf`, `-inf`, `Infinity`)"),
    ("<column>_above_max", "a number's magnitude exceeds `validation.max_values` (whole numbers: 2^53)"),
    ("<column>_not_positive", "`unit_price` or `list_price` is 0 or below"),
    ("quantity_not_positive_on_paid_line", "a paid line has quantity 0 or below"),
    ("<column>_null_marker", "an id is a null marker (`validation.null_markers`: NULL, None, nan, N/A, ...)"),
    ("<column>_control_character", "an id holds a control character (NUL, tab, newline, ...)"),
    (
        "<column>_in_future",
        "an event time lies after the run's clock plus `validation.future_tolerance_days`",
    ),
    ("<column>_before_earliest", "a time lies before `validation.earliest`"),
    ("unknown_<choice column>", "`status` or `event_type` outside the allowed choices"),
    (
        "unknown_<product|order|consumer|distributor>",
        "the referenced product, order, consumer or distributor is not among its table's clean rows "
        "up to the as-of date, under a `quarantine` policy (`validation.references`)",
    ),
    ("product_not_on_order", "a complaint names a product its order does not hold"),
    ("sale_end_before_sale_start", "an inverted flash-sale window"),
    (
        ORDER_INCONSISTENT,
        "the lines of one order disagree on consumer, distributor or ordered_at (every line is set aside)",
    ),
    (DUPLICATE_ROW, "an exact copy of an earlier row (the first copy is kept)"),
    (DUPLICATE_ORDER_LINE, "an (order_id, product_id) seen earlier with another quantity, price or status"),
    ("duplicate_<key>", "a key seen earlier with other values (the first is kept)"),
)


def _partitioned_doc() -> list[str]:
    return [
        "**A table as a directory of Parquet parts.** A table may instead be a directory, `<table>/`",
        "or `<table>.parquet/`, of Parquet files as a data lake lands them, Hive-style",
        "(`orders/dt=2025-12-31/part-0.parquet`) or plain (`orders/part-00000.parquet`). Every",
        "`*.parquet` file below it is a part, read in path order (daily `dt=YYYY-MM-DD` folders: oldest",
        "first); names starting with `.` or `_` (`_SUCCESS`, `.crc`) are skipped, a part without rows is",
        "left out, any other file stops the run. The partition values in folder names (`dt=...`) are",
        "not read: they are not contract columns, and each row is placed in time by its own event time",
        "(a lake's `dt` is often a UTC or load date). The rules are those of one file: a row that",
        "repeats a row of an earlier part is a duplicate, an order's lines may disagree across parts.",
        "",
        "**Incremental validation.** Validation keeps each file's outcome in `validated/cache/` keyed",
        "by the sha256 of the file's bytes (not its size and time: a copy resets times, a rewrite in",
        "the same second keeps them), the `validation:` settings (but `chunk_rows` and",
        "`tables_at_once`) and the column",
        "mapping, and by what the outcome depends on beyond the file: the as-of date (only when the",
        "file has times at or after its end), the parts before it in the table, and which of its ids",
        "the referenced tables hold (and, for orders, which of its orders are inconsistent). A night",
        "that adds one day's parts validates only those; a changed, new or deleted part validates",
        "itself and the parts after it again; a config change validates everything. The quarantine",
        "files and validation.json are exactly those of a full validation, and so are the clean",
        "tables' rows. A run keeps only the cache entries it used; deleting `validated/cache/` is",
        "always safe (the next run validates everything). Files not found in the cache are checked",
        "together, up to `chunk_rows` rows at a time across files, so many small parts cost about",
        "what one file of their rows costs.",
        "",
        "**Two cores at once.** Tables are validated side by side (`validation.tables_at_once`,",
        "default 2), each as soon as the tables it refers to are done: events need only products, so",
        "they run beside consumers and orders; complaints wait for orders. Within a table the next",
        "files are read on a thread of their own and each chunk's files are written on another while",
        "the next chunk is checked. None of this changes what is written; `tables_at_once: 1`",
        "validates one table at a time and holds less in memory.",
        "",
        "**Clean tables.** Each clean table is a folder `clean/<table>.parquet/` of Parquet parts,",
        "`part-000000.parquet` onwards, one per input file in file order (a single-file table: one",
        "part), each a hard link to the file's clean rows in the cache: a night rewrites no clean row",
        "of an unchanged file. DuckDB (`read_parquet('clean/orders.parquet/*.parquet')`), pyarrow and",
        "pandas (`pd.read_parquet('clean/orders.parquet')`) read the folder as one table; every part",
        "has the table's columns. A run replaces the folders only when every table has been",
        "read and checked: a run stopped by a file error leaves the previous clean tables in place. A",
        "run stopped after that, by `validation.max_quarantine_share` or because no order line is",
        "dated up to the as-of date, has replaced them (and the quarantine files and `validation.json`,",
        "which say why); the nightly's published exports are not touched.",
        "",
    ]


def _quarantine_doc() -> list[str]:
    return [
        "## Quarantine reasons",
        "",
        "A row that breaks a rule is set aside, as read, in `quarantine/<table>.csv` with `source_row`",
        "(1 = first data row of the file; for a directory of parts, rows are counted across the parts in",
        "path order) and `quarantine_reason` (all its reasons, `;`-separated):",
        "",
        "| reason | rule |",
        "|---|---|",
        *(f"| `{reason}` | {rule} |" for reason, rule in QUARANTINE_REASONS),
        "",
        "References to consumers and distributors are checked when those tables are supplied; by",
        "default (`validation.references`: `consumers: flag`, `distributors: flag`) a row naming an",
        "unknown one is kept and counted under `flagged` in validation.json (`unknown_consumer`,",
        "`unknown_distributor`), so a platform with partial master data still runs; products and",
        "orders default to `quarantine`. Each of the four can be set to `quarantine` or `flag`.",
        "",
        "validation.json counts per table `rows_read` = `rows_kept` + `rows_quarantined` +",
        "`rows_out_of_window`.",
        "",
        "A file that cannot be used at all (missing, a directory or a broken link, empty, unreadable,",
        "not UTF-8, a column named twice, a required column missing, a number column stored as",
        "true/false, a column none of whose values can be read, dates written day/month) stops the run",
        "with a message naming the file, the column and the fix. The run also stops when a table's",
        "quarantined share of its rows up to the as-of date exceeds `validation.max_quarantine_share`",
        "(default 5%), after writing the quarantine files.",
        "",
    ]


if __name__ == "__main__":
    print(contract_markdown())
