"""Row checks: each bad value has its own quarantine reason; rules over several rows hold
across chunks. Each case checks read = kept + quarantined + out of window (``Outcome.report``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features.errors import ContractError
from features.validate import OrderHeaders, ReferencePolicy, ValidationConfig
from tests.data import orders_frame, products_frame
from tests.features.validation_case import run


def test_infinite_numbers_are_quarantined(tmp_path: Path) -> None:
    orders = orders_frame().astype(str)
    orders.loc[0, "unit_price"] = "inf"
    orders.loc[1, "unit_price"] = "Infinity"
    orders.loc[3, "quantity"] = "-inf"  # a returned line: negative is allowed, infinite is not
    outcome = run(tmp_path, orders)
    assert outcome.quarantined() == {1: "unit_price_not_finite", 2: "unit_price_not_finite"} | {
        4: "quantity_not_finite"
    }
    assert outcome.report().rows_kept == 2


def test_numbers_above_their_configured_maximum(tmp_path: Path) -> None:
    orders = orders_frame()
    orders["quantity"] = orders["quantity"].astype("float64")
    orders.loc[0, "quantity"] = 1e17  # must not overflow anything downstream
    orders.loc[1, "unit_price"] = 2e6
    products = products_frame()
    products.loc[2, "list_price"] = 1e7
    outcome = run(tmp_path, orders, products, fmt="parquet")
    assert outcome.quarantined() == {1: "quantity_above_max", 2: "unit_price_above_max", 4: "unknown_product"}
    assert outcome.quarantined("products") == {3: "list_price_above_max"}
    assert outcome.clean()["quantity"].max() == 1
    tight = run(tmp_path / "tight", orders_frame(), config=ValidationConfig(max_values={"quantity": 2}))
    assert tight.quarantined() == {4: "quantity_above_max"}


def test_a_huge_quantity_is_quarantined_even_without_a_configured_maximum(tmp_path: Path) -> None:
    orders = orders_frame().astype(str)
    orders.loc[0, "quantity"] = "1e19"  # beyond int64
    outcome = run(tmp_path, orders, config=ValidationConfig(max_values={}))
    assert outcome.quarantined() == {1: "quantity_above_max"} and outcome.report().rows_kept == 4


def test_a_number_column_stored_as_booleans_is_a_file_error(tmp_path: Path) -> None:
    orders = orders_frame().assign(unit_price=True)
    with pytest.raises(
        ContractError, match=r"orders.parquet, column 'unit_price': .*true/false.*\n  fix: .*number"
    ):
        run(tmp_path, orders, fmt="parquet")


@pytest.mark.parametrize("marker", ["NULL", "None", "nan", "NaN", "N/A", "NA", "null", "none", "#N/A"])
def test_null_marker_ids_are_quarantined(tmp_path: Path, marker: str) -> None:
    orders = orders_frame()
    orders.loc[1, "consumer_id"] = marker
    outcome = run(tmp_path, orders)
    assert outcome.quarantined() == {2: "consumer_id_null_marker"} and outcome.report().rows_kept == 4


def test_null_markers_are_configured(tmp_path: Path) -> None:
    orders = orders_frame()
    orders.loc[1, "consumer_id"] = "-"
    orders.loc[2, "consumer_id"] = "NULL"  # no longer a marker: an id like any other
    outcome = run(tmp_path, orders, config=ValidationConfig(null_markers=("-",)))
    assert outcome.quarantined() == {2: "consumer_id_null_marker"}


def test_ids_with_control_characters_are_quarantined(tmp_path: Path) -> None:
    orders = orders_frame()
    orders.loc[0, "consumer_id"] = "C\x001"
    orders.loc[2, "order_id"] = "O\x072"
    outcome = run(tmp_path, orders, fmt="parquet")
    assert outcome.quarantined() == {1: "consumer_id_control_character", 3: "order_id_control_character"}
    assert outcome.report().rows_kept == 3


def _consumers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "consumer_id": ["C1", "C2"],
            "registered_at": ["2025-01-01", "2025-01-02"],
            "distributor_id": ["D1", "D7"],  # D7 is not a distributor
        }
    )


def _distributors() -> pd.DataFrame:
    return pd.DataFrame({"distributor_id": ["D1"], "joined_at": ["2024-12-01"]})


def test_unknown_consumers_and_distributors_are_kept_and_counted_by_default(tmp_path: Path) -> None:
    outcome = run(tmp_path, orders_frame(), consumers=_consumers(), distributors=_distributors())
    assert outcome.quarantined() == {} and outcome.quarantined("consumers") == {}
    assert outcome.report().flagged == {"unknown_consumer": 1, "unknown_distributor": 1}  # C3, D2 on row 5
    assert outcome.report("consumers").flagged == {"unknown_distributor": 1}
    assert outcome.report().rows_kept == 5


def test_unknown_consumers_and_distributors_can_be_quarantined(tmp_path: Path) -> None:
    policy = ReferencePolicy(consumers="quarantine", distributors="quarantine")
    config = ValidationConfig(references=policy)
    outcome = run(
        tmp_path, orders_frame(), config=config, consumers=_consumers(), distributors=_distributors()
    )
    assert outcome.quarantined("consumers") == {2: "unknown_distributor"}
    # C2's home distributor is unknown, so C2 is quarantined and its order with it
    assert outcome.quarantined() == {3: "unknown_consumer", 5: "unknown_consumer;unknown_distributor"}
    assert outcome.report().flagged == {} and outcome.report().rows_kept == 3


def test_references_are_not_checked_against_absent_tables(tmp_path: Path) -> None:
    config = ValidationConfig(references=ReferencePolicy(consumers="quarantine"))
    outcome = run(tmp_path, orders_frame(), config=config)
    assert outcome.quarantined() == {} and outcome.report().flagged == {}


def test_a_complaint_about_a_product_not_on_its_order(tmp_path: Path) -> None:
    complaints = pd.DataFrame(
        {
            "complaint_id": ["K1", "K2", "K3"],
            "order_id": ["O1", "O1", "O9"],
            "product_id": ["P2", "P3", "P1"],  # O1 holds P1 and P2
            "consumer_id": ["C1", "C1", "C1"],
            "complained_at": ["2025-03-03"] * 3,
            "reason": ["broken", None, None],
        }
    )
    outcome = run(tmp_path, orders_frame(), complaints=complaints, chunk_rows=2)
    assert outcome.quarantined("complaints") == {2: "product_not_on_order", 3: "unknown_order"}
    assert outcome.report("complaints").rows_kept == 1


@pytest.mark.parametrize("chunk_rows", [2, 1000])
@pytest.mark.parametrize(
    ("column", "value"),
    [("consumer_id", "C9"), ("distributor_id", "D9"), ("ordered_at", "2025-03-01 11:00:00")],
)
def test_an_order_whose_lines_disagree_is_set_aside_whole(
    tmp_path: Path, chunk_rows: int, column: str, value: str
) -> None:
    """O1 is on rows 1 and 4; row 4 disagrees. Row 1 is in an earlier chunk but goes too."""
    orders = orders_frame().astype(str)
    orders.loc[3, "order_id"] = "O1"
    orders.loc[3, "consumer_id"] = "C1"
    orders.loc[3, "ordered_at"] = "2025-03-01 10:00:00"
    orders.loc[3, column] = value
    orders.loc[2, "ordered_at"] = "2025-03-05"  # the same time written otherwise is no conflict
    outcome = run(tmp_path, orders, chunk_rows=chunk_rows)
    assert outcome.quarantined() == {
        1: "order_inconsistent",
        2: "order_inconsistent",
        4: "order_inconsistent",
    }
    assert outcome.report().rows_kept == 2


def test_an_order_line_out_of_the_window_does_not_make_its_order_inconsistent(tmp_path: Path) -> None:
    orders = orders_frame().astype(str)
    orders.loc[1, "ordered_at"] = "2025-04-02 10:00:00"
    outcome = run(tmp_path, orders, chunk_rows=2)
    assert outcome.quarantined() == {} and outcome.report().rows_out_of_window == 1


@pytest.mark.parametrize("chunk_rows", [2, 1000])
def test_a_repeated_order_line_with_other_values(tmp_path: Path, chunk_rows: int) -> None:
    orders = orders_frame()
    again = orders.iloc[[0, 0, 1]].assign(quantity=[1, 5, 2], unit_price=[9.0, 9.0, 80.0])
    outcome = run(tmp_path, pd.concat([orders, again], ignore_index=True), chunk_rows=chunk_rows)
    assert outcome.quarantined() == {6: "duplicate_row", 7: "duplicate_order_line", 8: "duplicate_order_line"}
    assert outcome.report().rows_kept == 5


def test_aware_times_are_converted_to_the_platform_time_zone(tmp_path: Path) -> None:
    orders = orders_frame().astype(str)
    orders.loc[0, "ordered_at"] = "2025-03-01T02:00:00Z"
    orders.loc[1, "ordered_at"] = "2025-03-01 10:00:00+08:00"
    orders.loc[2, "ordered_at"] = "2025-03-05 09:30"  # naive: already local
    clean = run(tmp_path, orders).clean()
    assert clean["ordered_at"].astype(str).tolist()[:3] == ["2025-03-01 10:00:00"] * 2 + [
        "2025-03-05 09:30:00"
    ]
    utc = run(tmp_path / "utc", orders, config=ValidationConfig(timezone="UTC")).clean()
    assert utc["ordered_at"].astype(str).tolist()[:2] == ["2025-03-01 02:00:00"] * 2


def test_aware_parquet_times_are_converted_to_the_platform_time_zone(tmp_path: Path) -> None:
    orders = orders_frame()
    orders["ordered_at"] = orders["ordered_at"].dt.tz_localize("UTC")
    clean = run(tmp_path, orders, fmt="parquet").clean()
    assert clean["ordered_at"].dt.tz is None
    assert str(clean["ordered_at"].iloc[0]) == "2025-03-01 18:00:00"


def test_an_ambiguous_day_month_date_is_refused(tmp_path: Path) -> None:
    orders = orders_frame().astype(str)
    orders.loc[0, "ordered_at"] = "03/04/2025"  # 3 April or 4 March?
    orders.loc[1, "ordered_at"] = "13/03/2025"  # only one reading
    outcome = run(tmp_path, orders)
    assert outcome.quarantined() == {1: "unparseable_ordered_at"}
    assert str(outcome.clean()["ordered_at"].iloc[0]) == "2025-03-13 00:00:00"


@pytest.mark.parametrize("chunk_rows", [2, 1000])
def test_a_column_of_day_month_dates_is_a_file_error(tmp_path: Path, chunk_rows: int) -> None:
    orders = orders_frame().astype(str)
    orders["ordered_at"] = ["01/03/2025", "01/03/2025", "05/03/2025", "20/03/2025", "30/03/2025"]
    with pytest.raises(
        ContractError,
        match=r"orders.csv, column 'ordered_at': dates are written day/month.*\n  fix: .*ISO 8601",
    ):
        run(tmp_path, orders, chunk_rows=chunk_rows)


def test_validation_config_refuses_bad_values() -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        ValidationConfig(timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="not number columns"):
        ValidationConfig(max_values={"status": 3})
    with pytest.raises(ValidationError):
        ValidationConfig(future_tolerance_days=-1)
    with pytest.raises(ValidationError):
        ValidationConfig(references={"consumers": "ignore"})


def test_conflicting_orders_equal_the_distinct_pairs_definition() -> None:
    """``OrderHeaders.conflicting`` (a sort per order) finds exactly the orders the pandas
    definition finds: among the in-window distinct (order, header) pairs of all files, an order
    met twice; a pair repeated in two files is one header, a line out of the window none."""
    rng = np.random.default_rng(5)
    files = []
    for _ in range(4):
        orders = rng.integers(0, 300, 400).astype(np.uint64)
        headers = (orders * 7 + (rng.random(400) < 0.05)).astype(np.uint64)  # ~5% a second header
        times = (headers % 50).astype(np.int64)  # a header holds its time
        files.append(pd.DataFrame({"order": orders, "header": headers, "time": times}))
    end, latest = pd.Timestamp(40), pd.Timestamp(45)
    found = OrderHeaders(files).conflicting(end, latest).values()

    lines = pd.concat(files, ignore_index=True).drop_duplicates(["order", "header"])
    lines = lines[(lines["time"] < end.value) & (lines["time"] <= latest.value)]
    expected = np.unique(lines["order"][lines["order"].duplicated(keep=False)].to_numpy(dtype=np.uint64))
    assert 0 < len(expected) < 300
    np.testing.assert_array_equal(found, expected)
    assert len(OrderHeaders().conflicting(end, latest)) == 0
