"""Tiny hand-made contract tables whose right answers are known, for tests to build on."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def products_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "product_id": ["P1", "P2", "P3"],
            "supplier_id": ["S1", "S1", "S2"],
            "category": ["snacks", "beauty", "snacks"],
            "list_price": [10.0, 99.0, 5.5],
        }
    )


def orders_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": ["O1", "O1", "O2", "O3", "O4"],
            "consumer_id": ["C1", "C1", "C2", "C1", "C3"],
            "distributor_id": ["D1", "D1", "D1", "D1", "D2"],
            "product_id": ["P1", "P2", "P1", "P3", "P2"],
            "quantity": [1, 2, 1, 3, 1],
            "unit_price": [9.0, 95.0, 9.5, 5.0, 90.0],
            "ordered_at": pd.to_datetime(
                [
                    "2025-03-01 10:00",
                    "2025-03-01 10:00",
                    "2025-03-05 00:00",
                    "2025-03-20 00:00",
                    "2025-03-30 23:59",
                ]
            ),
            "status": ["paid", "paid", "paid", "returned", "paid"],
        }
    )


def write_tables(directory: Path, tables: dict[str, pd.DataFrame], fmt: str = "csv") -> Path:
    """Write frames as <table>.csv or <table>.parquet into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if fmt == "csv":
            frame.to_csv(directory / f"{name}.csv", index=False)
        else:
            frame.to_parquet(directory / f"{name}.parquet", index=False)
    return directory
