"""The nightly Prefect flow: validate → segmentation → quality gate → recommenders → register → publish.

The flow only wires. Each task is a thin adapter over a step function (``pipelines.steps.validate``,
``pipelines.steps.segment``, ...) that reads and writes files; tasks hand each other paths
and small summaries, never large frames. Only tasks that touch files retry, and never on
a user error (``SiyuError``: bad data or config does not get better by retrying).

Folders, under the work directory (``--out`` or ``work_dir``)::

    validated/          clean tables, quarantine files, validation.json
    outputs/            this run's step outputs (recreated each run), the export's source
    mlflow.db           MLflow tracking + registry store; mlartifacts/ its artifacts
    prefect/            Prefect's home (its SQLite database) when no PREFECT_API_URL is set
    exports/<as_of>/    the published export; exports/current and exports/CURRENT point at it

With no ``PREFECT_API_URL`` Prefect starts its temporary local API for the run (a few
seconds) and keeps its database under ``<work_dir>/prefect``; nothing goes to ``~/.prefect``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.settings import PREFECT_API_URL, temporary_settings

from features.catalog import Folder, RunFile, StepFile
from features.errors import SiyuError
from pipelines import publish as publishing
from pipelines import tracking
from pipelines.config import NightlyConfig, load_config
from pipelines.steps.quality import QualityOutcome, run_quality
from pipelines.steps.validate import load_and_validate, resolve_data_dir

if TYPE_CHECKING:
    from pipelines.steps.segment import SegmentationOutcome

logger = logging.getLogger(__name__)

EPHEMERAL_STARTUP_SECONDS = 180
# Evaluation columns that are timings: logged to MLflow, left out of the export (reruns must match).
TIMING_COLUMNS = ("fit_seconds", "recommend_seconds")
# Libraries whose versions go into the export manifest (deterministic for one environment).
VERSIONED_PACKAGES = (
    "siyu",
    "numpy",
    "pandas",
    "pyarrow",
    "duckdb",
    "scikit-learn",
    "implicit",
    "lightfm-next",
    "pymc-marketing",
    "mlflow",
    "prefect",
)


def _retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry file trouble, never a ``SiyuError`` (bad data or config fails the same way again)."""
    try:
        state.result()
    except SiyuError:
        return False
    except Exception:
        return True
    return True


_FILE_TASK: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": 5,
    "retry_condition_fn": _retry_unless_user_error,
    "cache_policy": NO_CACHE,
}
_PURE_TASK: dict[str, Any] = {"cache_policy": NO_CACHE}


@dataclass(frozen=True)
class ValidatedPaths:
    """What load + validate hands on: the as-of date and where the clean tables are."""

    as_of: date
    clean_paths: dict[str, Path]
    report_path: Path

    @property
    def clean_dir(self) -> Path:
        return next(iter(self.clean_paths.values())).parent


@dataclass(frozen=True)
class RecommenderOutcome:
    """What the recommender step hands on to registration and publishing.

    ``artifact_dir``: the backend artifact of the production model's lists;
    ``validation_ndcg``: the production model's NDCG@k (all-items protocol) on the holdout
    window before the as-of date, which the champion gate compares; ``metrics``: the
    evaluator's numbers for MLflow; ``model``: the production model's name; ``log_model``:
    logs ``artifact_dir`` as a pyfunc model in the active MLflow run, returning its URI.
    """

    artifact_dir: Path
    validation_ndcg: float
    metrics: dict[str, float]
    model: str
    log_model: Callable[[Path], str]


@dataclass(frozen=True)
class NightlySummary:
    """What one nightly run did, for the CLI to print."""

    as_of: date
    work_dir: Path
    validated_dir: Path
    quality_levels: dict[str, int]
    export_dir: Path
    files: int
    mlflow_run_id: str
    segments: dict[str, int] = field(default_factory=dict)
    tiers: dict[str, int] = field(default_factory=dict)
    model: tracking.GateDecision | None = None


