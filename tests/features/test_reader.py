"""File-level problems stop with one message naming the file, the column and the fix.

``read_dataset`` only opens the files; problems deeper in a file (a ragged row, a byte
that is not UTF-8) are found when its chunks are read.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.errors import ContractError
from features.reader import DataSourceConfig, chunks_of_parts, read_dataset
from tests.data import orders_frame, products_frame, write_tables


def test_reads_csv_and_parquet_alike(tmp_path: Path) -> None:
    csv = read_dataset(write_tables(tmp_path / "a", {"orders": orders_frame(), "products": products_frame()}))
    parquet = read_dataset(
        write_tables(tmp_path / "b", {"orders": orders_frame(), "products": products_frame()}, fmt="parquet")
    )
    assert set(csv) == set(parquet) == {"orders", "products"}
    assert list(csv["orders"].columns) == list(parquet["orders"].columns) == list(orders_frame().columns)
    assert csv["orders"].rows is None and parquet["orders"].rows == 5
    csv_chunks = list(csv["orders"].chunks(2))
    assert [len(c) for c in csv_chunks] == [2, 2, 1]
    assert list(csv_chunks[0].columns) == list(next(parquet["orders"].chunks(2)).columns)


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


def test_every_missing_column_is_named_at_once(tiny_dataset: Path) -> None:
    orders_frame().drop(columns=["unit_price", "quantity"]).to_csv(tiny_dataset / "orders.csv", index=False)
    with pytest.raises(
        ContractError, match=r"column 'quantity': required column missing .*also missing: unit_price"
    ):
        read_dataset(tiny_dataset)


@pytest.mark.parametrize("separator", [";", "\t"])
def test_a_csv_separated_otherwise_is_named_as_such(tiny_dataset: Path, separator: str) -> None:
    orders_frame().to_csv(tiny_dataset / "orders.csv", index=False, sep=separator)
    with pytest.raises(
        ContractError, match="orders.csv: the header is one field separated by .*not comma-separated"
    ):
        read_dataset(tiny_dataset)


def test_column_mapping_renames_user_columns(tiny_dataset: Path) -> None:
    orders_frame().rename(columns={"consumer_id": "buyer"}).to_csv(tiny_dataset / "orders.csv", index=False)
    config = DataSourceConfig(columns={"orders": {"buyer": "consumer_id"}})
    orders = read_dataset(tiny_dataset, config)["orders"]
    assert orders.columns["consumer_id"] == "buyer"
    assert next(orders.chunks(10))["consumer_id"].tolist() == orders_frame()["consumer_id"].tolist()


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
    frame = next(read_dataset(tiny_dataset)["products"].chunks(10))
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


@pytest.mark.parametrize("problem", ["ragged", "gbk"])
def test_a_problem_deep_in_a_big_csv_is_found_when_it_is_opened(tmp_path: Path, problem: str) -> None:
    """pandas' chunked reader would keep a too-long row that starts a chunk (pandas#11569)."""
    orders = pd.concat([orders_frame()] * 4000, ignore_index=True)  # 20,000 rows, ~1 MB
    orders["order_id"] = [f"O{i}" for i in range(len(orders))]
    orders.loc[10_000, "status"] = "paid,extra" if problem == "ragged" else "已付"
    data = tmp_path / "data"
    write_tables(data, {"products": products_frame()})
    text = orders.to_csv(index=False).replace('"paid,extra"', "paid,extra")
    (data / "orders.csv").write_bytes(text.encode("gbk"))
    ragged = "not a readable CSV file .CSV parse error: Expected 8 columns, got 9"
    expected = ragged if problem == "ragged" else "not UTF-8 text"
    with pytest.raises(ContractError, match=f"orders.csv: {expected}"):
        read_dataset(data)


def test_chunks_read_every_row_once_in_order(tiny_dataset: Path) -> None:
    orders = read_dataset(tiny_dataset)["orders"]
    for chunk_rows in (1, 2, 5, 100):
        chunks = list(orders.chunks(chunk_rows))
        assert all(len(c) <= chunk_rows for c in chunks)
        assert pd.concat(chunks)["order_id"].tolist() == orders_frame()["order_id"].tolist()
    dates = pd.concat(orders.chunks(2, only=["ordered_at"]))
    assert list(dates.columns) == ["ordered_at"] and len(dates) == 5


