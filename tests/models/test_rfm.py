"""RFM: rank-based quintiles, the 125-cell partition and its validator, segments of hand-made consumers."""

from __future__ import annotations

from itertools import product
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from features.columns import Col
from features.consumer_features import ConsumerCol
from models.rfm import (
    DEFAULT_SEGMENTS,
    RFMCol,
    RFMConfig,
    SegmentRule,
    cell_table_markdown,
    quintile_scores,
    rf_grid,
    score_rfm,
    segment_lookup,
)

# The documented R x F map (docs/segmentation.md): rows R = 5..1, columns F = 1..5.
DOCUMENTED_MAP = {
    5: ["New", "Potential loyalist", "Potential loyalist", "Champions", "Champions"],
    4: ["Promising", "Potential loyalist", "Potential loyalist", "Loyal", "Loyal"],
    3: ["About to sleep", "About to sleep", "Need attention", "Loyal", "Loyal"],
    2: ["Hibernating/Lost", "Hibernating/Lost", "At risk", "At risk", "Cannot lose them"],
    1: ["Hibernating/Lost", "Hibernating/Lost", "At risk", "At risk", "Cannot lose them"],
}


def test_default_map_is_a_partition_of_all_125_cells() -> None:
    owners = {cell: [] for cell in product(range(1, 6), repeat=3)}
    for rule in DEFAULT_SEGMENTS:
        for cell in rule.cells():
            owners[cell].append(rule.name)
    assert all(len(names) == 1 for names in owners.values()), {c: n for c, n in owners.items() if len(n) != 1}
    assert len({rule.name for rule in DEFAULT_SEGMENTS}) == 10


def test_default_map_is_the_documented_table_and_m_never_matters() -> None:
    lookup = segment_lookup(RFMConfig())
    for (r, names), m in product(DOCUMENTED_MAP.items(), range(1, 6)):
        assert [lookup[r - 1, f - 1, m - 1] for f in range(1, 6)] == names


def test_validator_names_overlapping_and_missing_cells() -> None:
    overlapping = [*DEFAULT_SEGMENTS, SegmentRule(name="VIP", r=(5, 5), f=(5, 5), m=(5, 5))]
    with pytest.raises(ValidationError) as error:
        RFMConfig(segments=overlapping)
    text = str(error.value)
    assert "1 cell(s) overlap" in text and "555 in segments[0] 'Champions' and segments[10] 'VIP'" in text

    with pytest.raises(ValidationError) as error:
        RFMConfig(segments=DEFAULT_SEGMENTS[1:])  # Champions left out: R=5, F=4..5, any M
    assert "10 cell(s) missing (R,F,M): 541, 542, 543, 544, 545, 551" in str(error.value)


def test_m_can_split_a_segment_when_the_rules_still_partition() -> None:
    rules = [rule for rule in DEFAULT_SEGMENTS if rule.name != "Champions"]
    rules += [
        SegmentRule(name="Champions", r=(5, 5), f=(4, 5), m=(1, 4)),
        SegmentRule(name="Top spenders", r=(5, 5), f=(4, 5), m=(5, 5)),
    ]
    lookup = segment_lookup(RFMConfig(segments=rules))
    assert (lookup[4, 4, 4], lookup[4, 4, 3]) == ("Top spenders", "Champions")


def test_score_ranges_are_checked() -> None:
    with pytest.raises(ValidationError, match="1 <= low <= high <= 5"):
        SegmentRule(name="x", r=(4, 2))
    with pytest.raises(ValidationError, match="also a scored segment"):
        RFMConfig(no_purchase_segment="Champions")


def test_quintiles_of_distinct_values() -> None:
    values = pd.Series([50, 10, 40, 20, 30, 100, 90, 80, 70, 60])
    ties = pd.Series(range(10))
    # sorted: 10 20 | 30 40 | 50 60 | 70 80 | 90 100
    assert quintile_scores(values, ties).tolist() == [3, 1, 2, 1, 2, 5, 5, 4, 4, 3]
    assert quintile_scores(values, ties, higher_is_better=False).tolist() == [3, 5, 4, 5, 4, 1, 1, 2, 2, 3]


def test_quintile_bins_never_collapse_on_ties() -> None:
    # 70% of customers ordered once, 20% twice, 10% three times: value cut-offs would give 3 bins at most
    orders = pd.Series([1] * 70 + [2] * 20 + [3] * 10)
    scores = quintile_scores(orders, pd.Series(range(100)))
    assert scores.value_counts().sort_index().tolist() == [20, 20, 20, 20, 20]
    # ranks respect the values: every 3-order customer scores 5, every 2-order one at least 4
    assert (scores[orders == 3] == 5).all() and (scores[orders == 2] >= 4).all()
    assert (scores[orders == 1] <= 4).all()


