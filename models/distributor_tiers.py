"""Distributor tiers and the coaching list (section 6.4 of the case).

Distributors are ranked by the reference month's GMV (ties: distributor id). Tiers, first
matching rule wins:

1. ``dormant``: GMV of the month at most ``dormant_max_gmv``;
2. ``pillar``: rank within the top ``pillar_top_share`` of active (non-dormant) distributors;
3. ``growth``: GMV grew by at least ``growth_min_growth`` over the previous month, which had
   GMV of at least ``growth_min_prev_gmv``;
4. ``steady``: rank within the top ``steady_top_share`` of active distributors;
5. ``long tail``: every other active distributor.

The coaching list holds distributors with many active customers (at least the
``coaching_customer_quantile`` quantile among active distributors and at least
``coaching_min_customers``) whose GMV fell by ``coaching_gmv_drop`` or more, or whose orders
per share event fell by ``coaching_conversion_drop`` or more; each row says why.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.columns import Col
from features.messages import Messages
from features.vocabulary import DistributorFeatureCol, DistributorTier, DistributorTierCol

PILLAR, GROWTH, STEADY, LONG_TAIL, DORMANT = DistributorTier.ALL
TIERS: tuple[str, ...] = (PILLAR, GROWTH, STEADY, LONG_TAIL, DORMANT)


Share = float


class DistributorTierConfig(BaseModel):
    """Rules of the distributor tiers and of the coaching list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dormant_max_gmv: float = Field(0.0, ge=0, description="At most this GMV in the month: dormant.")
    pillar_top_share: Share = Field(0.1, gt=0, le=1, description="Top share of active ones that are pillars.")
    growth_min_growth: float = Field(0.2, gt=0, description="Month-on-month GMV growth for the growth tier.")
    growth_min_prev_gmv: float = Field(0.0, ge=0, description="Previous month's GMV a growth tier needs.")
    steady_top_share: Share = Field(0.5, gt=0, le=1, description="Top share of active ones that are steady.")
    coaching_customer_quantile: float = Field(0.75, ge=0, le=1)
    coaching_min_customers: int = Field(10, ge=1)
    coaching_gmv_drop: float = Field(0.1, gt=0, lt=1, description="GMV fall (share) that triggers coaching.")
    coaching_conversion_drop: float = Field(
        0.2, gt=0, lt=1, description="Orders-per-share fall that triggers."
    )


def rank_by_gmv(features: pd.DataFrame) -> pd.DataFrame:
    """``features`` sorted by GMV (descending, ties by id) with gmv_rank 1..n and gmv_share."""
    ranked = features.sort_values(
        [DistributorFeatureCol.GMV_MONTH, Col.DISTRIBUTOR_ID], ascending=[False, True], kind="mergesort"
    ).reset_index(drop=True)
    total = ranked[DistributorFeatureCol.GMV_MONTH].sum()
    ranked.insert(1, DistributorTierCol.RANK, np.arange(1, len(ranked) + 1, dtype="int64"))
    share = ranked[DistributorFeatureCol.GMV_MONTH] / total if total > 0 else 0.0
    ranked.insert(
        2, DistributorTierCol.GMV_SHARE, pd.Series(share, index=ranked.index).astype("float64").round(4)
    )
    return ranked


