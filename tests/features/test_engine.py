"""The DuckDB engine exposes frames and Parquet files under the contract's table names."""

from __future__ import annotations

from pathlib import Path

import pytest

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