@flow(name="siyu-nightly", log_prints=False, validate_parameters=True)
def nightly_flow(
    config_path: Path | None = None,
    data_dir: Path | None = None,
    as_of: date | None = None,
    out_dir: Path | None = None,
    config: NightlyConfig | None = None,
) -> NightlySummary:
    """One night: validate, segment, grade quality, recommend, register, publish exports/<as_of>/."""
    settings = config or load_config(config_path)
    work = out_dir or settings.work_dir
    source = prepare_data(settings, data_dir)
    validated = validate(source, as_of, settings, work / Folder.VALIDATED)
    exports_dir = settings.publish.exports_dir or work / Folder.EXPORTS
    previous = publishing.previous_export(exports_dir, validated.as_of)
    outputs = fresh_outputs(work / Folder.OUTPUTS)
    run_id = open_run(settings, work, validated, source)
    try:
        segments = segment(validated, settings, outputs, previous)
        quality = quality_gate(validated, settings, outputs, previous)
        recommenders = train_recommenders(validated, settings, outputs)
        decision = register(recommenders, settings, work, run_id)
        sources = choose_exports(outputs, recommenders, decision, settings, work)
        published = publish(sources, exports_dir, validated.as_of, settings, run_id, decision)
        report = run_report(outputs, work, validated.as_of, run_id)
        record_run(settings, work, run_id, segments, quality.level_counts, published, report)
    except BaseException:
        close_run(settings, work, run_id, succeeded=False)
        raise
    close_run(settings, work, run_id, succeeded=True)
    return NightlySummary(
        as_of=validated.as_of,
        work_dir=work,
        validated_dir=work / Folder.VALIDATED,
        quality_levels=quality.level_counts,
        export_dir=published.export_dir,
        files=len(published.files),
        mlflow_run_id=run_id,
        segments=segments.segment_counts,
        tiers=segments.tier_counts,
        model=decision,
    )


# --- load + validate ---------------------------------------------------------------------------


@task(name="prepare data", **_FILE_TASK)
def prepare_data(settings: NightlyConfig, data_dir: Path | None) -> Path:
    """The data directory: the one given, the configured one, or the demo set (simulated once)."""
    return resolve_data_dir(settings, data_dir)


@task(name="load and validate", **_FILE_TASK)
def validate(data_dir: Path, as_of: date | None, settings: NightlyConfig, out_dir: Path) -> ValidatedPaths:
    """Read and validate ``data_dir``; clean tables and quarantine files go under ``out_dir``."""
    get_run_logger().info("validating %s", data_dir)
    validated = load_and_validate(data_dir, as_of, settings, out_dir)
    for report in validated.result.reports:
        get_run_logger().info(
            "%s: %d read, %d kept, %d quarantined",
            report.table,
            report.rows_read,
            report.rows_kept,
            report.rows_quarantined,
        )
    return ValidatedPaths(validated.as_of, validated.clean_paths, out_dir / StepFile.VALIDATION_REPORT)


@task(name="clear outputs", **_FILE_TASK)
def fresh_outputs(outputs: Path) -> Path:
    """An empty outputs folder, so that nothing from an earlier run can be published by mistake."""
    if outputs.exists():
        shutil.rmtree(outputs)
    outputs.mkdir(parents=True)
    return outputs


# --- segmentation, quality gate, recommenders --------------------------------------------------


@task(name="segmentation", **_FILE_TASK)
def segment(
    validated: ValidatedPaths, settings: NightlyConfig, outputs: Path, previous: Path | None
) -> SegmentationOutcome:
    """RFM, member tiers, clusters, CLV, distributor tiers and tags (``pipelines.steps.segment``)."""
    from pipelines.steps.segment import run_segmentation

    history = _history(previous, StepFile.CONSUMER_TIERS)
    get_run_logger().info("segmenting consumers and distributors as of %s", validated.as_of)
    return run_segmentation(validated.clean_paths, validated.as_of, settings.segmentation, outputs, history)


