"""Row-level validation, chunk by chunk: type every column, set bad rows aside with their reasons.

A table is validated in chunks of bounded size by a ``TableValidator``. For each chunk the
raw values are coerced to the contract's types, then the table's pandera schema
(``features.contract.row_schema``) is run lazily; every failing check names a quarantine
reason. What spans chunks is remembered by the validator, so the outcome does not depend
on the chunk size, nor on whether a chunk holds the rows of several small files
(``TableValidator.check_files``: the checks run once, each file keeps its own counts):

- duplicates: a 64-bit hash of every typed row (and of every key value, and of every
  order line's ``(order_id, product_id)``) met so far is kept, so the first copy in the
  file is kept and every later copy is quarantined as ``duplicate_row`` (or
  ``duplicate_<key>`` / ``duplicate_order_line``), whichever chunk the first copy was in;
- orders whose lines disagree on consumer, distributor or time are found by a first pass
  over those columns (``find_inconsistent_orders``), so every line of such an order is
  quarantined as ``order_inconsistent``, before or after the line that disagreed;
- ``source_row`` numbering (1 = first data row of the file) continues across chunks;
- a column none of whose values in the whole file can be read is a file-level error,
  raised by ``TableValidator.report`` once the last chunk has been seen.

**As-of.** A row whose event time (``TableSpec.event_time``) lies at or after
``AsOf.end`` is out of the run's window: not used, not quarantined, only counted. Only
impossible times are bad rows: after the run's wall-clock time plus
``validation.future_tolerance_days``, or before ``validation.earliest``.

**Time zone.** Time-zone-aware values are converted to ``validation.timezone`` and made
naive; naive values are taken as already in it. Day/month strings such as ``03/04/2025``
are refused as ambiguous.

Rows with at least one reason go to quarantine *as they were read*, with ``source_row``
and ``quarantine_reason`` (reasons joined by ``;``). The run goes on with the good rows and
fails only when a table's quarantined share exceeds the configured limit.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.parquet as pq
from pyarrow import types as pa_types
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, field_validator

from features.asof import AsOf
from features.columns import Col, Table
from features.contract import (
    CONTRACT,
    DEFAULT_EARLIEST,
    DEFAULT_NULL_MARKERS,
    DEFAULT_TIMEZONE,
    DUPLICATE_ORDER_LINE,
    DUPLICATE_ROW,
    ORDER_INCONSISTENT,
    PRODUCT_NOT_ON_ORDER,
    REFERENCES,
    UNKNOWN_CATEGORY,
    ColumnSpec,
    IdMembership,
    RowRules,
    TableSpec,
    dtype_of,
    is_null_marker,
    reason_duplicate_key,
    reason_missing,
    reason_unknown_reference,
    reason_unparseable,
    row_schema,
    typed_schema,
)
from features.errors import ContractError, MissingTableError, QuarantineLimitExceeded
from features.progress import Progress
from features.reader import RawTable, TableInput, chunks_of_parts

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 500_000
_KIND_WORDS = {"integer": "a whole number", "money": "a number", "timestamp": "a date/time"}
_NUMBER_COLUMNS = sorted(
    {c.name for spec in CONTRACT.values() for c in spec.columns if c.kind in ("integer", "money")}
)
ReferenceAction = Literal["quarantine", "flag"]


class ReferencePolicy(BaseModel):
    """Per referenced table, what happens to a row naming an id that table does not have.

    ``quarantine`` sets the row aside as ``unknown_<table>``; ``flag`` keeps it and counts it
    in the report (so a platform with partial master data still runs).
    """

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    products: ReferenceAction = "quarantine"
    """Orders, events and complaints naming a product missing from products."""
    orders: ReferenceAction = "quarantine"
    """Complaints naming an order missing from orders."""
    consumers: ReferenceAction = "flag"
    """Orders naming a consumer missing from consumers (when consumers is supplied)."""
    distributors: ReferenceAction = "flag"
    """Orders and consumers naming a distributor missing from distributors (when supplied)."""

    def action_for(self, table: str) -> ReferenceAction:
        return getattr(self, table)


class ValidationConfig(BaseModel):
    """How rows are judged, how much quarantine a run tolerates, how many rows it holds at once."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    # The run stops when more than this share of a table's in-window rows is quarantined
    # (per-table overrides in max_quarantine_share_by_table); chunk_rows: rows held at once.
    max_quarantine_share: float = Field(0.05, ge=0.0, le=1.0)
    max_quarantine_share_by_table: dict[str, float] = Field(default_factory=dict)
    chunk_rows: int = Field(DEFAULT_CHUNK_ROWS, ge=1)
    tables_at_once: int = Field(2, ge=1)
    """Tables validated side by side, each on a thread of its own (a table waits for the tables it
    refers to); 1: one after the other. Results do not depend on it; memory grows with it."""
    timezone: str = DEFAULT_TIMEZONE
    """The platform's time zone: aware timestamps are converted to it, naive ones are in it."""
    future_tolerance_days: float = Field(1.0, ge=0.0)
    """A timestamp later than the run's wall-clock time plus this many days is impossible."""
    earliest: date = DEFAULT_EARLIEST
    """A timestamp before this date is impossible."""
    max_values: dict[str, PositiveFloat] = Field(
        default_factory=lambda: {Col.QUANTITY: 1_000_000, Col.UNIT_PRICE: 1e6, Col.LIST_PRICE: 1e6}
    )
    """Largest magnitude per number column; a larger value is ``<column>_above_max``. (Wholesale
    data such as Online Retail has real lines of 80,995 units.)"""
    null_markers: tuple[str, ...] = DEFAULT_NULL_MARKERS
    """Id texts that stand for an empty value (compared without case): ``<column>_null_marker``."""
    references: ReferencePolicy = Field(default_factory=ReferencePolicy)
    """Quarantine or flag rows that name an unknown id, per referenced table."""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'Asia/Shanghai'"
            ) from None
        return value

    @field_validator("max_values")
    @classmethod
    def _number_columns_only(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(_NUMBER_COLUMNS))
        if unknown:
            raise ValueError(f"{unknown} are not number columns; use some of {_NUMBER_COLUMNS}")
        return value

    def limit_for(self, table: str) -> float:
        return self.max_quarantine_share_by_table.get(table, self.max_quarantine_share)

    def rules(self, now: datetime | None = None) -> RowRules:
        """The row rules of a run started at ``now`` (naive, in ``timezone``; default: the clock)."""
        now = now or datetime.now(ZoneInfo(self.timezone)).replace(tzinfo=None)
        return RowRules(
            earliest=pd.Timestamp(self.earliest),
            latest=pd.Timestamp(now) + pd.Timedelta(days=self.future_tolerance_days),
            max_values=dict(self.max_values),
            null_markers=self.null_markers,
        )


