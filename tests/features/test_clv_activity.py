"""Trailing activity and the future label of the churn models, on hand-made orders worked out below."""

from __future__ import annotations

from datetime import date

import pandas as pd

from features.asof import AsOf
from features.clv import ActivityCol, activity_summary, future_activity, labelled_activity, model_frames
from features.columns import Col, Table
from features.engine import connect

AS_OF = AsOf(date(2025, 3, 31))

ROWS = [
    # order, consumer, quantity, unit price, ordered at, status
    ("O1", "C1", 1, 10.0, "2024-12-01 10:00", "paid"),  # 120 days before: in 180d and 365d only
    ("O2", "C1", 1, 20.0, "2025-03-01 10:00", "paid"),  # 30 days before: in 90d, not in 30d
    ("O3", "C1", 2, 5.0, "2025-03-31 23:00", "paid"),  # the as-of day: in every window
    ("O4", "C1", 1, 99.0, "2025-04-05 10:00", "paid"),  # after: future purchase day 1
    ("O5", "C1", 1, 1.0, "2025-04-05 18:00", "paid"),  # same future day: still one purchase day
    ("O6", "C1", 1, 50.0, "2025-06-29 23:59", "paid"),  # day 90 after: inside a 90-day horizon
    ("O7", "C1", 1, 70.0, "2025-06-30 00:00", "paid"),  # day 91: outside
    ("O8", "C2", 1, 40.0, "2025-01-15 10:00", "paid"),  # one-time buyer, silent since
]


COLUMNS = [Col.ORDER_ID, Col.CONSUMER_ID, Col.QUANTITY, Col.UNIT_PRICE, Col.ORDERED_AT, Col.STATUS]


def _con(rows: list[tuple] = ROWS) -> object:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame = frame.assign(
        **{
            Col.DISTRIBUTOR_ID: "D1",
            Col.PRODUCT_ID: "P1",
            Col.ORDERED_AT: pd.to_datetime(frame[Col.ORDERED_AT]),
        }
    )
    return connect({Table.ORDERS: frame})


def test_trailing_windows_and_silence_by_hand() -> None:
    activity = activity_summary(_con(), AS_OF).set_index(Col.CONSUMER_ID)
    c1 = activity.loc["C1"]
    assert [c1[ActivityCol.purchase_days(days)] for days in (30, 90, 180, 365)] == [1, 2, 3, 3]
    assert [c1[ActivityCol.value(days)] for days in (30, 90, 180, 365)] == [10.0, 30.0, 40.0, 40.0]
    assert c1[ActivityCol.DAYS_SINCE_LAST] == 0
    assert c1[ActivityCol.MEAN_GAP_DAYS] == 60.0  # 120 days over 2 repeats
    c2 = activity.loc["C2"]
    assert c2[ActivityCol.DAYS_SINCE_LAST] == 75  # 2025-01-15 to 2025-03-31
    assert pd.isna(c2[ActivityCol.MEAN_GAP_DAYS]) and pd.isna(c2[ActivityCol.SILENCE_RATIO])


def test_future_activity_counts_purchase_days_inside_the_horizon_only() -> None:
    future = future_activity(_con(), AS_OF, 90, pd.Series(["C2", "C1", "C9"]))
    assert future[Col.CONSUMER_ID].tolist() == ["C2", "C1", "C9"]
    assert future[ActivityCol.FUTURE_PURCHASE_DAYS].tolist() == [0, 2, 0]
    assert future[ActivityCol.FUTURE_VALUE].tolist() == [0.0, 150.0, 0.0]


def test_model_frames_read_nothing_after_the_as_of_date() -> None:
    """The validation label ends with the as-of date: the orders after it change no frame."""
    train, validation, current = model_frames(_con(), AS_OF, 30)
    cut = _con([row for row in ROWS if row[4] < "2025-04-01"])
    for before, after in zip((train, validation, current), model_frames(cut, AS_OF, 30), strict=True):
        pd.testing.assert_frame_equal(before, after)
    assert validation[ActivityCol.FUTURE_PURCHASE_DAYS].tolist() == [1, 0]  # C1 bought on 03-31


def test_model_frames_from_one_aggregation_equal_the_frames_built_one_at_a_time() -> None:
    """model_frames aggregates the orders into purchase days once for its three as-of dates; each
    frame equals the one its own function builds from the orders alone."""
    rows = [
        *ROWS,
        ("O9", "C2", 1, 3.0, "2025-03-20 09:00", "returned"),
        ("O10", "C3", 1, 8.0, "2025-02-01 08:00", "paid"),
    ]
    con = _con(rows)
    for returns in ("excluded", "subtracted"):
        train, validation, current = model_frames(con, AS_OF, 30, returns)
        pd.testing.assert_frame_equal(train, labelled_activity(con, AsOf(date(2025, 1, 30)), 30, returns))
        pd.testing.assert_frame_equal(validation, labelled_activity(con, AsOf(date(2025, 3, 1)), 30, returns))
        pd.testing.assert_frame_equal(current, activity_summary(con, AS_OF, returns))
    # as of 03-01: C1 buys on 03-31 (03-01 itself is history), C2 only returns, C3 is silent
    assert validation[ActivityCol.FUTURE_PURCHASE_DAYS].tolist() == [1, 0, 0]
