"""Defect onsets: a planted product can turn defective on a day of its sale, and truth records the day."""

from __future__ import annotations

import pandas as pd
import pytest

from features.columns import Col, OrderStatus, Table
from sources.simulator import TRUTH_DIR, SimulationConfig, SimulationSummary, Truth, simulate

WORLD = SimulationConfig(
    consumers=3_000, distributors=40, products=200, days=365, seed=11, defective_share=0.1, events=False
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[float, SimulationSummary]:
    """The same world with lifelong defects only and with every defect starting on a day."""
    return {
        share: simulate(
            tmp_path_factory.mktemp(f"onsets_{share}"), WORLD.model_copy(update={"onset_share": share})
        )
        for share in (0.0, 1.0)
    }


def _truth(summary: SimulationSummary) -> pd.DataFrame:
    path = summary.path / TRUTH_DIR / f"{Truth.DEFECTIVE_PRODUCTS}.csv"
    return pd.read_csv(path, dtype={Col.PRODUCT_ID: str}, parse_dates=[Truth.DEFECT_ONSET])


def _table(summary: SimulationSummary, table: str) -> pd.DataFrame:
    return pd.read_parquet(summary.path / f"{table}.parquet")


def test_lifelong_defects_have_no_onset_date(runs: dict[float, SimulationSummary]) -> None:
    truth = _truth(runs[0.0])
    assert len(truth) == 20 and truth[Truth.DEFECT_ONSET].isna().all()


def test_onsets_leave_the_orders_as_they_were(runs: dict[float, SimulationSummary]) -> None:
    """Onsets are drawn from a stream of their own: the same baskets, only statuses may differ."""
    columns = [Col.ORDER_ID, Col.PRODUCT_ID, Col.ORDERED_AT, Col.UNIT_PRICE]
    before, after = (_table(runs[share], Table.ORDERS)[columns] for share in (0.0, 1.0))
    pd.testing.assert_frame_equal(before, after)
    assert set(_truth(runs[0.0])[Col.PRODUCT_ID]) == set(_truth(runs[1.0])[Col.PRODUCT_ID])


def test_every_onset_lies_on_a_sale_day_inside_the_period(runs: dict[float, SimulationSummary]) -> None:
    truth = _truth(runs[1.0]).merge(_table(runs[1.0], Table.PRODUCTS), on=Col.PRODUCT_ID)
    on_sale = truth[Col.SALE_END].isna() | (truth[Col.SALE_END] >= pd.Timestamp(WORLD.start))
    assert truth.loc[~on_sale, Truth.DEFECT_ONSET].isna().all()  # sold out before the period: lifelong
    truth = truth[on_sale]
    onset = truth[Truth.DEFECT_ONSET]
    assert len(truth) >= 15 and onset.notna().all()
    assert (onset >= pd.Timestamp(WORLD.start)).all() and (onset <= pd.Timestamp(WORLD.last_day)).all()
    assert (onset >= truth[Col.SALE_START].dt.normalize()).all()
    assert (truth[Col.SALE_END].isna() | (onset <= truth[Col.SALE_END])).all()


def test_lines_complain_at_the_healthy_rate_before_the_onset_and_far_more_after(
    runs: dict[float, SimulationSummary],
) -> None:
    summary = runs[1.0]
    truth = _truth(summary)
    orders = _table(summary, Table.ORDERS)
    lines = orders[orders[Col.STATUS] != OrderStatus.CANCELLED].merge(truth, on=Col.PRODUCT_ID)
    filed = _table(summary, Table.COMPLAINTS)[[Col.ORDER_ID, Col.PRODUCT_ID]].assign(complained=1)
    lines = lines.merge(filed.drop_duplicates(), on=[Col.ORDER_ID, Col.PRODUCT_ID], how="left")
    after = lines[Col.ORDERED_AT] >= lines[Truth.DEFECT_ONSET]
    rate_before = lines.loc[~after, "complained"].notna().mean()
    rate_after = lines.loc[after, "complained"].notna().mean()
    baseline = (lines[Truth.CATEGORY_BASELINE]).mean()
    assert after.sum() > 300 and (~after).sum() > 300, (after.sum(), (~after).sum())
    assert rate_before < 2 * baseline, (rate_before, baseline)
    assert rate_after > 4 * rate_before, (rate_after, rate_before)


def test_onset_share_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="onset_share"):
        SimulationConfig(onset_share=1.5)
