"""Writing a simulation: all files or none, and optional tables without rows left out."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from features.columns import Table
from sources import simulator
from sources.simulator import TRUTH_DIR, SimulationConfig, Truth, simulate

TINY = SimulationConfig(consumers=400, distributors=12, products=120, days=60, seed=3)
# One consumer over a week: with this seed they order nothing, so nothing is browsed or complained about.
NO_ORDERS = SimulationConfig(consumers=1, distributors=1, products=24, days=7, seed=1, defective_share=0.0)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_a_failed_run_leaves_no_file_under_a_final_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_chunk(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(simulator, "simulate_chunk", broken_chunk)
    with pytest.raises(RuntimeError, match="disk full"):
        simulate(tmp_path, TINY)
    assert _files(tmp_path) == []


def test_optional_tables_without_rows_leave_no_file_but_orders_and_truth_are_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        summary = simulate(tmp_path, NO_ORDERS)
    assert summary.rows[Table.ORDERS] == 0
    assert summary.rows[Table.EVENTS] == summary.rows[Table.COMPLAINTS] == 0
    assert _files(tmp_path) == sorted(
        [
            f"{Table.CONSUMERS}.parquet",
            f"{Table.DISTRIBUTORS}.parquet",
            f"{Table.ORDERS}.parquet",
            f"{Table.PRODUCTS}.parquet",
            f"{TRUTH_DIR}/{Truth.COMMUNITY_TASTES}.parquet",
            f"{TRUTH_DIR}/{Truth.CONSUMER_BRAND_TASTES}.parquet",
            f"{TRUTH_DIR}/{Truth.CONSUMER_TASTES}.parquet",
            f"{TRUTH_DIR}/{Truth.CONSUMER_TRAITS}.parquet",
            f"{TRUTH_DIR}/{Truth.DEFECTIVE_PRODUCTS}.csv",
        ]
    )
    assert len(pd.read_parquet(tmp_path / f"{Table.ORDERS}.parquet")) == 0
    assert f"{Table.EVENTS}: no rows simulated" in caplog.text
    assert f"{Table.COMPLAINTS}: no rows simulated" in caplog.text
