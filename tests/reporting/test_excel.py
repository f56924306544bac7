"""Marketing CSVs open cleanly in Excel and cannot run formulas."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.errors import SiyuError
from reporting import excel
from reporting.excel import read_history, twin_path, write_excel_csv


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


def test_a_long_csv_written_in_blocks_has_the_bytes_of_one_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Over ``CSV_BLOCK_ROWS`` the CSV is formatted a block at a time with progress counts: the
    header and the BOM once, the formula guard in every block, missing values, quotes and
    Chinese text as one write gives them."""
    frame = pd.DataFrame(
        {
            "id": [f"C{i}" for i in range(7)],
            "text": ["=1+1", "a, b", 'say "hi"', None, "冠军客户", "-2", "ok"],
            "n": [1, 2, 3, 4, 5, 6, 7],
            "x": [0.5, None, 2.25, -1.0, 3.0, 1e-7, 2.0],
        }
    )
    whole = write_excel_csv(frame, tmp_path / "whole.csv", twin=True).read_bytes()
    monkeypatch.setattr(excel, "CSV_BLOCK_ROWS", 3)
    with caplog.at_level("INFO", logger="siyu.progress"):
        blocks = write_excel_csv(frame, tmp_path / "blocks.csv", twin=True).read_bytes()
    assert blocks == whole
    assert blocks.count(b"\xef\xbb\xbf") == 1 and blocks.count(b"id,text,n,x") == 1
    assert "writing blocks.csv: 7 / 7 rows (100%)" in caplog.text
    assert pd.read_parquet(twin_path(tmp_path / "blocks.csv")).equals(frame)


def test_a_long_csv_of_integers_and_text_written_by_duckdb_has_the_bytes_of_pandas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Integers and text only (the share kit): DuckDB writes the long file, byte for byte what one
    pandas write gives: empty and missing texts as nothing, quotes only where pandas quotes,
    the formula guard, Chinese headers, missing integers."""
    frame = pd.DataFrame(
        {
            "经销商": ["D1", "D1", "D2", "D2", "D3", "D3", "D4"],
            "rank": [1, 2, 1, 2, 1, 2, 1],
            "text": ["=1+1", "", None, 'say "hi"', "a, b", "line\nend", " 冠军 "],
            "buyers": pd.array([3, None, 0, 1, 2, 5, 7], dtype="Int64"),
        }
    )
    whole = write_excel_csv(frame, tmp_path / "whole.csv").read_bytes()
    monkeypatch.setattr(excel, "CSV_BLOCK_ROWS", 3)
    monkeypatch.setattr(excel, "_write_blocks", _not_called)
    with caplog.at_level("INFO", logger="siyu.progress"):
        assert write_excel_csv(frame, tmp_path / "duckdb.csv").read_bytes() == whole
    assert "writing duckdb.csv: 5 / 5 columns (100%)" in caplog.text
    assert not list(tmp_path.glob("*.body"))


def _not_called(*_: object) -> None:
    raise AssertionError("written in pandas blocks, not by DuckDB")


def test_a_long_csv_with_other_columns_is_not_written_by_duckdb(tmp_path: Path) -> None:
    """Floats, booleans, dates or texts mixed with numbers: DuckDB would not write them as pandas does."""
    for column in ([0.5, 1.0], [True, False], pd.to_datetime(["2025-01-01", "2025-01-02"]), ["a", 1]):
        frame = pd.DataFrame({"id": ["C1", "C2"], "value": column})
        assert not excel._write_with_duckdb(frame, tmp_path / "x.csv", "writing x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_a_first_column_name_that_needs_quotes_is_written_in_pandas_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB writes the BOM as the first name's first character; a name it would quote (here a
    comma) would put the quote before the BOM, so pandas writes that file, the same bytes."""
    frame = pd.DataFrame({"id, name": ["C1", "C2", "C3"], "n": [1, 2, 3], "text": ["=x", "", "ok"]})
    whole = write_excel_csv(frame, tmp_path / "whole.csv").read_bytes()
    assert whole.startswith(b'\xef\xbb\xbf"id, name",n,text\n')
    monkeypatch.setattr(excel, "CSV_BLOCK_ROWS", 2)
    assert not excel._write_with_duckdb(frame, tmp_path / "x.csv", "writing x.csv")
    assert write_excel_csv(frame, tmp_path / "blocks.csv").read_bytes() == whole


def test_the_twin_keeps_the_exact_frame_and_history_reads_it(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"consumer_id": ["=HYPERLINK(1)", "+86138", "NA", "-2"], "tier": ["a", "b", "c", "d"]}
    )
    path = write_excel_csv(frame, tmp_path / "consumer_tiers.csv", twin=True)
    assert twin_path(path).name == "consumer_tiers.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(twin_path(path)), frame)
    assert (
        read_history(path, ["consumer_id"], "fix it")["consumer_id"].tolist() == frame["consumer_id"].tolist()
    )
    assert not list(tmp_path.glob("*.partial"))


def test_history_from_a_csv_without_twin_undoes_the_formula_guard(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"id": ["=X", "+1", "-2", "@a", "NA", "null", "plain"], "note": ["", "x", "", "", "", "", ""]}
    )
    path = write_excel_csv(frame, tmp_path / "old.csv")  # no twin: an export made before twins existed
    back = read_history(path, ["id", "note"], "fix it")
    assert back["id"].tolist() == frame["id"].tolist()
    assert back["note"].isna().sum() == 6  # empty cells stay missing


def test_history_that_cannot_be_read_names_the_file_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "broken.csv").write_bytes(b"\xff\xfe\x00id\n")
    with pytest.raises(SiyuError, match=r"broken.csv: cannot be read .*\n  fix: fix it"):
        read_history(tmp_path / "broken.csv", ["id"], "fix it")
    (tmp_path / "no_id.csv").write_text("other\n1\n", encoding="utf-8")
    with pytest.raises(SiyuError, match=r"no_id.csv: missing column\(s\) \['id'\]\n  fix: fix it"):
        read_history(tmp_path / "no_id.csv", ["id"], "fix it")
