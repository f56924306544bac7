"""What the nightly flow's tasks do beyond calling one step: plain functions over paths, no Prefect.

The flow (``pipelines.flow``) only wires; each of its tasks is a line or two that calls a
function here or in ``pipelines.steps``, ``pipelines.champion``, ``pipelines.publish`` and
``pipelines.tracking``. Kept apart so that every piece can be tested without a flow run.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from features.asof import AsOf
from features.catalog import Folder, RunFile, StepFile
from features.columns import Table
from features.files import write_text_atomically
from features.validate import tables_gone_missing
from features.vocabulary import EvaluationKey, ExportManifestKey, MetricCol
from pipelines import champion, tracking
from pipelines.champion import RecommenderOutcome
from pipelines.config import NightlyConfig
from pipelines.publish import Published, read_manifest

if TYPE_CHECKING:
    from models.recommenders.base import InteractionData, Recommender
    from models.recommenders.training import FittedModel
    from pipelines.steps.recommend import RecommendOutcome
    from pipelines.steps.segment import SegmentationOutcome
    from pipelines.steps.validate import Validated

logger = logging.getLogger(__name__)

# Evaluation columns that are timings: logged to MLflow, left out of the export (reruns must match).
TIMING_COLUMNS = MetricCol.TIMINGS


# --- a missing table is a decision --------------------------------------------------------------


def check_tables(previous: Path | None, present: Iterable[str], optional: Iterable[str]) -> list[str]:
    """The tables the previous export read that this run lacks, when ``data.optional_tables``
    allows it (``features.validate.tables_gone_missing``); ``previous`` None: the first run."""
    if previous is None:
        return []
    before = read_manifest(previous).get(ExportManifestKey.TABLES)
    return tables_gone_missing(before, present, optional, previous.name)


# --- MLflow runs that end however the flow ends ----------------------------------------------------

_OPEN_RUNS: dict[str, tuple[tracking.TrackingConfig, Path, str]] = {}
_OPEN_RUNS_LOCK = threading.Lock()


def open_run(
    settings: NightlyConfig, work: Path, validated: Validated, tags: dict[str, str], flow_run_id: str
) -> str:
    """Fail the runs a killed run left RUNNING, start this night's run, log config and data manifest."""
    with tracking.using_tracking(settings.tracking, work) as client:
        tracking.fail_abandoned_runs(client, settings.tracking, work)
        run_id = tracking.start_nightly_run(client, settings.tracking, work, validated.as_of, tags)
        with _OPEN_RUNS_LOCK:
            _OPEN_RUNS[flow_run_id] = (settings.tracking, work, run_id)
        tracking.log_config(client, run_id, settings.model_dump(mode="json"))
        tracking.log_data_manifest(client, run_id, tracking.data_manifest(validated.report_path))
    return run_id


def close_run(settings: NightlyConfig, work: Path, run_id: str, flow_run_id: str) -> None:
    """Mark the run FINISHED (the flow got through every task)."""
    with tracking.using_tracking(settings.tracking, work) as client:
        tracking.finish_run(client, run_id, succeeded=True)
    with _OPEN_RUNS_LOCK:
        _OPEN_RUNS.pop(flow_run_id, None)


def fail_open_run(flow_run_id: str, reason: str, status: str = "FAILED") -> str | None:
    """Close as ``status`` (FAILED; KILLED for a crash or cancel) the MLflow run opened by flow run
    ``flow_run_id`` in this process, with the reason as a tag; None when it opened none here."""
    with _OPEN_RUNS_LOCK:
        opened = _OPEN_RUNS.pop(flow_run_id, None)
    if opened is None:
        return None
    config, work, run_id = opened
    with tracking.using_tracking(config, work) as client:
        client.set_tag(run_id, tracking.ENDED_TAG, reason[:5000])
    tracking.close_run(config, work, run_id, status)
    logger.info("mlflow run %s marked %s", run_id, status)
    return run_id