def test_parquet_integer_column_with_an_empty_cell_reads_as_float_in_every_chunk(tmp_path: Path) -> None:
    orders = orders_frame().astype({"quantity": "Int64"})
    orders.loc[4, "quantity"] = None
    data = write_tables(tmp_path / "d", {"orders": orders, "products": products_frame()}, fmt="parquet")
    chunks = list(read_dataset(data)["orders"].chunks(2))
    assert [c["quantity"].dtype for c in chunks] == ["float64"] * 3
    assert chunks[0]["quantity"].tolist() == [1.0, 2.0]


def test_a_column_named_twice_in_a_parquet_file(tmp_path: Path) -> None:
    data = write_tables(tmp_path / "d", {"products": products_frame()})
    orders = pa.Table.from_pandas(orders_frame(), preserve_index=False)
    pq.write_table(orders.append_column("unit_price", pa.array([1.0] * 5)), data / "orders.parquet")
    with pytest.raises(
        ContractError,
        match=r"orders.parquet, column 'unit_price': the header names .* more than once\n  fix: rename",
    ):
        read_dataset(data)


def test_a_column_named_twice_in_a_csv_header(tmp_path: Path) -> None:
    data = write_tables(tmp_path / "d", {"products": products_frame()})
    text = orders_frame().to_csv(index=False).splitlines()
    (data / "orders.csv").write_text(
        "\n".join([text[0] + ",quantity", *(line + ",7" for line in text[1:])]) + "\n"
    )
    with pytest.raises(
        ContractError, match=r"orders.csv, column 'quantity': the header names .* more than once"
    ):
        read_dataset(data)


def test_a_directory_named_like_a_table_file(tmp_path: Path) -> None:
    data = write_tables(tmp_path / "d", {"products": products_frame()})
    (data / "orders.csv").mkdir()
    with pytest.raises(
        ContractError, match=r"orders.csv: a directory, not a file\n  fix: put the table in one file"
    ):
        read_dataset(data)


def test_a_broken_link_names_its_target(tmp_path: Path) -> None:
    data = write_tables(tmp_path / "d", {"products": products_frame()})
    (data / "orders.csv").symlink_to(tmp_path / "exports" / "orders.csv")
    with pytest.raises(
        ContractError, match=r"orders.csv: a broken link to .*exports/orders.csv.*\n  fix: point"
    ):
        read_dataset(data)


def test_a_table_as_a_hive_partitioned_directory_is_read_part_by_part(tmp_path: Path) -> None:
    data = write_tables(tmp_path / "d", {"products": products_frame()})
    orders = orders_frame()
    for day, rows in (("2025-03-01", [0, 1]), ("2025-03-05", [2]), ("2025-03-20", [3, 4])):
        folder = data / "orders" / f"dt={day}"
        folder.mkdir(parents=True)
        orders.iloc[rows].to_parquet(folder / "part-0.parquet", index=False)
    orders.iloc[:0].to_parquet(data / "orders" / "dt=2025-03-05" / "part-1.parquet", index=False)  # no rows
    (data / "orders" / "_SUCCESS").write_text("")
    (data / "orders" / "dt=2025-03-01" / ".part-0.parquet.crc").write_text("crc")
    table = read_dataset(data)["orders"]
    assert [part.path.parent.name for part in table.parts] == [
        "dt=2025-03-01",
        "dt=2025-03-05",
        "dt=2025-03-20",
    ]
    assert table.rows == 5 and list(table.columns) == list(orders.columns)  # no dt column
    read = pd.concat(table.chunks(2), ignore_index=True)
    pd.testing.assert_frame_equal(read, orders, check_dtype=False)


def test_parquet_text_reads_as_arrow_strings(tmp_path: Path) -> None:
    """Parquet text is read as Arrow-backed strings (no Python string per cell), empty cells as NA."""
    data = tmp_path / "data"
    data.mkdir()
    products_frame().to_parquet(data / "products.parquet", index=False)
    orders = orders_frame()
    orders.loc[1, "status"] = None
    orders.to_parquet(data / "orders.parquet", index=False)
    chunk = next(read_dataset(data)["orders"].chunks(10))
    assert chunk["order_id"].dtype == pd.StringDtype("pyarrow")
    assert chunk["order_id"].tolist() == orders["order_id"].tolist()
    assert chunk["status"].isna().tolist() == orders["status"].isna().tolist()
    assert chunk["quantity"].dtype == orders["quantity"].dtype


