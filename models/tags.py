"""Profile tags for community operations: a long table consumer_id, tag_type, tag_value.

Tag types, in this order for each consumer (a consumer gets a row only where the tag applies):

- ``age_band``: from the consumers table, when it has one;
- ``spending_power``: average order value against all buyers' (high: top ``high_share``,
  low: bottom ``low_share``, else medium); buyers only;
- ``favourite_category``: the top category by spend, and the second one; buyers only;
- ``price_sensitivity``: price index (paid price over the category's median list price)
  below ``price_sensitive_below`` is "price sensitive", above ``premium_above`` is "premium",
  else "mainstream"; buyers only;
- ``activity_level``: "active" (a purchase in the last 30 days), "browsing" (events but no
  purchase in the last 30 days), else "quiet";
- ``lifecycle_stage``: "prospect" (no purchase yet), "new" (first purchase within
  ``new_days``), "active" (last purchase within ``active_days``), "at risk" (within
  ``lapsed_days``), else "lapsed".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.columns import Col
from features.consumer_features import ConsumerCol
from features.vocabulary import TagCol, TagType

TAG_COLUMNS: tuple[str, ...] = (Col.CONSUMER_ID, TagCol.TAG_TYPE, TagCol.TAG_VALUE)
_TEXT = pd.StringDtype("pyarrow")
TAG_TYPES: tuple[str, ...] = (
    TagType.AGE_BAND,
    TagType.SPENDING_POWER,
    TagType.FAVOURITE_CATEGORY,
    TagType.PRICE_SENSITIVITY,
    TagType.ACTIVITY_LEVEL,
    TagType.LIFECYCLE_STAGE,
)


class TagConfig(BaseModel):
    """Thresholds of the profile tags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    high_share: float = Field(0.2, gt=0, lt=1, description="Top share of buyers by order value: high power.")
    low_share: float = Field(0.4, gt=0, lt=1, description="Bottom share of buyers by order value: low power.")
    price_sensitive_below: float = Field(0.9, gt=0)
    premium_above: float = Field(1.1, gt=0)
    new_days: int = Field(30, gt=0)
    active_days: int = Field(90, gt=0)
    lapsed_days: int = Field(180, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> TagConfig:
        if self.high_share + self.low_share > 1:
            raise ValueError("high_share + low_share must not exceed 1")
        if self.premium_above < self.price_sensitive_below:
            raise ValueError("premium_above must not be below price_sensitive_below")
        if not self.new_days <= self.active_days <= self.lapsed_days:
            raise ValueError("need new_days <= active_days <= lapsed_days")
        return self


def profile_tags(features: pd.DataFrame, config: TagConfig) -> pd.DataFrame:
    """The long tag table of every consumer in ``features``, sorted by consumer then tag type order."""
    buyer = features[ConsumerCol.ORDERS] > 0
    parts = [
        (TagType.AGE_BAND, features[ConsumerCol.AGE_BAND]),
        (TagType.SPENDING_POWER, _spending_power(features, buyer, config)),
        (TagType.FAVOURITE_CATEGORY, features[ConsumerCol.TOP_CATEGORY]),
        (TagType.FAVOURITE_CATEGORY, features[ConsumerCol.SECOND_CATEGORY]),
        (TagType.PRICE_SENSITIVITY, _price_sensitivity(features, buyer, config)),
        (TagType.ACTIVITY_LEVEL, _activity(features)),
        (TagType.LIFECYCLE_STAGE, _lifecycle(features, buyer, config)),
    ]
    positions, orders, values = [], [], []
    for order, (_, tag_values) in enumerate(parts):
        present = tag_values.notna().to_numpy()
        positions.append(np.flatnonzero(present))
        orders.append(np.full(int(present.sum()), order, dtype="int8"))
        values.append(tag_values.to_numpy(dtype=object, na_value=None)[present])
    position, order = np.concatenate(positions), np.concatenate(orders)
    sort = np.lexsort((order, position))
    type_codes = np.array([TAG_TYPES.index(tag_type) for tag_type, _ in parts], dtype="int8")
    # ids converted once per consumer and tag values once per distinct value, then gathered by
    # Arrow (not one Python string per tag row: millions at 1M consumers)
    ids = pd.array(features[Col.CONSUMER_ID].to_numpy(), dtype=_TEXT)
    value_codes, distinct = pd.factorize(np.concatenate(values))
    return pd.DataFrame(
        {
            Col.CONSUMER_ID: ids.take(position[sort]),
            TagCol.TAG_TYPE: pd.Categorical.from_codes(type_codes[order[sort]], categories=list(TAG_TYPES)),
            TagCol.TAG_VALUE: pd.array(distinct, dtype=_TEXT).take(value_codes[sort]),
        }
    )


def _spending_power(features: pd.DataFrame, buyer: pd.Series, config: TagConfig) -> pd.Series:
    value = features[ConsumerCol.AVG_ORDER_VALUE].where(buyer)
    rank = value.rank(method="average", pct=True)
    power = np.select(
        [rank > 1 - config.high_share, rank <= config.low_share], ["high", "low"], default="medium"
    )
    return pd.Series(power, index=features.index, dtype="string").where(buyer)


def _price_sensitivity(features: pd.DataFrame, buyer: pd.Series, config: TagConfig) -> pd.Series:
    index = features[ConsumerCol.PRICE_INDEX]
    label = np.select(
        [index < config.price_sensitive_below, index > config.premium_above],
        ["price sensitive", "premium"],
        default="mainstream",
    )
    return pd.Series(label, index=features.index, dtype="string").where(buyer & index.notna())


def _activity(features: pd.DataFrame) -> pd.Series:
    label = np.select(
        [features[ConsumerCol.ORDERS_30D] > 0, features[ConsumerCol.EVENTS_30D] > 0],
        ["active", "browsing"],
        default="quiet",
    )
    return pd.Series(label, index=features.index, dtype="string")


def _lifecycle(features: pd.DataFrame, buyer: pd.Series, config: TagConfig) -> pd.Series:
    recency = features[ConsumerCol.RECENCY_DAYS].astype("float64")
    first_order_age = (features[ConsumerCol.LAST_ORDER_DATE] - features[ConsumerCol.FIRST_ORDER_DATE]).dt.days
    days_since_first = recency + first_order_age.astype("float64")
    label = np.select(
        [
            ~buyer,
            days_since_first < config.new_days,
            recency < config.active_days,
            recency < config.lapsed_days,
        ],
        ["prospect", "new", "active", "at risk"],
        default="lapsed",
    )
    return pd.Series(label, index=features.index, dtype="string")