@task(name="quality gate", **_FILE_TASK)
def quality_gate(
    validated: ValidatedPaths, settings: NightlyConfig, outputs: Path, previous: Path | None
) -> QualityOutcome:
    """Grade every product's complaint rate; levels carry on from the previous export."""
    history = _history(previous, StepFile.QUALITY_ALERTS)
    outcome = run_quality(validated.clean_paths, validated.as_of, settings, outputs, history)
    get_run_logger().info("quality levels: %s", outcome.level_counts)
    return outcome


@task(name="train and evaluate recommenders", **_FILE_TASK)
def train_recommenders(
    validated: ValidatedPaths, settings: NightlyConfig, outputs: Path
) -> RecommenderOutcome:
    """Evaluate the models on the holdout window, fit the production model, write its lists and artifact.

    Runs after the quality gate: its ``quality_alerts.csv`` in ``outputs`` filters the lists
    (pulled products out, warned ones demoted).
    """
    from artifact.writer import write_artifact_from_lists
    from pipelines.steps.evaluate import run_evaluation
    from pipelines.steps.recommend import run_recommend

    log = get_run_logger()
    log.info("evaluating recommenders on the holdout window before %s", validated.as_of)
    evaluation = run_evaluation(validated.clean_dir, settings.recommend, as_of=validated.as_of)
    production = settings.recommend.production
    table = evaluation.table
    _write_evaluation(evaluation.to_json(), production, outputs / StepFile.EVALUATION)
    ndcg = float(
        table.loc[(table["model"] == production) & (table["protocol"] == "all_items"), "ndcg"].iloc[0]
    )
    log.info("production model %s: validation NDCG@%d %.4f", production, evaluation.k, ndcg)
    log.info("fitting %s on everything up to %s and writing the lists", production, validated.as_of)
    lists = run_recommend(
        validated.clean_paths,
        validated.as_of,
        settings,
        outputs,
        quality_alerts_path=outputs / StepFile.QUALITY_ALERTS,
    )
    meta = {"as_of": validated.as_of.isoformat(), "model": lists.model}
    artifact = write_artifact_from_lists(outputs, outputs / Folder.ARTIFACT, meta, _communities(outputs))
    return RecommenderOutcome(artifact, ndcg, _evaluation_metrics(table), lists.model, _log_pyfunc)


# --- register, publish, record -------------------------------------------------------------------


@task(name="open mlflow run", **_FILE_TASK)
def open_run(settings: NightlyConfig, work: Path, validated: ValidatedPaths, data_dir: Path) -> str:
    """Start this night's MLflow run; log the config and the data manifest."""
    with tracking.using_tracking(settings.tracking, work) as client:
        tags = {"data_dir": str(data_dir.absolute()), **_prefect_tags()}
        run_id = tracking.start_nightly_run(client, settings.tracking, work, validated.as_of, tags)
        tracking.log_config(client, run_id, settings.model_dump(mode="json"))
        tracking.log_data_manifest(client, run_id, tracking.data_manifest(validated.report_path))
    return run_id


@task(name="register model", **_FILE_TASK)
def register(
    recommenders: RecommenderOutcome, settings: NightlyConfig, work: Path, run_id: str
) -> tracking.GateDecision:
    """Log the production recommender, register it and run the champion gate."""
    return register_recommender(recommenders, settings.tracking, work, run_id)


def register_recommender(
    recommenders: RecommenderOutcome, config: tracking.TrackingConfig, work: Path, run_id: str
) -> tracking.GateDecision:
    """Log the pyfunc model in ``run_id``, register it as a new version, and apply the champion gate."""
    import mlflow

    with tracking.using_tracking(config, work) as client:
        with mlflow.start_run(run_id=run_id):
            model_uri = recommenders.log_model(recommenders.artifact_dir)
        tracking.log_metrics(client, run_id, recommenders.metrics)
        tracking.log_metrics(client, run_id, {"validation_ndcg": recommenders.validation_ndcg})
        version = tracking.register_version(
            client, config.model_name, model_uri, run_id, recommenders.validation_ndcg
        )
        return tracking.champion_gate(client, config.model_name, str(version.version), config.champion_margin)