def end_run_of_flow_run(
    settings: NightlyConfig, work: Path, flow_run_id: str, reason: str, status: str
) -> list[str]:
    """Close as ``status`` the RUNNING MLflow runs tagged with Prefect flow run ``flow_run_id`` (a
    hook that runs in another process than the flow, as Prefect's cancellation hooks do)."""
    with tracking.using_tracking(settings.tracking, work) as client:
        experiment = client.get_experiment_by_name(settings.tracking.experiment)
        if experiment is None:
            return []
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"attributes.status = 'RUNNING' and tags.prefect_flow_run_id = '{flow_run_id}'",
        )
        for run in runs:
            client.set_tag(run.info.run_id, tracking.ENDED_TAG, reason[:5000])
    for run in runs:
        tracking.close_run(settings.tracking, work, run.info.run_id, status)
        logger.info("mlflow run %s marked %s", run.info.run_id, status)
    return [run.info.run_id for run in runs]


# --- the recommender step -------------------------------------------------------------------------


def train_and_evaluate(
    validated: Validated,
    settings: NightlyConfig,
    outputs: Path,
    con: duckdb.DuckDBPyConnection | None = None,
) -> RecommenderOutcome:
    """Evaluate the nightly models on the holdout window, fit the production model, write its lists
    and artifact.

    The nightly evaluates ``recommend.nightly_model_names()`` (the production model and the
    cheap baselines; ``siyu evaluate`` runs the rest) on the seeded test sample. Runs after the
    quality gate: its ``quality_alerts.csv`` in ``outputs`` filters the lists (pulled products
    out, warned ones demoted). ``con``: the run's connection over the clean tables (None: the
    evaluation opens its own).
    """
    from features.engine import connect
    from pipelines.steps.recommend import production_model

    con = con if con is not None else connect(validated.clean_paths)
    production = settings.recommend.production
    store = outputs.parent / Folder.PRODUCTION_MODEL  # recommend.refit_every_days: fitted or reused

    def evaluate() -> tuple[dict[str, float], float, str, FittedModel | None, tuple[str, str] | None]:
        work = outputs.parent
        recipe = champion.champion_recipe(settings.tracking, work, settings.recommend.model_hash())
        return _evaluate_tonight(validated, settings, outputs, con, recipe)

    tonight = production_model(con, validated.as_of, settings, outputs, store, evaluate)
    logger.info("writing the lists of %s as of %s", production, validated.as_of)
    lists, artifact = _lists_and_artifact(validated, settings, outputs, con, tonight.data, tonight.model)
    evaluation = tonight.evaluation
    return RecommenderOutcome(
        artifact,
        evaluation.ndcg,
        evaluation.metrics,
        lists.model,
        _log_pyfunc,
        production,
        evaluation.sample,
        model_key=tonight.key,
        fitted_as_of=str(tonight.fitted_as_of),
        reused=tonight.reused,
        stored_model=store,
        champion_measured=evaluation.champion_measured,  # a reuse night: its fitting night's
    )


def score_with_stored(
    validated: Validated,
    settings: NightlyConfig,
    outputs: Path,
    con: duckdb.DuckDBPyConnection,
    stored_folder: Path,
) -> Path | None:
    """Tonight's lists and artifact, written over ``outputs``' by the stored production model in
    ``stored_folder`` (``models.recommenders.store``) carried onto tonight's interaction data, the
    champion's when the new model loses the gate: the night's own scoring pass, so its filters,
    reasons, outreach, similar items and fallbacks are tonight's. Returns the artifact folder, or
    None (nothing written) when the stored model cannot be read (another store format, a damaged
    file)."""
    from models.recommenders.store import read_stored
    from pipelines.steps.recommend import night_data

    stored = read_stored(stored_folder)  # None: read_stored logged why
    if stored is None:
        return None
    data = night_data(con, AsOf.of(validated.as_of), settings.recommend.interactions, stored.unfitted())
    model = stored.carried_onto(data)
    logger.info(
        "writing the lists of %s (fitted as of %s) as of %s",
        stored.configured,
        stored.key.as_of,
        validated.as_of,
    )
    return _lists_and_artifact(validated, settings, outputs, con, data, model)[1]


def _lists_and_artifact(
    validated: Validated,
    settings: NightlyConfig,
    outputs: Path,
    con: duckdb.DuckDBPyConnection,
    data: InteractionData,
    model: Recommender,
) -> tuple[RecommendOutcome, Path]:
    """Every list file of ``model`` on ``data`` (the night's scoring pass, filtered by the quality
    gate's alerts in ``outputs``) and the backend artifact made from them, both in ``outputs``."""
    from artifact.writer import write_artifact_from_lists
    from pipelines.steps.recommend import run_recommend
    from pipelines.steps.segment import read_communities

    lists = run_recommend(
        validated.clean_paths,
        validated.as_of,
        settings,
        outputs,
        quality_alerts_path=outputs / StepFile.QUALITY_ALERTS,
        con=con,
        data=data,
        model=model,
    )
    meta = {"as_of": str(validated.as_of), "model": lists.model}  # vocabulary: a value, not a column
    artifact = write_artifact_from_lists(outputs, outputs / Folder.ARTIFACT, meta, read_communities(outputs))
    return lists, artifact