def test_read_ahead_raises_the_reading_threads_error_and_stops_early(tmp_path: Path) -> None:
    """An error met while reading ahead is raised where its rows would have come; leaving the
    chunks early stops the reading thread."""
    data = tmp_path / "data"
    for day in ("2025-03-01", "2025-03-02", "2025-03-03"):
        (data / "orders" / f"dt={day}").mkdir(parents=True)
        orders_frame().to_parquet(data / "orders" / f"dt={day}" / "part-0.parquet", index=False)
    products_frame().to_parquet(data / "products.parquet", index=False)
    parts = read_dataset(data)["orders"].parts
    (data / "orders" / "dt=2025-03-02" / "part-0.parquet").write_bytes(b"not parquet")
    with pytest.raises(ContractError, match="dt=2025-03-02.*not a readable Parquet file"):
        list(chunks_of_parts(parts, chunk_rows=5))
    early = chunks_of_parts(parts[:1] * 50, chunk_rows=5)
    next(early)
    early.close()
    assert not [t for t in threading.enumerate() if t.name == "siyu-read-ahead"]


def test_a_plain_directory_of_parts_named_like_the_table_file(tmp_path: Path) -> None:
    data = write_tables(tmp_path / "d", {"products": products_frame()})
    (data / "orders.parquet").mkdir()
    orders_frame().iloc[:2].to_parquet(data / "orders.parquet" / "part-00000.parquet", index=False)
    orders_frame().iloc[2:].to_parquet(data / "orders.parquet" / "part-00001.parquet", index=False)
    assert read_dataset(data)["orders"].rows == 5


def test_a_partitioned_directory_with_another_kind_of_file(tmp_path: Path) -> None:
    data = write_tables(tmp_path / "d", {"products": products_frame()})
    (data / "orders").mkdir()
    orders_frame().to_parquet(data / "orders" / "part-0.parquet", index=False)
    orders_frame().to_csv(data / "orders" / "part-1.csv", index=False)
    with pytest.raises(ContractError, match=r"part-1.csv: a file that is not a Parquet part"):
        read_dataset(data)


def test_a_partitioned_directory_without_rows(tmp_path: Path) -> None:
    data = write_tables(tmp_path / "d", {"products": products_frame()})
    (data / "orders").mkdir()
    orders_frame().iloc[:0].to_parquet(data / "orders" / "part-0.parquet", index=False)
    with pytest.raises(ContractError, match=r"orders: the directory has no rows in any Parquet part"):
        read_dataset(data)


def test_reading_a_part_counts_its_share_of_a_pass_over_the_table(tmp_path: Path) -> None:
    """Scans of a table are counted in passes over its rows: a whole pass is 1, a part its share."""
    from features.engine import table_reads

    data = write_tables(tmp_path / "d", {"products": products_frame()})
    orders = orders_frame()
    for day, rows in (("2025-03-01", [0, 1, 2, 3]), ("2025-03-20", [4])):
        folder = data / "orders" / f"dt={day}"
        folder.mkdir(parents=True)
        orders.iloc[rows].to_parquet(folder / "part-0.parquet", index=False)
    table = read_dataset(data)["orders"]
    before = table_reads().get("orders", 0)
    list(table.chunks(10))
    after_pass = table_reads()["orders"]
    list(table.parts[1].chunks(10))
    assert after_pass - before == pytest.approx(1.0)
    assert table_reads()["orders"] - after_pass == pytest.approx(0.2)


def test_small_parts_are_read_together_up_to_a_chunk(tmp_path: Path) -> None:
    orders = orders_frame()  # 5 lines
    folder = tmp_path / "data" / "orders"
    folder.mkdir(parents=True)
    orders.iloc[:2].to_parquet(folder / "part-0.parquet", index=False)
    orders.iloc[2:4].to_parquet(folder / "part-1.parquet", index=False)
    odd = orders.iloc[4:].astype({"quantity": "float64"})  # reads otherwise: a chunk of its own
    odd.to_parquet(folder / "part-2.parquet", index=False)
    products_frame().to_parquet(tmp_path / "data" / "products.parquet", index=False)
    parts = read_dataset(tmp_path / "data")["orders"].parts
    grouped = [
        ([(index, len(chunk)) for index, chunk in pieces], finished)
        for pieces, finished in chunks_of_parts(parts, chunk_rows=4)
    ]
    assert grouped == [([(0, 2), (1, 2)], [0, 1]), ([(2, 1)], [2])]
    assert [([(i, len(c)) for i, c in p], f) for p, f in chunks_of_parts(parts, chunk_rows=3)] == [
        ([(0, 2)], [0]),
        ([(1, 2)], [1]),
        ([(2, 1)], [2]),
    ]
