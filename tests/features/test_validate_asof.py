"""As-of semantics: rows after the as-of date are out of the run's window, not bad rows.

Each case checks read = kept + quarantined + out of window (``Outcome.report``).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.errors import ContractError
from features.validate import ValidationConfig, check_orders_before_as_of, check_quarantine_limits
from tests.data import orders_frame, products_frame
from tests.features.validation_case import run


def test_rows_after_the_as_of_date_are_out_of_the_window_and_never_quarantined(tmp_path: Path) -> None:
    orders = orders_frame().astype(str)
    orders.loc[1, "ordered_at"] = "2025-04-01 00:00:00"  # the first instant after the as-of date
    orders.loc[3, "ordered_at"] = "2025-04-09 18:00:00"  # before the clock: a later day's order
    outcome = run(tmp_path, orders)
    report = outcome.report()
    assert outcome.quarantined() == {}
    assert (report.rows_read, report.rows_kept, report.rows_quarantined, report.rows_out_of_window) == (
        5,
        3,
        0,
        2,
    )
    assert outcome.clean()["order_id"].tolist() == ["O1", "O2", "O4"]
    check_quarantine_limits(outcome.result, ValidationConfig(max_quarantine_share=0.0))  # nothing counted


def test_an_as_of_date_before_every_order_stops_the_run_naming_orders(tmp_path: Path) -> None:
    outcome = run(tmp_path, orders_frame(), as_of=date(2024, 1, 1))
    assert outcome.report().rows_kept == 0
    with pytest.raises(
        ContractError, match=r"column 'ordered_at': no order line is dated on or before .* 2024-01-01"
    ):
        check_orders_before_as_of(outcome.result)
    check_orders_before_as_of(run(tmp_path / "later", orders_frame()).result)  # lines up to the date: fine


def test_impossible_times_are_bad_rows_each_with_its_reason(tmp_path: Path) -> None:
    """The clock is 2025-04-10 12:00 and the tolerance one day: 2025-04-11 13:00 cannot have happened."""
    orders = orders_frame().astype(str)
    orders.loc[0, "ordered_at"] = "2025-04-11 13:00:00"
    orders.loc[1, "ordered_at"] = "1999-12-31 23:00:00"
    orders.loc[2, "ordered_at"] = "2025-04-11 11:00:00"  # within the tolerance: only out of the window
    outcome = run(tmp_path, orders)
    assert outcome.quarantined() == {1: "ordered_at_in_future", 2: "ordered_at_before_earliest"}
    assert outcome.report().rows_out_of_window == 1
    later = run(
        tmp_path / "b", orders, config=ValidationConfig(earliest=date(1990, 1, 1), future_tolerance_days=2)
    )
    assert later.quarantined() == {} and later.report().rows_out_of_window == 2


def test_sale_windows_after_the_as_of_date_are_valid(tmp_path: Path) -> None:
    products = products_frame().assign(
        sale_start=["2025-03-30", "2025-04-20", None], sale_end=["2025-04-02", "2025-06-01", None]
    )
    outcome = run(tmp_path, orders_frame(), products)
    assert outcome.quarantined("products") == {} and outcome.quarantined() == {}
    assert outcome.report("products").rows_kept == 3 and outcome.report().rows_kept == 5


def test_a_product_with_a_future_sale_keeps_its_order_lines_and_events(tmp_path: Path) -> None:
    """Before: a sale_end after the as-of date quarantined the product and, with it, its orders."""
    products = products_frame().assign(sale_start="2025-04-01", sale_end="2025-04-30")
    events = pd.DataFrame(
        {
            "consumer_id": ["C1"],
            "distributor_id": ["D1"],
            "product_id": ["P2"],
            "event_type": ["view"],
            "event_at": ["2025-03-02 08:00:00"],
        }
    )
    outcome = run(tmp_path, orders_frame(), products, events=events)
    assert outcome.report("events").rows_kept == 1 and outcome.report().rows_kept == 5


def _full_data() -> dict[str, pd.DataFrame]:
    """A data set whose every table has rows on both sides of 2025-03-10 (the cut); C2 orders
    on 2025-03-05 but registers after the cut, so as of the cut the order names an unknown consumer."""
    orders = orders_frame()
    consumers = pd.DataFrame(
        {
            "consumer_id": ["C1", "C2", "C3", "C4"],
            "registered_at": ["2025-01-01", "2025-03-12", "2025-03-02", "2025-03-15"],
            "distributor_id": ["D1", "D1", "D2", "D9"],
        }
    )
    distributors = pd.DataFrame(
        {"distributor_id": ["D1", "D2", "D9"], "joined_at": ["2024-12-01", "2025-01-05", "2025-03-12"]}
    )
    events = pd.DataFrame(
        {
            "consumer_id": ["C1", "C2", "C1", "C3"],
            "distributor_id": ["D1", "D1", None, "D2"],
            "product_id": ["P1", "P2", "P3", "P1"],
            "event_type": ["view", "click", "cart", "view"],
            "event_at": ["2025-03-01 09:00", "2025-03-09 10:00", "2025-03-11 10:00", "2025-03-25 10:00"],
        }
    )
    complaints = pd.DataFrame(
        {
            "complaint_id": ["K1", "K2", "K3"],
            "order_id": ["O1", "O2", "O3"],
            "product_id": ["P1", "P1", "P3"],
            "consumer_id": ["C1", "C2", "C1"],
            "complained_at": ["2025-03-03", "2025-03-12", "2025-03-21"],
            "reason": ["broken", None, "late"],
        }
    )
    return {"orders": orders, "consumers": consumers, "distributors": distributors, "events": events} | {
        "complaints": complaints
    }


def _truncate(tables: dict[str, pd.DataFrame], end: pd.Timestamp) -> dict[str, pd.DataFrame]:
    times = {"orders": "ordered_at", "consumers": "registered_at", "distributors": "joined_at"}
    times |= {"events": "event_at", "complaints": "complained_at"}
    return {name: frame[pd.to_datetime(frame[times[name]]) < end] for name, frame in tables.items()}


@pytest.mark.parametrize("chunk_rows", [2, 1000])
def test_a_run_as_of_a_past_date_equals_a_run_on_the_data_of_that_day(
    tmp_path: Path, chunk_rows: int
) -> None:
    cut = date(2025, 3, 10)
    tables = _full_data()
    truncated = _truncate(tables, pd.Timestamp("2025-03-11"))
    assert all(len(truncated[t]) < len(tables[t]) for t in tables)  # every table loses rows
    as_of_cut = run(tmp_path / "full", products=None, chunk_rows=chunk_rows, as_of=cut, **tables)
    on_cut_data = run(tmp_path / "cut", products=None, chunk_rows=chunk_rows, as_of=cut, **truncated)
    for table in ["products", *tables]:
        full, short = as_of_cut.report(table), on_cut_data.report(table)
        pd.testing.assert_frame_equal(as_of_cut.clean(table), on_cut_data.clean(table))
        assert full.rows_kept == short.rows_kept and full.reasons == short.reasons
        assert full.flagged == short.flagged
        dropped = len(tables[table]) - len(truncated[table]) if table in tables else 0
        assert full.rows_out_of_window == dropped and short.rows_out_of_window == 0
    assert as_of_cut.report("orders").flagged == {"unknown_consumer": 1}
