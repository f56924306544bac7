"""Profile tags: the long table's rows, values and order for hand-made consumers."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from features.columns import Col
from features.consumer_features import ConsumerCol
from models.tags import TAG_COLUMNS, TagConfig, profile_tags


def features() -> pd.DataFrame:
    return pd.DataFrame(
        {
            Col.CONSUMER_ID: ["C1", "C2", "C3", "C4", "C5"],
            ConsumerCol.AGE_BAND: pd.array(["25-34", None, "35-44", "18-24", None], dtype="string"),
            ConsumerCol.ORDERS: [5, 1, 2, 0, 3],
            ConsumerCol.AVG_ORDER_VALUE: [300.0, 20.0, 100.0, None, 150.0],
            ConsumerCol.TOP_CATEGORY: pd.array(
                ["beauty", "snacks", "snacks", None, "apparel"], dtype="string"
            ),
            ConsumerCol.SECOND_CATEGORY: pd.array(["snacks", None, "beauty", None, None], dtype="string"),
            ConsumerCol.PRICE_INDEX: [1.3, 0.5, 1.0, None, 0.9],
            ConsumerCol.ORDERS_30D: [1, 0, 0, 0, 0],
            ConsumerCol.EVENTS_30D: [4, 0, 2, 1, 0],
            ConsumerCol.RECENCY_DAYS: pd.array([3, 10, 100, None, 400], dtype="Int64"),
            ConsumerCol.FIRST_ORDER_DATE: pd.to_datetime(
                ["2024-01-01", "2025-03-21", "2024-06-01", None, "2023-01-01"]
            ),
            ConsumerCol.LAST_ORDER_DATE: pd.to_datetime(
                ["2025-03-28", "2025-03-21", "2024-12-21", None, "2024-02-25"]
            ),
        }
    )


CONFIG = TagConfig(high_share=0.25, low_share=0.25)


def tags_of(consumer: str) -> list[tuple[str, str]]:
    tags = profile_tags(features(), CONFIG)
    rows = tags[tags[Col.CONSUMER_ID] == consumer]
    return list(zip(rows["tag_type"].astype(str), rows["tag_value"], strict=True))


def test_long_table_shape_and_order() -> None:
    tags = profile_tags(features(), CONFIG)
    assert tuple(tags.columns) == TAG_COLUMNS
    assert tags[Col.CONSUMER_ID].is_monotonic_increasing


def test_tags_of_a_frequent_premium_buyer() -> None:
    # order values 300, 20, 100, 150: C1 is the top quarter (high), C2 the bottom (low)
    assert tags_of("C1") == [
        ("age_band", "25-34"),
        ("spending_power", "high"),
        ("favourite_category", "beauty"),
        ("favourite_category", "snacks"),
        ("price_sensitivity", "premium"),
        ("activity_level", "active"),
        ("lifecycle_stage", "active"),
    ]


def test_new_low_power_and_lapsed_and_prospect() -> None:
    c2 = dict(tags_of("C2"))
    assert c2["spending_power"] == "low" and c2["price_sensitivity"] == "price sensitive"
    assert c2["lifecycle_stage"] == "new" and c2["activity_level"] == "quiet"
    assert "age_band" not in c2
    c3 = dict(tags_of("C3"))
    assert (c3["spending_power"], c3["price_sensitivity"], c3["activity_level"]) == (
        "medium",
        "mainstream",
        "browsing",
    )
    assert c3["lifecycle_stage"] == "at risk"  # 100 days since the last purchase
    assert dict(tags_of("C5"))["lifecycle_stage"] == "lapsed"
    # a registered consumer without a purchase: only what is known without one
    assert tags_of("C4") == [
        ("age_band", "18-24"),
        ("activity_level", "browsing"),
        ("lifecycle_stage", "prospect"),
    ]


def test_config_is_checked() -> None:
    with pytest.raises(ValidationError, match="new_days <= active_days <= lapsed_days"):
        TagConfig(new_days=100, active_days=90)