@task(name="choose exports", **_FILE_TASK)
def choose_exports(
    outputs: Path,
    recommenders: RecommenderOutcome,
    decision: tracking.GateDecision,
    settings: NightlyConfig,
    work: Path,
) -> dict[str, Path]:
    """Export name -> file or folder: every output, with the champion's artifact and lists when it stays."""
    sources = {
        path.name: path
        for path in sorted(outputs.iterdir())
        if not path.name.startswith(".") and not path.name.endswith(".partial")
    }
    if decision.promoted:
        return sources
    champion_dir = work / Folder.CHAMPION
    if champion_dir.exists():
        shutil.rmtree(champion_dir)
    with tracking.using_tracking(settings.tracking, work) as client:
        artifact = tracking.download_model_artifact(
            client, settings.tracking.model_name, decision.champion_version, champion_dir / "model"
        )
    if _same_artifact(artifact, recommenders.artifact_dir):
        get_run_logger().info("the champion's artifact is this run's (a rerun): publishing this run's lists")
        return sources
    get_run_logger().info(
        "the new model lost the champion gate: publishing lists from champion version %s",
        decision.champion_version,
    )
    sources[Folder.ARTIFACT] = artifact
    sources.update(champion_lists(artifact, outputs, champion_dir / "lists"))
    return sources


@task(name="publish", **_FILE_TASK)
def publish(
    sources: dict[str, Path],
    exports_dir: Path,
    as_of: date,
    settings: NightlyConfig,
    run_id: str,
    decision: tracking.GateDecision,
) -> publishing.Published:
    """Write exports/<as_of>/ with its manifest, check it, then switch exports/current."""
    get_run_logger().info("publishing %d outputs to %s/%s", len(sources), exports_dir, as_of)
    run = {
        "mlflow_run_id": run_id,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **_prefect_tags(),
        **_model_fields(decision, settings),
    }
    return publishing.publish_export(
        sources, exports_dir, as_of, package_versions(), run, settings.publish.keep_last
    )


@task(name="record run", **_FILE_TASK)
def record_run(
    settings: NightlyConfig,
    work: Path,
    run_id: str,
    segments: SegmentationOutcome,
    quality_levels: dict[str, int],
    published: publishing.Published,
    report: Path,
) -> None:
    """Counts and the export manifest into the MLflow run."""
    with tracking.using_tracking(settings.tracking, work) as client:
        tracking.log_metrics(client, run_id, quality_levels, prefix="quality.")
        tracking.log_metrics(client, run_id, segments.segment_counts, prefix="segment.")
        tracking.log_metrics(client, run_id, segments.tier_counts, prefix="member_tier.")
        tracking.log_metrics(client, run_id, segments.movement_counts, prefix="tier_movement.")
        tracking.log_metrics(client, run_id, segments.distributor_tier_counts, prefix="distributor_tier.")
        tracking.log_file(client, run_id, published.manifest_path, "export")
        tracking.log_file(client, run_id, report)
        client.set_tag(run_id, "export_dir", str(published.export_dir.absolute()))


@task(name="run report", **_FILE_TASK)
def run_report(outputs: Path, work: Path, as_of: date, run_id: str) -> Path:
    """The HTML run report (work/report.html) and its Prefect markdown and table summaries."""
    return write_run_report(outputs, work, as_of, run_id)


@task(name="close mlflow run", **_PURE_TASK)
def close_run(settings: NightlyConfig, work: Path, run_id: str, succeeded: bool) -> None:
    """Mark the MLflow run FINISHED or FAILED."""
    with tracking.using_tracking(settings.tracking, work) as client:
        tracking.finish_run(client, run_id, succeeded)


# --- helpers of the recommender and report steps ---------------------------------------------------