def _evaluate_tonight(
    validated: Validated,
    settings: NightlyConfig,
    outputs: Path,
    con: duckdb.DuckDBPyConnection,
    recipe: champion.ChampionRecipe | None = None,
) -> tuple[dict[str, float], float, str, FittedModel | None, tuple[str, str] | None]:
    """Evaluate the nightly models and write evaluation.json: (the numbers for MLflow — with
    several folds their means and each fold's ``fold<i>.*`` —, the production model's all-items
    NDCG, the window and sample in words, the production model as the evaluation fitted it, for
    ``fit_production`` to reuse, and with ``recipe`` (version, name) of the champion's model
    settings, measured too: ``champion.measure_champion``; else None)."""
    from models.evaluation import Protocol, fold_metrics_by_name, interval_of, metrics_by_name
    from pipelines.steps.evaluate import run_evaluation

    recommend, names, measured_as = champion.measure_champion(
        settings.recommend, settings.recommend.nightly_model_names(), recipe
    )
    logger.info("evaluating %s on the holdout window before %s", ", ".join(names), validated.as_of)
    evaluation = run_evaluation(
        validated.clean_dir, recommend, as_of=validated.as_of, model_names=names, con=con
    )
    table = evaluation.table
    write_evaluation(evaluation.to_json(), recommend.production, outputs / StepFile.EVALUATION)
    chosen = (table[MetricCol.MODEL] == recommend.production) & (
        table[MetricCol.PROTOCOL] == Protocol.ALL_ITEMS
    )
    row = table.loc[chosen].iloc[0]
    low, high = interval_of(MetricCol.NDCG)
    logger.info(
        "production model %s: validation NDCG@%d %.4f (95%% CI %.4f .. %.4f, %d consumers)",
        recommend.production,
        evaluation.k,
        row[MetricCol.NDCG],
        row[low],
        row[high],
        row[MetricCol.CONSUMERS],
    )
    sample = evaluation.sample
    words = f"{evaluation.cutoff}..{evaluation.test_end}"
    if evaluation.folds > 1:  # the gate's numbers are means over these folds, every model the same
        words = f"mean over {evaluation.folds} rolling folds, the latest {words}"
    if sample is not None:
        words += f", {sample.sampled} of {sample.test_consumers} consumers, seed {sample.seed}"
    metrics = metrics_by_name(table)
    if evaluation.per_fold is not None and evaluation.folds > 1:
        metrics.update(fold_metrics_by_name(evaluation.per_fold))
    measured = (recipe.version, measured_as) if recipe is not None and measured_as is not None else None
    return metrics, float(row[MetricCol.NDCG]), words, evaluation.fitted(recommend.production), measured


def write_evaluation(report: dict[str, Any], production: str, path: Path) -> None:
    """evaluation.json for the export and the report, without timings (reruns give the same file)."""
    content = {**report, EvaluationKey.PRODUCTION: production}
    for key in (EvaluationKey.RESULTS, EvaluationKey.FOLDS):
        if key in report:
            content[key] = [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in report[key]]
    write_text_atomically(path, json.dumps(content, indent=2, sort_keys=True) + "\n")


def _log_pyfunc(artifact_dir: Path) -> str:
    from artifact.mlflow_model import log_recommender_model

    return log_recommender_model(artifact_dir).model_uri


# --- history, record, report -----------------------------------------------------------------------


def history(previous: Path | None, file_name: str) -> Path | None:
    """The previous export when it holds ``file_name`` (an earlier run's levels or tiers), else None."""
    if previous is None:
        return None
    if not (previous / file_name).is_file():
        logger.info("no %s in %s: history starts with this run", file_name, previous)
        return None
    return previous


# The metric group of the tier movement counts (record_run).
_MOVEMENT_GROUP = "movement"  # vocabulary: a value, not a column


