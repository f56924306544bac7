"""The DuckDB engine exposes frames and Parquet files under the contract's table names."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from features import engine
from features.engine import connect, has_table
from tests.data import orders_frame, products_frame


def test_frames_and_parquet_give_the_same_answer(tmp_path: Path) -> None:
    orders_frame().to_parquet(tmp_path / "orders.parquet")
    query = "SELECT consumer_id, sum(quantity * unit_price) FROM orders GROUP BY 1 ORDER BY 1"
    from_frame = connect({"orders": orders_frame()}).sql(query).fetchall()
    from_file = connect({"orders": tmp_path / "orders.parquet"}).sql(query).fetchall()
    assert from_frame == from_file == [("C1", 9.0 + 190.0 + 15.0), ("C2", 9.5), ("C3", 90.0)]


def test_has_table_and_unknown_names() -> None:
    con = connect({"products": products_frame()})
    assert has_table(con, "products") and not has_table(con, "complaints")
    with pytest.raises(ValueError, match="not contract tables"):
        connect({"order": orders_frame()})


def test_a_connection_never_prints_duckdbs_own_bar() -> None:
    """DuckDB's client turns its terminal bar on where ``__main__`` has no file (``python -c``, as
    the benchmarks start a night); siyu's connections leave printing off however Python started."""
    con = connect({"products": products_frame()})
    printing = con.execute("SELECT current_setting('enable_progress_bar_print')").fetchone()
    assert printing == (False,)


class _SlowQuery:
    """A DuckDB connection's stand-in: the query ends once its progress was read three times
    (25%, 50%, then 75%), as a long query does while it is polled."""

    def __init__(self) -> None:
        self.shares = iter([25.0, 50.0, 75.0])
        self.polled = threading.Semaphore(0)
        self.settings: list[str] = []

    def execute(self, sql: str, params: list[object] | None = None) -> _SlowQuery:
        if params is None:
            self.settings.append(sql)
            return self
        for _ in range(3):
            self.polled.acquire()
        return self

    def query_progress(self) -> float:
        share = next(self.shares, -1.0)
        self.polled.release()
        return share

    def df(self) -> pd.DataFrame:
        return pd.DataFrame({"n": [7]})


def test_a_long_count_reports_duckdbs_share_done_as_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The likely-buyer count (50 million list rows at 1 million consumers) is not a silent
    stretch: DuckDB's share done is read while the query runs and counted as rows scanned."""
    import features.progress as progress_module

    monkeypatch.setattr(progress_module, "LOG_EVERY_SECONDS", 0.0)
    monkeypatch.setattr(engine, "QUERY_POLL_SECONDS", 0.001)
    updates: list[tuple[float, bool]] = []
    remove = progress_module.add_listener(lambda update: updates.append((update.done, update.finished)))
    con = _SlowQuery()
    try:
        result = engine.counted_query(con, "SELECT 7", [], "counting", 1_000)  # type: ignore[arg-type]
    finally:
        remove()
    assert result["n"].tolist() == [7]
    assert [done for done, finished in updates if not finished][:3] == [250.0, 500.0, 750.0]
    assert updates[-1] == (1_000.0, True)
    assert con.settings == ["SET enable_progress_bar_print = false", "SET enable_progress_bar = true"]


class _KernelConnection:
    """A connection that refuses progress settings, as DuckDB does in a Jupyter kernel without
    ipywidgets."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def execute(self, sql: str, params: list[object] | None = None) -> _KernelConnection:
        if params is None:
            raise duckdb.InvalidInputException("required package 'ipywidgets' is missing")
        self.queries.append(sql)
        return self

    def df(self) -> pd.DataFrame:
        return pd.DataFrame({"n": [7]})


def test_a_count_in_a_notebook_runs_the_query_without_the_polling() -> None:
    """In a Jupyter kernel DuckDB refuses to change its progress settings: the query still runs
    once and its result comes back (the notebooks' demo night)."""

    con = _KernelConnection()
    result = engine.counted_query(con, "SELECT 7", [], "counting", 1_000)  # type: ignore[arg-type]
    assert result["n"].tolist() == [7]
    assert con.queries == ["SELECT 7"]
