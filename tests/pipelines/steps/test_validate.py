"""The validate step over a data lake's layout: orders as daily Parquet parts, one clean file out."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from features.asof import AsOf
from pipelines.config import NightlyConfig
from pipelines.steps.validate import load_and_validate
from tests.data import orders_frame, products_frame


def test_a_partitioned_orders_table_validates_into_one_clean_file(tmp_path: Path) -> None:
    data = tmp_path / "lake"
    orders = orders_frame()
    for day, frame in orders.groupby(orders["ordered_at"].dt.strftime("%Y-%m-%d")):
        (data / "orders" / f"dt={day}").mkdir(parents=True)
        frame.to_parquet(data / "orders" / f"dt={day}" / "part-0.parquet", index=False)
    products_frame().to_parquet(data / "products.parquet", index=False)

    validated = load_and_validate(data, None, NightlyConfig(), tmp_path / "validated")

    assert validated.as_of == AsOf.of(date(2025, 3, 30))  # the latest order's day, across the parts
    clean = pd.read_parquet(validated.clean_paths["orders"])
    assert validated.clean_paths["orders"].is_dir() and len(clean) == len(orders)
    assert validated.result.reports[-1].source == str(data / "orders")
    again = load_and_validate(data, None, NightlyConfig(), tmp_path / "validated")
    pd.testing.assert_frame_equal(pd.read_parquet(again.clean_paths["orders"]), clean)
