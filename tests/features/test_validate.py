"""Row-level validation: each bad-row case is quarantined with its reason, good rows go on.

Tables are written as files, validated with ``write_validated`` and judged by the files it
writes; ``chunk_rows`` is set small where a rule must hold across chunks.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import ContractError, QuarantineLimitExceeded
from features.reader import open_table_file, read_dataset
from features.store import write_validated
from features.validate import (
    ColumnHashes,
    SeenHashes,
    ValidationConfig,
    _id_hashes,
    _row_hashes,
    check_quarantine_limits,
    frame_hashes,
    latest_order_date,
    unique_hashes,
)
from tests.data import orders_frame, products_frame, write_tables
from tests.features.validation_case import AS_OF, run


def test_valid_tables_keep_every_row_with_contract_types(tmp_path: Path) -> None:
    outcome = run(tmp_path, orders_frame())
    clean = outcome.clean()
    assert len(clean) == 5 and outcome.quarantined() == {}
    assert clean["quantity"].dtype == "int64"
    assert clean["ordered_at"].dtype == "datetime64[ns]"
    assert outcome.result.reports[1].table == "orders" and outcome.result.reports[1].rows_quarantined == 0


@pytest.mark.parametrize("column", ["order_id", "consumer_id", "distributor_id", "product_id"])
def test_missing_id_is_quarantined(tmp_path: Path, column: str) -> None:
    orders = orders_frame()
    orders.loc[2, column] = None
    assert run(tmp_path, orders).quarantined() == {3: f"missing_{column}"}


def test_blank_id_in_csv_counts_as_missing(tmp_path: Path) -> None:
    orders = orders_frame().astype(str)
    orders.loc[0, "consumer_id"] = "   "
    assert run(tmp_path, orders).quarantined() == {1: "missing_consumer_id"}


def test_non_positive_quantity_only_bad_on_paid_lines(tmp_path: Path) -> None:
    orders = orders_frame()
    orders.loc[0, "quantity"] = 0  # paid
    orders.loc[3, "quantity"] = -3  # returned: a negative return line is allowed
    assert run(tmp_path, orders).quarantined() == {1: "quantity_not_positive_on_paid_line"}


def test_non_positive_prices_are_quarantined(tmp_path: Path) -> None:
    orders = orders_frame()
    orders.loc[1, "unit_price"] = 0.0
    products = products_frame()
    products.loc[2, "list_price"] = -1.0
    outcome = run(tmp_path, orders, products)
    assert outcome.quarantined() == {2: "unit_price_not_positive", 4: "unknown_product"}
    assert outcome.quarantined("products") == {3: "list_price_not_positive"}


def test_unparseable_timestamps_are_quarantined_and_later_ones_are_out_of_the_window(tmp_path: Path) -> None:
    orders = orders_frame().astype(str)
    orders.loc[0, "ordered_at"] = "yesterday-ish"
    orders.loc[1, "ordered_at"] = "2025-02-30"
    orders.loc[2, "ordered_at"] = "2025-04-01 00:00:00"  # the first instant after the as-of date
    orders.loc[4, "ordered_at"] = "2025-03-31 23:59:59"  # still inside the as-of date
    outcome = run(tmp_path, orders)
    assert outcome.quarantined() == {1: "unparseable_ordered_at", 2: "unparseable_ordered_at"}
    report = outcome.report()
    assert (report.rows_read, report.rows_kept, report.rows_quarantined, report.rows_out_of_window) == (
        5,
        2,
        2,
        1,
    )
    assert outcome.clean()["order_id"].tolist() == ["O3", "O4"]


def test_unknown_product_is_quarantined(tmp_path: Path) -> None:
    orders = orders_frame()
    orders.loc[4, "product_id"] = "P404"
    assert run(tmp_path, orders).quarantined() == {5: "unknown_product"}


@pytest.mark.parametrize("chunk_rows", [1, 2, 1000])
def test_exact_duplicates_keep_the_first_copy_across_chunks(tmp_path: Path, chunk_rows: int) -> None:
    orders = pd.concat([orders_frame(), orders_frame().iloc[[0, 0]]], ignore_index=True)
    outcome = run(tmp_path, orders, chunk_rows=chunk_rows)
    assert outcome.quarantined() == {6: "duplicate_row", 7: "duplicate_row"}
    assert len(outcome.clean()) == 5


@pytest.mark.parametrize("chunk_rows", [1, 3, 1000])
def test_duplicate_product_key_with_other_values_across_chunks(tmp_path: Path, chunk_rows: int) -> None:
    products = pd.concat([products_frame(), products_frame().iloc[[1]].assign(list_price=1.0)])
    outcome = run(tmp_path, orders_frame(), products, chunk_rows=chunk_rows)
    assert outcome.quarantined("products") == {4: "duplicate_product_id"}
    assert outcome.clean("products")["list_price"].tolist() == [10.0, 99.0, 5.5]


def test_an_exact_duplicate_of_a_keyed_row_is_reported_once(tmp_path: Path) -> None:
    products = pd.concat([products_frame(), products_frame().iloc[[0]]])
    assert run(tmp_path, orders_frame(), products, chunk_rows=2).quarantined("products") == {
        4: "duplicate_row"
    }


def test_values_that_read_alike_are_duplicates(tmp_path: Path) -> None:
    """Duplicates are judged on typed values, as the contract reads them."""
    orders = orders_frame().astype(str)
    copy = orders.iloc[[0]].assign(quantity="1.0", status=" PAID", ordered_at="2025-03-01T10:00:00")
    assert run(tmp_path, pd.concat([orders, copy]), chunk_rows=2).quarantined() == {6: "duplicate_row"}


def test_several_reasons_on_one_row_are_all_named(tmp_path: Path) -> None:
    orders = orders_frame().astype(str)
    orders.loc[0, "quantity"] = "two"
    orders.loc[0, "product_id"] = "P404"
    orders.loc[0, "status"] = "refunded"
    assert run(tmp_path, orders).quarantined() == {1: "unknown_product;unknown_status;unparseable_quantity"}


def test_source_row_counts_from_the_start_of_the_file_across_chunks(tmp_path: Path) -> None:
    orders = pd.concat([orders_frame()] * 3, ignore_index=True).astype(str)
    orders["order_id"] = [f"O{i}" for i in range(len(orders))]
    for row in (0, 6, 13):  # first chunk, a middle chunk, the last row
        orders.loc[row, "unit_price"] = "-1"
    whole = run(tmp_path, orders, chunk_rows=1000)
    chunked = run(tmp_path, orders, chunk_rows=4)
    assert chunked.quarantined() == {1: "unit_price_not_positive", 7: "unit_price_not_positive"} | {
        14: "unit_price_not_positive"
    }
    assert (chunked.out / "quarantine" / "orders.csv").read_bytes() == (
        whole.out / "quarantine" / "orders.csv"
    ).read_bytes()
    pd.testing.assert_frame_equal(chunked.clean(), whole.clean())
    assert chunked.result.reports == whole.result.reports


def test_parquet_quarantine_is_written_as_the_whole_file_would_be(tmp_path: Path) -> None:
    """A chunk's dates at midnight, or an integer column empty only in a later chunk, must not
    change how a quarantined value is written."""
    orders = pd.concat([orders_frame()] * 2, ignore_index=True)
    orders["order_id"] = [f"O{i}" for i in range(len(orders))]
    orders["ordered_at"] = pd.to_datetime(["2025-03-01"] * 4 + ["2025-03-02 10:30"] * 6, format="ISO8601")
    orders["quantity"] = orders["quantity"].astype("Int64")
    orders.loc[9, "quantity"] = None
    orders.loc[[0, 7], "unit_price"] = -1.0
    whole = run(tmp_path, orders, fmt="parquet", chunk_rows=1000)
    chunked = run(tmp_path, orders, fmt="parquet", chunk_rows=4)
    text = (chunked.out / "quarantine" / "orders.csv").read_text()
    assert text == (whole.out / "quarantine" / "orders.csv").read_text()
    assert "O0,C1,D1,P1,1.0,-1.0,2025-03-01 00:00:00,paid" in text
    assert chunked.quarantined() == {1: "unit_price_not_positive", 8: "unit_price_not_positive"} | {
        10: "missing_quantity"
    }


def test_quarantine_keeps_values_as_read(tmp_path: Path) -> None:
    orders = orders_frame().astype(str)
    orders.loc[0, "unit_price"] = "abc"
    row = run(tmp_path, orders).quarantine().iloc[0]
    assert row["unit_price"] == "abc" and row["order_id"] == "O1"


def test_complaints_must_name_a_known_order(tmp_path: Path) -> None:
    complaints = pd.DataFrame(
        {
            "complaint_id": ["K1", "K2"],
            "order_id": ["O1", "O99"],
            "product_id": ["P1", "P1"],
            "consumer_id": ["C1", "C1"],
            "complained_at": ["2025-03-03", "2025-03-03"],
            "reason": ["broken", None],
        }
    )
    outcome = run(tmp_path, orders_frame(), complaints=complaints, chunk_rows=1)
    assert outcome.quarantined("complaints") == {2: "unknown_order"}


def test_limit_fails_the_run_only_above_the_share(tmp_path: Path) -> None:
    orders = orders_frame()
    orders.loc[0, "unit_price"] = -1.0  # 1 of 5 rows = 20%
    result = run(tmp_path, orders).result
    check_quarantine_limits(result, ValidationConfig(max_quarantine_share=0.2))
    with pytest.raises(QuarantineLimitExceeded, match=r"orders.csv: 1 of 5 rows quarantined \(20.0%"):
        check_quarantine_limits(result, ValidationConfig(max_quarantine_share=0.19))
    per_table = ValidationConfig(max_quarantine_share=0.0, max_quarantine_share_by_table={"orders": 0.5})
    check_quarantine_limits(result, per_table)


@pytest.mark.parametrize("chunk_rows", [2, 1000])
def test_a_column_no_value_of_which_parses_is_a_file_error(tmp_path: Path, chunk_rows: int) -> None:
    orders = orders_frame().astype(str)
    orders["unit_price"] = ["", "", "n/a", "n/a", "none"]  # the first chunk has no value at all
    with pytest.raises(
        ContractError, match="orders.csv, column 'unit_price': no value can be read as a number .e.g. 'n/a'"
    ):
        run(tmp_path, orders, chunk_rows=chunk_rows)
    assert not list((tmp_path / f"out_csv_{chunk_rows}").rglob("*.*"))  # nothing written, not even partly


def test_a_column_unreadable_in_one_chunk_but_read_in_another_is_quarantined(tmp_path: Path) -> None:
    orders = orders_frame().astype(str)
    orders.loc[[0, 1], "unit_price"] = "n/a"  # the whole first chunk
    outcome = run(tmp_path, orders, chunk_rows=2)
    assert outcome.quarantined() == {1: "unparseable_unit_price", 2: "unparseable_unit_price"}
    assert len(outcome.clean()) == 3


def test_a_wrongly_typed_parquet_column_is_a_file_error(tmp_path: Path) -> None:
    orders = orders_frame()
    orders["ordered_at"] = True
    with pytest.raises(ContractError, match="column 'ordered_at': no value can be read as a date/time"):
        run(tmp_path, orders, fmt="parquet", chunk_rows=2)


def test_a_file_error_keeps_the_previous_run(tmp_path: Path) -> None:
    good = run(tmp_path, orders_frame())
    before = (good.out / "validation.json").read_text()
    orders = orders_frame().astype(str)
    orders["quantity"] = "many"
    data = write_tables(tmp_path / "bad", {"products": products_frame(), "orders": orders})
    with pytest.raises(ContractError):
        write_validated(read_dataset(data), AS_OF, good.out, chunk_rows=2)
    assert (good.out / "validation.json").read_text() == before
    assert not list(good.out.rglob("*.partial")) and not list(good.out.rglob("*.spool"))


@pytest.mark.parametrize("chunk_rows", [1, 1000])
def test_latest_order_date_ignores_future_and_unreadable_dates(tmp_path: Path, chunk_rows: int) -> None:
    orders = orders_frame().astype(str)
    orders.loc[0, "ordered_at"] = "2099-01-01"
    orders.loc[1, "ordered_at"] = "garbage"
    orders.to_csv(tmp_path / "orders.csv", index=False)
    raw = {"orders": open_table_file("orders", tmp_path / "orders.csv")}
    assert latest_order_date(raw, today=date(2025, 6, 1), chunk_rows=chunk_rows) == date(2025, 3, 30)
    assert latest_order_date(raw, today=date(2025, 3, 10), chunk_rows=chunk_rows) == date(2025, 3, 5)


def test_latest_order_date_without_a_readable_date(tmp_path: Path) -> None:
    orders = orders_frame().astype(str).assign(ordered_at="soon")
    orders.to_csv(tmp_path / "orders.csv", index=False)
    with pytest.raises(ContractError, match="column 'ordered_at': no order has a readable date"):
        latest_order_date({"orders": open_table_file("orders", tmp_path / "orders.csv")}, chunk_rows=2)


def test_seen_hashes_flag_repeats_within_and_across_chunks() -> None:
    seen = SeenHashes()
    first = seen.repeats(np.array([5, 3, 5], dtype=np.uint64))
    second = seen.repeats(np.array([3, 9, 9, 1], dtype=np.uint64))
    assert first.tolist() == [False, False, True]
    assert second.tolist() == [True, False, True, False]
    assert len(seen) == 4


def test_seen_hashes_answer_like_a_set_over_many_chunks() -> None:
    """The sorted runs merge as chunks arrive; every answer is what a plain set would give."""
    rng = np.random.default_rng(7)
    seen, reference = SeenHashes(), set()
    for size in [1, 5, 3, 40, 2, 2, 100, 7, 1, 60]:
        chunk = rng.integers(0, 200, size=size).astype(np.uint64)
        expected = []
        for value in chunk.tolist():
            expected.append(value in reference)
            reference.add(value)
        assert seen.repeats(chunk).tolist() == expected
    assert len(seen) == len(reference) and seen.values().tolist() == sorted(reference)
    assert len(seen._runs) <= 1 + int(np.log2(len(reference)))  # a few runs, not one per chunk
    probe = np.array([0, 199, 500], dtype=np.uint64)
    assert seen.contains(probe).tolist() == [v in reference for v in probe.tolist()]
    seen.add(np.array([500, 500], dtype=np.uint64))
    assert seen.contains(probe).tolist()[2] and len(seen) == len(reference) + 1


def test_latest_order_date_from_parquet_statistics_agrees_with_reading(tmp_path: Path) -> None:
    """Statistics answer when the latest order is before today's end; a later one makes the
    file be read (the latest order up to today); aware times are in the platform's zone."""
    orders = orders_frame()
    orders["ordered_at"] = orders["ordered_at"].dt.tz_localize("UTC")  # 2025-03-30 23:59 UTC
    orders.to_parquet(tmp_path / "orders.parquet", index=False)
    raw = {"orders": open_table_file("orders", tmp_path / "orders.parquet")}
    assert latest_order_date(raw, today=date(2025, 6, 1)) == date(2025, 3, 31)  # 07:59 in Shanghai
    assert latest_order_date(raw, today=date(2025, 3, 21)) == date(2025, 3, 20)  # read: 03-30 is later
    assert latest_order_date(raw, today=date(2025, 6, 1), timezone="UTC") == date(2025, 3, 30)


