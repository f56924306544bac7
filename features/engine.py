"""The DuckDB feature engine: one connection with a table or view per contract table.

Feature builders take such a connection and return small pandas frames (one row per
consumer, distributor or product). In production the clean Parquet tables are read in; in
tests in-memory frames are registered. Either way the builders see the same names.

The orders table is the one every step scans, several times each, so ``connect`` reads its
Parquet **once** into a DuckDB table (spillable to ``temp_directory`` under ``memory_limit``)
and counts that read (``table_reads``); the other tables stay views over their files. The
nightly opens one such connection per run (``session``) and hands it to every step, so a
night reads the orders Parquet once after validation. On top of the contract tables the
connection defines the shared views the builders repeat:

- ``paid_lines``: the paid order lines, with ``cents`` = ``round(quantity x unit_price x 100)``;
- ``order_baskets(end_at)``: a table macro, one row per (consumer, order) of the lines before
  ``end_at``: first distributor, ``placed_at`` (the first line's time), ``paid_cents``,
  ``paid_lines`` and ``returned_lines`` (cancelled lines count in neither).
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Literal, NamedTuple

import duckdb
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.columns import Table
from features.progress import progress
from features.sql import render

logger = logging.getLogger(__name__)

TableSource = Path | pd.DataFrame

MATERIALIZED: tuple[str, ...] = (Table.ORDERS,)
"""Tables read from Parquet once into the connection instead of being scanned at every query."""

DEFAULT_TEMP_FOLDER = "duckdb_tmp"
_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)


class EngineConfig(BaseModel):
    """The engine of a run (``kind``) and the DuckDB session's memory limit, spill folder and threads."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["duckdb", "spark"] = Field(
        "duckdb",
        description="duckdb (one machine) or spark (the spark: section; docs/spark.md says what runs there).",
    )

    memory_limit: str = Field(
        "4GB", description="DuckDB's memory limit (e.g. 4GB, 512MB); beyond it DuckDB spills to disk."
    )
    temp_directory: Path | None = Field(
        None, description="Spill folder; empty = <work_dir>/duckdb_tmp. Removed after the run."
    )
    threads: int | None = Field(None, gt=0, description="DuckDB threads; empty = all cores.")

    @field_validator("memory_limit")
    @classmethod
    def _memory_amount(cls, value: str) -> str:
        if not _MEMORY.match(value):
            raise ValueError(f"{value!r} is not an amount of memory; write e.g. 4GB, 512MB or 2GiB")
        return value.strip()

    def spill_dir(self, work_dir: Path) -> Path:
        """Where DuckDB spills: ``temp_directory`` or ``<work_dir>/duckdb_tmp``."""
        return self.temp_directory or work_dir / DEFAULT_TEMP_FOLDER


# --- full reads of the contract tables' files, counted by construction ---------------------------------

_TABLE_READS: Counter[str] = Counter()
_READS_LOCK = threading.Lock()


def count_table_read(table: str, share: float = 1.0) -> None:
    """Record a read of ``table``'s files: 1 for all of them, a part's share of the table's rows
    for one part of a directory table (the engine's ``connect`` and validation's
    ``features.reader.RawTable.chunks`` call this; the nightly reports them per run), so that
    the count is in passes over the whole table's data."""
    with _READS_LOCK:
        _TABLE_READS[table] += share


def table_reads() -> dict[str, float]:
    """Passes over each table's files (Parquet or CSV) in this process so far; compare two
    snapshots for one run."""
    with _READS_LOCK:
        return dict(_TABLE_READS)


# --- connections ---------------------------------------------------------------------------------------


