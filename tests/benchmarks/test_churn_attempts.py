"""The churn attempts never read a label after their cut: purchases planted after it change no risk."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from benchmarks.churn_attempts import VARIANTS, Frames, predict, training_frames
from features.clv import purchase_days
from features.columns import Col, Table
from features.engine import connect

CUT = date(2010, 6, 11)
START = date(2009, 12, 1)


def orders(planted: bool, consumers: int = 160, seed: int = 5) -> pd.DataFrame:
    """Buyers at a random rate; ``planted`` adds a purchase after the cut for every even consumer."""
    rng = np.random.default_rng(seed)
    rows = []
    for consumer in range(consumers):
        gap, day = 5 + rng.exponential(40), int(rng.integers(0, 150))
        while START + timedelta(days=day) <= CUT:
            rows.append((f"C{consumer:03d}", START + timedelta(days=day), f"P{consumer % 7}"))
            day += 1 + int(rng.exponential(gap))
        if planted and consumer % 2 == 0:
            rows.append((f"C{consumer:03d}", CUT + timedelta(days=3), "P1"))
    frame = pd.DataFrame(rows, columns=[Col.CONSUMER_ID, Col.ORDERED_AT, Col.PRODUCT_ID])
    return frame.assign(
        **{Col.ORDER_ID: [f"O{i}" for i in range(len(frame))], Col.DISTRIBUTOR_ID: "D", Col.QUANTITY: 1,
           Col.UNIT_PRICE: 4.0, Col.STATUS: "paid",
           Col.ORDERED_AT: pd.to_datetime(frame[Col.ORDERED_AT]) + pd.Timedelta(hours=11)}
    )  # fmt: skip


def risks(planted: bool, settings: dict[str, object]) -> np.ndarray:
    con = connect({Table.ORDERS: orders(planted)})
    with purchase_days(con, datetime(2010, 12, 10)) as days:
        risk, _ = predict(Frames(con, days), CUT, settings)
    return risk


@pytest.mark.parametrize("name", list(VARIANTS))
def test_no_variant_sees_the_window_after_its_cut(name: str) -> None:
    assert np.array_equal(risks(False, VARIANTS[name]), risks(True, VARIANTS[name]))


@pytest.mark.parametrize("scheme", ["one90", "short30", "lengths", "stack15"])
def test_every_training_label_ends_by_the_cut(scheme: str) -> None:
    con = connect({Table.ORDERS: orders(False)})
    with purchase_days(con, datetime(2010, 12, 10)) as days:
        frames = Frames(con, days)
        training_frames(frames, CUT, scheme)
        assert frames.cache and all(as_of + timedelta(days=length) <= CUT for as_of, length in frames.cache)
