"""The BTYD summary on a hand-made order table whose every value is worked out by hand below."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from features.asof import AsOf
from features.clv import SUMMARY_COLUMNS, btyd_summary
from features.columns import Col, Table
from features.engine import connect

AS_OF = AsOf(date(2025, 3, 31))

ROWS = [
    # order, consumer, quantity, unit price, ordered at, status
    # C1: purchase days 03-01 (two orders, one day), 03-10, 03-25, 03-31 (the as-of date itself)
    ("O1", "C1", 2, 10.0, "2025-03-01 09:00", "paid"),  # first day: 20
    ("O2", "C1", 1, 5.0, "2025-03-01 18:00", "paid"),  # same day, second order: still one purchase
    ("O3", "C1", 1, 30.0, "2025-03-10 10:00", "paid"),  # repeat 1: 30
    ("O3", "C1", 1, 8.0, "2025-03-10 10:00", "returned"),  # refunded line of the same order
    ("O4", "C1", 1, 100.0, "2025-03-20 12:00", "cancelled"),  # never counts, not a purchase day
    ("O5", "C1", 2, 12.5, "2025-03-25 12:00", "paid"),  # repeat 2: 25
    ("O6", "C1", 1, 1.0, "2025-03-31 23:59", "paid"),  # repeat 3 on the as-of date: 1
    ("O7", "C1", 9, 99.0, "2025-04-01 00:00", "paid"),  # after the as-of date: ignored
    # C2: one purchase; a return on the first day belongs to the first purchase
    ("O8", "C2", 1, 40.0, "2025-03-15 11:00", "paid"),
    ("O8", "C2", 1, 15.0, "2025-03-15 11:00", "returned"),
    # C3: only cancelled lines; C4: only returned lines -> no purchase, no row
    ("O9", "C3", 1, 10.0, "2025-03-05 10:00", "cancelled"),
    ("O10", "C4", 1, 10.0, "2025-03-06 10:00", "returned"),
    # C5: two purchase days, then a refund line on a day without a paid line
    ("O11", "C5", 1, 10.0, "2025-02-01 10:00", "paid"),
    ("O12", "C5", 1, 10.0, "2025-02-11 10:00", "paid"),
    ("O13", "C5", 1, 25.0, "2025-02-20 10:00", "returned"),
    # C6: first purchase on the as-of date
    ("O14", "C6", 1, 7.0, "2025-03-31 08:00", "paid"),
]


def orders(rows: list[tuple] = ROWS) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows,
        columns=[Col.ORDER_ID, Col.CONSUMER_ID, Col.QUANTITY, Col.UNIT_PRICE, Col.ORDERED_AT, Col.STATUS],
    )
    frame[Col.ORDERED_AT] = pd.to_datetime(frame[Col.ORDERED_AT])
    return frame.assign(**{Col.DISTRIBUTOR_ID: "D1", Col.PRODUCT_ID: "P1"})


def summary(frame: pd.DataFrame, **kwargs: object) -> pd.DataFrame:
    return btyd_summary(connect({Table.ORDERS: frame}), AS_OF, **kwargs).set_index(Col.CONSUMER_ID)


def test_frequency_recency_and_t_by_hand() -> None:
    result = summary(orders())
    assert list(result.index) == ["C1", "C2", "C5", "C6"]  # C3, C4 never bought; sorted by id
    assert result.loc["C1", ["frequency", "recency", "T"]].tolist() == [3, 30, 30]
    assert result.loc["C2", ["frequency", "recency", "T"]].tolist() == [0, 0, 16]
    assert result.loc["C5", ["frequency", "recency", "T"]].tolist() == [1, 10, 58]
    assert result.loc["C6", ["frequency", "recency", "T"]].tolist() == [0, 0, 0]


def test_monetary_value_with_returns_excluded() -> None:
    result = summary(orders())
    assert result.loc["C1", "monetary_value"] == pytest.approx((30 + 25 + 1) / 3)
    assert result.loc["C2", "monetary_value"] == 0.0  # no repeat purchase
    assert result.loc["C5", "monetary_value"] == pytest.approx(10.0)
    assert result.loc["C6", "monetary_value"] == 0.0


def test_monetary_value_with_returns_subtracted() -> None:
    result = summary(orders(), returns="subtracted")
    assert result.loc["C1", "monetary_value"] == pytest.approx((30 - 8 + 25 + 1) / 3)
    assert result.loc["C2", "monetary_value"] == 0.0  # the first-day return belongs to the first purchase
    assert result.loc["C5", "monetary_value"] == pytest.approx(10.0 - 25.0)  # negative: set aside later
    assert result.loc["C1", ["frequency", "recency", "T"]].tolist() == [3, 30, 30]  # returns are no purchases


def test_columns_and_types() -> None:
    result = btyd_summary(connect({Table.ORDERS: orders()}), AS_OF)
    assert tuple(result.columns) == SUMMARY_COLUMNS
    assert [str(result[column].dtype) for column in SUMMARY_COLUMNS[1:]] == ["int64"] * 3 + ["float64"]


def test_rows_after_the_as_of_date_change_nothing() -> None:
    later = [
        ("O90", "C1", 3, 50.0, "2025-04-01 00:00", "paid"),
        ("O91", "C5", 1, 500.0, "2025-04-02 10:00", "returned"),
        ("O92", "C9", 1, 5.0, "2025-05-01 10:00", "paid"),
    ]
    for returns in ("excluded", "subtracted"):
        before = summary(orders(), returns=returns)
        after = summary(orders(ROWS + later), returns=returns)
        pd.testing.assert_frame_equal(before, after)


def test_unknown_returns_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="returns must be one of"):
        summary(orders(), returns="ignored")