def assign_distributor_tiers(
    features: pd.DataFrame, config: DistributorTierConfig, messages: Messages | None = None
) -> pd.DataFrame:
    """Ranked features with distributor_tier, coaching and coaching_reason; sorted by rank.

    The tier is a code (``DistributorTier``); the coaching reason is a sentence in the locale of
    ``messages`` (default English), since it carries the numbers.
    """
    ranked = rank_by_gmv(features)
    gmv = ranked[DistributorFeatureCol.GMV_MONTH]
    rank = ranked[DistributorTierCol.RANK]
    active = gmv > config.dormant_max_gmv
    n_active = int(active.sum())
    growth = ranked[DistributorFeatureCol.GROWTH]
    grew = (growth >= config.growth_min_growth) & (
        ranked[DistributorFeatureCol.GMV_PREV_MONTH] >= config.growth_min_prev_gmv
    )
    conditions = [
        ~active,
        rank <= math.ceil(config.pillar_top_share * n_active),
        grew.fillna(False),
        rank <= math.ceil(config.steady_top_share * n_active),
    ]
    tier = np.select(conditions, [DORMANT, PILLAR, GROWTH, STEADY], default=LONG_TAIL)
    ranked[DistributorTierCol.TIER] = pd.Series(tier, index=ranked.index, dtype="string")
    reasons = coaching_reasons(ranked, active, config, messages or Messages.load())
    ranked[DistributorTierCol.COACHING] = reasons.notna()
    ranked[DistributorTierCol.COACHING_REASON] = reasons
    return ranked


def coaching_reasons(
    ranked: pd.DataFrame, active: pd.Series, config: DistributorTierConfig, messages: Messages
) -> pd.Series:
    """Why each distributor needs coaching (a sentence in ``messages``' locale), or <NA> when it
    does not."""
    customers = ranked[DistributorFeatureCol.ACTIVE_CUSTOMERS]
    bar = max(config.coaching_min_customers, _quantile(customers[active], config.coaching_customer_quantile))
    many = active & (customers >= bar)
    gmv_fell = many & (ranked[DistributorFeatureCol.GROWTH] <= -config.coaching_gmv_drop).fillna(False)
    now, before = (
        ranked[DistributorFeatureCol.ORDERS_PER_SHARE],
        ranked[DistributorFeatureCol.ORDERS_PER_SHARE_PREV],
    )
    conversion_fell = many & (now <= before * (1 - config.coaching_conversion_drop)).fillna(False)
    reasons = pd.Series(pd.NA, index=ranked.index, dtype="string")
    for index in ranked.index[gmv_fell | conversion_fell]:
        row = ranked.loc[index]
        parts = []
        if gmv_fell[index]:
            parts.append(
                messages.text(
                    "coaching.gmv_fell",
                    growth=row[DistributorFeatureCol.GROWTH],
                    before=row[DistributorFeatureCol.GMV_PREV_MONTH],
                    now=row[DistributorFeatureCol.GMV_MONTH],
                )
            )
        if conversion_fell[index]:
            share_now, share_before = (
                row[DistributorFeatureCol.ORDERS_PER_SHARE],
                row[DistributorFeatureCol.ORDERS_PER_SHARE_PREV],
            )
            parts.append(
                messages.text(
                    "coaching.conversion_fell",
                    before=share_before,
                    now=share_now,
                    change=share_now / share_before - 1,
                )
            )
        parts.append(
            messages.text(
                "coaching.customers", customers=row[DistributorFeatureCol.ACTIVE_CUSTOMERS], bar=bar
            )
        )
        reasons[index] = messages.text("coaching.separator").join(parts)
    return reasons


def _quantile(values: pd.Series, q: float) -> int:
    """The ``q`` quantile of ``values`` (lower of two neighbours), 0 when empty."""
    if values.empty:
        return 0
    return int(values.quantile(q, interpolation="lower"))


def coaching_list(tiered: pd.DataFrame) -> pd.DataFrame:
    """The distributors flagged for coaching, most active customers first (ties: id)."""
    flagged = tiered[tiered[DistributorTierCol.COACHING]]
    return flagged.sort_values(
        [DistributorFeatureCol.ACTIVE_CUSTOMERS, Col.DISTRIBUTOR_ID],
        ascending=[False, True],
        kind="mergesort",
    ).reset_index(drop=True)


def tier_counts(tiered: pd.DataFrame) -> dict[str, int]:
    """Distributors per tier, in tier order."""
    counts = tiered[DistributorTierCol.TIER].value_counts()
    return {tier: int(counts.get(tier, 0)) for tier in TIERS}
