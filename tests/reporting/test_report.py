"""The run report: every section from hand-made run files, 'not produced' for absent ones, no network."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from features.catalog import RunFile, StepFile
from reporting import charts
from reporting.excel import write_excel_csv
from reporting.report import NOT_PRODUCED, summary_markdown, summary_table, write_report

TITLES = (
    "Segment sizes",
    "Member-tier migration",
    "RFM heat map (recency × frequency)",
    "Customer lifetime value",
    "Distributor tiers",
    "Recommenders against the baselines",
    "Product quality alerts",
    "Trends across the last nights",
)


def write_run(run_dir: Path, first_run: bool = False) -> Path:
    """A small run folder in the formats the segmentation, quality and evaluation steps write."""
    write_excel_csv(
        pd.DataFrame(
            {
                "rfm_segment": ["Champions", "At risk", "No purchase yet"],
                "consumers": [3, 2, 1],
                "share": [0.5, 0.3333, 0.1667],
                "mean_recency_days": [2.0, 200.0, None],
                "mean_orders": [9.0, 2.0, 0.0],
                "mean_monetary": [1500.0, 80.0, 0.0],
            }
        ),
        run_dir / StepFile.RFM_SEGMENTS,
    )
    grid = [(r, f) for r in range(5, 0, -1) for f in range(5, 0, -1)]
    write_excel_csv(
        pd.DataFrame(
            {
                "r_score": [r for r, _ in grid],
                "f_score": [f for _, f in grid],
                "rfm_segment": ["Champions" if r == 5 else "At risk" for r, _ in grid],
                "consumers": [3 if (r, f) == (5, 5) else (2 if (r, f) == (1, 3) else 0) for r, f in grid],
                "share": 0.0,
                "mean_monetary": 10.0,
            }
        ),
        run_dir / StepFile.RFM_GRID,
    )
    write_excel_csv(
        pd.DataFrame(
            {
                "previous": ["regular", "gold", "(new)"],
                "regular": [0, 0, 6] if first_run else [1, 1, 2],
                "gold": [0, 0, 0] if first_run else [1, 1, 0],
                "total": [0, 0, 6] if first_run else [2, 2, 2],
            }
        ),
        run_dir / StepFile.TIER_MIGRATION,
    )
    write_excel_csv(
        pd.DataFrame({"member_tier": ["regular", "gold"], "min_spend": [0, 2000], "min_orders": [0, 6]}),
        run_dir / StepFile.MEMBER_TIERS,
    )
    write_excel_csv(
        pd.DataFrame(
            {
                "consumer_id": [f"C{i}" for i in range(6)],
                "frequency": [9, 8, 7, 2, 1, 0],
                "member_tier": ["gold", "gold", "regular", "regular", "regular", "regular"],
                "expected_value_90d": [900.0, 450.5, 120.0, 3.0, 0.2, None],
            }
        ),
        run_dir / StepFile.CONSUMER_TIERS,
    )
    write_excel_csv(
        pd.DataFrame(
            {
                "distributor_id": ["D1", "D2", "D3"],
                "gmv_rank": [1, 2, 3],
                "distributor_tier": ["pillar", "growth", "dormant"],
                "month": "2025-03",
                "gmv_month": [5000.0, 1200.0, 0.0],
                "gmv_share": [0.8065, 0.1935, 0.0],
                "growth": [0.1, 0.5, None],
                "active_customers": [40, 12, 0],
                "repeat_rate": [0.3, 0.1, None],
                "coaching": [True, False, False],
            }
        ),
        run_dir / StepFile.DISTRIBUTOR_TIERS,
    )
    write_excel_csv(
        pd.DataFrame(
            {
                "product_id": ["P1", "<script>alert(1)</script>", "P3", "P4"],
                "supplier_id": ["S1", "S1", "S2", "S2"],
                "category": ["snacks", "snacks", "beauty", "beauty"],
                "orders_30d": [100, 40, 10, 50],
                "complaints_30d": [1, 9, 0, 4],
                "complaint_rate": [0.01, 0.225, 0.0, 0.08],
                "rate_lower_bound": [0.002, 0.12, 0.0, 0.03],
                "threshold": [0.02, 0.02, 0.03, 0.03],
                "level": ["normal", "pulled", "normal", "warning"],
                "change": ["unchanged", "escalated", "unchanged", "new"],
                "since": "2025-03-31",
            }
        ),
        run_dir / StepFile.QUALITY_ALERTS,
    )
    write_excel_csv(
        pd.DataFrame({"supplier_id": ["S1"], "products": [2]}), run_dir / StepFile.QUALITY_SUPPLIERS
    )
    results = [
        {"model": model, "protocol": protocol, "consumers": 50, "ndcg": ndcg, "recall": 0.2, "precision": 0.1}
        for protocol in ("all_items", "new_items")
        for model, ndcg in (("ranker", 0.30), ("als", 0.18), ("popularity_global", 0.20), ("repeat", 0.25))
    ]
    evaluation = {"cutoff": "2025-03-01", "test_end": "2025-03-31", "k": 10, "results": results}
    (run_dir / StepFile.EVALUATION).write_text(json.dumps(evaluation), encoding="utf-8")
    return run_dir


@pytest.fixture
def page(tmp_path: Path) -> str:
    out = write_report(write_run(tmp_path / "run"), tmp_path / "report.html")
    return out.read_text(encoding="utf-8")


def test_every_section_renders_from_its_files(page: str) -> None:
    for title in TITLES:
        assert f"<h2>{title}</h2>" in page.replace("&amp;", "&")
    assert NOT_PRODUCED not in page.split("Published lists")[0]  # only the lists, which this run lacks
    assert "At risk" in page and "6 consumers" in page  # segment sizes
    assert "Month 2025-03: 3 distributors" in page
    assert "+20%" in page  # ranker 0.30 against the best baseline, repeat 0.25
    # the CLV bands, the NDCG chart, the category rates; no trend chart on a first night
    assert page.count("<svg") == 3


def test_the_page_is_self_contained_and_escapes_text(page: str) -> None:
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_alerts_are_ordered_worst_level_first(page: str) -> None:
    alerts = page.split("Top alerts")[1]
    assert alerts.index("alert(1)") < alerts.index("P4")  # pulled before warning
    assert ">P1<" not in alerts and ">P3<" not in alerts  # normal products are not alerts


def test_a_first_run_says_there_is_no_movement_yet(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", first_run=True)
    text = write_report(run, tmp_path / "report.html").read_text(encoding="utf-8")
    assert "First run" in text
    moved = write_report(write_run(tmp_path / "moved"), tmp_path / "moved.html").read_text(encoding="utf-8")
    assert "First run" not in moved


def test_absent_files_are_reported_not_fatal(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_excel_csv(
        pd.read_csv(write_run(tmp_path / "full") / StepFile.QUALITY_ALERTS), run / StepFile.QUALITY_ALERTS
    )
    text = write_report(run, tmp_path / "report.html").read_text(encoding="utf-8")
    assert text.count(f"{NOT_PRODUCED} (no ") == len(TITLES) - 1
    assert "rfm_segments.csv" in text and "evaluation.json" in text  # says which file is missing
    assert "4 products graded" in text


def test_the_same_files_give_the_same_page(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run")
    first = write_report(run, tmp_path / "a.html").read_bytes()
    assert write_report(run, tmp_path / "b.html").read_bytes() == first


def test_run_facts_come_from_the_export_manifest(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run")
    manifest = {"as_of": "2025-03-31", "run": {"mlflow_run_id": "abc123", "model_version": "4"}}
    (run / RunFile.MANIFEST).write_text(json.dumps(manifest))
    text = write_report(run, tmp_path / "report.html").read_text(encoding="utf-8")
    assert "siyu nightly run — 2025-03-31" in text and "abc123" in text


def test_summaries_for_prefect(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run")
    rows = summary_table(run)
    values = {(r["area"], r["measure"]): r["value"] for r in rows}
    assert values[("segments", "consumers")] == "6"
    assert values[("quality levels", "pulled")] == "1"
    assert values[("recommenders", "best ndcg, all_items")] == "ranker 0.3000 (best baseline repeat 0.2500)"
    assert values[("distributor tiers", "coaching list")] == "1"
    markdown = summary_markdown(run)
    assert "| member tiers | gold | 2 |" in markdown
    empty = tmp_path / "empty"
    empty.mkdir()
    assert {r["value"] for r in summary_table(empty)} == {NOT_PRODUCED}


def test_a_segment_name_with_markup_is_shown_as_text(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run")
    hostile = "<script>alert('x')</script>"
    for name in (StepFile.RFM_SEGMENTS, StepFile.RFM_GRID):
        frame = pd.read_csv(run / name)
        frame["rfm_segment"] = frame["rfm_segment"].replace("Champions", hostile)
        write_excel_csv(frame, run / name)
    page = write_report(run, tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page
    escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
    assert page.count(escaped) == 1 + 5  # the segment bar, and the five R = 5 cells of the heat map


def test_without_matplotlib_the_tables_still_carry_the_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(charts, "_figure", lambda width, height: None)
    page = write_report(write_run(tmp_path / "run"), tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<svg" not in page and "<figure" not in page
    assert "0.3000" in page and "+20%" in page  # the ranker's NDCG and its lift, in the table


def test_every_template_ships_in_the_wheel() -> None:
    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    templates = [
        p.relative_to(root / "reporting").as_posix() for p in (root / "reporting/templates").rglob("*")
    ]
    files = [t for t in templates if not t.endswith("/") and (root / "reporting" / t).is_file()]
    assert files, "no templates found"
    shipped = [f for f in files if any(fnmatch.fnmatch(f, p) for p in patterns.get("reporting", []))]
    assert shipped == files