def connect(
    tables: Mapping[str, TableSource],
    threads: int | None = None,
    config: EngineConfig | None = None,
    temp_directory: Path | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the contract tables and the shared views.

    A ``Path`` source is Parquet (a file, or a directory of part files): ``orders`` is read
    into a table once (``MATERIALIZED``), the others become views; a DataFrame is registered
    as it is. ``config`` sets memory limit and threads (``threads`` overrides it);
    ``temp_directory`` is where DuckDB spills. Unknown table names are refused so that a
    typo does not silently produce an empty feature.
    """
    unknown = set(tables) - set(Table.ALL)
    if unknown:
        raise ValueError(f"not contract tables: {sorted(unknown)}; expected some of {Table.ALL}")
    con = duckdb.connect(":memory:")
    _configure(con, config, threads, temp_directory)
    for name, source in tables.items():
        if isinstance(source, pd.DataFrame):
            con.register(f"{name}_frame", source)
            con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM "{name}_frame"')
        elif name in MATERIALIZED:
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM {_parquet(source)}')
            count_table_read(name)
        else:
            con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM {_parquet(source)}')
    _shared_views(con, tables)
    return con


@contextmanager
def session(
    tables: Mapping[str, TableSource], config: EngineConfig, work_dir: Path
) -> Iterator[duckdb.DuckDBPyConnection]:
    """One connection for a whole run (``connect`` with ``config``), closed at the end of the block;
    its spill folder (``config.spill_dir(work_dir)``) is removed then."""
    spill = config.spill_dir(work_dir)
    con = connect(tables, config=config, temp_directory=spill)
    try:
        yield con
    finally:
        close(con, spill)


def close(con: duckdb.DuckDBPyConnection, spill: Path | None) -> None:
    """Close ``con`` and remove its spill folder (nothing in it outlives the connection)."""
    con.close()
    if spill is not None and spill.exists():
        shutil.rmtree(spill, ignore_errors=True)


@contextmanager
def setting(con: duckdb.DuckDBPyConnection, name: str, value: object) -> Iterator[None]:
    """DuckDB setting ``name`` at ``value`` for the block, then back to what it was (a shared
    session stays as the next step expects it). Another engine's connection (Spark's) has no
    DuckDB settings: the block runs as it is."""
    if not isinstance(con, duckdb.DuckDBPyConnection):
        yield
        return
    found = con.execute("SELECT current_setting(?)", [name]).fetchone()
    con.execute(f"SET {name} = {_sql_value(value)}")
    try:
        yield
    finally:
        if found is not None:
            con.execute(f"SET {name} = {_sql_value(found[0])}")


def has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether ``connect`` was given this table (or, for another engine's connection such as
    ``features.spark_engine.SparkConnection``, whether it has a view of that name)."""
    own_check = getattr(con, "has_table", None)
    if own_check is not None:
        return bool(own_check(table))
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
    ).fetchone()
    return bool(found and found[0])


QUERY_POLL_SECONDS = 1.0  # how often a long query's share done is read (``counted_query``)


def quiet_progress_bar(con: duckdb.DuckDBPyConnection) -> bool:
    """Turn DuckDB's own terminal progress bar off for ``con`` (siyu's counts replace it); False
    where DuckDB refuses: in a Jupyter kernel it will not change its progress settings without
    ipywidgets, and keeps its own display."""
    try:
        con.execute("SET enable_progress_bar_print = false")
        # query_progress stays -1 unless DuckDB tracks progress, which is off by default where
        # the process has no terminal (a scheduled nightly): on, with its printing off
        con.execute("SET enable_progress_bar = true")
    except duckdb.InvalidInputException:
        return False
    return True


