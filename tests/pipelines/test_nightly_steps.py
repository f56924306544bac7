"""record_run: what a night's MLflow run holds beyond the flow test's counts (churn model choice)."""

from __future__ import annotations

from pathlib import Path

import mlflow

from pipelines import nightly_steps, tracking
from pipelines.config import NightlyConfig
from pipelines.publish import Published
from pipelines.steps.segment import SegmentationOutcome


def test_record_run_logs_the_churn_models_validation_metrics_and_choice(tmp_path: Path) -> None:
    settings = NightlyConfig()
    with tracking.using_tracking(settings.tracking, tmp_path) as client:
        run_id = tracking.start_nightly_run(client, settings.tracking, tmp_path, "2025-12-31", {})
    segments = SegmentationOutcome(
        paths={},
        consumers=3,
        buyers=2,
        segment_counts={"Champions": 2},
        tier_counts={"regular": 3},
        movement_counts={},
        distributor_tier_counts={},
        coaching=0,
        clusters=None,
        clv_set_aside=None,
        churn_metrics={"churn_validation.churn.logistic.auc": 0.71},
        churn_chosen={"churn": "logistic", "purchases": "bgnbd"},
    )
    manifest, report = tmp_path / "manifest.json", tmp_path / "report.html"
    manifest.write_text("{}")
    report.write_text("<html></html>")
    published = Published(tmp_path / "export", manifest, (), None)
    nightly_steps.record_run(settings, tmp_path, run_id, segments, {"normal": 5}, published, report, [])
    run = mlflow.MlflowClient(tracking_uri=settings.tracking.tracking_uri(tmp_path)).get_run(run_id)
    assert run.data.metrics["churn_validation/churn/logistic/auc"] == 0.71
    assert run.data.tags["churn_model.churn"] == "logistic"
    assert run.data.tags["churn_model.purchases"] == "bgnbd"
