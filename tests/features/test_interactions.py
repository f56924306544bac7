"""The interaction builder against hand-computed weights on the tiny contract tables."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from features.asof import AsOf
from features.engine import connect
from features.interactions import (
    INTERACTION_COLUMNS,
    InteractionConfig,
    build_interactions,
    consumer_profiles,
    history_fingerprint,
    product_profiles,
    purchased_pairs,
    shared_interactions,
)
from tests.data import orders_frame, products_frame

AS_OF = AsOf(date(2025, 3, 31))
NO_DECAY = InteractionConfig(half_life_days=None)


def _orders_with_extras() -> pd.DataFrame:
    extra = pd.DataFrame(
        {
            "order_id": ["O5", "O5", "O6", "O7"],
            "consumer_id": ["C2", "C2", "C2", "C1"],
            "distributor_id": ["D1", "D1", "D1", "D1"],
            "product_id": ["P3", "P3", "P2", "P1"],
            "quantity": [1, 1, 1, 1],
            "unit_price": [5.0, 5.0, 90.0, 9.0],
            "ordered_at": pd.to_datetime(["2025-03-10", "2025-03-10", "2025-03-11", "2025-04-02"]),
            "status": ["paid", "paid", "cancelled", "paid"],
        }
    )
    return pd.concat([orders_frame(), extra], ignore_index=True)


def _weights(frame: pd.DataFrame) -> dict[tuple[str, str], float]:
    return {(c, p): w for c, p, w in frame[["consumer_id", "product_id", "weight"]].itertuples(index=False)}


def test_paid_orders_count_once_returns_count_against_cancelled_and_later_lines_ignored() -> None:
    con = connect({"orders": _orders_with_extras(), "products": products_frame()})
    frame = build_interactions(con, AS_OF, NO_DECAY)
    assert list(frame.columns) == list(INTERACTION_COLUMNS)
    assert _weights(frame) == {
        ("C1", "P1"): 1.0,  # O7 is after the as-of date
        ("C1", "P2"): 1.0,
        ("C1", "P3"): -1.0,  # returned
        ("C2", "P1"): 1.0,
        ("C2", "P3"): 1.0,  # two lines of one order count once; O6 was cancelled
        ("C3", "P2"): 1.0,
    }
    purchases = frame.set_index(["consumer_id", "product_id"])["purchases"]
    assert purchases[("C1", "P3")] == 0 and purchases[("C2", "P3")] == 1


def test_recency_decay_halves_the_weight_every_half_life() -> None:
    con = connect({"orders": orders_frame(), "products": products_frame()})
    weights = _weights(build_interactions(con, AS_OF, InteractionConfig(half_life_days=10)))
    age_days = (datetime(2025, 4, 1) - datetime(2025, 3, 1, 10)).total_seconds() / 86400
    assert weights[("C1", "P1")] == pytest.approx(0.5 ** (age_days / 10))
    assert weights[("C3", "P2")] == pytest.approx(0.5 ** ((1 + 1 / 1440) / 10))  # 2025-03-30 23:59


def test_events_and_complaints_add_their_configured_weights() -> None:
    events = pd.DataFrame(
        {
            "consumer_id": ["C2", "C2", "C2", "C9"],
            "distributor_id": ["D1"] * 4,
            "product_id": ["P2", "P2", "P2", "P3"],
            "event_type": ["view", "view", "cart", "share"],
            "event_at": pd.to_datetime(["2025-03-10"] * 4),
        }
    )
    complaints = pd.DataFrame(
        {
            "complaint_id": ["K1"],
            "order_id": ["O2"],
            "product_id": ["P1"],
            "consumer_id": ["C2"],
            "complained_at": pd.to_datetime(["2025-03-08"]),
            "reason": ["broken"],
        }
    )
    con = connect(
        {"orders": orders_frame(), "products": products_frame(), "events": events, "complaints": complaints}
    )
    config = InteractionConfig(
        half_life_days=None, event_weights={"view": 0.1, "cart": 0.5}, complaint_weight=-3
    )
    weights = _weights(build_interactions(con, AS_OF, config))
    assert weights[("C2", "P2")] == pytest.approx(0.7)
    assert weights[("C9", "P3")] == 0.0  # share has no configured weight
    assert weights[("C2", "P1")] == pytest.approx(-2.0)
    without_events = _weights(build_interactions(con, AS_OF, config.model_copy(update={"use_events": False})))
    assert ("C2", "P2") not in without_events


def test_start_and_window_bound_the_history() -> None:
    con = connect({"orders": orders_frame(), "products": products_frame()})
    since_march_5 = build_interactions(con, AS_OF, NO_DECAY, start=date(2025, 3, 5))
    assert set(since_march_5["consumer_id"] + since_march_5["product_id"]) == {"C2P1", "C1P3", "C3P2"}
    last_week = build_interactions(con, AS_OF, InteractionConfig(half_life_days=None, window_days=7))
    assert last_week[["consumer_id", "product_id"]].values.tolist() == [["C3", "P2"]]


def test_an_exact_datetime_cutoff_and_the_truth_window() -> None:
    con = connect({"orders": orders_frame(), "products": products_frame()})
    before = build_interactions(con, datetime(2025, 3, 5), NO_DECAY)
    assert set(before["product_id"]) == {"P1", "P2"} and set(before["consumer_id"]) == {"C1"}
    truth = purchased_pairs(con, datetime(2025, 3, 5), AS_OF)
    assert truth.values.tolist() == [["C2", "P1"], ["C3", "P2"]]  # the returned line is no purchase


def test_profiles_fall_back_to_the_main_distributor_and_band_prices() -> None:
    con = connect({"orders": orders_frame(), "products": products_frame()})
    profiles = consumer_profiles(con, AS_OF)
    assert profiles.set_index("consumer_id")["home_distributor_id"].to_dict() == {
        "C1": "D1",
        "C2": "D1",
        "C3": "D2",
    }
    bands = product_profiles(con, price_bands=2).set_index("product_id")["price_band"].to_dict()
    assert bands == {"P1": "p2", "P2": "p1", "P3": "p1"}  # snacks: P3 (5.5) cheaper than P1 (10)


def test_history_fingerprint_sees_the_history_up_to_a_date_not_what_came_after_or_a_status() -> None:
    orders = _orders_with_extras()
    day = AsOf(date(2025, 3, 31))
    fingerprint = history_fingerprint(connect({"orders": orders, "products": products_frame()}), day)
    assert fingerprint.startswith(f"{int((orders['ordered_at'] < day.end).sum())}:")

    def of(changed: pd.DataFrame) -> str:
        return history_fingerprint(connect({"orders": changed, "products": products_frame()}), day)

    later = orders.iloc[[0]].assign(order_id="O9", ordered_at=pd.Timestamp("2025-04-05"))
    assert of(pd.concat([orders, later], ignore_index=True)) == fingerprint  # appended after the date
    assert of(orders.assign(status="returned")) == fingerprint  # a status changed later: same history
    restated = orders.copy()
    restated.loc[0, "product_id"] = "P2"
    assert of(restated) != fingerprint
    assert of(orders.iloc[1:]) != fingerprint


def test_unordered_rows_build_the_same_interaction_data_as_sorted_ones(tmp_path) -> None:
    """``ordered=False`` (what the recommenders' data builders use) changes nothing they see."""
    from models.recommenders.base import InteractionData
    from sources.simulator import SimulationConfig, simulate

    simulate(tmp_path, SimulationConfig(consumers=400, distributors=5, products=60, days=90, seed=5))
    tables = {name: tmp_path / f"{name}.parquet" for name in ("orders", "products", "events", "complaints")}
    con = connect(tables)
    latest = con.execute("SELECT max(ordered_at) FROM orders").fetchone()[0]
    day = AsOf(latest.date())
    sorted_rows = build_interactions(con, day)
    loose_rows = build_interactions(con, day, ordered=False)
    assert not loose_rows.equals(sorted_rows)  # the test means something: DuckDB's own order differs
    pd.testing.assert_frame_equal(
        loose_rows.sort_values(["consumer_id", "product_id"]).reset_index(drop=True), sorted_rows
    )
    profiles = consumer_profiles(con, day), product_profiles(con)
    expected = InteractionData.from_frames(sorted_rows, *profiles, as_of=day.date)
    built = InteractionData.from_frames(loose_rows, *profiles, as_of=day.date)
    assert built.consumer_ids.equals(expected.consumer_ids) and built.product_ids.equals(expected.product_ids)
    for name in ("matrix", "blocked", "purchases", "age_days", "purchase_span_days"):
        left, right = getattr(built, name), getattr(expected, name)
        for part in ("data", "indices", "indptr"):
            np.testing.assert_array_equal(getattr(left, part), getattr(right, part), err_msg=f"{name}.{part}")
    pd.testing.assert_frame_equal(built.consumer_profiles, expected.consumer_profiles)
    pd.testing.assert_frame_equal(built.product_profiles, expected.product_profiles)


def _straddling_orders() -> pd.DataFrame:
    """The tiny orders plus an order whose lines fall on both sides of the 2025-03-15 cutoff (a
    paid line before it, a returned line after it) and lines after the as-of date."""
    extra = pd.DataFrame(
        {
            "order_id": ["O8", "O8", "O9"],
            "consumer_id": ["C2", "C2", "C3"],
            "distributor_id": ["D1", "D1", "D2"],
            "product_id": ["P2", "P2", "P1"],
            "quantity": [1, 1, 1],
            "unit_price": [90.0, 90.0, 9.0],
            "ordered_at": pd.to_datetime(["2025-03-14 12:00", "2025-03-16 08:00", "2025-04-03 00:00"]),
            "status": ["paid", "returned", "paid"],
        }
    )
    return pd.concat([_orders_with_extras(), extra], ignore_index=True)


@pytest.mark.parametrize(
    "config",
    [InteractionConfig(), NO_DECAY, InteractionConfig(window_days=20, complaint_weight=-3.0)],
    ids=["decay", "no-decay", "window"],
)
def test_one_shared_aggregation_gives_each_cutoff_the_pairs_of_its_own_query(config) -> None:
    """``shared_interactions``: every cutoff's frame equals the separate aggregation's, exactly (one
    DuckDB thread, so both sum in the same order), across an order that straddles a cutoff."""
    events = pd.DataFrame(
        {
            "consumer_id": ["C2", "C2", "C9", "C1"],
            "distributor_id": ["D1"] * 4,
            "product_id": ["P2", "P2", "P3", "P1"],
            "event_type": ["view", "cart", "share", "click"],
            "event_at": pd.to_datetime(["2025-03-10", "2025-03-20", "2025-02-01", "2025-04-05"]),
        }
    )
    complaints = pd.DataFrame(
        {
            "complaint_id": ["K1", "K2"],
            "order_id": ["O2", "O8"],
            "product_id": ["P1", "P2"],
            "consumer_id": ["C2", "C2"],
            "complained_at": pd.to_datetime(["2025-03-08", "2025-03-18"]),
            "reason": ["broken", "late"],
        }
    )
    tables = {"orders": _straddling_orders(), "products": products_frame(), "events": events}
    con = connect({**tables, "complaints": complaints}, threads=1)
    cutoffs = [AsOf(date(2025, 3, 15)), AsOf(date(2025, 3, 1)), AS_OF, datetime(2025, 3, 20, 6)]
    separate = [build_interactions(con, cutoff, config, ordered=True) for cutoff in cutoffs]
    with shared_interactions(con, cutoffs, config):
        shared = [build_interactions(con, cutoff, config, ordered=True) for cutoff in cutoffs]
        later = build_interactions(con, AsOf(date(2025, 4, 30)), config)  # not shared: its own query
    assert all(len(frame) for frame in separate) and len({len(frame) for frame in separate}) > 1
    for alone, together in zip(separate, shared, strict=True):
        pd.testing.assert_frame_equal(together, alone, check_exact=True)
    pd.testing.assert_frame_equal(later, build_interactions(con, AsOf(date(2025, 4, 30)), config))
    assert _weights(shared[0])[("C2", "P2")] != _weights(shared[2])[("C2", "P2")]


def test_the_shared_aggregation_is_removed_after_its_block_and_ignores_another_config(tmp_path) -> None:
    tables = {"orders": _straddling_orders(), "products": products_frame()}
    con = connect(tables, threads=1, temp_directory=tmp_path)
    with shared_interactions(con, [AsOf(date(2025, 3, 15)), AS_OF], NO_DECAY):
        other = build_interactions(con, AS_OF, NO_DECAY.model_copy(update={"purchase_weight": 2.0}))
        inside = list(tmp_path.glob("siyu-shared-interactions-*/*.parquet"))
    assert len(inside) == 1  # the aggregation waits on disk, in DuckDB's spill folder
    assert not list(tmp_path.glob("siyu-shared-interactions-*"))
    assert _weights(other)[("C1", "P1")] == 2.0  # the other config's own query, not the shared pairs


def test_the_shared_aggregation_reports_the_rows_it_scans(monkeypatch) -> None:
    """The shared aggregation (half a minute at 10M lines) runs through ``counted_query``: its
    progress counts the contribution rows it scans (orders, events, complaints), and ends done."""
    import features.progress as progress_module

    events = pd.DataFrame(
        {
            "consumer_id": ["C2", "C9"],
            "distributor_id": ["D1", "D1"],
            "product_id": ["P2", "P3"],
            "event_type": ["view", "share"],
            "event_at": pd.to_datetime(["2025-03-10", "2025-02-01"]),
        }
    )
    orders = _straddling_orders()
    con = connect({"orders": orders, "products": products_frame(), "events": events}, threads=1)
    updates: list[progress_module.ProgressUpdate] = []
    remove = progress_module.add_listener(updates.append)
    try:
        with shared_interactions(con, [AsOf(date(2025, 3, 15)), AS_OF], NO_DECAY):
            pass
    finally:
        remove()
    shared = [update for update in updates if update.step.startswith("shared interaction data")]
    assert shared and shared[-1].finished
    assert shared[-1].total == shared[-1].done == len(orders) + len(events)
    assert con.execute("SELECT current_setting('enable_progress_bar_print')").fetchone() == (False,)