def test_frame_hashes_are_pandas_hashes() -> None:
    frame = pd.DataFrame(
        {
            "arrow_text": pd.Series(["C1", None, "C2", "C1", "", "中文"], dtype="string[pyarrow]"),
            "python_text": pd.Series(["paid", "paid", None, "x", "y", "paid"], dtype="string[python]"),
            "objects": ["a", "b", None, "a", "c", "d"],
            "number": [1.5, np.nan, 0.0, 1.5, -2.0, 3.0],
            "time": pd.to_datetime(
                ["2025-03-01", None, "2025-03-02", "2025-03-01", "2025-03-03", "2025-03-04"]
            ),
        }
    )
    expected = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    np.testing.assert_array_equal(frame_hashes(frame), expected)
    ids = frame[["arrow_text"]]  # ids hash alike whatever string dtype holds them
    np.testing.assert_array_equal(frame_hashes(ids), frame_hashes(ids.astype(object)))
    assert len(set(frame_hashes(ids).tolist())) == 5  # C1 twice


def test_column_hashes_are_the_row_and_id_hashes_of_any_columns_and_rows() -> None:
    """``ColumnHashes`` hashes each column once; any set of columns, and any subset of rows
    (``select``, twice), hashes as ``_row_hashes`` / ``_id_hashes`` of that part of the frame."""
    typed = pd.DataFrame(
        {
            "order_id": pd.Series(["O1", None, "O2", "O1", "O3", "O4"], dtype="string[pyarrow]"),
            "product_id": pd.Series(["P1", "P1", None, "P2", "P1", "中文"], dtype="string[pyarrow]"),
            "unit_price": [1.5, np.nan, 0.0, -0.0, -2.0, np.nan],  # -0.0 and 0.0, NaN and NaN alike
            "ordered_at": pd.to_datetime(
                ["2025-03-01", None, "2025-03-02", "2025-03-01", None, "2025-03-04"]
            ),
        }
    )
    hashes = ColumnHashes(typed)
    np.testing.assert_array_equal(hashes.rows(), _row_hashes(typed))
    line = ["order_id", "product_id"]
    np.testing.assert_array_equal(hashes.of(line), _id_hashes(typed[line]))
    np.testing.assert_array_equal(hashes.of(["order_id"]), _id_hashes(typed[["order_id"]]))
    np.testing.assert_array_equal(hashes.of(["unit_price"]), _row_hashes(typed[["unit_price"]]))
    assert hashes.of(["unit_price"])[2] == hashes.of(["unit_price"])[3]
    rows = np.array([True, False, True, True, False, True])
    chosen = hashes.select(rows)
    part = typed.loc[rows].reset_index(drop=True)
    np.testing.assert_array_equal(chosen.rows(), _row_hashes(part))
    np.testing.assert_array_equal(chosen.of(line), _id_hashes(part[line]))
    again = chosen.select(np.array([2, 0]))
    np.testing.assert_array_equal(again.of(line), _id_hashes(part.iloc[[2, 0]][line]))


def test_unique_hashes_are_numpys_unique() -> None:
    hashes = np.random.default_rng(3).integers(0, 2**63, 1000, dtype=np.int64).astype(np.uint64)
    repeated = np.concatenate([hashes, hashes[:300], np.array([0, 2**64 - 1], dtype=np.uint64)])
    np.testing.assert_array_equal(unique_hashes(repeated), np.unique(repeated))
    assert len(unique_hashes(np.empty(0, dtype=np.uint64))) == 0
