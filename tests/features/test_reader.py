"""File-level problems stop with one message naming the file, the column and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.errors import ContractError
from features.reader import DataSourceConfig, read_dataset
from tests.data import orders_frame, products_frame, write_tables


def test_reads_csv_and_parquet_alike(tmp_path: Path) -> None:
    csv = read_dataset(write_tables(tmp_path / "a", {"orders": orders_frame(), "products": products_frame()}))
    parquet = read_dataset(
        write_tables(tmp_path / "b", {"orders": orders_frame(), "products": products_frame()}, fmt="parquet")
    )
    assert set(csv) == set(parquet) == {"orders", "products"}
    assert list(csv["orders"].frame.columns) == list(parquet["orders"].frame.columns)


def test_missing_required_table(tmp_path: Path) -> None:
    data = write_tables(tmp_path / "d", {"orders": orders_frame()})
    with pytest.raises(ContractError, match=r"products.parquet: required table 'products' is missing"):
        read_dataset(data)


def test_missing_data_directory(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="data directory not found"):
        read_dataset(tmp_path / "nowhere")


def test_two_files_for_one_table(tiny_dataset: Path) -> None:
    products_frame().to_parquet(tiny_dataset / "products.parquet")
    with pytest.raises(ContractError, match="table 'products' has two files"):
        read_dataset(tiny_dataset)


def test_missing_column_names_file_column_and_fix(tiny_dataset: Path) -> None:
    orders_frame().drop(columns="unit_price").to_csv(tiny_dataset / "orders.csv", index=False)
    with pytest.raises(ContractError) as caught:
        read_dataset(tiny_dataset)
    message = str(caught.value)
    assert "orders.csv, column 'unit_price': required column missing" in message
    assert "data.columns.orders: {<your name>: unit_price}" in message


def test_column_mapping_renames_user_columns(tiny_dataset: Path) -> None:
    orders_frame().rename(columns={"consumer_id": "buyer"}).to_csv(tiny_dataset / "orders.csv", index=False)
    config = DataSourceConfig(columns={"orders": {"buyer": "consumer_id"}})
    assert "consumer_id" in read_dataset(tiny_dataset, config)["orders"].frame.columns


def test_mapping_onto_a_column_the_table_lacks(tiny_dataset: Path) -> None:
    config = DataSourceConfig(columns={"orders": {"buyer": "shopper_id"}})
    with pytest.raises(ContractError, match=r"mapping targets \['shopper_id'\]"):
        read_dataset(tiny_dataset, config)


def test_empty_csv(tiny_dataset: Path) -> None:
    (tiny_dataset / "orders.csv").write_text("")
    with pytest.raises(ContractError, match="orders.csv: the file is empty"):
        read_dataset(tiny_dataset)


def test_header_only_csv(tiny_dataset: Path) -> None:
    (tiny_dataset / "orders.csv").write_text(",".join(orders_frame().columns) + "\n")
    with pytest.raises(ContractError, match="orders.csv: the file has no data rows"):
        read_dataset(tiny_dataset)


def test_csv_that_is_not_utf8(tiny_dataset: Path) -> None:
    products = products_frame()
    products.loc[0, "category"] = "零食"
    products.to_csv(tiny_dataset / "products.csv", index=False, encoding="gbk")
    with pytest.raises(ContractError, match="(?s)products.csv: not UTF-8 text.*fix: save the file as UTF-8"):
        read_dataset(tiny_dataset)


def test_excel_utf8_bom_csv_is_read(tiny_dataset: Path) -> None:
    products = products_frame()
    products.loc[0, "category"] = "零食"
    products.to_csv(tiny_dataset / "products.csv", index=False, encoding="utf-8-sig")
    frame = read_dataset(tiny_dataset)["products"].frame
    assert frame.columns[0] == "product_id" and frame.loc[0, "category"] == "零食"


def test_corrupt_parquet(tiny_dataset: Path) -> None:
    (tiny_dataset / "orders.csv").unlink()
    (tiny_dataset / "orders.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ContractError, match="orders.parquet: not a readable Parquet file"):
        read_dataset(tiny_dataset)


def test_ragged_csv(tiny_dataset: Path) -> None:
    with (tiny_dataset / "orders.csv").open("a") as handle:
        handle.write("O9,C1,D1,P1,1,2.0,2025-03-01,paid,extra,fields\n")
    with pytest.raises(ContractError, match="orders.csv: not a readable CSV file"):
        read_dataset(tiny_dataset)