def _write_evaluation(report: dict[str, Any], production: str, path: Path) -> None:
    """evaluation.json for the export and the report, without timings (reruns give the same file)."""
    results = [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in report["results"]]
    content = {**report, "production": production, "results": results}
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _evaluation_metrics(table: Any) -> dict[str, float]:
    """``<protocol>.<model>.<metric>`` for every number of the evaluation table."""
    metrics: dict[str, float] = {}
    for row in table.to_dict("records"):
        for name, value in row.items():
            if name not in ("model", "protocol") and isinstance(value, int | float):
                metrics[f"{row['protocol']}.{row['model']}.{name}"] = float(value)
    return metrics


def _communities(outputs: Path) -> Any:
    """``consumer_id, distributor_id`` (home distributor) from consumer_tiers.csv, or None without it."""
    import pandas as pd

    from features.columns import Col
    from features.consumer_features import ConsumerCol

    path = outputs / StepFile.CONSUMER_TIERS
    if not path.is_file():
        return None
    homes = pd.read_csv(
        path, encoding="utf-8-sig", dtype=str, usecols=[Col.CONSUMER_ID, ConsumerCol.HOME_DISTRIBUTOR_ID]
    )
    return homes.rename(columns={ConsumerCol.HOME_DISTRIBUTOR_ID: Col.DISTRIBUTOR_ID}).dropna()


def _same_artifact(first: Path, second: Path) -> bool:
    """Whether two artifacts hold the same files (their manifests list every file's SHA-256)."""
    return publishing.sha256_of(first / RunFile.MANIFEST) == publishing.sha256_of(second / RunFile.MANIFEST)


def _log_pyfunc(artifact_dir: Path) -> str:
    from pipelines.serving import log_recommender_model

    return log_recommender_model(artifact_dir).model_uri


def champion_lists(champion_artifact: Path, outputs: Path, folder: Path) -> dict[str, Path]:
    """The consumer and distributor lists rebuilt from the champion's artifact, for the same ids.

    Every consumer and distributor of this run's lists gets the champion's list of the same
    length, with this run's pulled products left out; ``reason`` says where each item came
    from (``champion: personal``, ``champion: community``, ...).
    """
    import pandas as pd

    from artifact.loader import load
    from features.columns import Col
    from models.quality import QualityCol

    champion = load(champion_artifact)
    alerts = pd.read_csv(outputs / StepFile.QUALITY_ALERTS, encoding="utf-8-sig", dtype=str)
    pulled = set(alerts.loc[alerts[QualityCol.LEVEL] == "pulled", Col.PRODUCT_ID])
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, owner, lookup in (
        (StepFile.CONSUMER_LISTS, Col.CONSUMER_ID, champion.recommend),
        (StepFile.DISTRIBUTOR_LISTS, Col.DISTRIBUTOR_ID, champion.for_distributor),
    ):
        current = pd.read_parquet(outputs / name, columns=[owner])
        sizes = current[owner].value_counts(sort=False)
        rows = [
            (owner_id, pick.product_id, rank, pick.score, f"champion: {pick.source}")
            for owner_id, k in sorted(sizes.items())
            for rank, pick in enumerate(lookup(owner_id, int(k), exclude=pulled), start=1)
        ]
        frame = pd.DataFrame(rows, columns=[owner, Col.PRODUCT_ID, "rank", "score", "reason"])
        frame.astype({"rank": "int32", "score": "float32"}).to_parquet(folder / name, index=False)
        written[name] = folder / name
    return written