def record_run(
    settings: NightlyConfig,
    work: Path,
    run_id: str,
    segments: SegmentationOutcome,
    quality_levels: dict[str, int],
    published: Published,
    report: Path,
    missing_tables: list[str],
) -> None:
    """Counts, the tables the run went without, and the export manifest into the MLflow run.

    Counts are grouped metric keys (``quality/<level>``, ``segments/size/<segment>``,
    ``tiers/member/<tier>``, ``tiers/movement/<movement>``, ``tiers/distributor/<tier>``); a
    name's own "/" never opens a group (``tracking.metric_key``). The churn models' numbers
    (``<prefix>.<target>.<candidate>.<metric>``) are grouped on their dots.
    """
    counts = {
        **tracking.grouped(quality_levels, "quality"),
        **tracking.grouped(segments.segment_counts, "segments", "size"),
        **tracking.grouped(segments.tier_counts, "tiers", "member"),
        **tracking.grouped(segments.movement_counts, "tiers", _MOVEMENT_GROUP),
        **tracking.grouped(segments.distributor_tier_counts, "tiers", "distributor"),
        **{tracking.metric_key(*name.split(".")): value for name, value in segments.churn_metrics.items()},
    }
    tags = {f"churn_model.{target}": chosen for target, chosen in segments.churn_chosen.items()}
    tags["export_dir"] = str(published.export_dir.absolute())
    if missing_tables:
        tags["missing_tables"] = ",".join(missing_tables)
    with tracking.using_tracking(settings.tracking, work) as client:
        tracking.log_metrics(client, run_id, counts)
        tracking.set_tags(client, run_id, tags)
        tracking.log_file(client, run_id, published.manifest_path, "export")
        tracking.log_file(client, run_id, report)


def write_run_timings(settings: NightlyConfig, work: Path, run_id: str, timings: dict[str, Any]) -> Path:
    """``run_timings.json`` in the work dir (not exported: it changes every run), the seconds of
    every task as MLflow metrics ``time/<task>``, each task's peak RSS of the process tree as
    ``memory/<task>`` and the run's size as ``run/*``, in one batch; a warning names the tasks
    that went over ``flow.step_memory_budget``."""
    path = write_text_atomically(
        work / RunFile.RUN_TIMINGS, json.dumps(timings, indent=2, sort_keys=True) + "\n"
    )
    reads = timings.get("table_reads", {})
    peaks = timings.get("task_peak_rss_bytes", {})
    largest = max(peaks, key=peaks.__getitem__) if peaks else None
    logger.info(
        "run: %.0fs wall, peak RSS %.2f GiB%s, orders Parquet read %d times",
        timings["wall_seconds"],
        timings["peak_rss_bytes"] / 2**30,
        f" (largest step: {largest}, {peaks[largest] / 2**30:.2f} GiB with its processes)" if largest else "",
        reads.get(Table.ORDERS, 0),
    )
    over = timings.get("tasks_over_memory_budget", {})
    if over:
        logger.warning(
            "over flow.step_memory_budget (%.2f GiB): %s",
            timings["memory_budget_bytes"] / 2**30,
            ", ".join(f"{task} {peak / 2**30:.2f} GiB" for task, peak in over.items()),
        )
    size = {
        "wall_seconds": timings["wall_seconds"],
        "peak_rss_bytes": timings["peak_rss_bytes"],
        "orders_scans": timings["orders_scans"],
        "memory_budget_bytes": timings.get("memory_budget_bytes"),
        "tasks_over_memory_budget": len(over),
    }
    metrics = {
        **tracking.grouped(timings["tasks"], "time"),
        **tracking.grouped(timings.get("task_peak_rss_bytes", {}), "memory"),
        **tracking.grouped(size, "run"),
    }
    with tracking.using_tracking(settings.tracking, work) as client:
        tracking.log_metrics(client, run_id, metrics)
    return path


def write_run_report(
    outputs: Path, work: Path, as_of: date | AsOf, run_id: str, exports_dir: Path | None = None
) -> Path:
    """The HTML run report under the work dir (not exported: it names the run); the flow run's
    Prefect artifacts are ``pipelines.runtime.run_link_artifacts``."""
    from reporting.report import write_report

    return write_report(outputs, work / RunFile.REPORT_HTML, as_of, {"mlflow_run_id": run_id}, exports_dir)
