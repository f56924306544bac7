"""Marketing CSVs open cleanly in Excel and cannot run formulas."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reporting.excel import write_excel_csv


def test_bom_injection_safety_and_fixed_order(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "consumer_id": ["C2", "C1", "C3"],
            "segment": ['=HYPERLINK("http://x")', "冠军客户", "@SUM(A1)"],
            "note": ["+1 call", "-", "ok"],
            "delta": [-1.5, 2.0, 0.0],
        }
    )
    path = write_excel_csv(frame, tmp_path / "out.csv", sort_by=["consumer_id"])
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(path, encoding="utf-8-sig")
    assert back["consumer_id"].tolist() == ["C1", "C2", "C3"]
    assert back["segment"].tolist() == ["冠军客户", '\'=HYPERLINK("http://x")', "'@SUM(A1)"]
    assert back["note"].tolist() == ["'-", "'+1 call", "ok"]
    assert back["delta"].tolist() == [2.0, -1.5, 0.0]  # numbers stay numbers
    assert not list(tmp_path.glob("*.partial"))


def test_same_frame_same_bytes(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": ["x", "y"], "b": [1.25, 2.5]})
    first = write_excel_csv(frame, tmp_path / "1.csv").read_bytes()
    second = write_excel_csv(frame.iloc[::-1], tmp_path / "2.csv", sort_by=["a"]).read_bytes()
    assert first == second
