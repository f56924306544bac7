"""The quality benchmarks' pure parts: the Neyman-Pearson power of a Poisson count, exposure since onset,
the dates above the false-alarm target.

Every expected number is written out from the Poisson formula, never by calling scipy.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmarks.quality_gate import false_alarms
from benchmarks.quality_power import flagged_share, poisson_power, since_onset
from features.columns import Col
from models.quality import QualityCol

ONE = np.array([1.0])  # no spread of healthy rates: the healthy rate is the baseline itself


def pmf(k: int, mean: float) -> float:
    return math.exp(-mean) * mean**k / math.factorial(k)


def at_least(k: int, mean: float) -> float:
    return 1.0 - sum(pmf(i, mean) for i in range(k))


def test_power_at_an_exact_critical_count() -> None:
    # 100 lines at 1 %: healthy mean 1; alpha = P(k >= 4 | 1) exactly, so the test is "k >= 4"
    # and its power at 5 % (mean 5) is P(k >= 4 | 5) = 1 - e^-5 (1 + 5 + 12.5 + 20.83) ~ 0.735.
    alpha = at_least(4, 1.0)
    assert poisson_power(100, 0.01, 0.05, alpha, ONE) == pytest.approx(at_least(4, 5.0))
    assert at_least(4, 5.0) == pytest.approx(0.73497, abs=1e-5)


def test_power_between_critical_counts_is_randomised() -> None:
    # alpha halfway into k = 3: flag k >= 4, and k = 3 with chance 1/2.
    alpha = at_least(4, 1.0) + 0.5 * pmf(3, 1.0)
    expected = at_least(4, 5.0) + 0.5 * pmf(3, 5.0)
    assert poisson_power(100, 0.01, 0.05, alpha, ONE) == pytest.approx(expected)


def test_a_spread_of_healthy_rates_needs_more_complaints() -> None:
    # Healthy rates 0.5 % and 1.5 % (mean 1 %): the tail at 4 is the average of the two, larger
    # than at 1 % alone, so at the same alpha the test needs more complaints and has less power.
    alpha = at_least(4, 1.0)
    assert poisson_power(100, 0.01, 0.05, alpha, np.array([0.5, 1.5])) < poisson_power(
        100, 0.01, 0.05, alpha, ONE
    )


def test_no_exposure_has_no_power() -> None:
    assert poisson_power(0.0, 0.01, 0.05, 0.01, ONE) == 0.0


def test_an_observed_count_is_flagged_at_the_critical_count_and_partly_below_it() -> None:
    alpha = at_least(4, 1.0) + 0.5 * pmf(3, 1.0)  # flag k >= 4, and k = 3 with chance 1/2
    assert [flagged_share(k, 100, 0.01, alpha, ONE) for k in (2, 3, 4, 9)] == [
        0.0,
        pytest.approx(0.5),
        1.0,
        1.0,
    ]
    assert flagged_share(5, 0.0, 0.01, alpha, ONE) == 0.0


def test_since_onset_keeps_the_lines_ordered_after_it() -> None:
    daily = pd.DataFrame(
        {
            Col.PRODUCT_ID: ["P1", "P1", "P1", "P2"],
            QualityCol.AGE_DAYS: [2, 10, 40, 50],
            QualityCol.DAY_EXPOSURE: [1.5, 10.0, 20.0, 7.0],
            QualityCol.DAY_COMPLAINTS: [1, 2, 0, 3],
        }
    )
    # P1 turned defective 10 days before the cutoff: ages 2 and 10 count; P2 has no onset: all.
    found = since_onset(daily, pd.Series({"P1": 10}))
    assert found[QualityCol.DAY_EXPOSURE].to_dict() == {"P1": 11.5, "P2": 7.0}
    assert found[QualityCol.DAY_COMPLAINTS].to_dict() == {"P1": 3, "P2": 3}


def test_false_alarms_count_the_dates_above_one_percent() -> None:
    # Two as-of dates of 100 healthy products with >= 30 lines: 1 flagged (1 %, allowed), then 2 (2 %).
    rows = []
    for day, flagged in (("2025-01-31", 1), ("2025-02-28", 2)):
        rows += [
            {
                "consumers": 1,
                "seed": 1,
                "as_of": pd.Timestamp(day),
                QualityCol.ORDERS_30D: 40,
                "flagged": i < flagged,
            }
            for i in range(100)
        ]
    found = false_alarms(pd.DataFrame(rows).assign(healthy=True, above_alarm=False))
    assert (found["false_alarms"], found["dates_over_target"], found["dates"]) == (3, 1, 2)
    assert found["worst_date_rate"] == pytest.approx(0.02)
