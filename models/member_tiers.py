"""Member tiers (会员等级): levels reached by rolling spend and order count, and their movement.

A consumer holds the highest level whose two thresholds (spend and orders over the
trailing ``window_days``) are both met; the first level has no thresholds, so everyone holds
at least it. Given the previous run's tiers, each consumer's previous tier and movement
(up / down / same / new) are added, and a migration matrix counts consumers from each
previous tier (or ``new``) to each current tier. Levels, thresholds and benefits are config.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.columns import Col
from features.consumer_features import ConsumerCol
from features.vocabulary import Movement, TierCol

UP, DOWN, SAME, NEW = Movement.ALL
MOVEMENTS: tuple[str, ...] = (UP, DOWN, SAME, NEW)
NEW_ROW = Movement.NEW_ROW


class TierLevel(BaseModel):
    """One member level: reached when rolling spend >= min_spend and rolling orders >= min_orders."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    min_spend: float = Field(0.0, ge=0)
    min_orders: int = Field(0, ge=0)
    benefits: str = ""


DEFAULT_LEVELS: tuple[TierLevel, ...] = (
    TierLevel(name="regular", benefits="Member prices; birthday coupon."),
    TierLevel(
        name="silver",
        min_spend=500,
        min_orders=2,
        benefits="Free shipping over 49; 2 coupons of 10 per month.",
    ),
    TierLevel(
        name="gold",
        min_spend=2000,
        min_orders=6,
        benefits="Free shipping on every order; early access to flash sales; 5% points back.",
    ),
    TierLevel(
        name="diamond",
        min_spend=8000,
        min_orders=15,
        benefits="Dedicated community manager; free returns; 8% points back; new-product trials.",
    ),
)


class MemberTierConfig(BaseModel):
    """Member levels from lowest to highest; thresholds apply to the trailing ``window_days``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_days: int = Field(365, gt=0, description="Length of the rolling window for spend and orders.")
    levels: tuple[TierLevel, ...] = Field(DEFAULT_LEVELS, min_length=1)

    @model_validator(mode="after")
    def _levels_ascend(self) -> MemberTierConfig:
        names = [level.name for level in self.levels]
        if len(set(names)) != len(names):
            raise ValueError(f"levels: names must be unique, got {names}")
        first = self.levels[0]
        if first.min_spend or first.min_orders:
            raise ValueError(f"levels[0] {first.name!r}: the lowest level needs min_spend 0 and min_orders 0")
        for index, (lower, upper) in enumerate(zip(self.levels, self.levels[1:], strict=False), start=1):
            if upper.min_spend < lower.min_spend or upper.min_orders < lower.min_orders:
                raise ValueError(
                    f"levels[{index}] {upper.name!r}: thresholds must not be below those of {lower.name!r}"
                )
        return self

    @property
    def names(self) -> list[str]:
        return [level.name for level in self.levels]


def assign_tiers(features: pd.DataFrame, config: MemberTierConfig) -> pd.Series:
    """The member tier of each row of ``features`` (needs rolling_spend and rolling_orders)."""
    spend = features[ConsumerCol.ROLLING_SPEND].to_numpy(dtype="float64")
    orders = features[ConsumerCol.ROLLING_ORDERS].to_numpy(dtype="int64")
    level = np.zeros(len(features), dtype="int64")
    for index, tier in enumerate(config.levels[1:], start=1):
        level[(spend >= tier.min_spend) & (orders >= tier.min_orders)] = index
    names = np.array(config.names, dtype=object)
    return pd.Series(names[level], index=features.index, name=TierCol.MEMBER_TIER, dtype="string")


def tier_movement(
    current: pd.DataFrame, previous: pd.DataFrame | None, config: MemberTierConfig
) -> pd.DataFrame:
    """``current`` (consumer_id, member_tier) with previous_tier and movement added.

    ``previous`` is the previous run's consumer_id and member_tier (e.g. read back from its
    consumer_tiers.csv), or None for a first run, where everyone is ``new``. A tier name
    the config does not know raises ``ValueError`` naming it.
    """
    prior = _previous_tiers(previous, config)
    merged = current[[Col.CONSUMER_ID, TierCol.MEMBER_TIER]].merge(
        prior, on=Col.CONSUMER_ID, how="left", validate="one_to_one"
    )
    rank = {name: index for index, name in enumerate(config.names)}
    now = merged[TierCol.MEMBER_TIER].map(rank).astype("float64")
    before = merged[TierCol.PREVIOUS_TIER].map(rank).astype("float64")
    movement = np.select([before.isna(), now > before, now < before], [NEW, UP, DOWN], default=SAME)
    merged[TierCol.MOVEMENT] = pd.Series(movement, index=merged.index, dtype="string")
    merged.index = current.index
    return merged


def _previous_tiers(previous: pd.DataFrame | None, config: MemberTierConfig) -> pd.DataFrame:
    if previous is None:
        return pd.DataFrame(
            {Col.CONSUMER_ID: pd.Series(dtype="string"), TierCol.PREVIOUS_TIER: pd.Series(dtype="string")}
        )
    missing = [c for c in (Col.CONSUMER_ID, TierCol.MEMBER_TIER) if c not in previous.columns]
    if missing:
        raise ValueError(f"previous tiers lack column(s) {missing}")
    prior = previous[[Col.CONSUMER_ID, TierCol.MEMBER_TIER]].astype("string")
    unknown = sorted(set(prior[TierCol.MEMBER_TIER].dropna()) - set(config.names))
    if unknown:
        raise ValueError(
            f"column '{TierCol.MEMBER_TIER}' holds tiers the config does not define: {unknown}; "
            f"configured levels are {config.names}"
        )
    if prior[Col.CONSUMER_ID].duplicated().any():
        raise ValueError(f"column '{Col.CONSUMER_ID}' lists consumers more than once")
    return prior.rename(columns={TierCol.MEMBER_TIER: TierCol.PREVIOUS_TIER})


def migration_matrix(moved: pd.DataFrame, config: MemberTierConfig) -> pd.DataFrame:
    """Consumers from each previous tier (rows, ``(new)`` last) to each current tier (columns).

    Columns: previous, one per configured level in order, total. Every level appears as a row
    and a column even when empty.
    """
    previous = moved[TierCol.PREVIOUS_TIER].astype(object).fillna(NEW_ROW)
    rows = [*config.names, NEW_ROW]
    table = pd.crosstab(
        pd.Categorical(previous, categories=rows),
        pd.Categorical(moved[TierCol.MEMBER_TIER].astype(object), categories=config.names),
        dropna=False,
    )
    table = table.reindex(index=rows, columns=config.names, fill_value=0).astype("int64")
    table[TierCol.TOTAL] = table.sum(axis=1)
    table.index.name = TierCol.PREVIOUS
    table.columns.name = None
    return table.reset_index()


def tier_benefits(config: MemberTierConfig) -> pd.DataFrame:
    """The configured levels as a table: member_tier, min_spend, min_orders, window_days, benefits."""
    return pd.DataFrame(
        {
            TierCol.MEMBER_TIER: config.names,
            TierCol.MIN_SPEND: [level.min_spend for level in config.levels],
            TierCol.MIN_ORDERS: [level.min_orders for level in config.levels],
            TierCol.WINDOW_DAYS: config.window_days,
            TierCol.BENEFITS: [level.benefits for level in config.levels],
        }
    )
