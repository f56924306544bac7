"""The refit cadence through the whole nightly: a fit night, then a night that carries its model."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
import yaml

from features.catalog import Folder, RunFile, StepFile
from pipelines.flow import run_nightly
from sources.simulator import SimulationConfig, simulate
from tests.pipelines.test_flow import CONFIG

pytestmark = pytest.mark.usefixtures("shared_prefect_server")  # its nights share one (tests/conftest.py)


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("cadence-nightly")
    data = root / "data"
    simulate(data, SimulationConfig(consumers=300, distributors=10, products=50, days=120, seed=11))
    config_path = root / "nightly.yaml"
    config_path.write_text(yaml.safe_dump(CONFIG))
    work = root / "work"
    latest = pd.read_parquet(data / "orders.parquet")["ordered_at"].max().date()
    fitted = run_nightly(
        config_path=config_path, data_dir=data, as_of=latest - timedelta(days=1), out_dir=work
    )
    fit_evaluation = (fitted.export_dir / StepFile.EVALUATION).read_text()
    fit_timings = json.loads((work / RunFile.RUN_TIMINGS).read_text())["tasks"]
    reused = run_nightly(config_path=config_path, data_dir=data, as_of=latest, out_dir=work)  # a day on
    timings = json.loads((work / RunFile.RUN_TIMINGS).read_text())["tasks"]
    return {
        "work": work,
        "fitted": fitted,
        "reused": reused,
        "fit_evaluation": fit_evaluation,
        "fit_timings": fit_timings,
        "timings": timings,
    }


def test_the_next_night_carries_the_stored_champion_and_publishes_its_own_lists(nights: dict) -> None:
    fitted, reused = nights["fitted"], nights["reused"]
    assert (nights["work"] / Folder.PRODUCTION_MODEL / "state.npz").is_file()
    assert "recommenders: evaluation" in nights["fit_timings"]
    assert "recommenders: carry stored model" in nights["timings"]
    assert "recommenders: evaluation" not in nights["timings"]
    # the same fitted model on tonight's data keeps the alias and publishes tonight's lists
    assert reused.model.alias == "champion" and reused.model.version != fitted.model.version
    assert reused.model.champion_version == reused.model.version
    assert reused.model.validation_ndcg == fitted.model.validation_ndcg
    assert (reused.export_dir / StepFile.EVALUATION).read_text() == nights["fit_evaluation"]
    assert not (nights["work"] / Folder.CHAMPION).exists()  # nothing taken from the champion's artifact
