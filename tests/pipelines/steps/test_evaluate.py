"""siyu evaluate end to end on a tiny simulated data set, and the recommend: config section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from models.recommenders.training import ModelSpec, RecommendConfig
from sources.simulator import SimulationConfig, simulate
from tests.cli import run_cli


@pytest.fixture(scope="module")
def tiny_platform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("platform")
    simulate(out, SimulationConfig(consumers=600, distributors=10, products=80, days=150, seed=5))
    return out


def test_evaluate_prints_one_table_and_writes_json(
    tiny_platform: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    report = tmp_path / "evaluation.json"
    args = [
        "evaluate",
        "--data",
        str(tiny_platform),
        "--holdout-days",
        "30",
        "--k",
        "5",
        "--json",
        str(report),
        "--out",
        str(tmp_path / "evaluation"),
    ]
    assert run_cli(monkeypatch, *args, "--model", "repeat", "--model", "popularity_global") == 0
    out = capsys.readouterr().out
    assert "metrics at k=5" in out and "popularity_global" in out and "new_items" in out
    assert "test consumers (seed 0)" in out and "ndcg_ci_low" in out and "recall_ci_low" not in out
    written = json.loads(report.read_text())
    assert written["k"] == 5
    assert written["sample"]["sampled"] == written["sample"]["test_consumers"]  # fewer than 50,000
    assert all(r["ndcg_ci_low"] <= r["ndcg"] <= r["ndcg_ci_high"] for r in written["results"])
    assert {(r["model"], r["protocol"]) for r in written["results"]} == {
        (m, p) for m in ("repeat", "popularity_global") for p in ("all_items", "new_items")
    }
    assert all(0 <= r["ndcg"] <= 1 for r in written["results"])


def test_evaluate_refuses_unknown_models_and_bad_options(
    tiny_platform: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    out = ["--out", str(tmp_path / "evaluation")]
    assert run_cli(monkeypatch, "evaluate", "--data", str(tiny_platform), *out, "--model", "nope") == 2
    assert "not configured" in capsys.readouterr().err
    assert not (tmp_path / "evaluation").exists()  # refused before validating anything
    assert run_cli(monkeypatch, "evaluate", "--data", str(tiny_platform), *out, "--k", "0") == 2
    assert run_cli(monkeypatch, "evaluate", "--data", str(tiny_platform / "missing"), *out) == 2
    assert "data directory not found" in capsys.readouterr().err


def test_recommend_config_checks_kinds_parameters_and_production() -> None:
    config = RecommendConfig()
    assert config.models[config.production].kind == "ranker"
    with pytest.raises(ValidationError, match="unknown model kind"):
        ModelSpec(kind="deep_magic")
    with pytest.raises(ValidationError, match="unknown parameter"):
        ModelSpec(kind="als", params={"factorz": 8})
    with pytest.raises(ValidationError, match="production model"):
        RecommendConfig(production="missing")
    with pytest.raises(ValidationError, match="Extra inputs"):
        RecommendConfig.model_validate({"interactions": {"half_life": 3}})
