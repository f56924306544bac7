"""Member tiers: thresholds, config checks, movement against the previous run and the migration matrix."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from features.columns import Col
from features.consumer_features import ConsumerCol
from models.member_tiers import (
    MemberTierConfig,
    TierCol,
    TierLevel,
    assign_tiers,
    migration_matrix,
    tier_benefits,
    tier_movement,
)

CONFIG = MemberTierConfig(
    levels=(
        TierLevel(name="regular"),
        TierLevel(name="silver", min_spend=100, min_orders=2, benefits="coupons"),
        TierLevel(name="gold", min_spend=500, min_orders=5, benefits="free shipping"),
    )
)


def features(rows: list[tuple[str, float, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=[Col.CONSUMER_ID, ConsumerCol.ROLLING_SPEND, ConsumerCol.ROLLING_ORDERS]
    )


def test_highest_level_whose_both_thresholds_are_met() -> None:
    frame = features(
        [
            ("C1", 0.0, 0),  # nothing: the lowest level
            ("C2", 100.0, 2),  # exactly silver's thresholds
            ("C3", 99.99, 9),  # enough orders, not enough spend
            ("C4", 10_000.0, 1),  # enough spend, not enough orders
            ("C5", 500.0, 5),  # exactly gold
            ("C6", 450.0, 7),  # gold orders, silver spend
        ]
    )
    assert assign_tiers(frame, CONFIG).tolist() == [
        "regular",
        "silver",
        "regular",
        "regular",
        "gold",
        "silver",
    ]


def test_config_is_checked() -> None:
    with pytest.raises(ValidationError, match="lowest level needs min_spend 0"):
        MemberTierConfig(levels=(TierLevel(name="silver", min_spend=10),))
    with pytest.raises(ValidationError, match=r"levels\[2\] 'gold': thresholds must not be below"):
        MemberTierConfig(
            levels=(
                TierLevel(name="regular"),
                TierLevel(name="silver", min_spend=100, min_orders=3),
                TierLevel(name="gold", min_spend=500, min_orders=2),
            )
        )
    with pytest.raises(ValidationError, match="names must be unique"):
        MemberTierConfig(levels=(TierLevel(name="regular"), TierLevel(name="regular", min_spend=1)))
    assert MemberTierConfig().names == ["regular", "silver", "gold", "diamond"]


def current_tiers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            Col.CONSUMER_ID: ["C1", "C2", "C3", "C4", "C5"],
            TierCol.MEMBER_TIER: pd.array(["gold", "silver", "regular", "silver", "gold"], dtype="string"),
        }
    )


def test_movement_against_the_previous_run() -> None:
    previous = pd.DataFrame(
        {
            Col.CONSUMER_ID: ["C1", "C2", "C3", "C5", "C9"],  # C4 is new; C9 is no longer listed
            TierCol.MEMBER_TIER: ["silver", "gold", "regular", "gold", "gold"],
        }
    )
    moved = tier_movement(current_tiers(), previous, CONFIG)
    assert moved[TierCol.PREVIOUS_TIER].tolist() == ["silver", "gold", "regular", pd.NA, "gold"]
    assert moved[TierCol.MOVEMENT].tolist() == ["up", "down", "same", "new", "same"]

    matrix = migration_matrix(moved, CONFIG).set_index(TierCol.PREVIOUS)
    assert matrix.index.tolist() == ["regular", "silver", "gold", "(new)"]
    assert matrix.columns.tolist() == ["regular", "silver", "gold", "total"]
    assert matrix.loc["silver"].tolist() == [0, 0, 1, 1]  # C1 silver -> gold
    assert matrix.loc["gold"].tolist() == [0, 1, 1, 2]  # C2 gold -> silver, C5 stays gold
    assert matrix.loc["regular"].tolist() == [1, 0, 0, 1]
    assert matrix.loc["(new)"].tolist() == [0, 1, 0, 1]


def test_first_run_everyone_is_new() -> None:
    moved = tier_movement(current_tiers(), None, CONFIG)
    assert set(moved[TierCol.MOVEMENT]) == {"new"} and moved[TierCol.PREVIOUS_TIER].isna().all()
    assert migration_matrix(moved, CONFIG).iloc[:3]["total"].tolist() == [0, 0, 0]


def test_unknown_previous_tier_is_refused() -> None:
    previous = pd.DataFrame({Col.CONSUMER_ID: ["C1"], TierCol.MEMBER_TIER: ["platinum"]})
    with pytest.raises(ValueError, match=r"tiers the config does not define: \['platinum'\]"):
        tier_movement(current_tiers(), previous, CONFIG)


def test_benefits_table() -> None:
    benefits = tier_benefits(CONFIG)
    assert benefits[TierCol.MEMBER_TIER].tolist() == ["regular", "silver", "gold"]
    assert benefits["benefits"].tolist() == ["", "coupons", "free shipping"]
    assert benefits["window_days"].tolist() == [365, 365, 365]
