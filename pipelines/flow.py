"""The nightly Prefect flow: validate → segment → quality gate → recommend → register → publish → promote.

The flow only wires: each task is a line or two over a function of ``pipelines.steps``,
``pipelines.nightly_steps``, ``pipelines.champion``, ``pipelines.publish`` or
``pipelines.tracking``; tasks hand each other paths and small summaries, never large
frames. Only tasks that touch files retry, and never on a user error (``SiyuError``).
The Prefect set-up (local API, log filters, task options) is ``pipelines.runtime``; the
work directory's ownership and lock are ``pipelines.workdir``.

Folders, under the work directory (``--out`` or ``work_dir``)::

    .siyu-workdir       marker: siyu owns this folder (a foreign non-empty folder is refused)
    .siyu.lock(.json)   the lock one run holds, and who holds it (pid, host, command) since when
    .siyu-night.json    which night outputs/ holds and whether it finished (``pipelines.resume``)
    validated/          clean tables, quarantine files, validation.json
    duckdb_tmp/         DuckDB's spill folder while the run's engine session is open (engine:)
    spark_tmp/          Spark's spill folder while a Spark session is open (engine.kind: spark)
    run_timings.json    seconds and peak RSS per task (flow.step_memory_budget), wall, peak RSS, Parquet
                        reads of orders (the benchmark reads it)
    outputs/            this run's step outputs (siyu's own files cleared each run), the export's source
    mlflow.db           MLflow tracking + registry store; mlartifacts/ its artifacts
    production_model/   the production model kept between fits (recommend.refit_every_days)
    churn_choice.json   the churn / value models' choice kept between nights
                        (segmentation.churn.rechoose_every_days, ``models.churn_choice``)
    churn_models.npz    the chosen churn / value models as fitted, kept between refits
                        (segmentation.churn.refit_every_days, ``models.churn_choice``)
    cluster_choice.json the clusters' k kept between nights
                        (segmentation.clusters.rechoose_every_days, ``models.cluster_choice``)
    prefect/            Prefect's home (its SQLite database) when no PREFECT_API_URL is set;
                        prefect/task_results/ the persisted results of the resumable steps
    exports/<as_of>     the published export; exports/current and exports/CURRENT point at it

Flow runs are named ``nightly-<as_of>`` (``nightly-latest`` until validation has found the latest
order day, then renamed). The flow and every task stop as TimedOut after ``flow.timeout_minutes``
and ``flow.task_timeout_minutes``. The MLflow run ends FINISHED after the last task, FAILED from
the flow's ``on_failure`` hook (an error, a timeout) and KILLED from its ``on_crashed`` /
``on_cancellation`` hooks (Ctrl+C, SIGTERM, a cancel in the UI); a run a ``kill -9`` left RUNNING
is marked FAILED by the next run in the same work directory. None of them touches the exports:
``exports/current`` only ever moves in ``publish``.

Segmentation, the quality gate and the recommenders are resumable (``pipelines.resume``): their
results are persisted and cached for the night, so a retried or rerun night that failed later
skips them. Segmentation and the quality gate run side by side (each on its own cursor of the
session) when ``flow.concurrent_steps`` allows. Log lines of siyu's modules reach the Prefect UI
(``pipelines.runtime.forward_module_logs``); the flow run gets link artifacts to its MLflow run,
its report and its export, and a summary.

After validation the flow opens one DuckDB session (``features.engine``: the clean orders read
once, shared views, ``engine:`` memory limit and spill folder) and hands it to segmentation,
the quality gate and the recommenders; it is closed before registration. With ``engine.kind:
spark`` (``--engine spark``) it is a connection on a Spark session instead (``pipelines.run_engine``,
docs/spark.md), and that session is the night's only one: a task starts it before validation, which
runs on it, and a task stops it and its JVM once, when the engine block ends however it ends, a
failed validation included (``night_engine``). Every task's seconds
go to ``run_timings.json`` (``pipelines.runtime.timed``), and the steps' progress to Prefect
progress artifacts (``pipelines.runtime.ProgressArtifacts``).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from prefect import flow, get_run_logger, task
from prefect.context import FlowRunContext
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from features.asof import AsOf
from features.catalog import Folder, StepFile, output_names
from features.spark_engine import raise_readable
from pipelines import champion, nightly_steps, resume, tracking, workdir
from pipelines import publish as publishing
from pipelines.champion import RecommenderOutcome
from pipelines.config import NightlyConfig, load_config
from pipelines.run_engine import EngineRun, engine_record, start_engine_run
from pipelines.runtime import (
    FlowConfig,
    Fn,
    TaskLimits,
    file_task,
    flow_deadline,
    forward_module_logs,
    freeze_long_lived,
    local_prefect,
    paused_collection,
    progress_artifacts,
    pure_task,
    quiet_prefect_client,
    resumable_task,
    run_clock,
    run_link_artifacts,
    terminate_as_interrupt,
    timed,
)
from pipelines.steps.quality import QualityOutcome, run_quality
from pipelines.steps.validate import Validated, load_and_validate, resolve_data_dir
from pipelines.steps.workbooks import ChildProcess, run_workbooks, segment_workbooks

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from pipelines.steps.segment import SegmentationOutcome


@dataclass(frozen=True)
class NightlySummary:
    """What one nightly run did, for the CLI to print."""

    as_of: date | AsOf
    work_dir: Path
    validated_dir: Path
    quality_levels: dict[str, int]
    export_dir: Path
    files: int
    mlflow_run_id: str
    segments: dict[str, int] = field(default_factory=dict)
    tiers: dict[str, int] = field(default_factory=dict)
    model: tracking.GateDecision | None = None
    missing_tables: list[str] = field(default_factory=list)


def _run_name() -> str:
    """``nightly-<as_of>``; ``nightly-latest`` when the as-of is the latest order day (renamed once known)."""
    from prefect.runtime import flow_run

    as_of = flow_run.parameters.get("as_of")
    return f"nightly-{as_of}" if as_of else "nightly-latest"


def _mlflow_run_failed(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow hook (failure, timeout): the night's MLflow run ends FAILED, with the reason as a tag."""
    nightly_steps.fail_open_run(str(flow_run.id), _reason(state), "FAILED")


