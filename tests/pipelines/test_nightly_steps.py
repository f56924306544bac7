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
    assert run.data.tags["export_dir"] == str((tmp_path / "export").absolute())  # the tags' one batch


def test_run_timings_name_the_steps_over_the_memory_budget_in_the_log_and_in_mlflow(
    tmp_path: Path, caplog
) -> None:
    settings = NightlyConfig()
    with tracking.using_tracking(settings.tracking, tmp_path) as client:
        run_id = tracking.start_nightly_run(client, settings.tracking, tmp_path, "2025-12-31", {})
    timings = {
        "tasks": {"segmentation": 20.0, "publish": 0.5},
        "wall_seconds": 30.0,
        "peak_rss_bytes": 3 * 2**30,
        "orders_scans": 1,
        "task_peak_rss_bytes": {"segmentation": 3 * 2**30, "publish": 2**30},
        "memory_budget_bytes": 2 * 2**30,
        "tasks_over_memory_budget": {"segmentation": 3 * 2**30},
    }
    caplog.set_level("INFO", logger="pipelines.nightly_steps")
    path = nightly_steps.write_run_timings(settings, tmp_path, run_id, timings)
    assert path.is_file()
    lines = [record.getMessage() for record in caplog.records]
    assert "over flow.step_memory_budget (2.00 GiB): segmentation 3.00 GiB" in lines
    assert any("largest step: segmentation, 3.00 GiB" in line for line in lines)
    metrics = (
        mlflow.MlflowClient(tracking_uri=settings.tracking.tracking_uri(tmp_path))
        .get_run(run_id)
        .data.metrics
    )
    assert metrics["memory/segmentation"] == 3 * 2**30 and metrics["memory/publish"] == 2**30
    assert metrics["run/tasks_over_memory_budget"] == 1 and metrics["run/memory_budget_bytes"] == 2 * 2**30
    assert metrics["time/segmentation"] == 20.0
