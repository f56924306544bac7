"""``siyu evaluate-segments``: the held-out evaluation files, and one message when the data end too early."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli import run_cli
from tests.models.test_churn import simulated_orders

CONFIG = """
segmentation:
  clv:
    horizon_days: 60
    min_customers: 20
  churn:
    candidates: [logistic, logistic_rf]
    forecast_candidates: [gradient_boosting]
"""


def _data(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    data.mkdir()
    simulated_orders().to_parquet(data / "orders.parquet")
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    return data, config


def test_evaluate_segments_scores_candidates_and_baselines_on_the_held_out_window(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    data, config = _data(tmp_path)
    out = tmp_path / "eval"
    args = ["--data", str(data), "--as-of", "2025-12-31", "--out", str(out), "--config", str(config)]
    assert run_cli(monkeypatch, "evaluate-segments", *args, "--horizon-days", "30") == 0
    document = json.loads((out / "segment_evaluation.json").read_text())
    assert document["horizon_days"] == 30 and document["chosen"]["churn"] in {"logistic", "logistic_rf"}
    roles = {(row["target"], row["candidate"]): row["role"] for row in document["test"]}
    assert roles[("churn", "recency")] == "baseline" and roles[("purchases", "rate_x_time")] == "baseline"
    assert roles[("churn", document["chosen"]["churn"])] == "chosen"
    assert sum(row["buyers"] for row in document["calibration"]) == document["buyers"]["test"]
    assert (out / "churn_reliability.svg").stat().st_size > 0
    assert "churn calibration" in capsys.readouterr().out


def test_a_test_window_past_the_data_is_one_message(tmp_path: Path, monkeypatch, capsys) -> None:
    data, config = _data(tmp_path)
    args = [
        "--data",
        str(data),
        "--as-of",
        "2026-02-01",
        "--config",
        str(config),
        "--out",
        str(tmp_path / "e"),
    ]
    assert run_cli(monkeypatch, "evaluate-segments", *args) == 2
    err = capsys.readouterr().err
    assert "before the end of the 60-day test window" in err and "fix:" in err and "Traceback" not in err