def test_quintiles_of_uneven_counts_differ_by_at_most_one() -> None:
    scores = quintile_scores(pd.Series(range(12)), pd.Series(range(12)))
    assert scores.tolist() == [1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 5, 5]


def consumers_frame() -> pd.DataFrame:
    # ten buyers with distinct values, plus one registered non-buyer
    return pd.DataFrame(
        {
            Col.CONSUMER_ID: [f"C{i:02d}" for i in range(11)],
            ConsumerCol.RECENCY_DAYS: pd.array([1, 2, 5, 10, 20, 40, 80, 160, 300, 350, None], dtype="Int64"),
            ConsumerCol.ORDERS: [12, 11, 1, 2, 9, 8, 3, 4, 10, 5, 0],
            ConsumerCol.MONETARY: [900.0, 100.0, 50.0, 60.0, 800.0, 700.0, 10.0, 20.0, 1000.0, 30.0, 0.0],
        }
    )


def test_scores_and_segments_of_hand_made_consumers() -> None:
    scored = score_rfm(consumers_frame(), RFMConfig()).set_index(Col.CONSUMER_ID)
    # R: recency ascending pairs (1,2)->5, (5,10)->4, (20,40)->3, (80,160)->2, (300,350)->1
    # F: orders 1,2 ->1; 3,4 ->2; 5,8 ->3; 9,10 ->4; 11,12 ->5
    # M: 10,20 ->1; 30,50 ->2; 60,100 ->3; 700,800 ->4; 900,1000 ->5
    expected = {
        "C00": (5, 5, 5, "Champions"),
        "C01": (5, 5, 3, "Champions"),
        "C02": (4, 1, 2, "Promising"),
        "C03": (4, 1, 3, "Promising"),
        "C04": (3, 4, 4, "Loyal"),
        "C05": (3, 3, 4, "Need attention"),
        "C06": (2, 2, 1, "Hibernating/Lost"),
        "C07": (2, 2, 1, "Hibernating/Lost"),
        "C08": (1, 4, 5, "At risk"),
        "C09": (1, 3, 2, "At risk"),
    }
    for consumer, (r, f, m, segment) in expected.items():
        row = scored.loc[consumer]
        got = (row[RFMCol.R_SCORE], row[RFMCol.F_SCORE], row[RFMCol.M_SCORE], row[RFMCol.SEGMENT])
        assert got == (r, f, m, segment), consumer
        assert row[RFMCol.RFM_CELL] == f"{r}{f}{m}"
    non_buyer = scored.loc["C10"]
    assert non_buyer[RFMCol.SEGMENT] == "No purchase yet"
    assert pd.isna(non_buyer[RFMCol.R_SCORE]) and pd.isna(non_buyer[RFMCol.RFM_CELL])


def test_scoring_is_deterministic_and_keeps_row_order() -> None:
    frame = consumers_frame().sample(frac=1.0, random_state=3)
    first, second = score_rfm(frame, RFMConfig()), score_rfm(frame, RFMConfig())
    pd.testing.assert_frame_equal(first, second)
    assert first[Col.CONSUMER_ID].tolist() == frame[Col.CONSUMER_ID].tolist()
    # the same consumers in another order get the same scores
    by_id = score_rfm(consumers_frame(), RFMConfig()).set_index(Col.CONSUMER_ID)
    pd.testing.assert_frame_equal(first.set_index(Col.CONSUMER_ID).sort_index(), by_id)


def test_docs_hold_the_default_cell_table() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "segmentation.md"
    assert cell_table_markdown(RFMConfig()) in docs.read_text(encoding="utf-8")


def test_rf_grid_counts_every_cell() -> None:
    grid = rf_grid(score_rfm(consumers_frame(), RFMConfig()), RFMConfig())
    assert len(grid) == 25 and grid["consumers"].sum() == 10
    assert grid[["r_score", "f_score"]].iloc[0].tolist() == [5, 5]
    champions = grid[(grid["r_score"] == 5) & (grid["f_score"] == 5)].iloc[0]
    # C00 (900) and C01 (100) are the (5, 5) cell
    assert (champions["rfm_segment"], champions["consumers"], champions["mean_monetary"]) == (
        "Champions",
        2,
        500.0,
    )
    assert grid.loc[(grid["r_score"] == 1) & (grid["f_score"] == 1), "consumers"].item() == 0
