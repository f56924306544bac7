"""``siyu evaluate`` as a user runs it: CSV input through validation, rows ranked and marked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.cli import run_cli


@pytest.fixture(scope="module")
def csv_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated data set, every table written as CSV (no Parquet at all)."""
    from sources.simulator import SimulationConfig, simulate

    parquet = tmp_path_factory.mktemp("parquet")
    simulate(parquet, SimulationConfig(consumers=400, distributors=8, products=60, days=120, seed=5))
    csv = tmp_path_factory.mktemp("csv")
    for path in parquet.glob("*.parquet"):
        pd.read_parquet(path).to_csv(csv / f"{path.stem}.csv", index=False)
    return csv


def test_evaluate_reads_a_csv_directory_through_validation_and_ranks_the_rows(
    csv_data: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    config = tmp_path / "nightly.yaml"
    config.write_text("recommend:\n  production: itemknn_cosine\n")
    out, report = tmp_path / "eval", tmp_path / "eval.json"
    models = ["popularity_global", "repeat", "itemknn_cosine"]
    args = ["--data", str(csv_data), "--out", str(out), "--json", str(report), "--config", str(config)]
    assert run_cli(monkeypatch, "evaluate", *args, *(f"--model={m}" for m in models)) == 0

    assert (out / "validated" / "clean" / "orders.parquet").is_dir()  # validated, like every command
    assert (out / "validated" / "validation.json").is_file()
    printed = capsys.readouterr().out
    results = pd.DataFrame(json.loads(report.read_text())["results"])
    for protocol, part in results.groupby("protocol"):
        lines = [line for line in printed.splitlines() if re.search(rf"\b{protocol}\b", line)]
        listed = [next(m for m in models if re.search(rf"\b{m}\b", line)) for line in lines[: len(models)]]
        assert listed == part.sort_values("ndcg", ascending=False, kind="stable")["model"].tolist()
        production = next(line for line in lines if re.search(r"\bitemknn_cosine\b", line))
        assert production.lstrip().startswith("production")
        best = part[part["model"].isin(["popularity_global", "repeat"])].sort_values("ndcg").iloc[-1]
        marked = next(line for line in lines if re.search(rf"\b{best['model']}\b", line))
        assert marked.lstrip().startswith("best baseline") and marked.rstrip().endswith("+0.0%")
    assert "vs_best_baseline" in printed and "all_items: best " in printed


def test_evaluate_refuses_data_the_contract_rejects(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "orders.csv").write_text("order_id,consumer_id\nO1,C1\n")
    assert (
        run_cli(monkeypatch, "evaluate", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "e")) == 2
    )
    err = capsys.readouterr().err
    assert "error:" in err and "fix:" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        (["recommend"], ["--exclude-purchased / --keep-purchased"]),
        ([], ["-v, --verbose", "-q, --quiet"]),
    ],
    ids=["recommend", "siyu"],
)
def test_boolean_options_read_as_flags_in_help(
    command: list[str], flags: list[str], monkeypatch, capsys
) -> None:
    assert run_cli(monkeypatch, *command, "--help") == 0
    shown = capsys.readouterr().out
    assert all(flag in shown for flag in flags)
    assert "<bool>" not in shown
