"""Distributor tiers by rank, GMV and growth, and the coaching list with its reasons, by hand."""

from __future__ import annotations

import pandas as pd

from features.columns import Col
from features.messages import Messages
from features.vocabulary import DistributorFeatureCol
from models.distributor_tiers import (
    DistributorTierCol,
    DistributorTierConfig,
    assign_distributor_tiers,
    coaching_list,
    tier_counts,
)

CONFIG = DistributorTierConfig(
    pillar_top_share=0.25,
    steady_top_share=0.5,
    growth_min_growth=0.2,
    coaching_customer_quantile=0.5,
    coaching_min_customers=10,
    coaching_gmv_drop=0.1,
    coaching_conversion_drop=0.2,
)

# id, GMV this month, last month, active customers, orders per share now, before
ROWS = [
    ("D01", 1000.0, 900.0, 100, 5.0, 5.0),
    ("D02", 900.0, 1000.0, 80, 5.0, 5.0),
    ("D03", 800.0, 500.0, 60, 5.0, 5.0),
    ("D04", 700.0, 500.0, 50, 5.0, 5.0),
    ("D05", 600.0, 590.0, 40, 4.0, 6.0),
    ("D06", 500.0, 400.0, 30, 5.0, 5.0),
    ("D07", 400.0, 500.0, 90, 5.0, 5.0),
    ("D08", 300.0, 0.0, 20, None, None),
    ("D09", 200.0, 190.0, 15, 1.0, 5.0),
    ("D10", 100.0, 100.0, 12, 5.0, 5.0),
    ("D11", 0.0, 300.0, 0, None, 5.0),
    ("D12", 0.0, 0.0, 0, None, None),
]


def features() -> pd.DataFrame:
    frame = pd.DataFrame(
        ROWS,
        columns=[
            Col.DISTRIBUTOR_ID,
            DistributorFeatureCol.GMV_MONTH,
            DistributorFeatureCol.GMV_PREV_MONTH,
            DistributorFeatureCol.ACTIVE_CUSTOMERS,
            DistributorFeatureCol.ORDERS_PER_SHARE,
            DistributorFeatureCol.ORDERS_PER_SHARE_PREV,
        ],
    )
    previous = frame[DistributorFeatureCol.GMV_PREV_MONTH]
    frame[DistributorFeatureCol.GROWTH] = (
        frame[DistributorFeatureCol.GMV_MONTH] / previous.where(previous > 0) - 1
    ).round(4)
    # shuffled so that the ranking, not the input order, decides
    return frame.sample(frac=1.0, random_state=1).reset_index(drop=True)


def test_tiers_by_rank_gmv_and_growth() -> None:
    tiered = assign_distributor_tiers(features(), CONFIG)
    assert tiered[Col.DISTRIBUTOR_ID].tolist() == [f"D{i:02d}" for i in range(1, 13)]
    assert tiered[DistributorTierCol.RANK].tolist() == list(range(1, 13))
    # 10 active: pillars are ranks <= ceil(0.25 x 10) = 3, steady ranks <= 5
    expected = ["pillar"] * 3 + ["growth", "steady", "growth"] + ["long tail"] * 4 + ["dormant"] * 2
    assert tiered[DistributorTierCol.TIER].tolist() == expected
    assert tier_counts(tiered) == {"pillar": 3, "growth": 2, "steady": 1, "long tail": 4, "dormant": 2}
    assert tiered[DistributorTierCol.GMV_SHARE].iloc[0] == round(1000 / 5500, 4)


def test_coaching_list_with_reasons() -> None:
    tiered = assign_distributor_tiers(features(), CONFIG)
    coached = coaching_list(tiered)
    # bar = max(10, lower median of the active ones' customers 12..100) = 40
    assert coached[Col.DISTRIBUTOR_ID].tolist() == ["D07", "D02", "D05"]
    reasons = dict(zip(coached[Col.DISTRIBUTOR_ID], coached[DistributorTierCol.COACHING_REASON], strict=True))
    assert (
        reasons["D07"] == "GMV -20% month on month (500.00 -> 400.00); 90 active customers (coaching bar 40)"
    )
    assert reasons["D02"].startswith("GMV -10% month on month (1,000.00 -> 900.00)")
    assert reasons["D05"] == "orders per share 6.00 -> 4.00 (-33%); 40 active customers (coaching bar 40)"
    # D09's conversion fell too, but it has too few active customers; dormant D11 is not coached
    flagged = set(tiered.loc[tiered[DistributorTierCol.COACHING], Col.DISTRIBUTOR_ID])
    assert flagged == {"D02", "D05", "D07"}
    assert tiered.loc[~tiered[DistributorTierCol.COACHING], DistributorTierCol.COACHING_REASON].isna().all()


def test_coaching_reasons_in_chinese_carry_the_same_numbers() -> None:
    tiered = assign_distributor_tiers(features(), CONFIG, Messages.load("zh-CN"))
    reasons = dict(zip(tiered[Col.DISTRIBUTOR_ID], tiered[DistributorTierCol.COACHING_REASON], strict=True))
    assert reasons["D07"] == "本月成交额环比 -20%（500.00 → 400.00）；活跃顾客 90 位（辅导门槛 40）"
    assert reasons["D05"] == "每次分享带来订单 6.00 → 4.00（-33%）；活跃顾客 40 位（辅导门槛 40）"
    assert tiered[DistributorTierCol.TIER].tolist()[0] == "pillar"  # tiers stay codes
