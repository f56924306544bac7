"""Validation on Spark gives what validation on DuckDB/pandas gives (issue #11 point 3).

One hand-made data set holds every quarantine reason of the contract (``QUARANTINE_REASONS``),
flagged references, rows out of the window, aware and naive times, a day/month date and null
markers. It is validated by ``features.store.write_validated`` and by
``features.spark_validate.spark_validate`` (one ``local[2]`` session for the module) with the
same clock, as CSV files, as Parquet files and with orders as Hive-style ``dt=`` folders of
parts; the quarantine files must be the same bytes, validation.json the same document and the
clean tables the same frames.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from features.contract import QUARANTINE_REASONS
from features.errors import ContractError
from features.reader import read_dataset
from features.spark_validate import spark_validate
from features.store import write_validated
from features.validate import ReferencePolicy, ValidationConfig

AS_OF = date(2025, 3, 31)
NOW = datetime(2025, 4, 10, 12, 0)
CONFIG = ValidationConfig(references=ReferencePolicy(distributors="quarantine"))


def _products() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "product_id": ["P1", "P2", "P3", "P4", "P4", "P2", None, "null", "P\t5", "P6", "P7"],
            "supplier_id": ["S1", "S1", "S2", "S2", "S3", "S1", "S1", "S1", "S1", "S1", "S1"],
            "category": ["snacks", "beauty", " snacks ", "", "toys", "beauty", "a", "a", "a", "a", "a"],
            "list_price": ["10", "99.5", "5.5", "7", "7", "99.5", "1", "1", "1", "0", "abc"],
            "sale_start": [
                None,
                "2025-01-01",
                None,
                None,
                "",
                "2025-01-01",
                None,
                None,
                None,
                "2025-03-01",
                None,
            ],
            "sale_end": [
                None,
                "2025-02-01",
                None,
                None,
                None,
                "2025-02-01",
                None,
                None,
                None,
                "2025-02-01",
                None,
            ],
        }
    )


def _distributors() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "distributor_id": ["D1", "D2", "D3", "D2", "D4", "D5"],
            "joined_at": ["2024-12-01", "2024-12-02", "2031-01-01", "2024-12-09", "1990-01-01", "2025-04-05"],
            "occupation": ["parent", None, "x", "y", "z", "w"],
        }
    )


def _consumers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "consumer_id": ["C1", "C2", "C3", "C4"],
            "registered_at": ["2025-01-01", "2025-01-02T00:00:00+00:00", "2025-01-03", "2025-01-04"],
            "distributor_id": ["D1", "D1", "D9", "D2"],
        }
    )


def _orders() -> pd.DataFrame:
    rows = [
        # order, consumer, distributor, product, quantity, price, time, status
        ("O1", "C1", "D1", "P1", "1", "9.0", "2025-03-01 10:00:00", "paid"),
        ("O1", "C1", "D1", "P2", "2", "95", "2025-03-01 10:00:00", "PAID "),
        ("O2", "C2", "D1", "P1", "1", "9.5", "2025-03-05", "paid"),
        ("O3", "C1", "D1", "P3", "3", "5.0", "2025-03-20 00:00:00", "returned"),
        ("O4", "C7", "D2", "P2", "1", "90", "2025-03-30T15:59:00Z", "paid"),  # unknown consumer: flagged
        ("O5", None, "D1", "P1", "x", "0", "2025-03-02", "lost"),
        ("O6", "C1", "D1", "P9", "1.5", "-1", "2031-01-01", "paid"),
        ("O7", "C2", "D1", "P1", "inf", "9", "1999-12-31", "paid"),
        ("O8", "C2", "D1", "P1", "2000000", "9", "03/04/2025", "paid"),
        ("O9", "C2", "D1", "P1", "0", "9", "13/03/2025 10:00", "paid"),
        ("O10", "C1", "D1", "P1", "1", "9", "2025-03-06", "paid"),
        ("O10", "C2", "D1", "P2", "1", "9", "2025-03-06", "paid"),  # inconsistent with the line above
        ("O2", "C2", "D1", "P1", "1", "9.5", "2025-03-05 00:00", "paid"),  # duplicate of row 3
        ("O2", "C2", "D1", "P1", "4", "9.5", "2025-03-05", "paid"),  # repeated order line
        ("O11", "C1", "D1", "P1", "1", "9", "2025-04-03", "paid"),  # after the as-of date
        ("O12", "NULL", "D\x071", "P1", "1", "9", "2025-03-07", "paid"),
        ("O13", "C1", "D3", "P1", "1", "9", "2025-03-08", "paid"),  # D3 is quarantined: unknown
        ("O14", "C4", "D2", "P3", "-inf", "abc", "", "cancelled"),
        ("O15", "C4", "D2", "P3", "1", "3", "2025-03-09 08:00:00.123456", "paid"),
    ]
    names = [
        "order_id",
        "consumer_id",
        "distributor_id",
        "product_id",
        "quantity",
        "unit_price",
        "ordered_at",
        "status",
    ]
    return pd.DataFrame(rows, columns=names)


def _events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "consumer_id": ["C1", "C2", "C3"],
            "distributor_id": [None, "D1", "D1"],
            "product_id": ["P1", "P9", "P2"],
            "event_type": ["view", "click", "dance"],
            "event_at": ["2025-03-01", "2025-03-02", "2025-03-03"],
        }
    )


def _complaints() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "complaint_id": ["K1", "K2", "K3", "K1"],
            "order_id": ["O1", "O1", "O99", "O3"],
            "product_id": ["P2", "P3", "P1", "P3"],
            "consumer_id": ["C1", "C1", "C1", "C1"],
            "complained_at": ["2025-03-03"] * 4,
            "reason": ["broken", None, None, "late"],
        }
    )


TABLES = {
    "products": _products,
    "distributors": _distributors,
    "consumers": _consumers,
    "orders": _orders,
    "events": _events,
    "complaints": _complaints,
}


def _write(root: Path, fmt: str) -> Path:
    root.mkdir(parents=True)
    for name, make in TABLES.items():
        frame = make()
        if fmt == "csv":
            frame.to_csv(root / f"{name}.csv", index=False)
        elif fmt == "hive" and name == "orders":
            for k, half in enumerate((frame.iloc[:9], frame.iloc[9:])):
                folder = root / "orders" / f"dt=2025-03-0{k + 1}"
                folder.mkdir(parents=True)
                half.to_parquet(folder / "part-0.parquet", index=False)
        else:
            frame.to_parquet(root / f"{name}.parquet", index=False)
    return root


def _both(spark: object, data: Path, out: Path, config: ValidationConfig = CONFIG) -> tuple[Path, Path]:
    on_duckdb, on_spark = out / "duckdb", out / "spark"
    write_validated(read_dataset(data), AS_OF, on_duckdb, config=config, now=NOW)
    spark_validate(spark, read_dataset(data), AS_OF, on_spark, config=config, now=NOW)
    return on_duckdb, on_spark


def _assert_same_outputs(on_duckdb: Path, on_spark: Path) -> dict:
    report = json.loads((on_duckdb / "validation.json").read_text())
    assert json.loads((on_spark / "validation.json").read_text()) == report
    for table in (entry["table"] for entry in report["tables"]):
        duckdb_text = (on_duckdb / "quarantine" / f"{table}.csv").read_text()
        assert (on_spark / "quarantine" / f"{table}.csv").read_text() == duckdb_text, table
        expected = pd.read_parquet(on_duckdb / "clean" / f"{table}.parquet")
        got = pd.read_parquet(on_spark / "clean" / f"{table}.parquet")
        pd.testing.assert_frame_equal(got, expected, obj=table)
    return report


@pytest.mark.parametrize("fmt", ["csv", "hive"])
def test_spark_validation_writes_the_same_files(spark, tmp_path: Path, fmt: str) -> None:
    data = _write(tmp_path / "data", fmt)
    report = _assert_same_outputs(*_both(spark, data, tmp_path))
    reasons = {reason for table in report["tables"] for reason in table["reasons"]}
    if fmt == "csv":  # every reason of the contract is met
        for pattern, _ in QUARANTINE_REASONS:
            head, _, tail = pattern.partition("<")
            tail = tail.partition(">")[2]
            assert any(r.startswith(head) and r.endswith(tail) for r in reasons), pattern
    flagged = {name for table in report["tables"] for name in table["flagged"]}
    assert flagged == {"unknown_consumer"}


def test_typed_parquet_with_aware_times_gives_the_same_files(spark, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    products = _products().iloc[:4].assign(list_price=[10.0, 99.5, 5.5, 7.0], sale_start=None, sale_end=None)
    products["sale_start"] = pd.to_datetime(products["sale_start"])
    products["sale_end"] = pd.to_datetime(products["sale_end"])
    products.to_parquet(data / "products.parquet", index=False)
    orders = _orders().iloc[[0, 1, 2, 3, 4, 10, 12, 13, 14, 18]].copy()
    orders["quantity"] = orders["quantity"].astype("int64")
    orders["unit_price"] = orders["unit_price"].astype("float64")
    orders["ordered_at"] = pd.to_datetime(orders["ordered_at"], format="mixed", utc=True)
    orders.to_parquet(data / "orders.parquet", index=False)
    _assert_same_outputs(*_both(spark, data, tmp_path))


def test_a_column_of_day_month_dates_stops_the_run_on_both_engines(spark, tmp_path: Path) -> None:
    data = _write(tmp_path / "data", "csv")
    orders = _orders().assign(ordered_at="03/04/2025")
    orders.to_csv(data / "orders.csv", index=False)
    with pytest.raises(ContractError, match="day/month"):
        spark_validate(spark, read_dataset(data), AS_OF, tmp_path / "spark", config=CONFIG, now=NOW)
    assert not (tmp_path / "spark" / "validation.json").exists()
