"""Trends across nights: read from the dated exports beside a run, first night included."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.catalog import RunFile, StepFile
from reporting import sections, trends
from reporting.excel import write_excel_csv
from reporting.report import write_report
from reporting.run_files import RunFiles
from tests.reporting.test_report import write_run


def _night(
    folder: Path, as_of: str, champions: int, ndcg: float, gmv: float, extra_segment: bool = False
) -> Path:
    """An export of one night: the hand-made run files with this night's numbers, and a manifest."""
    write_run(folder)
    segments = pd.read_csv(folder / StepFile.RFM_SEGMENTS, encoding="utf-8-sig")
    segments.loc[segments["rfm_segment"] == "Champions", "consumers"] = champions
    if extra_segment:
        segments = pd.concat([segments, pd.DataFrame({"rfm_segment": ["New"], "consumers": [4]})])
    write_excel_csv(segments, folder / StepFile.RFM_SEGMENTS)
    distributors = pd.read_csv(folder / StepFile.DISTRIBUTOR_TIERS, encoding="utf-8-sig")
    distributors["gmv_month"] = [gmv, 0.0, 0.0]
    write_excel_csv(distributors, folder / StepFile.DISTRIBUTOR_TIERS)
    evaluation = json.loads((folder / StepFile.EVALUATION).read_text())
    for row in evaluation["results"]:
        if row["model"] == "ranker" and row["protocol"] == "all_items":
            row["ndcg"] = ndcg
    (folder / StepFile.EVALUATION).write_text(json.dumps({**evaluation, "production": "ranker"}))
    (folder / RunFile.MANIFEST).write_text(json.dumps({"as_of": as_of}))
    return folder


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A work directory after three nights: two earlier exports, tonight's outputs (and export)."""
    exports = tmp_path / "work" / "exports"
    _night(exports / "2025-03-29", "2025-03-29", champions=1, ndcg=0.28, gmv=4000.0)
    _night(exports / "2025-03-30", "2025-03-30", champions=2, ndcg=0.29, gmv=4000.0)
    _night(exports / "2025-03-31", "2025-03-31", champions=99, ndcg=0.99, gmv=1.0)  # tonight's export
    (exports / "CURRENT").write_text("2025-03-31\n")
    (exports / "2025-03-28.staging").mkdir()  # not a dated export: ignored
    (exports / "2025-03-27").mkdir()  # no manifest: an incomplete export, ignored
    _night(
        tmp_path / "work" / "outputs", "2025-03-31", champions=3, ndcg=0.30, gmv=5000.0, extra_segment=True
    )
    (tmp_path / "work" / "outputs" / RunFile.MANIFEST).unlink()  # outputs have no manifest
    return tmp_path / "work"


def test_earlier_nights_are_the_complete_dated_exports_before_tonight(work: Path) -> None:
    exports = trends.exports_beside(work / "outputs")
    assert exports == work / "exports"
    assert trends.exports_beside(exports / "2025-03-30") == exports
    nights = trends.earlier_nights(exports, "2025-03-31")
    assert [night for night, _ in nights] == ["2025-03-29", "2025-03-30"]
    assert [night for night, _ in trends.earlier_nights(exports, "2025-03-31", nights=1)] == ["2025-03-30"]
    assert trends.earlier_nights(None, "2025-03-31") == []


def test_the_trend_section_reads_each_night_and_tonight_from_the_run(work: Path) -> None:
    earlier = trends.earlier_nights(work / "exports", "2025-03-31")
    data = sections.trends(RunFiles(work / "outputs", "2025-03-31", earlier))
    assert data.nights == 3 and not data.first_night
    rows = [[cell.text for cell in row] for row in data.measures.rows]
    assert data.measures.head[:2] == ("as of", "consumers")
    assert [row[0] for row in rows] == ["2025-03-29", "2025-03-30", "2025-03-31"]
    assert [row[1] for row in rows] == ["4", "5", "10"]  # Champions + At risk 2 + No purchase 1 (+ New 4)
    by_name = dict(zip(data.measures.head, zip(*rows, strict=True), strict=True))
    assert by_name["production ndcg"] == ("0.2800", "0.2900", "0.3000")  # tonight from the run, not 0.99
    assert by_name["platform gmv month"] == ("4,000", "4,000", "5,000")
    # regular -> gold 1 up, gold -> regular 1 down, 2 new (write_run's migration matrix)
    assert by_name["upgraded"] == ("1", "1", "1") and by_name["downgraded"] == ("1", "1", "1")
    segments = {row[0].text: [cell.text for cell in row[1:]] for row in data.segments.rows}
    assert segments["Champions"] == ["1", "2", "3"] and segments["New"] == ["0", "0", "4"]
    assert str(data.chart).startswith("<svg")


def test_a_first_night_says_the_trends_start_tomorrow(tmp_path: Path) -> None:
    run = write_run(tmp_path / "outputs")
    data = sections.trends(RunFiles(run, "2025-03-31"))
    assert data.first_night and data.nights == 1 and len(data.measures.rows) == 1
    page = write_report(run, tmp_path / "report.html", as_of=date(2025, 3, 31)).read_text(encoding="utf-8")
    assert "the trends start with the next night" in page


def test_the_page_shows_the_trends_of_the_exports_beside_the_outputs(work: Path, tmp_path: Path) -> None:
    page = write_report(work / "outputs", tmp_path / "r.html", as_of=date(2025, 3, 31)).read_text("utf-8")
    trend = page.split('id="trends"')[1]
    assert "The last 3 nights" in trend and "2025-03-29" in trend and "<svg" in trend


def test_tier_movement_counts_moves_by_the_configured_order() -> None:
    migration = pd.DataFrame(
        {
            "previous": ["regular", "silver", "gold", "(new)"],
            "regular": [5, 2, 1, 7],
            "silver": [3, 6, 1, 0],
            "gold": [1, 2, 4, 1],
            "total": [9, 10, 6, 8],
        }
    )
    moves = trends.tier_movement(migration, ["regular", "silver", "gold"])
    assert moves == {"upgraded": 3 + 1 + 2, "downgraded": 2 + 1 + 1, "new_members": 8}


def test_production_ndcg_needs_the_production_model_named() -> None:
    results = [{"model": "ranker", "protocol": "all_items", "ndcg": 0.3}]
    assert trends.production_ndcg({"results": results}) is None
    assert trends.production_ndcg({"production": "ranker", "results": results}) == 0.3
    assert trends.production_ndcg({"production": "als", "results": results}) is None
