"""Row-level validation: each bad-row case is quarantined with its reason, good rows go on."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.errors import ContractError, QuarantineLimitExceeded
from features.reader import RawTable
from features.validate import (
    ValidationConfig,
    check_quarantine_limits,
    latest_order_date,
    validate_dataset,
)
from tests.data import orders_frame, products_frame

AS_OF = date(2025, 3, 31)


def run(orders: pd.DataFrame, products: pd.DataFrame | None = None, **extra: pd.DataFrame):
    tables = {"products": products if products is not None else products_frame(), "orders": orders, **extra}
    raw = {name: RawTable(name, Path(f"{name}.csv"), frame) for name, frame in tables.items()}
    return validate_dataset(raw, AS_OF)


def quarantined(result, table: str = "orders") -> dict[int, str]:
    """source_row -> reasons of the quarantined rows."""
    frame = result.tables[table].quarantine
    return dict(zip(frame["source_row"], frame["quarantine_reason"], strict=True))


def test_valid_tables_keep_every_row_with_contract_types() -> None:
    result = run(orders_frame())
    clean = result.tables["orders"].clean
    assert len(clean) == 5 and quarantined(result) == {}
    assert clean["quantity"].dtype == "int64"
    assert clean["ordered_at"].dtype == "datetime64[ns]"
    assert result.tables["orders"].report.rows_quarantined == 0


@pytest.mark.parametrize("column", ["order_id", "consumer_id", "distributor_id", "product_id"])
def test_missing_id_is_quarantined(column: str) -> None:
    orders = orders_frame()
    orders.loc[2, column] = None
    reasons = quarantined(run(orders))
    assert reasons == {3: f"missing_{column}" if column != "product_id" else "missing_product_id"}


def test_blank_id_in_csv_counts_as_missing() -> None:
    orders = orders_frame().astype(str)
    orders.loc[0, "consumer_id"] = "   "
    assert quarantined(run(orders)) == {1: "missing_consumer_id"}


def test_non_positive_quantity_only_bad_on_paid_lines() -> None:
    orders = orders_frame()
    orders.loc[0, "quantity"] = 0  # paid
    orders.loc[3, "quantity"] = -3  # returned: a negative return line is allowed
    assert quarantined(run(orders)) == {1: "quantity_not_positive_on_paid_line"}


def test_non_positive_prices_are_quarantined() -> None:
    orders = orders_frame()
    orders.loc[1, "unit_price"] = 0.0
    products = products_frame()
    products.loc[2, "list_price"] = -1.0
    result = run(orders, products)
    assert quarantined(result) == {2: "unit_price_not_positive", 4: "unknown_product"}
    assert quarantined(result, "products") == {3: "list_price_not_positive"}


def test_unparseable_and_future_timestamps() -> None:
    orders = orders_frame().astype(str)
    orders.loc[0, "ordered_at"] = "yesterday-ish"
    orders.loc[1, "ordered_at"] = "2025-02-30"
    orders.loc[2, "ordered_at"] = "2025-04-01 00:00:00"  # the first instant after the as-of date
    orders.loc[4, "ordered_at"] = "2025-03-31 23:59:59"  # still inside the as-of date
    reasons = quarantined(run(orders))
    assert reasons == {1: "unparseable_ordered_at", 2: "unparseable_ordered_at", 3: "ordered_at_after_as_of"}


def test_unknown_product_is_quarantined() -> None:
    orders = orders_frame()
    orders.loc[4, "product_id"] = "P404"
    assert quarantined(run(orders)) == {5: "unknown_product"}


def test_exact_duplicates_keep_the_first_copy() -> None:
    orders = pd.concat([orders_frame(), orders_frame().iloc[[0, 0]]], ignore_index=True)
    result = run(orders)
    assert quarantined(result) == {6: "duplicate_row", 7: "duplicate_row"}
    assert len(result.tables["orders"].clean) == 5


def test_duplicate_product_key_with_other_values() -> None:
    products = pd.concat([products_frame(), products_frame().iloc[[1]].assign(list_price=1.0)])
    assert quarantined(run(orders_frame(), products), "products") == {4: "duplicate_product_id"}


def test_several_reasons_on_one_row_are_all_named() -> None:
    orders = orders_frame().astype(str)
    orders.loc[0, "quantity"] = "two"
    orders.loc[0, "product_id"] = "P404"
    orders.loc[0, "status"] = "refunded"
    assert quarantined(run(orders)) == {1: "unknown_product;unknown_status;unparseable_quantity"}


def test_quarantine_keeps_values_as_read() -> None:
    orders = orders_frame().astype(str)
    orders.loc[0, "unit_price"] = "abc"
    row = run(orders).tables["orders"].quarantine.iloc[0]
    assert row["unit_price"] == "abc" and row["order_id"] == "O1"


def test_complaints_must_name_a_known_order() -> None:
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
    assert quarantined(run(orders_frame(), complaints=complaints), "complaints") == {2: "unknown_order"}


def test_limit_fails_the_run_only_above_the_share() -> None:
    orders = orders_frame()
    orders.loc[0, "unit_price"] = -1.0  # 1 of 5 rows = 20%
    result = run(orders)
    check_quarantine_limits(result, ValidationConfig(max_quarantine_share=0.2))
    with pytest.raises(QuarantineLimitExceeded, match=r"orders.csv: 1 of 5 rows quarantined \(20.0%"):
        check_quarantine_limits(result, ValidationConfig(max_quarantine_share=0.19))
    per_table = ValidationConfig(max_quarantine_share=0.0, max_quarantine_share_by_table={"orders": 0.5})
    check_quarantine_limits(result, per_table)


def test_a_column_no_value_of_which_parses_is_a_file_error() -> None:
    orders = orders_frame().astype(str)
    orders["unit_price"] = "n/a"
    with pytest.raises(
        ContractError, match="orders.csv, column 'unit_price': no value can be read as a number"
    ):
        run(orders)


def test_a_wrongly_typed_parquet_column_is_a_file_error() -> None:
    orders = orders_frame()
    orders["ordered_at"] = True
    with pytest.raises(ContractError, match="column 'ordered_at': no value can be read as a date/time"):
        run(orders)


def test_latest_order_date_ignores_future_and_unreadable_dates() -> None:
    orders = orders_frame().astype(str)
    orders.loc[0, "ordered_at"] = "2099-01-01"
    orders.loc[1, "ordered_at"] = "garbage"
    raw = {"orders": RawTable("orders", Path("orders.csv"), orders)}
    assert latest_order_date(raw, today=date(2025, 6, 1)) == date(2025, 3, 30)
    assert latest_order_date(raw, today=date(2025, 3, 10)) == date(2025, 3, 5)
