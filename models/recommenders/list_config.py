"""Settings of the published lists: the ``lists:`` section of ``configs/nightly.yaml``.

One pydantic model (unknown keys refused) for the business filters applied at recommend time
(``models.recommenders.filters``), the fallback chain (``models.recommenders.fallback``) and
the per-distributor lists and outreach (``models.recommenders.distributors``). The defaults of
the distributor blend (``community_weight``, ``trend_weight``, ``trend_days``,
``member_half_life_days``) were chosen on a validation window of Online Retail II before the
benchmark's cutoff, see ``docs/recommendation_lists.md``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MemberWeighting = Literal["recency", "spend", "uniform"]
MemberScale = Literal["raw", "share"]  # vocabulary: a value, not a column


class ListsConfig(BaseModel):
    """What goes into consumer lists, distributor lists and outreach lists, and how."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # consumer lists and business filters
    exclude_purchased: bool = Field(
        False, description="Leave out products the consumer already bought (--exclude-purchased sets it)."
    )
    sale_window_days: int = Field(
        7, ge=1, description="Only products on sale in the days after the as-of date (sale_start/sale_end)."
    )
    category_cap: int | None = Field(
        None, ge=1, description="At most this many products of one category per list; empty = no cap."
    )
    fallback_window_days: float = Field(
        30.0, gt=0, description="Popularity window of the community and global fallback lists."
    )

    # distributor lists
    distributor_top_n: int = Field(20, ge=1, description="Products per distributor list.")
    member_weighting: MemberWeighting = Field(
        "recency",
        description="Weight of a member in its community's list: recency (0.5 ** (days since last "
        "purchase / member_half_life_days)), spend (spend decayed with the same half-life) or uniform.",
    )
    member_half_life_days: float = Field(90.0, gt=0, description="Half-life of member recency / spend.")
    member_scale: MemberScale = Field(
        "raw",
        description="raw: sum the model's scores; share: each member's scores divided by its best score.",
    )
    community_weight: float = Field(
        0.5, ge=0, description="Weight of the community's own recent buyers in the distributor blend."
    )
    community_half_life_days: float | None = Field(
        365.0, gt=0, description="Half-life of a community purchase's weight; empty = no decay."
    )
    trend_weight: float = Field(0.6, ge=0, description="Weight of platform-wide recent buyers in the blend.")
    trend_days: int = Field(7, ge=1, description="Window of 'recent buyers' for the trend and its reason.")
    likely_top_k: int = Field(
        20, ge=1, description="A member is 'likely to buy' a product that is in their own top likely_top_k."
    )

    # reasons
    reason_min_customers: int = Field(
        3, ge=1, description="'N of your customers are likely to buy' needs at least this many members."
    )
    reason_min_repeat_buyers: int = Field(
        2, ge=1, description="'repeat favourite in your group' needs this many members who bought it twice."
    )
    trend_min_ratio: float = Field(
        1.5, gt=0, description="'trending in <category>': recent buyers per day / 90-day buyers per day."
    )
    trend_min_buyers: int = Field(3, ge=1, description="'trending' also needs this many recent buyers.")

    # outreach
    outreach_size: int = Field(50, ge=1, description="Customers per distributor on the outreach list.")

    # speed
    batch_size: int = Field(
        4096,
        ge=1,
        description="Consumers scored per block of the one scoring pass, and the most distributors "
        "finished at once (memory: batch x products).",
    )
