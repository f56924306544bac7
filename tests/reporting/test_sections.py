"""The section builders: the numbers each data object carries, from hand-made run files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.catalog import StepFile
from reporting import sections
from reporting.run_files import MissingFile, RunFiles
from tests.reporting.test_report import write_run


@pytest.fixture
def files(tmp_path: Path) -> RunFiles:
    return RunFiles(write_run(tmp_path / "run"))


def test_bar_table_shares_are_of_the_total_and_bars_of_the_widest() -> None:
    table = sections.bar_table("tier", [("gold", 2, ["a"]), ("regular", 4, [])], total=8)
    gold, regular = table.rows
    assert (gold.share, gold.width, gold.cells) == (0.25, 50.0, ("a",))
    assert (regular.share, regular.width) == (0.5, 100.0)
    assert sections.bar_table("tier", [("none", 0, [])], total=0).rows[0].share == 0.0


def test_heat_cells_clip_their_intensity_and_turn_the_text_white_when_dark() -> None:
    assert sections.heat_cell(5, 2.0).shade == "rgba(37, 99, 235, 0.90)"
    assert sections.heat_cell(5, 2.0).ink == "#fff"
    assert sections.heat_cell(0, float("nan")).shade == "rgba(37, 99, 235, 0.06)"
    assert sections.heat_cell(1, 0.5).ink == "#111"


def test_segments_count_consumers_and_order_tiers_as_configured(files: RunFiles) -> None:
    data = sections.segments(files)
    assert data.consumers == 6
    assert [(r.name, r.count) for r in data.segments.rows] == [
        ("Champions", 3),
        ("At risk", 2),
        ("No purchase yet", 1),
    ]
    assert data.segments.rows[2].cells == ("–", "0.0", "0.00")  # no recency for non-buyers
    assert [(r.name, r.count) for r in data.member_tiers.rows] == [("regular", 4), ("gold", 2)]


def test_migration_marks_the_diagonal_and_knows_a_first_run(tmp_path: Path, files: RunFiles) -> None:
    data = sections.migration(files)
    assert not data.first_run and data.tiers == ("regular", "gold")
    regular = data.rows[0]
    assert [c.bold for c in regular.cells] == [True, False] and regular.total == 2
    assert sections.migration(RunFiles(write_run(tmp_path / "first", first_run=True))).first_run


def test_rfm_grid_puts_recent_rows_first(files: RunFiles) -> None:
    data = sections.rfm(files)
    assert data.buyers == 5 and data.f_scores == (1, 2, 3, 4, 5)
    top_r, cells = data.rows[0]
    assert top_r == 5 and cells[-1].count == 3 and cells[-1].note == ("Champions", "mean spend 10.00")


def test_recommenders_lift_is_over_the_best_baseline(files: RunFiles) -> None:
    data = sections.recommenders(files)
    assert [t.protocol for t in data.protocols] == ["all_items", "new_items"]
    rows = {r.model: r for r in data.protocols[0].rows}
    assert rows["ranker"].lift == "+20%" and rows["als"].lift == "-28%"
    assert rows["repeat"].baseline and rows["repeat"].lift == "–"
    assert data.cutoff == "2025-03-01" and data.lists == ()


def test_a_missing_file_makes_an_absent_section(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MissingFile):
        sections.quality(RunFiles(empty))
    built = sections.build_sections(RunFiles(empty))
    assert [s.anchor for s in built] == [spec.anchor for spec in sections.SECTIONS]
    assert not any(s.produced for s in built)
    missing = {s.anchor: s.missing for s in built}
    assert missing["quality"] == StepFile.QUALITY_ALERTS and missing["trends"] == StepFile.RFM_SEGMENTS


def test_clv_section_counts_churn_bands_and_tier_risk(tmp_path: Path) -> None:
    import pandas as pd

    run = write_run(tmp_path / "run")
    path = run / StepFile.CONSUMER_TIERS
    tiers = pd.read_csv(path, encoding="utf-8-sig")
    risk = [0.1, 0.2, 0.6, 0.9, 0.8, None][: len(tiers)]
    tiers["expected_value_90d"] = [10.0, 20.0, 5.0, 1.0, 2.0, None][: len(tiers)]
    tiers["churn_risk"] = risk
    tiers["churn_band"] = [None, None, None, None, None, None][: len(tiers)]
    for row, value in enumerate(risk):
        if value is not None:
            tiers.loc[row, "churn_band"] = "low" if value < 0.5 else "medium" if value < 0.7 else "high"
    tiers.to_csv(path, index=False, encoding="utf-8-sig")
    data = sections.clv(RunFiles(run))
    assert [(b.band, b.buyers, b.expected_value) for b in data.bands] == [
        ("low", 2, 30.0),
        ("medium", 1, 5.0),
        ("high", 2, 3.0),
    ]
    expected = tiers.groupby("member_tier")["churn_risk"].mean().sort_values()
    assert [tier for tier, _ in data.tier_risk] == expected.index.tolist()
    assert [round(risk, 6) for _, risk in data.tier_risk] == [round(v, 6) for v in expected]


def test_quality_shows_each_categorys_rate_against_its_threshold(files: RunFiles) -> None:
    table = sections.quality(files).categories
    assert table is not None
    head = ("category", "products", "orders 30d", "complaints 30d", "complaint rate", "threshold")
    assert table.head[:7] == (*head, "rate vs threshold")
    snacks, beauty = ([cell.text for cell in row] for row in table.rows)
    # snacks: 10 complaints on 140 lines = 7.1 % against 2 %, 3.57x; one pulled.
    assert snacks[0] == "snacks" and snacks[4] == "7.1%" and snacks[6] == "3.57" and snacks[8] == "1"
    # beauty: 4 on 60 = 6.7 % against 3 %, 2.22x; one at warning.
    assert beauty[0] == "beauty" and beauty[4] == "6.7%" and beauty[6] == "2.22" and beauty[7] == "1"


def test_distributor_tiers_share_and_bars_are_of_gmv_not_count(files: RunFiles) -> None:
    tiers = sections.distributors(files).tiers
    assert tiers.share_label == "GMV share"
    pillar, growth, dormant = tiers.rows  # 5,000 + 1,200 + 0 of GMV, one distributor each
    assert (pillar.name, pillar.count, round(pillar.share, 4), pillar.width) == ("pillar", 1, 0.8065, 100.0)
    assert (growth.name, round(growth.share, 4), growth.width) == ("growth", 0.1935, 24.0)
    assert (dormant.share, dormant.width) == (0.0, 0.0)
    assert pillar.cells[1] == "33.3%"  # the share of distributors is still shown, beside it


def test_a_long_tail_of_many_small_distributors_gets_a_short_bar() -> None:
    table = sections.weighted_bar_table(
        "tier", [("pillar", 2, 900.0, []), ("long tail", 50, 100.0, [])], "GMV share"
    )
    pillar, tail = table.rows
    assert (pillar.width, tail.width) == (100.0, 100 * 100 / 900)
    assert (pillar.share, tail.share) == (0.9, 0.1)


def test_clv_bands_are_powers_of_ten_with_their_share_of_the_value() -> None:
    values = pd.Series([0.2, 0.5, 3.0, 120.0, 450.5, 900.0])
    bands = sections.clv_bands(values)
    assert bands["expected_spend"].tolist() == ["under 1", "1 to 10", "10 to 100", "100 to 1,000"]
    assert bands["consumers"].tolist() == [2, 1, 0, 3]
    total = values.sum()
    assert bands["share_of_expected_spend"].round(6).tolist() == [
        round(0.7 / total, 6),
        round(3.0 / total, 6),
        0.0,
        round(1470.5 / total, 6),
    ]


def test_the_clv_section_has_the_band_table(files: RunFiles) -> None:
    data = sections.clv(files)
    assert data.value_bands is not None
    rows = [[cell.text for cell in row] for row in data.value_bands.rows]
    assert [row[0] for row in rows] == ["under 1", "1 to 10", "10 to 100", "100 to 1,000"]
    assert [row[1] for row in rows] == ["1", "1", "0", "3"]  # 0.2 | 3.0 | - | 120, 450.5, 900


def test_quality_draws_each_categorys_rate_against_its_threshold(files: RunFiles) -> None:
    chart = str(sections.quality(files).category_chart)
    assert chart.startswith("<svg") and "snacks" in chart and "beauty" in chart and "threshold" in chart