@dataclass(frozen=True)
class TableReport:
    """What validation did to one table.

    ``rows_read`` = ``rows_kept`` + ``rows_quarantined`` + ``rows_out_of_window``; ``flagged``
    counts kept rows naming an unknown id under a ``flag`` reference policy.
    """

    table: str
    source: str
    rows_read: int
    rows_kept: int
    rows_quarantined: int
    rows_out_of_window: int
    reasons: dict[str, int]
    flagged: dict[str, int] = field(default_factory=dict)

    @property
    def rows_in_window(self) -> int:
        return self.rows_read - self.rows_out_of_window

    @property
    def quarantined_share(self) -> float:
        """Quarantined rows as a share of the rows in the run's window."""
        return self.rows_quarantined / self.rows_in_window if self.rows_in_window else 0.0


@dataclass(frozen=True)
class ValidationResult:
    """What validation did to every table of a data set, as of a date (in validation order)."""

    as_of: AsOf
    reports: list[TableReport]

    def over_limit(self, config: ValidationConfig) -> list[TableReport]:
        """Reports of the tables whose quarantined share exceeds their limit."""
        return [r for r in self.reports if r.quarantined_share > config.limit_for(r.table)]


@dataclass(frozen=True)
class CheckedChunk:
    """One chunk split into its clean rows (typed) and its quarantined rows (as read)."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame


@dataclass(frozen=True)
class CheckedPieces:
    """The next rows of several files split as ``CheckedChunk`` splits one file's: the clean rows
    of all pieces in one frame (piece ``k``'s are rows ``clean_at[k]`` to ``clean_at[k + 1]``),
    the quarantined rows per piece."""

    clean: pd.DataFrame
    clean_at: np.ndarray
    quarantine: list[pd.DataFrame]
    hashes: ColumnHashes | None = None
    """The clean rows' value hashes (``ColumnHashes``), for their ids."""

    def piece(self, k: int) -> CheckedChunk:
        rows = slice(self.clean_at[k], self.clean_at[k + 1])
        return CheckedChunk(self.clean.iloc[rows].reset_index(drop=True), self.quarantine[k])


class SeenHashes:
    """The 64-bit hashes met so far: tells which of a chunk's values came before.

    The hashes are kept as a few sorted runs whose sizes halve from the first to the last
    (a log-structured set): a chunk's new hashes become a run of their own and merge with
    the runs no larger than twice their size, so every hash is copied O(log n) times in
    all, and a lookup is one binary search per run. (One sorted array that every chunk is
    inserted into copies the whole set per chunk: quadratic in the number of chunks.)

    Two different values share a hash with probability 2**-64, so among n distinct values
    the chance that any pair collides (and a row is wrongly called a duplicate) is about
    n**2 / 2**65: 3e-6 for 10 million rows, 2e-5 for 28 million.
    """

    def __init__(self, hashes: np.ndarray | None = None) -> None:
        self._runs: list[np.ndarray] = []
        if hashes is not None:
            self.add(hashes)

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """Per hash, whether it was met before; remembers nothing."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        if not self._runs:
            return np.zeros(len(hashes), dtype=bool)
        # Sorted needles walk each run front to back (binary searches that reuse the last
        # position): several times faster than random probes into a large array.
        order = np.argsort(hashes, kind="stable")
        needles = hashes[order]
        found_sorted = np.zeros(len(hashes), dtype=bool)
        for run in self._runs:
            position = np.minimum(np.searchsorted(run, needles), len(run) - 1)
            found_sorted |= run[position] == needles
        found = np.empty(len(hashes), dtype=bool)
        found[order] = found_sorted
        return found

    def repeats(self, hashes: np.ndarray) -> np.ndarray:
        """Per hash, whether it was met before (in an earlier chunk or earlier in this one);
        remembers the new ones."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        repeated = pd.Series(hashes).duplicated(keep="first").to_numpy() | self.contains(hashes)
        self._add_run(np.sort(hashes[~repeated]))
        return repeated

    def add(self, hashes: np.ndarray, runs: bool = False) -> None:
        """Remember ``hashes`` (in any order, repeats allowed; ``runs``: sorted runs side by side)."""
        distinct = unique_hashes(hashes, runs)
        self._add_run(distinct[~self.contains(distinct)])

    def values(self) -> np.ndarray:
        """Every hash met, sorted."""
        return np.sort(np.concatenate([np.empty(0, dtype=np.uint64), *self._runs]))

    def _add_run(self, run: np.ndarray) -> None:
        """Append a sorted run of new hashes; merge the tail while a run is not twice the next."""
        if not len(run):
            return
        self._runs.append(run)
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            last = self._runs.pop()
            # Two sorted runs side by side: timsort ("stable") merges them in linear time.
            self._runs[-1] = np.sort(np.concatenate([self._runs[-1], last]), kind="stable")


def unique_hashes(hashes: np.ndarray, runs: bool = False) -> np.ndarray:
    """The distinct hashes, sorted: ``np.unique``'s answer, by a sort (numpy 2's hash-table
    unique is over ten times slower on millions of random 64-bit values). ``runs``: the hashes
    are sorted runs side by side (each file's, kept sorted), which timsort merges in a few passes."""
    ordered = np.sort(np.asarray(hashes, dtype=np.uint64), kind="stable" if runs else None)
    first = np.ones(len(ordered), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]


class OrderHeaders:
    """Per order line usable for the consistency check, the order's id hash, the hash of its
    header (consumer, distributor, time) and its time; collected a chunk at a time and reduced
    to distinct triples (an order with two headers is inconsistent: ``conflicting``)."""

    def __init__(self, frames: Iterable[pd.DataFrame] = ()) -> None:
        self._frames: list[pd.DataFrame] = list(frames)

    def add(self, orders: np.ndarray, headers: np.ndarray, times: np.ndarray) -> None:
        lines = pd.DataFrame({"order": orders, "header": headers, "time": times})
        self._frames.append(lines.drop_duplicates(["order", "header"]))

    def distinct(self) -> pd.DataFrame:
        """The distinct (order, header, time) triples met (time: nanoseconds since 1970)."""
        empty = pd.DataFrame(
            {"order": np.empty(0, np.uint64), "header": np.empty(0, np.uint64), "time": np.empty(0, np.int64)}
        )
        if len(self._frames) == 1:
            return self._frames[0].drop_duplicates(["order", "header"])
        return pd.concat([empty, *self._frames], ignore_index=True).drop_duplicates(["order", "header"])

    def conflicting(self, end: pd.Timestamp, latest: pd.Timestamp) -> SeenHashes:
        """The orders (id hashes) with more than one header among the lines in the run's window:
        timed before ``end`` (and not after ``latest``, the bound of an impossible future)."""
        if not self._frames:
            return SeenHashes()
        orders, headers, times = (
            np.concatenate([frame[name].to_numpy() for frame in self._frames])
            for name in ("order", "header", "time")
        )
        in_window = (times < end.value) & (times <= latest.value)
        orders, headers = orders[in_window].astype(np.uint64), headers[in_window].astype(np.uint64)
        if not len(orders):
            return SeenHashes()
        # Lines sorted by order: an order whose lines' smallest and largest header differ has
        # two headers. (A header holds the time, so a line's window is its header's.)
        by_order = np.argsort(orders)
        orders, headers = orders[by_order], headers[by_order]
        starts = np.flatnonzero(np.concatenate([[True], orders[1:] != orders[:-1]]))
        two = np.minimum.reduceat(headers, starts) != np.maximum.reduceat(headers, starts)
        return SeenHashes(orders[starts[two]])


def _joined(frames: list[pd.DataFrame], name: str) -> np.ndarray:
    return np.concatenate([frame[name].to_numpy() for frame in frames])


@dataclass(frozen=True)
class KnownIds:
    """What a table's rows may refer to: clean, in-window ids of the tables already validated,
    kept as 64-bit hashes (8 bytes an id, whatever the id's length).

    ``quarantine`` / ``flag`` map a referencing column to the ids it may take (an unknown id
    is quarantined / kept and counted); ``order_lines`` holds the ``(order_id, product_id)``
    hashes of the clean order lines (for complaints).
    """

    quarantine: dict[str, SeenHashes] = field(default_factory=dict)
    flag: dict[str, SeenHashes] = field(default_factory=dict)
    order_lines: SeenHashes | None = None

    def membership(self) -> dict[str, IdMembership]:
        """Per quarantine-policy column, the test of whether its ids are known."""
        return {column: partial(known_ids, seen) for column, seen in self.quarantine.items()}


def id_hashes(ids: pd.Series) -> np.ndarray:
    """The 64-bit hash of each id (what ``KnownIds`` holds and is asked about)."""
    return _id_hashes(ids.to_frame())


def known_ids(seen: SeenHashes, ids: pd.Series) -> pd.Series:
    """Whether each id is among ``seen`` (empty ids are not)."""
    return pd.Series(seen.contains(id_hashes(ids)), index=ids.index) & ids.notna()


@dataclass
class ColumnNotes:
    """What a table's values say about whole columns, gathered chunk by chunk (and file by file):
    a column none of whose values can be read, or whose dates are all day/month texts, stops
    the run (``check``) once the whole table has been seen."""

    readable: set[str] = field(default_factory=set)
    unreadable_example: dict[str, object] = field(default_factory=dict)
    day_month_example: dict[str, str] = field(default_factory=dict)
    other_forms: set[str] = field(default_factory=set)

    def merge(self, later: ColumnNotes) -> None:
        """Add the notes of the table's next file (examples: the first one met is kept)."""
        self.readable |= later.readable
        self.other_forms |= later.other_forms
        for name, example in later.unreadable_example.items():
            self.unreadable_example.setdefault(name, example)
        for name, text in later.day_month_example.items():
            self.day_month_example.setdefault(name, text)

    def check(self, spec: TableSpec, source: str) -> None:
        """Raise ``ContractError`` for a column with no readable value, or dates only day/month."""
        for name in spec.column_names:
            if name in self.day_month_example and name not in self.other_forms:
                raise ContractError(
                    source,
                    f"dates are written day/month or month/day (e.g. {self.day_month_example[name]!r}), "
                    "which cannot be read without guessing",
                    "write dates as ISO 8601: YYYY-MM-DD or YYYY-MM-DD HH:MM:SS",
                    column=name,
                )
            if name in self.unreadable_example and name not in self.readable:
                example = self.unreadable_example[name]
                raise ContractError(
                    source,
                    f"no value can be read as {_KIND_WORDS[spec.column(name).kind]} (e.g. {example!r})",
                    f"check that this is the right column, or map the right one in the config "
                    f"(data.columns.{spec.name})",
                    column=name,
                )


class SeenRows:
    """The hashes of the rows (and of each key) a table has met so far, across its files in
    order: a later copy of any of them is a duplicate."""

    def __init__(self, spec: TableSpec) -> None:
        self.rows = SeenHashes()
        self.keys = {(key,): SeenHashes() for key in spec.key}
        if spec.line_key:
            self.keys[spec.line_key] = SeenHashes()

    def named(self) -> dict[str, SeenHashes]:
        """Every set by a name fit for a file: ``row`` and the key's columns joined by ``+``."""
        return {ROW_HASHES: self.rows, **{"+".join(key): seen for key, seen in self.keys.items()}}


ROW_HASHES = "row"
ORDER_LINE_IDS = "order_line"
# The columns of an order line's hash (``ColumnHashes.of``), what complaints are matched on.
ORDER_LINE_COLUMNS = (Col.ORDER_ID, Col.PRODUCT_ID)


@dataclass(frozen=True)
class PartFacts:
    """What one file of a table holds that decides how other tables and the as-of date act on
    it, whatever the run: its latest event or other non-scheduled time (None: none readable),
    and per referencing column (and ``order_line`` for complaints, ``order_id`` for orders) the
    distinct id hashes of all its rows."""

    latest_time: pd.Timestamp | None
    ids: dict[str, np.ndarray]


class FileTally:
    """What one file's rows added up to as a ``TableValidator`` checked them: counts, reasons,
    flagged references, column notes, facts, and the row and key hashes the file added."""

    def __init__(self, spec: TableSpec, source: str, seen_names: Iterable[str]) -> None:
        self.spec = spec
        self.source = source
        self.rows_read = 0
        self.rows_kept = 0
        self.rows_out_of_window = 0
        self.reasons: Counter[str] = Counter()
        self.flagged: Counter[str] = Counter()
        self.notes = ColumnNotes()
        self.latest_time: pd.Timestamp | None = None
        self._met: dict[str, list[np.ndarray]] = {name: [] for name in seen_names}
        self._ids: dict[str, list[np.ndarray]] = {column: [] for column in _fact_columns(spec)}

    def report(self, check_columns: bool = True) -> TableReport:
        """What was done to the file's rows; fails when a column has no readable value in the
        whole file (``check_columns`` False: the caller checks the notes of all of a table's files)."""
        if check_columns:
            self.notes.check(self.spec, self.source)
        return TableReport(
            table=self.spec.name,
            source=self.source,
            rows_read=self.rows_read,
            rows_kept=self.rows_kept,
            rows_quarantined=self.rows_read - self.rows_kept - self.rows_out_of_window,
            rows_out_of_window=self.rows_out_of_window,
            reasons=dict(sorted(self.reasons.items())),
            flagged=dict(sorted(self.flagged.items())),
        )

    def met(self) -> dict[str, np.ndarray]:
        """Per ``SeenRows.named`` set, the hashes this file's rows added to it (sorted)."""
        return {name: np.sort(_concat_hashes(arrays)) for name, arrays in self._met.items()}

    def facts(self) -> PartFacts:
        """The facts of the rows checked (see ``PartFacts``)."""
        ids = {column: unique_hashes(_concat_hashes(arrays)) for column, arrays in self._ids.items()}
        return PartFacts(self.latest_time, ids)

    def add_met(self, name: str, hashes: np.ndarray) -> None:
        self._met[name].append(hashes)

    def add_ids(self, column: str, hashes: np.ndarray) -> None:
        self._ids[column].append(hashes)

    def note_time(self, latest: pd.Timestamp) -> None:
        if self.latest_time is None or latest > self.latest_time:
            self.latest_time = latest


class TableValidator:
    """Validates one table chunk by chunk, in file order.

    ``as_of`` places the run in time (rows after ``as_of.end`` are out of the window),
    ``config`` holds the row rules, ``known`` the ids references may take and
    ``inconsistent_orders`` the order ids ``find_inconsistent_orders`` found. ``now`` is
    the run's wall-clock time (default: the clock). ``seen`` carries the rows of the
    table's earlier files. Call ``check`` on every chunk of the file ``source``, then
    ``report``; or, for several files at once, ``check_files`` with a ``FileTally`` per file
    (``start_file``): the checks then run once over the rows of many small files.
    """

    def __init__(
        self,
        table: str,
        source: str,
        as_of: AsOf | date,
        config: ValidationConfig | None = None,
        known: KnownIds | None = None,
        inconsistent_orders: SeenHashes | None = None,
        now: datetime | None = None,
        seen: SeenRows | None = None,
    ) -> None:
        self.spec = CONTRACT[table]
        self.config = config or ValidationConfig()
        self._end = AsOf.of(as_of).end_timestamp
        self._rules = self.config.rules(now)
        self._known = known or KnownIds()
        self._inconsistent_orders = inconsistent_orders
        self._seen = seen or SeenRows(self.spec)
        self._file = self.start_file(source)

    def start_file(self, source: str) -> FileTally:
        """The tally of a file whose rows ``check_files`` will be given."""
        return FileTally(self.spec, source, self._seen.named())

    def check(self, chunk: pd.DataFrame) -> CheckedChunk:
        """Split one chunk (the next rows of the file, as read) into clean and quarantined rows;
        rows out of the run's window are dropped and counted."""
        return self.check_files([(self._file, chunk)]).piece(0)

    def check_files(self, pieces: list[tuple[FileTally, pd.DataFrame]]) -> CheckedPieces:
        """``check`` for the next rows of several files at once, in file order (each piece: a
        file's next rows as read; all pieces with the same columns and dtypes, so that they
        read as one frame): every check runs once, the outcome is split per piece."""
        frames = [frame for _, frame in pieces]
        whole = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
        tallies = [tally for tally, _ in pieces]
        bounds = np.cumsum([0, *(len(frame) for frame in frames)])
        owner = np.repeat(np.arange(len(pieces)), np.diff(bounds))
        typed, unparseable = coerce_table(self.spec, whole, self.config.timezone)
        hashes = ColumnHashes(typed)
        _note_readability(whole, unparseable, tallies, bounds)
        _note_timestamp_forms(self.spec, whole, tallies, bounds)
        self._note_facts(typed, tallies, owner, bounds, hashes)
        in_window = self._in_window(typed)
        hashes = hashes.select(in_window)
        first_row = _first_rows(tallies, bounds)
        source_rows = (np.arange(len(whole)) + first_row[owner])[in_window]
        owner_in_window = owner[in_window]
        source = _kept(whole, in_window)
        typed = _kept(typed, in_window)
        schema = row_schema(self.spec, list(typed.columns), self._rules, self._known.membership())
        beyond_row = self._duplicates(typed, tallies, owner_in_window, hashes) | self._cross_row(
            typed, hashes
        )
        reasons = _failed_checks(schema, typed, beyond_row)
        for column, mask in unparseable.items():
            mask = mask.loc[in_window].reset_index(drop=True)
            if mask.any():
                reasons = _add_reason(reasons, mask, reason_unparseable(column), drop=reason_missing(column))
        bad = reasons.notna()
        clean = _finalise_clean(self.spec, _kept(typed, ~bad.to_numpy()))
        quarantine = source.loc[bad].copy()
        quarantine.insert(0, Col.SOURCE_ROW, source_rows[bad.to_numpy()])
        quarantine[Col.QUARANTINE_REASON] = reasons[bad]
        quarantine = quarantine.reset_index(drop=True)
        out_of_window = np.bincount(owner[~in_window], minlength=len(pieces))
        return self._split(
            tallies,
            clean,
            hashes.select(~bad.to_numpy()),
            owner_in_window[~bad.to_numpy()],
            quarantine,
            owner_in_window[bad.to_numpy()],
            np.diff(bounds),
            out_of_window,
        )

    def _split(
        self,
        tallies: list[FileTally],
        clean: pd.DataFrame,
        clean_hashes: ColumnHashes,
        clean_owner: np.ndarray,
        quarantine: pd.DataFrame,
        quarantine_owner: np.ndarray,
        rows_read: np.ndarray,
        out_of_window: np.ndarray,
    ) -> CheckedPieces:
        """Each piece's quarantined rows and where its clean rows are; its counts added to its
        file's tally."""
        unknown = self._unknown_references(clean, clean_hashes)
        clean_at, quarantine_at = _starts(clean_owner, len(tallies)), _starts(quarantine_owner, len(tallies))
        quarantined = []
        for k, tally in enumerate(tallies):
            kept = slice(clean_at[k], clean_at[k + 1])
            bad = quarantine.iloc[quarantine_at[k] : quarantine_at[k + 1]].reset_index(drop=True)
            tally.rows_read += int(rows_read[k])
            tally.rows_out_of_window += int(out_of_window[k])
            tally.rows_kept += int(kept.stop - kept.start)
            for reason, mask in unknown.items():
                if count := int(mask[kept].sum()):
                    tally.flagged[reason] += count
            if len(bad):
                tally.reasons.update(bad[Col.QUARANTINE_REASON].str.split(";").explode().tolist())
            quarantined.append(bad)
        return CheckedPieces(clean, clean_at, quarantined, clean_hashes)

    @property
    def rows_read(self) -> int:
        return self._file.rows_read

    @property
    def notes(self) -> ColumnNotes:
        return self._file.notes

    def report(self, check_columns: bool = True) -> TableReport:
        """What was done to the file ``check`` was given (see ``FileTally.report``)."""
        return self._file.report(check_columns)

    def met(self) -> dict[str, np.ndarray]:
        """Per ``SeenRows.named`` set, the hashes the rows given to ``check`` added to it."""
        return self._file.met()

    def facts(self) -> PartFacts:
        """The facts of the rows given to ``check`` (see ``PartFacts``)."""
        return self._file.facts()

    def _note_facts(
        self,
        typed: pd.DataFrame,
        tallies: list[FileTally],
        owner: np.ndarray,
        bounds: np.ndarray,
        hashes: ColumnHashes,
    ) -> None:
        for column in _fact_columns(self.spec):
            names = column.split("+")
            if not set(names) <= set(typed.columns):
                continue
            present = typed[names].notna().all(axis=1).to_numpy()
            lines = hashes.of(names)[present]
            at = _starts(owner[present], len(tallies))
            for k, tally in enumerate(tallies):
                tally.add_ids(column, unique_hashes(lines[at[k] : at[k + 1]]))
        for column in self.spec.columns:
            if column.kind == "timestamp" and not column.scheduled and column.name in typed.columns:
                times = typed[column.name].to_numpy(dtype="datetime64[ns]")
                for k, tally in enumerate(tallies):
                    within = times[bounds[k] : bounds[k + 1]]
                    within = within[~np.isnat(within)]
                    if len(within):
                        tally.note_time(pd.Timestamp(within.max()))

    def _in_window(self, typed: pd.DataFrame) -> np.ndarray:
        """Rows whose event time is before the as-of end, or impossible (those are judged)."""
        column = self.spec.event_time
        if column is None or column not in typed.columns:
            return np.ones(len(typed), dtype=bool)
        times = typed[column]
        return ~((times >= self._end) & (times <= self._rules.latest)).to_numpy()

    def _duplicates(
        self, typed: pd.DataFrame, tallies: list[FileTally], owner: np.ndarray, hashes: ColumnHashes
    ) -> dict[str, np.ndarray]:
        """Per duplicate reason, the rows that repeat an earlier row (or key) of the table.
        A row that repeats a whole earlier row is reported once, as duplicate_row."""
        rows = hashes.rows()
        exact = self._seen.rows.repeats(rows)
        _add_met(tallies, ROW_HASHES, rows[~exact], owner[~exact])
        found = {DUPLICATE_ROW: exact}
        for key, seen in self._seen.keys.items():
            present = typed[list(key)].notna().all(axis=1).to_numpy()
            repeated = np.zeros(len(typed), dtype=bool)
            keys = hashes.of(list(key))[present]
            repeated[present] = seen.repeats(keys)
            new = ~repeated[present]
            _add_met(tallies, "+".join(key), keys[new], owner[present][new])
            reason = DUPLICATE_ORDER_LINE if key == self.spec.line_key else reason_duplicate_key(key[0])
            found[reason] = repeated & ~exact
        return found

    def _cross_row(self, typed: pd.DataFrame, hashes: ColumnHashes) -> dict[str, np.ndarray]:
        """Rules over several rows or tables: inconsistent orders, complaints about a product
        their order does not hold."""
        found: dict[str, np.ndarray] = {}
        if self._inconsistent_orders is not None and len(self._inconsistent_orders):
            present = typed[Col.ORDER_ID].notna().to_numpy()
            inconsistent = np.zeros(len(typed), dtype=bool)
            inconsistent[present] = self._inconsistent_orders.contains(hashes.of([Col.ORDER_ID])[present])
            found[ORDER_INCONSISTENT] = inconsistent
        if self._known.order_lines is not None and self.spec.name == Table.COMPLAINTS:
            orders = self._known.quarantine.get(Col.ORDER_ID, self._known.flag.get(Col.ORDER_ID))
            line = [Col.ORDER_ID, Col.PRODUCT_ID]
            present = typed[line].notna().all(axis=1).to_numpy()
            if orders is not None:
                present &= orders.contains(hashes.of([Col.ORDER_ID]))
            missing = np.zeros(len(typed), dtype=bool)
            missing[present] = ~self._known.order_lines.contains(hashes.of(line)[present])
            found[PRODUCT_NOT_ON_ORDER] = missing
        return found

    def _unknown_references(self, clean: pd.DataFrame, hashes: ColumnHashes) -> dict[str, np.ndarray]:
        """Per flagged reference reason, which clean rows name an id the referenced table lacks."""
        unknown = {}
        for column, seen in self._known.flag.items():
            if column in clean.columns:
                mask = clean[column].notna().to_numpy(dtype=bool) & ~seen.contains(hashes.of([column]))
                unknown[reason_unknown_reference(column)] = mask
        return unknown


def _kept(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """``frame.loc[rows].reset_index(drop=True)`` (``frame``: indexed 0 to n - 1), without taking
    every value again when every row is kept (the usual chunk: Arrow text columns are slow to take).
    The frame returned is a new one: replacing its columns leaves ``frame``'s alone."""
    if rows.all():
        return frame.copy(deep=False)
    return frame.loc[rows].reset_index(drop=True)


def _first_rows(tallies: list[FileTally], bounds: np.ndarray) -> np.ndarray:
    """Per piece, what to add to a row's position in the whole chunk to get its ``source_row``
    (a file may have several pieces in a row)."""
    first = np.empty(len(tallies), dtype=np.int64)
    read: dict[int, int] = {}
    for k, tally in enumerate(tallies):
        before = read.get(id(tally), tally.rows_read)
        first[k] = before - bounds[k] + 1
        read[id(tally)] = before + int(bounds[k + 1] - bounds[k])
    return first


def _starts(owner: np.ndarray, files: int) -> np.ndarray:
    """Where each file's rows start in rows ordered by file (``owner``: each row's file), and the end."""
    return np.searchsorted(owner, np.arange(files + 1))


def _add_met(tallies: list[FileTally], name: str, hashes: np.ndarray, owner: np.ndarray) -> None:
    at = _starts(owner, len(tallies))
    for k, tally in enumerate(tallies):
        tally.add_met(name, hashes[at[k] : at[k + 1]])


def _note_readability(
    source: pd.DataFrame, unparseable: dict[str, pd.Series], tallies: list[FileTally], bounds: np.ndarray
) -> None:
    """Per file, which number and time columns have a readable value, and an unreadable example."""
    for name, failed in unparseable.items():
        failed_rows = failed.to_numpy(dtype=bool)
        readable = source[name].notna().to_numpy(dtype=bool) & ~failed_rows
        for k, tally in enumerate(tallies):
            notes, rows = tally.notes, slice(bounds[k], bounds[k + 1])
            if name in notes.readable:
                continue
            if readable[rows].any():
                notes.readable.add(name)
            elif failed_rows[rows].any() and name not in notes.unreadable_example:
                notes.unreadable_example[name] = source[name].iloc[rows.start + np.argmax(failed_rows[rows])]


def _note_timestamp_forms(
    spec: TableSpec, source: pd.DataFrame, tallies: list[FileTally], bounds: np.ndarray
) -> None:
    """Remember, per file and timestamp column, a day/month value and whether any value has another form."""
    for name in source.columns:
        open_tallies = [k for k, tally in enumerate(tallies) if name not in tally.notes.other_forms]
        if spec.column(name).kind != "timestamp" or not open_tallies:
            continue
        text = _text(source[name])
        if text is None:
            for k in open_tallies:
                tallies[k].notes.other_forms.add(name)
            continue
        day_month = text.str.match(_DAY_MONTH).fillna(False).to_numpy(dtype=bool)
        other = text.notna().to_numpy(dtype=bool) & ~day_month
        ambiguous = _ambiguous_day_month(text).to_numpy(dtype=bool)
        for k in open_tallies:
            notes, rows = tallies[k].notes, slice(bounds[k], bounds[k + 1])
            if other[rows].any():
                notes.other_forms.add(name)
            if ambiguous[rows].any() and name not in notes.day_month_example:
                notes.day_month_example[name] = str(text.iloc[rows.start + np.argmax(ambiguous[rows])])


def _fact_columns(spec: TableSpec) -> list[str]:
    """The id columns whose distinct values ``PartFacts`` keeps for a table (pairs joined by +)."""
    columns = [column for (table, column) in REFERENCES if table == spec.name]
    if spec.name == Table.COMPLAINTS:
        columns.append(f"{Col.ORDER_ID}+{Col.PRODUCT_ID}")
    if spec.name == Table.ORDERS:
        columns.append(Col.ORDER_ID)
    return columns


def _concat_hashes(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.empty(0, dtype=np.uint64), *arrays]).astype(np.uint64)


def find_inconsistent_orders(
    orders: RawTable,
    as_of: AsOf | date,
    config: ValidationConfig | None = None,
    now: datetime | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> SeenHashes:
    """The order ids (hashed) whose in-window lines disagree on consumer, distributor or time.

    A first pass over those four columns, a chunk at a time; lines with an empty or invalid
    id or time, or out of the window, take no part (they are judged on their own).
    """
    config = config or ValidationConfig()
    headers = order_headers(orders, config, chunk_rows)
    return headers.conflicting(AsOf.of(as_of).end_timestamp, config.rules(now).latest)


def order_headers(
    orders: TableInput,
    config: ValidationConfig,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    bar: Progress | None = None,
) -> OrderHeaders:
    """The distinct (order, header, time) of the order lines of all of ``orders``' files
    (see ``headers_of_parts``)."""
    return OrderHeaders(headers_of_parts(orders.parts, config, chunk_rows, bar))


def headers_of_parts(
    parts: Sequence[RawTable],
    config: ValidationConfig,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    bar: Progress | None = None,
) -> list[pd.DataFrame]:
    """Per file of orders, the distinct (order, header, time) of its lines with readable, plain
    ids and a time not before ``validation.earliest``, whatever the as-of date (see
    ``OrderHeaders``); the files are read together (``chunks_of_parts``), ``bar`` is advanced
    by the rows of each chunk read."""
    spec, earliest = CONTRACT[Table.ORDERS], pd.Timestamp(config.earliest)
    header = [Col.CONSUMER_ID, Col.DISTRIBUTOR_ID, Col.ORDERED_AT]
    per_file = [OrderHeaders() for _ in parts]
    for pieces, _ in chunks_of_parts(parts, chunk_rows, only=[Col.ORDER_ID, *header]):
        if not pieces:
            continue
        frames = [chunk for _, chunk in pieces]
        owner = np.repeat([index for index, _ in pieces], [len(chunk) for chunk in frames])
        whole = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        typed, _ = coerce_table(spec, whole, config.timezone)
        usable = typed.notna().all(axis=1) & (typed[Col.ORDERED_AT] >= earliest)
        for column in (Col.ORDER_ID, Col.CONSUMER_ID, Col.DISTRIBUTOR_ID):
            usable &= _plain_id(typed[column], config.null_markers)
        lines = typed.loc[usable]
        owner = owner[usable.to_numpy()]
        times = lines[Col.ORDERED_AT].to_numpy(dtype="datetime64[ns]").view(np.int64)
        orders, headers = _id_hashes(lines[[Col.ORDER_ID]]), _row_hashes(lines[header])
        for index in sorted({index for index, _ in pieces}):
            mine = slice(np.searchsorted(owner, index), np.searchsorted(owner, index, side="right"))
            per_file[index].add(orders[mine], headers[mine], times[mine])
        if bar is not None:
            bar.advance(len(whole))
    return [headers.distinct() for headers in per_file]


def latest_order_date(
    raw_tables: Mapping[str, TableInput],
    today: date | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    timezone: str = DEFAULT_TIMEZONE,
) -> date:
    """The default as-of date: the day of the latest readable order, but never after today.

    Per file, the Parquet statistics answer when they show its latest order before the end
    of today (a timestamp column's every value is readable); otherwise only the
    ``ordered_at`` column is read, a chunk at a time.
    """
    end = AsOf.of(today or date.today()).end_timestamp
    orders = raw_tables[Table.ORDERS]
    latest = pd.NaT
    for part in orders.parts:
        part_latest = _latest_from_statistics(part, timezone)
        if part_latest is None or part_latest >= end:
            part_latest = _latest_by_reading(part, end, chunk_rows, timezone)
        if pd.notna(part_latest) and (pd.isna(latest) or part_latest > latest):
            latest = part_latest
    if pd.isna(latest):
        raise ContractError(
            orders.path,
            "no order has a readable date up to today",
            "pass --as-of, or fix the dates",
            column=Col.ORDERED_AT,
        )
    return latest.date()


def _latest_by_reading(part: RawTable, end: pd.Timestamp, chunk_rows: int, timezone: str) -> pd.Timestamp:
    latest = pd.NaT
    for chunk in part.chunks(chunk_rows, only=[Col.ORDERED_AT]):
        ordered_at = _to_timestamp(chunk[Col.ORDERED_AT], timezone)
        chunk_latest = ordered_at[ordered_at < end].max()
        if pd.notna(chunk_latest) and (pd.isna(latest) or chunk_latest > latest):
            latest = chunk_latest
    return latest


def _latest_from_statistics(part: RawTable, timezone: str) -> pd.Timestamp | None:
    """The latest ``ordered_at`` of a Parquet file from its row groups' statistics, in the
    platform's time zone; None when the column is not a timestamp or a group lacks them."""
    name = part.columns.get(Col.ORDERED_AT)
    if part.path.suffix != ".parquet" or name is None:
        return None
    with pq.ParquetFile(part.path) as parquet:
        index = parquet.schema_arrow.get_field_index(name)
        if index < 0 or not pa_types.is_timestamp(parquet.schema_arrow.field(index).type):
            return None
        maxima = []
        for group in range(parquet.metadata.num_row_groups):
            column = parquet.metadata.row_group(group).column(index)
            statistics = column.statistics
            if statistics is None or not statistics.has_min_max:
                if statistics is not None and statistics.null_count == column.num_values:
                    continue  # no value in this group
                return None
            maxima.append(statistics.max)
    if not maxima:
        return None
    latest = _to_timestamp(pd.Series([max(maxima)]), timezone).iloc[0]
    return None if pd.isna(latest) else latest


def check_orders_before_as_of(result: ValidationResult) -> None:
    """Stop the run when every order line is after the as-of date: there is no history to
    segment or learn from (an ``--as-of`` before the data begins)."""
    orders = next((r for r in result.reports if r.table == Table.ORDERS), None)
    if orders is None or orders.rows_kept or not orders.rows_out_of_window:
        return
    raise ContractError(
        orders.source,
        f"no order line is dated on or before the as-of date {result.as_of.date}: all "
        f"{orders.rows_out_of_window:,} lines are after it",
        "pass a later --as-of (without it the run is as of the latest order's day)",
        column=Col.ORDERED_AT,
    )


def check_quarantine_limits(result: ValidationResult, config: ValidationConfig) -> None:
    """Stop the run when a table lost more rows to quarantine than the config allows
    (rows out of the run's window are not counted: they are not used, not bad)."""
    failed = result.over_limit(config)
    if failed:
        lines = [
            f"{r.source}: {r.rows_quarantined:,} of {r.rows_in_window:,} rows quarantined "
            f"({r.quarantined_share:.1%} > limit {config.limit_for(r.table):.1%}); top reasons: "
            + ", ".join(f"{k}={v:,}" for k, v in sorted(r.reasons.items(), key=lambda kv: -kv[1])[:3])
            for r in failed
        ]
        unparseable = any(reason.startswith("unparseable_") for r in failed for reason in r.reasons)
        hint = (
            " (numbers as 1234.5: '.' for decimals, no thousands separators or currency signs;"
            " times as ISO 8601, 2025-01-31 09:30:00)"
            if unparseable
            else ""
        )
        raise QuarantineLimitExceeded(
            "too many bad rows:\n  "
            + "\n  ".join(lines)
            + f"\n  fix: read the quarantine files for the reasons and correct the export{hint}, or raise "
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


def known_references(
    table: str, clean_ids: dict[tuple[str, str], SeenHashes], policy: ReferencePolicy | None = None
) -> KnownIds:
    """For ``table``, each referencing column -> the clean ids of the table it refers to,
    split by what ``policy`` does with an unknown id."""
    policy = policy or ReferencePolicy()
    known = KnownIds()
    for (referencing, column), referenced in REFERENCES.items():
        if referencing == table and referenced in clean_ids:
            action = policy.action_for(referenced[0])
            (known.quarantine if action == "quarantine" else known.flag)[column] = clean_ids[referenced]
    return known


def coerce_table(
    spec: TableSpec, frame: pd.DataFrame, timezone: str = DEFAULT_TIMEZONE
) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Cast each column to its contract kind; return the typed frame and, per number or
    timestamp column, the rows whose non-empty value could not be read."""
    typed = pd.DataFrame(index=frame.index)
    unparseable: dict[str, pd.Series] = {}
    for name in frame.columns:
        column = spec.column(name)
        values = _coerce(column, frame[name], timezone)
        if column.kind in _KIND_WORDS:
            unparseable[name] = frame[name].notna() & values.isna()
        typed[name] = values
    return typed, unparseable


def _id_hashes(ids: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of each row of id columns, alike whatever string dtype holds them."""
    return frame_hashes(ids)


def frame_hashes(frame: pd.DataFrame) -> np.ndarray:
    """``pd.util.hash_pandas_object(frame, index=False)``, the same values, sooner: a text
    column is hashed through Arrow's dictionary encoding, each distinct text once and no
    Python string made per row (pandas hashes text as it hashes the same values as objects)."""
    columns = [_column_hashes(frame[name]) for name in frame.columns]
    if not columns:
        return pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return _combine(columns)


def _combine(columns: list[np.ndarray]) -> np.ndarray:
    """One hash per row from its columns' hashes (at least one column):
    ``pandas.core.util.hashing.combine_hash_arrays``, step for step."""
    multiplier, combined = (
        np.uint64(1000003),
        np.zeros(len(columns[0]), dtype=np.uint64) + np.uint64(0x345678),
    )
    for position, hashes in enumerate(columns):
        remaining = len(columns) - position
        combined ^= hashes
        combined *= multiplier
        multiplier += np.uint64(82520 + remaining + remaining)
    return combined + np.uint64(97531)


class ColumnHashes:
    """The 64-bit hash of each typed value of a chunk, per column, computed once and shared by
    every rule that hashes rows, keys or ids (a chunk's order ids were hashed six times).

    ``of(names)`` equals ``_row_hashes(typed[names])`` (and ``_id_hashes`` for id columns: ids
    are text, which is hashed alike): hashing is value by value, so the hashes of a subset of
    rows are the subset of the hashes (``select``).
    """

    def __init__(
        self, typed: pd.DataFrame, parent: ColumnHashes | None = None, rows: np.ndarray | None = None
    ):
        self._typed = typed
        self._parent = parent
        self._rows = rows
        self._columns: dict[str, np.ndarray] = {}
        self._combined: dict[tuple[str, ...], np.ndarray] = {}

    def of(self, names: Sequence[str]) -> np.ndarray:
        """Per row, the hash of its values in ``names`` (in that order)."""
        key = tuple(names)
        if key not in self._combined:
            if self._parent is not None:
                self._combined[key] = self._parent.of(key)[self._rows]
            else:
                self._combined[key] = _combine([self._column(name) for name in key])
        return self._combined[key]

    def _column(self, name: str) -> np.ndarray:
        if name not in self._columns:
            self._columns[name] = _value_hashes(self._typed[name])
        return self._columns[name]

    def rows(self) -> np.ndarray:
        """Per row, the hash of all its values."""
        return self.of(list(self._typed.columns))

    def select(self, rows: np.ndarray) -> ColumnHashes:
        """The hashes of the rows ``rows`` (a mask or positions) of this chunk, as a chunk of their own."""
        return ColumnHashes(self._typed, self, rows)


_NULL_HASH = np.iinfo(np.uint64).max  # what pandas gives an empty value in a hashed text column


def _column_hashes(values: pd.Series) -> np.ndarray:
    if not isinstance(values.dtype, pd.StringDtype):
        return pd.util.hash_pandas_object(values, index=False).to_numpy()
    texts = pyarrow.array(values)
    if isinstance(texts, pyarrow.ChunkedArray):
        texts = texts.combine_chunks()
    encoded = texts.dictionary_encode()
    distinct = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
    hashed = pd.util.hash_array(distinct, categorize=False)
    codes = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
    hashes = hashed.take(codes) if len(hashed) else np.zeros(len(values), dtype=np.uint64)
    hashes[encoded.indices.is_null().to_numpy(zero_copy_only=False)] = _NULL_HASH
    return hashes


def _plain_id(ids: pd.Series, null_markers: tuple[str, ...]) -> pd.Series:
    """Whether each id is neither a null marker nor holds a control character."""
    return ~is_null_marker(ids, null_markers) & ~ids.str.contains(r"[\x00-\x1f\x7f]").fillna(False)


def _row_hashes(typed: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of each row's typed values; equal rows (NaN equal to NaN, 0.0 to -0.0)
    hash alike, whatever chunk they are in."""
    hashable = typed.copy()
    for name in hashable.columns:
        if pd.api.types.is_float_dtype(hashable[name]):
            hashable[name] = hashable[name].where(hashable[name].notna()) + 0.0
    return frame_hashes(hashable)


def _value_hashes(values: pd.Series) -> np.ndarray:
    """One column's part of ``_row_hashes``: its values' hashes, floats made alike first."""
    if pd.api.types.is_float_dtype(values):
        values = values.where(values.notna()) + 0.0
    return _column_hashes(values)


def _coerce(column: ColumnSpec, values: pd.Series, timezone: str) -> pd.Series:
    if column.kind == "integer":
        numbers = pd.to_numeric(values, errors="coerce")
        return numbers.where(numbers.round() == numbers).astype("float64")
    if column.kind == "money":
        return pd.to_numeric(values, errors="coerce").astype("float64")
    if column.kind == "timestamp":
        return _to_timestamp(values, timezone)
    if column.kind == "id":
        return _to_id(values)
    text = values.astype(_ARROW_TEXT).str.strip().replace("", pd.NA)
    if column.kind == "choice":
        return text.str.lower()
    if column.kind == "category":  # vocabulary: a value, not a column
        return text.fillna(UNKNOWN_CATEGORY)
    return text


# Text is handled as Arrow strings: strip, match and compare run in Arrow's C++ kernels
# instead of one Python call per cell (validation of 1.2M order lines: 2x faster).
_ARROW_TEXT = pd.StringDtype("pyarrow")


def _to_id(values: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(values):
        whole = values.where(values.round() == values)
        values = whole.astype("Int64")
    return values.astype(_ARROW_TEXT).str.strip().replace("", pd.NA)


# A numeric day/month date (03/04/2025, 3.4.25): which number is the month cannot be known
# when both are 12 or less.
_DAY_MONTH = r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2,4})(?:$|[\sT])"
_OFFSET = r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$"


def _text(values: pd.Series) -> pd.Series | None:
    """The values as stripped text, or None when they are not text (already typed)."""
    if not (pd.api.types.is_string_dtype(values) or values.dtype == object):
        return None
    return values.astype(_ARROW_TEXT).str.strip()


def _ambiguous_day_month(text: pd.Series) -> pd.Series:
    parts = text.str.extract(_DAY_MONTH).astype("float64")
    return ((parts[0] <= 12) & (parts[1] <= 12) & (parts[0] != parts[1])).fillna(False).astype(bool)


def _to_timestamp(values: pd.Series, timezone: str) -> pd.Series:
    """Naive timestamps in ``timezone``: aware values converted to it, naive ones taken as in
    it; ISO 8601 first, other unambiguous forms next, ambiguous day/month texts refused."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert(timezone).dt.tz_localize(None).astype("datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.astype("datetime64[ns]")
    text = _text(values)
    if text is None:
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    aware = text.str.contains(_OFFSET, flags=re.IGNORECASE).fillna(False).to_numpy(dtype=bool)
    times = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    for rows, zone in ((aware, timezone), (~aware, "UTC")):  # naive texts are read as UTC: unshifted
        if rows.any():
            instants = _parse_texts(text[rows])
            times[rows] = instants.dt.tz_convert(zone).dt.tz_localize(None).astype("datetime64[ns]")
    return times


def _parse_texts(text: pd.Series) -> pd.Series:
    """Instants (UTC) of texts that all carry an offset, or all carry none."""
    parsed = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
    retry = (text.notna() & parsed.isna() & ~_ambiguous_day_month(text)).to_numpy(dtype=bool)
    if retry.any():
        parsed[retry] = pd.to_datetime(text[retry], errors="coerce", format="mixed", utc=True)
    return parsed


def _failed_checks(
    schema: pa.DataFrameSchema, typed: pd.DataFrame, beyond_row: dict[str, np.ndarray]
) -> pd.Series:
    """Per row, the names of the checks it fails joined by ';' (NA when it passes all);
    ``beyond_row`` maps the reasons found across rows (duplicates, orders) to their rows."""
    cases = [pd.DataFrame({"index": np.flatnonzero(mask), "check": r}) for r, mask in beyond_row.items()]
    try:
        schema.validate(typed, lazy=True)
    except pa.errors.SchemaErrors as errors:
        failures = errors.failure_cases.dropna(subset=["index"])
        cases.append(pd.DataFrame({"index": failures["index"].astype("int64"), "check": failures["check"]}))
    cases = [c for c in cases if len(c)]
    if not cases:
        return pd.Series(pd.NA, index=typed.index, dtype="object")
    per_row = (
        pd.concat(cases, ignore_index=True)
        .drop_duplicates()
        .groupby("index")["check"]
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


def tables_gone_missing(
    before: Iterable[str] | None, present: Iterable[str], optional: Iterable[str], previous: str
) -> list[str]:
    """The tables the previous run (``previous``) read that this run lacks, when all of them are
    in ``optional`` (``data.optional_tables``); ``before`` None: that run did not record them.

    Raises ``MissingTableError`` for any other missing table: without ``complaints`` every
    product would silently grade normal, without ``consumers`` consumers would vanish.
    """
    missing = sorted(set(before or ()) - set(present))
    refused = [table for table in missing if table not in set(optional)]
    if refused:
        listed = ", ".join(refused)
        raise MissingTableError(
            f"table(s) {listed} were read by the previous run ({previous}) but are missing now\n"
            f"  fix: restore the file(s) in the data directory, or, if this run should go without "
            f"them, list them in the config under data.optional_tables: [{listed}]"
        )
    for table in missing:
        logger.warning(
            "table %s is missing (read by the previous run %s); going on without it as "
            "data.optional_tables allows: results that depend on it change",
            table,
            previous,
        )
    return missing
