"""Distributor features of the last full month, on hand-made tables worked out by hand."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from features.asof import AsOf
from features.columns import Col, Table
from features.contract import CONTRACT
from features.distributor_features import (
    DistributorCol,
    distributor_features,
    distributor_monthly,
    reference_month,
)
from features.engine import connect

AS_OF = AsOf(date(2025, 3, 31))
ORDER_COLUMNS = CONTRACT[Table.ORDERS].column_names


def tables() -> dict[str, pd.DataFrame]:
    order_rows = [
        # February via D1: C1 100, C2 50
        ("O1", "C1", "D1", "P1", 1, 100.0, "2025-02-03 10:00", "paid"),
        ("O2", "C2", "D1", "P1", 1, 50.0, "2025-02-20 10:00", "paid"),
        # March via D1: C1 twice (60 + 40), C3 once (30; its second line was returned)
        ("O3", "C1", "D1", "P1", 1, 60.0, "2025-03-02 10:00", "paid"),
        ("O4", "C1", "D1", "P1", 2, 20.0, "2025-03-28 10:00", "paid"),
        ("O5", "C3", "D1", "P1", 1, 30.0, "2025-03-31 23:59", "paid"),
        ("O5", "C3", "D1", "P2", 1, 99.0, "2025-03-31 23:59", "returned"),
        # March via D2: C2 once, plus a cancelled order
        ("O6", "C2", "D2", "P2", 1, 200.0, "2025-03-15 10:00", "paid"),
        ("O7", "C2", "D2", "P2", 1, 500.0, "2025-03-16 10:00", "cancelled"),
    ]
    orders = pd.DataFrame(
        order_rows,
        columns=ORDER_COLUMNS,
    )
    orders[Col.ORDERED_AT] = pd.to_datetime(orders[Col.ORDERED_AT])
    products = pd.DataFrame(
        {Col.PRODUCT_ID: ["P1", "P2"], Col.SUPPLIER_ID: "S1", Col.CATEGORY: "snacks", Col.LIST_PRICE: 10.0}
    )
    distributors = pd.DataFrame(
        {Col.DISTRIBUTOR_ID: ["D1", "D2", "D3"], Col.JOINED_AT: pd.to_datetime(["2024-01-01"] * 3)}
    )
    consumers = pd.DataFrame(
        {
            Col.CONSUMER_ID: ["C1", "C2", "C3"],
            Col.REGISTERED_AT: pd.to_datetime(["2024-06-01"] * 3),
            Col.DISTRIBUTOR_ID: ["D1", "D1", "D2"],
        }
    )
    share_times = ["2025-02-05", "2025-02-06", "2025-03-01", "2025-03-05", "2025-03-09", "2025-03-10"]
    events = pd.DataFrame(
        {
            Col.CONSUMER_ID: "C1",
            Col.DISTRIBUTOR_ID: ["D1", "D1", "D1", "D1", "D1", None],
            Col.PRODUCT_ID: "P1",
            Col.EVENT_TYPE: "share",
            Col.EVENT_AT: pd.to_datetime(share_times),
        }
    )
    return {
        Table.ORDERS: orders,
        Table.PRODUCTS: products,
        Table.DISTRIBUTORS: distributors,
        Table.CONSUMERS: consumers,
        Table.EVENTS: events,
    }


@pytest.mark.parametrize(
    ("as_of", "month"),
    [
        (date(2025, 3, 31), date(2025, 3, 1)),  # the as-of date ends March: March is full
        (date(2025, 3, 30), date(2025, 2, 1)),
        (date(2025, 1, 15), date(2024, 12, 1)),
        (date(2025, 1, 31), date(2025, 1, 1)),
    ],
)
def test_reference_month_is_the_last_full_month(as_of: date, month: date) -> None:
    assert reference_month(AsOf(as_of)) == month


def test_features_of_the_reference_month() -> None:
    features = distributor_features(connect(tables()), AS_OF).set_index(Col.DISTRIBUTOR_ID)
    assert features.index.tolist() == ["D1", "D2", "D3"]
    d1 = features.loc["D1"]
    assert d1[DistributorCol.MONTH] == pd.Timestamp("2025-03-01")
    assert d1[DistributorCol.GMV_MONTH] == pytest.approx(60 + 40 + 30)
    assert d1[DistributorCol.GMV_PREV_MONTH] == pytest.approx(150)
    assert d1[DistributorCol.GROWTH] == pytest.approx(round(130 / 150 - 1, 4))
    assert d1[DistributorCol.ORDERS_MONTH] == 3
    assert (d1[DistributorCol.ACTIVE_CUSTOMERS], d1[DistributorCol.ACTIVE_CUSTOMERS_PREV]) == (2, 2)
    assert d1[DistributorCol.NEW_CUSTOMERS] == 1  # C3; C1 bought through D1 in February already
    assert d1[DistributorCol.REPEAT_RATE] == pytest.approx(0.5)  # C1 ordered twice in March
    assert d1[DistributorCol.SHARES_MONTH] == 3  # the share without a distributor is not D1's
    assert d1[DistributorCol.ORDERS_PER_SHARE] == pytest.approx(1.0)  # 3 orders / 3 shares
    assert d1[DistributorCol.ORDERS_PER_SHARE_PREV] == pytest.approx(1.0)  # 2 orders / 2 shares
    assert d1[DistributorCol.COMMUNITY_SIZE] == 2
    d2 = features.loc["D2"]
    assert d2[DistributorCol.GMV_MONTH] == pytest.approx(200)  # the cancelled order does not count
    assert pd.isna(d2[DistributorCol.GROWTH])  # nothing in February
    assert d2[DistributorCol.NEW_CUSTOMERS] == 1  # C2 is new to D2 though not to the platform
    assert pd.isna(d2[DistributorCol.ORDERS_PER_SHARE])
    d3 = features.loc["D3"]
    assert (
        d3[DistributorCol.GMV_MONTH],
        d3[DistributorCol.ACTIVE_CUSTOMERS],
        d3[DistributorCol.COMMUNITY_SIZE],
    ) == (
        0,
        0,
        0,
    )


def test_monthly_history_has_a_row_per_distributor_and_month() -> None:
    monthly = distributor_monthly(connect(tables()), AS_OF, months=3)
    assert len(monthly) == 3 * 3
    d1 = monthly[monthly[Col.DISTRIBUTOR_ID] == "D1"]
    assert d1[DistributorCol.MONTH].dt.strftime("%Y-%m").tolist() == ["2025-01", "2025-02", "2025-03"]
    assert d1[DistributorCol.GMV].tolist() == pytest.approx([0, 150, 130])
    assert d1[DistributorCol.NEW_CUSTOMERS].tolist() == [0, 2, 1]


def test_appending_later_rows_changes_nothing() -> None:
    before = distributor_features(connect(tables()), AS_OF)
    later = tables()
    extra = (
        later[Table.ORDERS]
        .iloc[[0]]
        .assign(
            **{Col.ORDER_ID: "O9", Col.ORDERED_AT: pd.Timestamp("2025-04-01 00:00"), Col.DISTRIBUTOR_ID: "D3"}
        )
    )
    later[Table.ORDERS] = pd.concat([later[Table.ORDERS], extra], ignore_index=True)
    more_shares = later[Table.EVENTS].iloc[[0]].assign(**{Col.EVENT_AT: pd.Timestamp("2025-04-01 00:00")})
    later[Table.EVENTS] = pd.concat([later[Table.EVENTS], more_shares], ignore_index=True)
    joined_later = pd.DataFrame({Col.DISTRIBUTOR_ID: ["D4"], Col.JOINED_AT: pd.to_datetime(["2025-04-02"])})
    later[Table.DISTRIBUTORS] = pd.concat([later[Table.DISTRIBUTORS], joined_later], ignore_index=True)
    pd.testing.assert_frame_equal(before, distributor_features(connect(later), AS_OF))


def test_works_without_optional_tables() -> None:
    only = {name: frame for name, frame in tables().items() if name in Table.REQUIRED}
    features = distributor_features(connect(only), AS_OF)
    assert features[Col.DISTRIBUTOR_ID].tolist() == ["D1", "D2"]  # known from orders only
    assert (features[DistributorCol.COMMUNITY_SIZE] == 0).all()
    assert (features[DistributorCol.SHARES_MONTH] == 0).all() and features[
        DistributorCol.ORDERS_PER_SHARE
    ].isna().all()


def test_a_longer_monthly_history_gives_the_same_features() -> None:
    con = connect(tables())
    longer = distributor_monthly(con, AS_OF, months=6)
    pd.testing.assert_frame_equal(distributor_features(con, AS_OF, longer), distributor_features(con, AS_OF))