def _mlflow_run_crashed(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow hook (crash: Ctrl+C, SIGTERM): the night's MLflow run ends KILLED."""
    nightly_steps.fail_open_run(str(flow_run.id), _reason(state), "KILLED")


def _mlflow_run_cancelled(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow hook (cancelled in the UI): the night's MLflow run ends KILLED. Prefect may run this hook
    in the process that served the run, which opened no MLflow run: then it is found by its tag."""
    if nightly_steps.fail_open_run(str(flow_run.id), _reason(state), "KILLED") is None:
        settings, work = _settings_of(flow_run.parameters)
        nightly_steps.end_run_of_flow_run(settings, work, str(flow_run.id), _reason(state), "KILLED")


def _reason(state: Any) -> str:
    return f"{state.type.value}: {state.message}"


def _settings_of(parameters: dict[str, Any]) -> tuple[NightlyConfig, Path]:
    """The config and work directory a flow run was started with (its parameters)."""
    given = parameters.get("config")
    config_path = parameters.get("config_path")
    if given is not None:
        settings = given if isinstance(given, NightlyConfig) else NightlyConfig.model_validate(given)
    else:
        settings = load_config(Path(config_path) if config_path else None)
    return settings, Path(parameters.get("out_dir") or settings.work_dir)


@flow(
    name="siyu-nightly",
    flow_run_name=_run_name,
    timeout_seconds=FlowConfig().timeout_seconds,
    # two workers: segmentation and the quality gate side by side; every other task runs in the flow
    task_runner=ThreadPoolTaskRunner(max_workers=2),
    log_prints=False,
    validate_parameters=True,
    on_failure=[_mlflow_run_failed],
    on_crashed=[_mlflow_run_crashed],
    on_cancellation=[_mlflow_run_cancelled],
)
def nightly_flow(
    config_path: Path | None = None,
    data_dir: Path | None = None,
    as_of: date | None = None,
    out_dir: Path | None = None,
    config: NightlyConfig | None = None,
) -> NightlySummary:
    """One night: validate, segment, grade quality, recommend, register, publish, promote."""
    quiet_prefect_client()  # also in a served run's own process
    settings = config or load_config(config_path)
    work = out_dir or settings.work_dir
    limits = TaskLimits(settings.flow.task_timeout_seconds, resume.results_dir(work))
    with (
        workdir.claim(work, "nightly"),
        flow_deadline(settings.flow),
        forward_module_logs(),
        run_clock(_flow_run_id(), settings.flow) as clock,
        progress_artifacts(),
        ExitStack() as later,  # what the night starts ahead of its use, ended however the night ends
    ):
        exports_dir = settings.publish.exports_dir or work / Folder.EXPORTS
        source = limits(prepare_data)(settings, data_dir)
        with night_engine(settings, work, limits) as engine:  # Spark: one session for validation and steps
            validated = limits(validate)(source, as_of, settings, work / Folder.VALIDATED, engine.session)
            _name_run(validated.as_of)
            publishing.refuse_older_night(exports_dir, validated.as_of)
            previous = publishing.previous_export(exports_dir, validated.as_of)
            missing = limits(check_tables)(previous, validated, settings)
            outputs = limits(prepare_outputs)(work, validated, settings)
            run_id = limits(open_run)(settings, work, validated, source)
            con = limits(open_engine)(engine, validated, settings, work, run_id)
            # the workbooks' child starts its interpreter beside segmentation, which leaves a core idle
            books_child = later.enter_context(ChildProcess())
            segments, quality = segment_and_grade(limits, validated, settings, outputs, previous, con)
            # marketing.xlsx and quality.xlsx (segments, quality) in the child beside the recommenders
            books = limits.in_thread(segment_books).submit(
                outputs, settings.workbooks, settings.locale, books_child
            )
            recommenders = limits(train_recommenders)(validated, settings, outputs, con)
            decision = limits(register)(recommenders, settings, work, run_id)
            # before the engine closes: a champion that stays scores tonight's lists on it
            sources = limits(choose_exports)(outputs, recommenders, decision, settings, work, validated, con)
        # the share kit while the child may still write marketing.xlsx and quality.xlsx
        sources = limits(workbooks)(sources, outputs, settings.workbooks, settings.locale, {})
        sources = {**sources, **books.result()}
        published = limits(publish)(sources, exports_dir, validated, settings, run_id, decision)
        limits(promote)(decision, settings, work)
        report = limits(run_report)(outputs, work, validated.as_of, run_id, exports_dir)
        limits(link_run)(settings, work, run_id, validated.as_of, outputs, report, published.export_dir)
        limits(record_run)(settings, work, run_id, segments, quality.level_counts, published, report, missing)
        limits(record_timings)(settings, work, run_id, clock.summary(_rows(validated)))
        limits(close_run)(settings, work, run_id)
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
        missing_tables=missing,
    )


def run_nightly(
    config_path: Path | None = None,
    data_dir: Path | None = None,
    as_of: date | AsOf | None = None,
    out_dir: Path | None = None,
    config: NightlyConfig | None = None,
) -> NightlySummary:
    """Run the flow once in this process (on a temporary local API when no PREFECT_API_URL is set).

    The work directory is claimed before Prefect starts, so a second run fails at once. While the
    local Prefect server starts, the run gets a head start (``head_start``).
    """
    settings = config or load_config(config_path)
    work = out_dir or settings.work_dir
    day = AsOf.of(as_of).date if as_of is not None else None
    limited = nightly_flow.with_options(timeout_seconds=settings.flow.timeout_seconds)
    meanwhile = functools.partial(head_start, settings, work)
    with workdir.claim(work, "nightly"), terminate_as_interrupt(), local_prefect(work, meanwhile):
        return limited(config_path=config_path, data_dir=data_dir, as_of=day, out_dir=work, config=settings)


def head_start(settings: NightlyConfig, work: Path) -> None:
    """What the night does anyway and can do while the Prefect server starts in its own process:
    import MLflow and open its store (a new ``mlflow.db`` gets its tables then, not in ``open
    mlflow run``), import the CLV libraries when CLV is on (seconds of pure Python), then freeze
    what the imports left for the garbage collector (``pipelines.runtime.freeze_long_lived``)."""
    with paused_collection():
        with tracking.using_tracking(settings.tracking, work):
            pass
        if settings.segmentation.clv.enabled:
            importlib.import_module("pymc_marketing.clv")
    freeze_long_lived()


def _name_run(as_of: AsOf) -> None:
    """Rename the flow run ``nightly-<as_of>`` once the as-of date is known (the latest order day)."""
    from prefect.client.orchestration import get_client

    context = FlowRunContext.get()
    name = f"nightly-{as_of}"
    if context is None or context.flow_run is None or context.flow_run.name == name:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(context.flow_run.id, name=name)
    context.flow_run.name = name


# --- load + validate ---------------------------------------------------------------------------


def nightly_task(name: str, options: dict[str, Any]) -> Callable[[Fn], Fn]:
    """A Prefect task named ``name`` with ``options`` whose seconds and peak memory go to the run's
    ``run_timings.json`` (``pipelines.runtime.timed``)."""

    def wrap(fn: Fn) -> Fn:
        return task(name=name, **options)(timed(name, fn))  # type: ignore[return-value]

    return wrap


# Tasks that are a function of a step module as it is.
prepare_data = nightly_task("prepare data", file_task())(resolve_data_dir)
train_recommenders = nightly_task("train and evaluate recommenders", resumable_task())(
    nightly_steps.train_and_evaluate
)
record_run = nightly_task("record run", file_task())(nightly_steps.record_run)
record_timings = nightly_task("record timings", file_task())(nightly_steps.write_run_timings)
workbooks = nightly_task("workbooks and share kit", file_task())(run_workbooks)
segment_books = nightly_task("workbooks: segments and quality", file_task())(segment_workbooks)


@nightly_task("load and validate", file_task())
def validate(
    data_dir: Path,
    as_of: date | None,
    settings: NightlyConfig,
    out_dir: Path,
    spark: SparkSession | None = None,
) -> Validated:
    """Read and validate ``data_dir``; clean tables and quarantine files go under ``out_dir``. On
    Spark the rows are validated on ``spark``, the night's engine session (``night_engine``)."""
    get_run_logger().info("validating %s", data_dir)
    validated = load_and_validate(data_dir, as_of, settings, out_dir, spark)
    for report in validated.result.reports:
        get_run_logger().info(
            "%s: %d read, %d kept, %d quarantined",
            report.table,
            report.rows_read,
            report.rows_kept,
            report.rows_quarantined,
        )
    return validated


@nightly_task("check tables", pure_task())
def check_tables(previous: Path | None, validated: Validated, settings: NightlyConfig) -> list[str]:
    """Stop when a table the previous run read is missing, unless ``data.optional_tables`` lists it."""
    return nightly_steps.check_tables(previous, validated.tables, settings.data.optional_tables)


@nightly_task("prepare outputs", file_task())
def prepare_outputs(work: Path, validated: Validated, settings: NightlyConfig) -> Path:
    """``outputs/`` for tonight: kept when this resumes an unfinished night on the same as-of, data
    and config (``flow.resume``), else cleared of siyu's files (``pipelines.resume.begin_night``)."""
    key = resume.night_key(validated.as_of, settings.model_dump(mode="json"), validated.clean_paths)
    outputs = work / Folder.OUTPUTS
    clear = lambda: workdir.clear_own(outputs, output_names())  # noqa: E731
    if resume.begin_night(work, key, settings.flow.resume, clear):
        get_run_logger().info("resuming an unfinished night: steps that completed are skipped")
    return outputs


# --- the run's engine session, segmentation, quality gate, recommenders -----------------------------


@contextmanager
def night_engine(settings: NightlyConfig, work: Path, limits: TaskLimits) -> Iterator[EngineRun]:
    """The night's engine (``engine.kind``) for the block, from validation to the recommenders.

    On Spark the session starts first (task ``start spark session``) so that validation runs on
    it and the steps then query it: one session a night. On DuckDB nothing starts here; validation
    runs without it. Either way ``open_engine`` connects the steps over the clean tables, and the
    engine is closed (the connection, the Spark session and its JVM stopped, the spill folder
    removed) once, when the block ends however it ends, a failed validation included
    (``pipelines.run_engine``)."""
    if settings.engine.kind == "spark":
        run = limits(start_engine)(settings, work)
    else:
        run = start_engine_run(settings, work)  # starts nothing: no task
    try:
        yield run
    except BaseException as error:
        raise_readable(error, run.spark)  # Spark's message, read before its JVM stops
        raise
    finally:
        try:
            if run.is_open:
                limits(close_engine)(run)
        finally:
            run.close()  # again, in case the task could not run (idempotent)


@nightly_task("start spark session", file_task())
def start_engine(settings: NightlyConfig, work: Path) -> EngineRun:
    """Start the night's Spark session (``spark:``), before validation, which runs on it."""
    return start_engine_run(settings, work)


@nightly_task("open engine session", file_task())
def open_engine(
    run: EngineRun, validated: Validated, settings: NightlyConfig, work: Path, run_id: str
) -> Any:
    """Connect the night's engine over the clean tables (a DuckDB connection, or one on the running
    Spark session) and record it (kind, Spark conf) on the MLflow run; the steps take what it returns."""
    con = run.connect(validated, settings, work)
    with tracking.using_tracking(settings.tracking, work) as client:
        for key, value in engine_record(run).items():
            client.set_tag(run_id, key, value)
    get_run_logger().info("engine: %s", run.kind)
    return con


@nightly_task("close engine session", pure_task())
def close_engine(run: EngineRun) -> None:
    """Close the engine: the DuckDB connection, or the Spark session and its JVM."""
    run.close()


def segment_and_grade(
    limits: TaskLimits,
    validated: Validated,
    settings: NightlyConfig,
    outputs: Path,
    previous: Path | None,
    con: duckdb.DuckDBPyConnection,
) -> tuple[SegmentationOutcome, QualityOutcome]:
    """Segmentation and the quality gate (independent of each other): side by side, each on its own
    cursor of the session, when ``flow.concurrent_steps`` allows; else one after the other.

    Side by side they run in Prefect's worker threads, which a task timeout cannot interrupt, so
    only the flow's timeout bounds them there."""
    if not settings.flow.side_by_side():
        segments = limits(segment)(validated, settings, outputs, previous, con)
        return segments, limits(quality_gate)(validated, settings, outputs, previous, con)
    get_run_logger().info("segmentation and quality gate side by side (flow.concurrent_steps)")
    with closing(con.cursor()) as segment_con, closing(con.cursor()) as quality_con:
        segments = limits.in_thread(segment).submit(validated, settings, outputs, previous, segment_con)
        quality = limits.in_thread(quality_gate).submit(validated, settings, outputs, previous, quality_con)
        wait([segments, quality])  # both finish before their cursors close, even when one fails
        return segments.result(), quality.result()


@nightly_task("segmentation", resumable_task())
def segment(
    validated: Validated,
    settings: NightlyConfig,
    outputs: Path,
    previous: Path | None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> SegmentationOutcome:
    """RFM, member tiers, clusters, CLV, distributor tiers and tags (``pipelines.steps.segment``)."""
    from pipelines.steps.segment import run_segmentation

    history = nightly_steps.history(previous, StepFile.CONSUMER_TIERS)
    get_run_logger().info("segmenting consumers and distributors as of %s", validated.as_of)
    return run_segmentation(
        validated.clean_paths,
        validated.as_of,
        settings.segmentation,
        outputs,
        history,
        con,
        settings.locale,
        kept_dir=outputs.parent,  # churn_choice.json, churn_models.npz, cluster_choice.json: the cadences
    )


@nightly_task("quality gate", resumable_task())
def quality_gate(
    validated: Validated,
    settings: NightlyConfig,
    outputs: Path,
    previous: Path | None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> QualityOutcome:
    """Grade every product's complaint rate; levels carry on from the previous export."""
    history = nightly_steps.history(previous, StepFile.QUALITY_ALERTS)
    outcome = run_quality(validated.clean_paths, validated.as_of, settings, outputs, history, con)
    get_run_logger().info("quality levels: %s", outcome.level_counts)
    return outcome


# --- MLflow run, registration, publish, promotion ------------------------------------------------


@nightly_task("open mlflow run", file_task())
def open_run(settings: NightlyConfig, work: Path, validated: Validated, data_dir: Path) -> str:
    """Start this night's MLflow run (failing runs a kill left open); log config and data manifest.

    The params are the night's effective settings: ``data.dir`` is the folder the night read
    (``--data`` or the demo set), not the config file's empty value."""
    tags = {"data_dir": str(data_dir.absolute()), **_prefect_tags()}
    effective = settings.model_copy(
        update={"data": settings.data.model_copy(update={"dir": data_dir.absolute()})}
    )
    return nightly_steps.open_run(effective, work, validated, tags, _flow_run_id())


@nightly_task("register model", file_task())
def register(
    recommenders: RecommenderOutcome, settings: NightlyConfig, work: Path, run_id: str
) -> tracking.GateDecision:
    """Log the production recommender, register it as a new version and judge it (no alias moves)."""
    return champion.register_recommender(recommenders, settings.tracking, work, run_id)


@nightly_task("choose exports", file_task())
def choose_exports(
    outputs: Path,
    recommenders: RecommenderOutcome,
    decision: tracking.GateDecision,
    settings: NightlyConfig,
    work: Path,
    validated: Validated,
    con: duckdb.DuckDBPyConnection,
) -> dict[str, Path]:
    """Export name -> file or folder: every output; when the champion stays, tonight's lists and
    artifact scored by the champion's model (``pipelines.champion.choose_exports``)."""
    score_with = functools.partial(nightly_steps.score_with_stored, validated, settings, outputs, con)
    return champion.choose_exports(outputs, recommenders, decision, settings.tracking, work, score_with)


@nightly_task("publish", pure_task())
def publish(
    sources: dict[str, Path],
    exports_dir: Path,
    validated: Validated,
    settings: NightlyConfig,
    run_id: str,
    decision: tracking.GateDecision,
) -> publishing.Published:
    """Write the export with its manifest, check it, then switch exports/current."""
    get_run_logger().info("publishing %d outputs to %s/%s", len(sources), exports_dir, validated.as_of)
    run = {
        "mlflow_run_id": run_id,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **_prefect_tags(),
        **_model_fields(decision, settings),
    }
    versions = publishing.package_versions()
    keep = settings.publish.keep_last
    return publishing.publish_export(
        sources, exports_dir, validated.as_of, versions, run, keep, validated.tables
    )


@nightly_task("promote model", file_task())
def promote(decision: tracking.GateDecision, settings: NightlyConfig, work: Path) -> None:
    """The new version takes its alias (champion or challenger) now that its export is published."""
    champion.promote(decision, settings.tracking, work)


@nightly_task("run report", file_task())
def run_report(outputs: Path, work: Path, as_of: date | AsOf, run_id: str, exports_dir: Path) -> Path:
    """The HTML run report (work/report.html) and its Prefect markdown and table summaries."""
    return nightly_steps.write_run_report(outputs, work, as_of, run_id, exports_dir)


@nightly_task("link artifacts", pure_task())
def link_run(
    settings: NightlyConfig,
    work: Path,
    run_id: str,
    as_of: AsOf,
    outputs: Path,
    report: Path,
    export_dir: Path,
) -> None:
    """The flow run's summary and its links to the MLflow run, the report and the export."""
    with tracking.using_tracking(settings.tracking, work) as client:
        experiment_id = client.get_run(run_id).info.experiment_id
    mlflow_uri = settings.tracking.tracking_uri(work)
    run_link_artifacts(as_of, mlflow_uri, experiment_id, run_id, outputs, report, export_dir)


@nightly_task("close mlflow run", pure_task())
def close_run(settings: NightlyConfig, work: Path, run_id: str) -> None:
    """Mark the MLflow run FINISHED (a failure is marked by the flow's hooks) and the night finished
    (a rerun computes every step again)."""
    nightly_steps.close_run(settings, work, run_id, _flow_run_id())
    resume.end_night(work)


def _rows(validated: Validated) -> dict[str, int]:
    return {report.table: int(report.rows_kept) for report in validated.result.reports}


def _flow_run_id() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.id)


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
