"""Consumer features on hand-made tables whose every value is worked out by hand below."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from features.asof import AsOf
from features.columns import Col, Table
from features.consumer_features import ConsumerCol, consumer_features
from features.contract import CONTRACT
from features.engine import connect

AS_OF = AsOf(date(2025, 3, 31))
ORDER_COLUMNS = CONTRACT[Table.ORDERS].column_names
END = datetime(2025, 4, 1)  # exclusive end: the day after the as-of date at 00:00


def products() -> pd.DataFrame:
    return pd.DataFrame(
        {
            Col.PRODUCT_ID: ["P1", "P2", "P3"],
            Col.SUPPLIER_ID: ["S1", "S2", "S3"],
            Col.CATEGORY: ["snacks", "snacks", "beauty"],
            Col.LIST_PRICE: [12.0, 25.0, 120.0],
        }
    )


def orders() -> pd.DataFrame:
    rows = [
        # order, consumer, distributor, product, quantity, unit price, ordered at, status
        ("O1", "C1", "D1", "P1", 2, 10.0, "2025-03-01 09:00", "paid"),
        ("O1", "C1", "D1", "P3", 1, 100.0, "2025-03-01 09:00", "paid"),
        ("O2", "C1", "D1", "P2", 1, 20.0, "2025-03-20 12:00", "returned"),
        ("O3", "C1", "D1", "P1", 1, 10.0, "2025-03-25 12:00", "cancelled"),
        ("O4", "C1", "D2", "P2", 1, 20.0, "2025-03-30 18:00", "paid"),
        ("O5", "C2", "D1", "P1", 1, 10.0, "2025-01-10 08:00", "paid"),
        ("O6", "C3", "D2", "P3", 1, 100.0, "2025-03-15 10:00", "cancelled"),
    ]
    return _frame(
        rows,
        ORDER_COLUMNS,
        Col.ORDERED_AT,
    )


def consumers() -> pd.DataFrame:
    rows = [
        ("C1", "2024-12-01 10:00", "D1", "25-34"),
        ("C2", "2025-01-05 10:00", "D9", "35-44"),
        ("C4", "2025-02-01 10:00", "D1", None),
    ]
    return _frame(
        rows, [Col.CONSUMER_ID, Col.REGISTERED_AT, Col.DISTRIBUTOR_ID, Col.AGE_BAND], Col.REGISTERED_AT
    )


def events() -> pd.DataFrame:
    rows = [
        ("C1", "D1", "P1", "view", "2025-03-10 10:00"),
        ("C1", "D1", "P1", "share", "2025-03-15 10:00"),
        ("C4", "D1", "P2", "view", "2025-03-30 10:00"),
        ("C2", "D1", "P2", "view", "2025-02-01 10:00"),  # before the 30-day window
    ]
    return _frame(
        rows,
        [Col.CONSUMER_ID, Col.DISTRIBUTOR_ID, Col.PRODUCT_ID, Col.EVENT_TYPE, Col.EVENT_AT],
        Col.EVENT_AT,
    )


def complaints() -> pd.DataFrame:
    rows = [("K1", "O1", "P3", "C1", "2025-03-21 10:00", "broken")]
    return _frame(
        rows,
        [Col.COMPLAINT_ID, Col.ORDER_ID, Col.PRODUCT_ID, Col.CONSUMER_ID, Col.COMPLAINED_AT, Col.REASON],
        Col.COMPLAINED_AT,
    )


def _frame(rows: list[tuple], columns: list[str], time_column: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    frame[time_column] = pd.to_datetime(frame[time_column])
    return frame


def all_tables() -> dict[str, pd.DataFrame]:
    return {
        Table.PRODUCTS: products(),
        Table.ORDERS: orders(),
        Table.CONSUMERS: consumers(),
        Table.EVENTS: events(),
        Table.COMPLAINTS: complaints(),
    }


@pytest.fixture
def features() -> pd.DataFrame:
    return consumer_features(connect(all_tables()), AS_OF).set_index(Col.CONSUMER_ID)


def test_one_row_per_known_consumer_sorted(features: pd.DataFrame) -> None:
    # C1, C2, C4 are registered; C3 only placed a cancelled order but is known from it.
    assert features.index.tolist() == ["C1", "C2", "C3", "C4"]


def test_recency_frequency_monetary_net_of_returns_and_cancellations(features: pd.DataFrame) -> None:
    c1 = features.loc["C1"]
    # purchases: O1 (paid lines) and O4; O2 is only returned, O3 only cancelled
    assert c1[ConsumerCol.ORDERS] == 2
    assert c1[ConsumerCol.RECENCY_DAYS] == 1  # last purchase 2025-03-30
    assert c1[ConsumerCol.MONETARY] == pytest.approx(2 * 10 + 100 + 20)
    assert c1[ConsumerCol.AVG_ORDER_VALUE] == pytest.approx(70.0)
    assert c1[ConsumerCol.ACTIVE_DAYS] == 2
    assert c1[ConsumerCol.ROLLING_SPEND] == pytest.approx(140.0)
    # the 30 days up to 03-31 start on 03-02: O4 is in, O1 (03-01) is not
    assert c1[ConsumerCol.ORDERS_30D] == 1
    assert c1[ConsumerCol.RETURN_RATE] == pytest.approx(1 / 4)  # 1 returned of 3 paid + 1 returned lines
    assert c1[ConsumerCol.FIRST_ORDER_DATE] == pd.Timestamp("2025-03-01")
    c2 = features.loc["C2"]
    assert (c2[ConsumerCol.ORDERS], c2[ConsumerCol.RECENCY_DAYS], c2[ConsumerCol.MONETARY]) == (1, 80, 10.0)
    assert c2[ConsumerCol.ORDERS_30D] == 0


def test_non_buyers_have_zero_counts_and_empty_recency(features: pd.DataFrame) -> None:
    for consumer in ("C3", "C4"):
        row = features.loc[consumer]
        assert row[ConsumerCol.ORDERS] == 0 and row[ConsumerCol.MONETARY] == 0
        assert pd.isna(row[ConsumerCol.RECENCY_DAYS]) and pd.isna(row[ConsumerCol.TOP_CATEGORY])
        # no delivered (paid or returned) line: no return rate
        assert pd.isna(row[ConsumerCol.RETURN_RATE])


def test_categories_brands_and_price_index(features: pd.DataFrame) -> None:
    c1 = features.loc["C1"]
    # paid spend: beauty 100, snacks 2x10 + 20 = 40
    assert c1[ConsumerCol.TOP_CATEGORY] == "beauty"
    assert c1[ConsumerCol.TOP_CATEGORY_SHARE] == pytest.approx(round(100 / 140, 4))
    assert c1[ConsumerCol.SECOND_CATEGORY] == "snacks"
    assert c1[ConsumerCol.CATEGORIES] == 2
    assert c1[ConsumerCol.BRANDS] == 3  # S1, S3 (O1) and S2 (O4); returned/cancelled lines don't count
    # median paid unit price: snacks lines 10, 20, 10 -> 10; beauty line 100 -> 100
    # C1 paid 140 for units worth 3 x 10 + 1 x 100 = 130 at those medians
    assert c1[ConsumerCol.PRICE_INDEX] == pytest.approx(round(140 / 130, 4))
    assert features.loc["C2", ConsumerCol.PRICE_INDEX] == pytest.approx(1.0)


def test_profile_home_tenure_complaints_and_events(features: pd.DataFrame) -> None:
    c1 = features.loc["C1"]
    assert c1[ConsumerCol.HOME_DISTRIBUTOR_ID] == "D1" and c1[ConsumerCol.AGE_BAND] == "25-34"
    assert c1[ConsumerCol.TENURE_DAYS] == 120  # registered 2024-12-01
    assert c1[ConsumerCol.COMPLAINTS] == 1
    assert (c1[ConsumerCol.EVENTS_30D], c1[ConsumerCol.SHARES_30D]) == (2, 1)
    assert features.loc["C2", ConsumerCol.HOME_DISTRIBUTOR_ID] == "D9"  # the consumers table wins
    assert features.loc["C2", ConsumerCol.EVENTS_30D] == 0  # its only event is older than 30 days
    # C3 is not in the consumers table: home is the distributor of most orders, tenure from its order
    assert features.loc["C3", ConsumerCol.HOME_DISTRIBUTOR_ID] == "D2"
    assert features.loc["C3", ConsumerCol.TENURE_DAYS] == 16
    assert features.loc["C4", ConsumerCol.EVENTS_30D] == 1


def test_appending_later_rows_changes_nothing() -> None:
    before = consumer_features(connect(all_tables()), AS_OF)
    later = all_tables()
    at_end = pd.Timestamp(END)  # exactly the exclusive bound: already "after" the as-of date
    later[Table.ORDERS] = pd.concat(
        [
            later[Table.ORDERS],
            _frame(
                [
                    ("O7", "C1", "D3", "P3", 5, 100.0, at_end, "paid"),
                    ("O8", "C9", "D3", "P1", 1, 10.0, "2025-05-01", "paid"),
                    ("O9", "C4", "D1", "P2", 1, 20.0, "2025-04-02", "returned"),
                ],
                list(orders().columns),
                Col.ORDERED_AT,
            ),
        ],
        ignore_index=True,
    )
    later[Table.CONSUMERS] = pd.concat(
        [
            later[Table.CONSUMERS],
            _frame([("C8", at_end, "D1", "18-24")], list(consumers().columns), Col.REGISTERED_AT),
        ]
    )
    later[Table.EVENTS] = pd.concat(
        [
            later[Table.EVENTS],
            _frame([("C2", "D1", "P1", "share", at_end)], list(events().columns), Col.EVENT_AT),
        ]
    )
    later[Table.COMPLAINTS] = pd.concat(
        [
            later[Table.COMPLAINTS],
            _frame([("K2", "O4", "P2", "C1", at_end, "late")], list(complaints().columns), Col.COMPLAINED_AT),
        ]
    )
    after = consumer_features(connect(later), AS_OF)
    pd.testing.assert_frame_equal(before, after)


def test_optional_tables_may_be_missing() -> None:
    features = consumer_features(connect({Table.PRODUCTS: products(), Table.ORDERS: orders()}), AS_OF)
    assert features[Col.CONSUMER_ID].tolist() == ["C1", "C2", "C3"]  # known from orders only
    assert features[ConsumerCol.AGE_BAND].isna().all()
    assert (features[ConsumerCol.COMPLAINTS] == 0).all() and (features[ConsumerCol.EVENTS_30D] == 0).all()
    assert features[ConsumerCol.HOME_DISTRIBUTOR_ID].tolist() == ["D1", "D1", "D2"]  # C1: 3 orders via D1


def test_the_features_query_counts_its_progress_without_duckdbs_own_bar(caplog) -> None:
    """A line per stretch of the query (none silent at 10M lines); DuckDB's printed bar stays off."""
    con = connect(all_tables())
    with caplog.at_level("INFO", logger="siyu.progress"):
        consumer_features(con, AS_OF)
    lines = [record.getMessage() for record in caplog.records]
    assert any(line.startswith("consumer features: ") and line.endswith("done") for line in lines)
    assert con.execute("SELECT current_setting('enable_progress_bar_print')").fetchone() == (False,)