def counted_query(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: list[object] | dict[str, object],
    step: str,
    rows: int,
) -> pd.DataFrame:
    """``sql``'s result as a frame, with progress counts while DuckDB runs it: its own estimate of
    the share done (``query_progress``, polled every ``QUERY_POLL_SECONDS`` from this thread
    while a worker thread waits on the query) as a share of the ``rows`` it scans. Where DuckDB
    keeps its own display (``quiet_progress_bar``) the query runs as it is and the count comes
    at the end."""
    if not quiet_progress_bar(con):
        with progress(step, total=rows, unit="rows") as bar:
            result = con.execute(sql, params).df()
            bar.advance(rows)
        return result
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="siyu-query") as worker,
        progress(step, total=rows, unit="rows") as bar,
    ):
        running = worker.submit(lambda: con.execute(sql, params).df())
        while not wait([running], timeout=QUERY_POLL_SECONDS).done:
            percent = con.query_progress()
            if percent > 0:
                bar.advance(max(0.0, rows * min(percent, 100.0) / 100 - bar.done))
        result = running.result()
        bar.advance(rows - bar.done)
    return result


def _configure(
    con: duckdb.DuckDBPyConnection,
    config: EngineConfig | None,
    threads: int | None,
    temp_directory: Path | None,
) -> None:
    # jemalloc's background threads give the memory of finished queries back to the system as they
    # go (measured alone on the production interaction data of the 10M-line, 300,000-distributor
    # set: RSS after the query 4.73 -> 3.33 GiB, peak 4.92 -> 4.38 GiB; the whole night's peak did
    # not move, docs/nightly.md; issue 18, session 12). Process-wide.
    con.execute("SET allocator_background_threads = true")
    # DuckDB's Python client turns its terminal bar on where __main__ has no file (a REPL,
    # `python -c`, as the benchmarks start the nightly): siyu's own counts are the progress, so a
    # night prints the same however it was started (a notebook's kernel keeps DuckDB's display)
    with suppress(duckdb.InvalidInputException):
        con.execute("SET enable_progress_bar_print = false")
    if config is not None:
        con.execute(f"SET memory_limit = {_sql_value(config.memory_limit)}")
        threads = threads or config.threads
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    if temp_directory is not None:
        temp_directory.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = {_sql_value(str(temp_directory))}")


def _parquet(source: Path) -> str:
    path = Path(source)
    pattern = str(path / "*.parquet") if path.is_dir() else str(path)
    return f"read_parquet('{_quote(pattern)}')"


def _shared_views(con: duckdb.DuckDBPyConnection, tables: Mapping[str, TableSource]) -> None:
    if Table.ORDERS not in tables:
        return
    for name, select in SHARED_VIEWS.items():
        con.execute(f"CREATE VIEW {name} AS {select}")
    for name, macro in TABLE_MACROS.items():
        con.execute(f"CREATE MACRO {name}({', '.join(macro.params)}) AS TABLE {macro.select}")


class TableMacro(NamedTuple):
    """A DuckDB table macro: its parameter names and the SELECT that uses them as plain names."""

    params: tuple[str, ...]
    select: str


# The shared definitions on top of the orders table, in DuckDB SQL: the one text of each. The
# Spark engine (features.spark_engine) runs the same text, transpiled (features.transpile); a
# table macro becomes one temporary view per distinct argument there.
SHARED_VIEWS: dict[str, str] = {
    "paid_lines": render(
        "SELECT *, round({quantity} * {unit_price} * 100)::BIGINT AS cents "
        "FROM {orders} WHERE {status} = {paid}"
    ),
}

TABLE_MACROS: dict[str, TableMacro] = {
    "order_baskets": TableMacro(
        ("end_at",),
        render(
            """
SELECT {consumer_id}, {order_id}, min({distributor_id}) AS distributor, min({ordered_at}) AS placed_at,
    sum(round({quantity} * {unit_price} * 100)::BIGINT) FILTER (WHERE {status} = {paid}) AS paid_cents,
    count(*) FILTER (WHERE {status} = {paid}) AS paid_lines,
    count(*) FILTER (WHERE {status} = {returned}) AS returned_lines
FROM {orders} WHERE {ordered_at} < end_at GROUP BY {consumer_id}, {order_id}
"""
        ),
    ),
}


def _sql_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return "'" + _quote(str(value)) + "'"


def _quote(text: str) -> str:
    return text.replace("'", "''")