def write_run_report(outputs: Path, work: Path, as_of: date, run_id: str) -> Path:
    """The HTML run report under the work dir (not exported: it names the run), plus Prefect artifacts."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    from reporting.report import summary_markdown, summary_table, write_report

    report = write_report(outputs, work / RunFile.REPORT_HTML, as_of, {"mlflow_run_id": run_id})
    create_markdown_artifact(
        summary_markdown(outputs), key="siyu-nightly-summary", description="siyu nightly"
    )
    create_table_artifact(summary_table(outputs), key="siyu-nightly-headlines", description="siyu nightly")
    return report


# --- running without a server --------------------------------------------------------------------


def run_nightly(
    config_path: Path | None = None,
    data_dir: Path | None = None,
    as_of: date | None = None,
    out_dir: Path | None = None,
    config: NightlyConfig | None = None,
) -> NightlySummary:
    """Run the flow once in this process; with no PREFECT_API_URL on a temporary local API."""
    settings = config or load_config(config_path)
    work = out_dir or settings.work_dir
    with local_prefect(work):
        return nightly_flow(
            config_path=config_path, data_dir=data_dir, as_of=as_of, out_dir=work, config=settings
        )


@contextmanager
def local_prefect(work: Path) -> Iterator[None]:
    """With no PREFECT_API_URL: Prefect's home under ``work/prefect``, no telemetry, a quiet start."""
    quiet_prefect_client()
    if PREFECT_API_URL.value():
        yield
        return
    home = Path(os.environ.get("PREFECT_HOME") or work / Folder.PREFECT).absolute()
    home.mkdir(parents=True, exist_ok=True)
    updates = {
        "home": home,
        "server.analytics_enabled": False,
        # The first start creates Prefect's database (about 15 s on 2 idle cores); Prefect's
        # default of 20 s is too tight on a busy machine.
        "server.ephemeral.startup_timeout_seconds": EPHEMERAL_STARTUP_SECONDS,
    }
    with temporary_settings(updates=updates):
        yield


def quiet_prefect_client() -> None:
    """Keep the log to what the run does: no line per API request, no temporary-server notes,
    task names on task lines, and no traceback for a user error (the CLI prints its message).

    The temporary server stops when the process exits, so its note is filtered for good.
    """
    logging.getLogger("httpx").setLevel(logging.WARNING)
    _add_filter_once(logging.getLogger("prefect"), _DropTemporaryServerNotes)
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        _add_filter_once(logging.getLogger(name), _TidyRunRecords)


def _add_filter_once(target: logging.Logger, kind: type[logging.Filter]) -> None:
    if not any(isinstance(existing, kind) for existing in target.filters):
        target.addFilter(kind())


class _TidyRunRecords(logging.Filter):
    """Prefix a task's lines with its name; drop the traceback of a ``SiyuError``."""

    def filter(self, record: logging.LogRecord) -> bool:
        task_name = getattr(record, "task_name", None)
        if task_name and not getattr(record, "_siyu_named", False):
            record.msg = f"{task_name}: {record.msg}"
            record._siyu_named = True
        if record.exc_info and isinstance(record.exc_info[1], SiyuError):
            record.exc_info, record.exc_text = None, None
        return True


class _DropTemporaryServerNotes(logging.Filter):
    """Hide Prefect's 'Starting/Stopping temporary server' notes (logged straight to ``prefect``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "temporary server" not in record.getMessage()


def package_versions() -> dict[str, str]:
    """Python and library versions for the export manifest."""
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _history(previous: Path | None, file_name: str) -> Path | None:
    """The previous export when it holds ``file_name`` (an earlier run's levels or tiers), else None."""
    if previous is None:
        return None
    if not (previous / file_name).is_file():
        logger.info("no %s in %s: history starts with this run", file_name, previous)
        return None
    return previous


def _prefect_tags() -> dict[str, str]:
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return {}
    return {"prefect_flow_run_id": str(context.flow_run.id), "prefect_flow_run_name": context.flow_run.name}


def _model_fields(decision: tracking.GateDecision, settings: NightlyConfig) -> dict[str, Any]:
    return {
        "model_name": settings.tracking.model_name,
        "model_version": decision.version,
        "model_alias": decision.alias,
        "published_model_version": decision.champion_version,
        "validation_ndcg": decision.validation_ndcg,
        "champion_ndcg": decision.champion_ndcg,
    }
