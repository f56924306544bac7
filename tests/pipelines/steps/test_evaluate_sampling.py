"""The evaluate step on a seeded consumer sample, the run's connection, and what the nightly evaluates."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from features.engine import connect
from features.vocabulary import EvaluationKey, MetricCol, SampleKey
from models.evaluation import Protocol
from models.recommenders.training import RecommendConfig
from pipelines.steps.evaluate import contract_tables, run_evaluation
from sources.simulator import SimulationConfig, simulate

MODELS = ["repeat", "popularity_global"]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("platform")
    simulate(out, SimulationConfig(consumers=600, distributors=10, products=80, days=150, seed=5))
    return out


def _config(sample: int | None, seed: int = 0) -> RecommendConfig:
    return RecommendConfig.model_validate({"evaluation": {"sample_consumers": sample, "seed": seed}})


def _metrics(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=list(MetricCol.TIMINGS))


def test_every_model_is_measured_on_the_same_seeded_sample(platform: Path) -> None:
    report = run_evaluation(platform, _config(40), model_names=MODELS)
    all_items = report.table[report.table[MetricCol.PROTOCOL] == Protocol.ALL_ITEMS]
    assert all_items[MetricCol.CONSUMERS].tolist() == [40, 40]
    assert report.sample is not None and report.sample.sampled == 40 and report.sample.test_consumers > 40
    written = report.to_json()[EvaluationKey.SAMPLE]
    assert written[SampleKey.SAMPLED] == 40 and written[SampleKey.SEED] == 0
    again = run_evaluation(platform, _config(40), model_names=MODELS[::-1])
    by_model = _metrics(again.table).set_index([MetricCol.MODEL, MetricCol.PROTOCOL])
    pd.testing.assert_frame_equal(
        by_model.loc[_metrics(report.table).set_index([MetricCol.MODEL, MetricCol.PROTOCOL]).index],
        _metrics(report.table).set_index([MetricCol.MODEL, MetricCol.PROTOCOL]),
    )


def test_intervals_hold_the_metric_and_a_larger_sample_narrows_them(platform: Path) -> None:
    small = run_evaluation(platform, _config(40), model_names=["repeat"]).table.iloc[0]
    whole = run_evaluation(platform, _config(None), model_names=["repeat"]).table.iloc[0]
    for row in (small, whole):
        for metric, low, high in MetricCol.INTERVALS:
            assert row[low] <= row[metric] <= row[high], metric
    assert whole[MetricCol.CONSUMERS] > small[MetricCol.CONSUMERS]
    width = MetricCol.NDCG_HIGH, MetricCol.NDCG_LOW
    assert whole[width[0]] - whole[width[1]] < small[width[0]] - small[width[1]]


def test_the_runs_connection_is_used_when_given(platform: Path, tmp_path: Path) -> None:
    con = connect(contract_tables(platform))
    report = run_evaluation(tmp_path / "no-data-here", _config(40), model_names=["repeat"], con=con)
    assert report.table[MetricCol.CONSUMERS].iloc[0] == 40


def test_the_nightly_skips_the_expensive_models_but_never_the_production_one() -> None:
    config = RecommendConfig()
    names = config.nightly_model_names()
    assert names[0] == "ranker" and not {"als", "bpr", "lightfm"} & set(names)
    assert {"repeat", "ease", "itemknn_bm25", "popularity_global"} <= set(names)
    chosen = RecommendConfig.model_validate(
        {"production": "bpr", "evaluation": {"nightly_models": ["repeat"]}}
    )
    assert chosen.nightly_model_names() == ["bpr", "repeat"]
    with pytest.raises(ValidationError, match="nightly_models names unknown models"):
        RecommendConfig.model_validate({"evaluation": {"nightly_models": ["nope"]}})
    with pytest.raises(ValidationError, match="sample_consumers"):
        RecommendConfig.model_validate({"evaluation": {"sample_consumers": 0}})


def test_the_shipped_nightly_evaluates_the_production_model_and_the_run_reports_baselines() -> None:
    """configs/nightly.yaml: the nightly measures what the run report's lift needs (issue 18: item-kNN and
    EASE went to siyu evaluate), and its ranker has the code's default components, so that the Online
    Retail benchmark (which builds ``RankerRecommender()``) measures the nightly's ranker."""
    from models.recommenders.ranker import DEFAULT_COMPONENTS
    from pipelines.config import load_config
    from reporting.sections import BASELINE_MODELS

    recommend = load_config(Path(__file__).parents[3] / "configs" / "nightly.yaml").recommend
    assert recommend.nightly_model_names() == [recommend.production, *BASELINE_MODELS]
    assert recommend.models[recommend.production].params["components"] == DEFAULT_COMPONENTS
