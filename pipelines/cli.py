"""The ``siyu`` command line. Commands resolve paths and options, then call the steps in ``pipelines.steps``.

Any error a user can cause (a bad file, config or option) prints one message and exits
with status 2; a validation run that quarantines too much exits with status 1. Every
command that writes into an ``--out`` folder claims it first (``pipelines.workdir``): a
folder of someone else's files is refused, and a second run into the same folder fails at
once instead of mixing its files with the first's.
"""

from __future__ import annotations

import atexit
import functools
import gc
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from features.asof import AsOf
from features.errors import QuarantineLimitExceeded, SiyuError
from pipelines.logs import configure_logging
from pipelines.workdir import claim

if TYPE_CHECKING:  # the commands import their steps when they run, so that --help stays fast
    from models.recommenders.training import RecommendConfig
    from pipelines.config import NightlyConfig
    from pipelines.steps.evaluate import EvaluationReport

app = typer.Typer(
    help="siyu: nightly segmentation, recommendation and quality gate for S2b2C social retail.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: typer's rich panels print every flag as "--flag <bool>".
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},
)
import_app = typer.Typer(
    help="Turn a public data set into the siyu data contract.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(import_app, name="import")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="YAML config (default: configs/nightly.yaml if present).")
]
DataOption = Annotated[Path | None, typer.Option("--data", help="Directory of contract files (Parquet/CSV).")]
AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="As-of date YYYY-MM-DD (default: day of the latest order, at most today)."),
]
# --- locale (issue #13) ---
LocaleOption = Annotated[
    str | None,
    typer.Option(
        "--locale", help="Language of the files people read: en or zh-CN (default: locale in config)."
    ),
]
# --- end locale ---


@app.callback()
def _configure(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logging, library chatter included.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings and errors only.")] = False,
) -> None:
    configure_logging(verbose, quiet)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the data set into.")],
    consumers: Annotated[int, typer.Option(help="Consumers (about 10 order lines each per year).")] = 10_000,
    distributors: Annotated[int, typer.Option(help="Distributors (communities).")] = 300,
    products: Annotated[int, typer.Option(help="Products in the catalogue over the period.")] = 2_000,
    days: Annotated[int, typer.Option(help="Days simulated.")] = 365,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes byte-identical files.")] = 42,
    layout: Annotated[
        str,
        typer.Option(
            help="single: one file per table (orders.parquet, ...). partitioned: orders, events and "
            "complaints as a data lake lands them, one folder per day of the row's date, "
            "orders/dt=YYYY-MM-DD/part-0.parquet (the other tables one file each).",
        ),
    ] = "single",
) -> None:
    """Simulate a contract-valid S2b2C data set with ground truth under OUT/truth/."""
    from pydantic import ValidationError

    from sources.simulator import SimulationConfig
    from sources.simulator import simulate as run_simulation

    try:
        config = SimulationConfig(
            consumers=consumers,
            distributors=distributors,
            products=products,
            days=days,
            seed=seed,
            layout=layout,
        )
    except ValidationError as error:
        problem = error.errors()[0]
        option = "--" + str(problem["loc"][0]).replace("_", "-")
        raise SiyuError(
            f"{option} {problem['input']}: {problem['msg'].lower()}\n  fix: see siyu simulate --help"
        ) from None
    summary = run_simulation(out, config)
    typer.echo(
        f"wrote {out} ({config.layout} layout): "
        + ", ".join(f"{t}={n:,}" for t, n in summary.rows.items())
        + f" rows; last day {summary.as_of}; {summary.seconds:.1f}s"
    )


@app.command()
def validate(
    data: Annotated[Path, typer.Option("--data", help="Directory of contract files (Parquet/CSV).")],
    as_of: AsOfOption = None,
    out: Annotated[Path, typer.Option("--out", help="Where clean tables and quarantine files go.")] = Path(
        "validated"
    ),
    config: ConfigOption = None,
) -> None:
    """Check a data directory against the contract; quarantine bad rows; print a summary."""
    from pipelines.config import load_config
    from pipelines.steps.validate import load_and_validate

    settings = load_config(config)
    day = _parse_as_of(as_of)
    try:
        with claim(out, "validate"):
            validated = load_and_validate(data, day, settings, out)
    except QuarantineLimitExceeded as error:
        _print_validation(out)
        typer.echo(f"validation failed: {error}", err=True)
        raise typer.Exit(1) from None
    _print_validation(out)
    typer.echo(
        f"ok: as of {validated.as_of}; clean tables in {out / 'clean'}, quarantine in {out / 'quarantine'}"
    )


@import_app.command("online-retail")
def import_online_retail(
    file: Annotated[Path, typer.Argument(help="Online Retail (II) as .parquet, .csv or .xlsx.")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write contract tables into.")],
) -> None:
    """Import UCI Online Retail / Online Retail II; country becomes the distributor."""
    from sources.online_retail import read_online_retail, to_contract, write_contract

    result = to_contract(read_online_retail(file))
    for step in result.steps:
        typer.echo(f"  {step.rows:>9,}  {step.rule}")
    write_contract(result, out)
    typer.echo(f"wrote {out}: " + ", ".join(f"{t}={len(f):,}" for t, f in result.tables.items()) + " rows")


@app.command()
def quality(
    data: Annotated[Path, typer.Option("--data", help="Directory of contract files (Parquet/CSV).")],
    out: Annotated[Path, typer.Option("--out", help="Where quality_alerts.csv and the work files go.")],
    as_of: AsOfOption = None,
    previous: Annotated[
        Path | None,
        typer.Option("--previous", help="Output directory of the previous run, for level history."),
    ] = None,
    config: ConfigOption = None,
    locale: LocaleOption = None,
) -> None:
    """Grade every product's 30-day complaint rate: normal / watch / warning / pulled."""
    from pipelines.config import load_config, with_locale
    from pipelines.steps.quality import run_quality
    from pipelines.steps.validate import load_and_validate

    settings = with_locale(load_config(config), locale)
    day = _parse_as_of(as_of)
    with claim(out, "quality"):
        validated = load_and_validate(data, day, settings, out / "validated")
        outcome = run_quality(validated.clean_paths, validated.as_of, settings, out, previous)
    typer.echo(
        f"quality as of {validated.as_of}: "
        + ", ".join(f"{k}={v:,}" for k, v in outcome.level_counts.items())
    )
    typer.echo(f"wrote {outcome.alerts_path} and {outcome.suppliers_path}")


@app.command()
def recommend(
    data: Annotated[Path, typer.Option("--data", help="Directory of contract files (Parquet/CSV).")],
    out: Annotated[Path, typer.Option("--out", help="Where the recommendation Parquet files go.")],
    as_of: AsOfOption = None,
    k: Annotated[
        int | None, typer.Option("--k", help="Products per consumer (default: recommend.k).")
    ] = None,
    exclude_purchased: Annotated[
        bool | None,
        typer.Option(
            "--exclude-purchased/--keep-purchased",
            help="Leave out (or keep) products the consumer already bought "
            "(default: lists.exclude_purchased).",
        ),
    ] = None,
    quality_dir: Annotated[
        Path | None,
        typer.Option("--quality", help="Output directory of siyu quality (default: run the gate here)."),
    ] = None,
    config: ConfigOption = None,
    locale: LocaleOption = None,
) -> None:
    """Train the production model on data up to the as-of date; write consumer and distributor lists."""
    from pipelines.config import load_config, with_locale
    from pipelines.steps.recommend import run_recommend
    from pipelines.steps.validate import load_and_validate

    settings = with_locale(load_config(config), locale)
    if k is not None and k < 1:
        raise SiyuError(f"--k {k}: must be at least 1\n  fix: e.g. --k 50")
    day = _parse_as_of(as_of)
    with claim(out, "recommend"):
        validated = load_and_validate(data, day, settings, out / "validated")
        outcome = run_recommend(
            validated.clean_paths,
            validated.as_of,
            settings,
            out,
            k=k,
            exclude_purchased=exclude_purchased,
            quality_alerts_path=quality_dir,
        )
    typer.echo(
        f"recommend as of {validated.as_of} with {outcome.model}: {outcome.consumers:,} consumers "
        f"({outcome.consumers_from_fallback:,} from the fallback chain), "
        f"{outcome.distributors:,} distributors, {outcome.outreach_rows:,} outreach rows; "
        f"{outcome.seconds:.1f}s"
    )
    typer.echo(f"wrote {', '.join(str(path) for path in outcome.paths.values())}")


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option("--data", help="Directory of contract files (Parquet/CSV).")],
    holdout_days: Annotated[
        int | None, typer.Option("--holdout-days", help="Test window: the last N days (default 30).")
    ] = None,
    k: Annotated[int | None, typer.Option("--k", help="List length of the metrics (default 10).")] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the table as JSON here.")
    ] = None,
    as_of: AsOfOption = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Only this configured model (repeatable).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where the validated tables go (OUT/validated, reused by the next run; "
            "default: <work_dir>/evaluation).",
        ),
    ] = None,
    config: ConfigOption = None,
    folds: Annotated[
        int,
        typer.Option(
            "--folds",
            help="Rolling folds: test windows of --holdout-days ending 1, 2, .. windows before the "
            "end, each tuned on the days before it; the table is the mean over folds (1: one window).",
        ),
    ] = 3,
) -> None:
    """Compare every configured recommender on a temporal holdout: one table of model x protocol.

    Rows are sorted by NDCG@k (the production metric) within each protocol; the production
    model and the best baseline (repeat / popularity models) are marked, and vs_best_baseline
    is each model's NDCG over the best baseline's.
    """
    from features.engine import connect
    from pipelines.config import load_config
    from pipelines.steps.evaluate import chosen_models, run_evaluation, write_report
    from pipelines.steps.validate import load_and_validate

    settings = load_config(config)
    for name, value in (("--holdout-days", holdout_days), ("--k", k), ("--folds", folds)):
        if value is not None and value < 1:
            raise SiyuError(f"{name} {value}: must be at least 1\n  fix: e.g. {name} 10")
    day = _parse_as_of(as_of)
    recommend_settings = settings.recommend
    chosen_models(recommend_settings, model or None)  # an unknown --model fails before validating
    out = out or settings.work_dir / "evaluation"
    with claim(out, "evaluate"):
        validated = load_and_validate(data, day, settings, out / "validated")
        con = connect(validated.clean_paths)
        try:
            report = run_evaluation(
                validated.clean_dir,
                recommend_settings,
                validated.as_of,
                holdout_days,
                k,
                model or None,
                con,
                folds=folds,
            )
        finally:
            con.close()
    _print_evaluation(report, recommend_settings)
    if json_path is not None:
        typer.echo(f"wrote {write_report(report, json_path)}")


def _print_evaluation(report: EvaluationReport, settings: RecommendConfig) -> None:
    """The windows, the sample, the ranked and marked table, and one verdict line per protocol."""
    from features.vocabulary import MetricCol
    from models.evaluation import EVALUATION_COLUMNS, INTERVAL_COLUMNS, interval_of
    from pipelines.steps.evaluate import baseline_models
    from reporting.console import evaluation_table, evaluation_verdicts, rank_evaluation

    typer.echo(f"trained up to {report.cutoff}, tested up to {report.test_end}, metrics at k={report.k}")
    if report.sample is not None:
        typer.echo(
            f"measured on {report.sample.sampled:,} of {report.sample.test_consumers:,} test consumers "
            f"(seed {report.sample.seed}); every metric's 95% interval is in --json"
        )
    if report.folds > 1:
        window = (report.test_end - report.cutoff).days
        typer.echo(
            f"mean over {report.folds} rolling folds of {window} days ending {report.test_end} (the "
            f"first is the window above); intervals: {report.sample.confidence if report.sample else ''}"
            "; per-fold rows in --json"
        )
    ndcg_interval = interval_of(MetricCol.NDCG)
    shown = tuple(c for c in EVALUATION_COLUMNS if c not in INTERVAL_COLUMNS or c in ndcg_interval)
    ranked = rank_evaluation(report.table, settings.production, baseline_models(settings))
    typer.echo(evaluation_table(ranked, shown))
    for line in evaluation_verdicts(ranked, settings.production):
        typer.echo(line)


@app.command("evaluate-segments")
def evaluate_segments(
    data: Annotated[Path, typer.Option("--data", help="Directory of contract Parquet files.")],
    as_of: Annotated[str, typer.Option("--as-of", help="Choose the models as of this date (YYYY-MM-DD).")],
    horizon_days: Annotated[
        int | None, typer.Option("--horizon-days", help="Test window after --as-of (default: clv horizon).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Where the evaluation files go.")] = Path(
        "segment_evaluation"
    ),
    config: ConfigOption = None,
) -> None:
    """Judge churn risk and expected purchases / value on the days after AS_OF, against simple baselines."""
    from pipelines.config import load_config
    from pipelines.steps.evaluate_segments import run_segment_evaluation

    settings = load_config(config).segmentation
    if horizon_days is not None:
        if horizon_days < 1:
            raise SiyuError(
                f"--horizon-days {horizon_days}: must be at least 1\n  fix: e.g. --horizon-days 90"
            )
        settings = settings.model_copy(
            update={"clv": settings.clv.model_copy(update={"horizon_days": horizon_days})}
        )
    day = _parse_as_of(as_of)
    evaluation = run_segment_evaluation(data, day, settings, out)
    typer.echo(f"chosen on the window before {day}: {evaluation.chosen}")
    wide = evaluation.test.pivot_table(
        index=["target", "role", "candidate"], columns="metric", values="value", sort=True
    )
    typer.echo(wide.to_string(float_format=lambda value: f"{value:,.4f}"))
    typer.echo("churn calibration (deciles of the chosen model's risk):")
    typer.echo(evaluation.calibration.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    typer.echo(f"wrote {out}")


@app.command()
def segment(
    data: Annotated[Path, typer.Option("--data", help="Directory of contract files (Parquet/CSV).")],
    out: Annotated[Path, typer.Option("--out", help="Where consumer_tiers.csv and the other files go.")],
    as_of: AsOfOption = None,
    previous: Annotated[
        Path | None,
        typer.Option("--previous", help="Output directory of the previous run, for tier movement."),
    ] = None,
    config: ConfigOption = None,
    locale: LocaleOption = None,
) -> None:
    """Segment consumers (RFM, member tiers, clusters, CLV, tags) and rank distributors."""
    from pipelines.config import load_config, with_locale
    from pipelines.steps.segment import run_segmentation
    from pipelines.steps.validate import load_and_validate

    settings = with_locale(load_config(config), locale)
    day = _parse_as_of(as_of)
    with claim(out, "segment"):
        validated = load_and_validate(data, day, settings, out / "validated")
        outcome = run_segmentation(
            validated.clean_paths,
            validated.as_of,
            settings.segmentation,
            out,
            previous,
            locale=settings.locale,
        )
    typer.echo(
        f"segmentation as of {validated.as_of}: {outcome.consumers:,} consumers, {outcome.buyers:,} buyers"
    )
    typer.echo("  rfm segments: " + ", ".join(f"{k}={v:,}" for k, v in outcome.segment_counts.items()))
    typer.echo("  member tiers: " + ", ".join(f"{k}={v:,}" for k, v in outcome.tier_counts.items()))
    typer.echo("  movement: " + ", ".join(f"{k}={v:,}" for k, v in outcome.movement_counts.items()))
    typer.echo(f"  clusters: {outcome.clusters if outcome.clusters is not None else 'off'}")
    clv = "off" if outcome.clv_set_aside is None else f"on, {outcome.clv_set_aside:,} consumers set aside"
    typer.echo(f"  clv: {clv}")
    typer.echo(
        "  distributor tiers: "
        + ", ".join(f"{k}={v:,}" for k, v in outcome.distributor_tier_counts.items())
        + f"; coaching list: {outcome.coaching:,}"
    )
    typer.echo(f"wrote {', '.join(str(path) for path in outcome.paths.values())}")


@app.command()
def nightly(
    config: ConfigOption = None,
    data: DataOption = None,
    as_of: AsOfOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Work directory (default: work_dir in config).")
    ] = None,
    locale: LocaleOption = None,
    refit: Annotated[
        bool,
        typer.Option(
            "--refit",
            help="Fit the production model tonight (not the stored one: recommend.refit_every_days).",
        ),
    ] = False,
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="duckdb or spark: overrides engine.kind (docs/spark.md)."),
    ] = None,
) -> None:
    """Run the nightly Prefect flow: validate, segment, quality gate, recommend, register, publish.

    No arguments: the demo data. Needs no server (Prefect's temporary local API, MLflow's
    SQLite store under the work directory).
    """
    from pipelines.config import load_config, with_engine, with_locale
    from pipelines.runtime import local_prefect, terminate_as_interrupt

    settings = with_engine(with_locale(load_config(config), locale), engine)
    if refit:  # a cadence of 1 for tonight: fit, evaluate and store the production model
        recommend = settings.recommend.model_copy(update={"refit_every_days": 1})
        settings = settings.model_copy(update={"recommend": recommend})
    work = out or settings.work_dir
    day = _parse_as_of(as_of)
    # --- the Prefect server starts first (#18) ---
    # Its start (seconds of CPU in its own process) overlaps the flow's imports here, which
    # run_nightly would otherwise make first; run_nightly then finds the server running.
    head_start = functools.partial(_flow_head_start, settings, work)
    try:
        with claim(work, "nightly"), terminate_as_interrupt(), local_prefect(work, head_start):
            from pipelines.flow import run_nightly

            summary = run_nightly(config, data, day, work, settings)
    # --- end the Prefect server starts first ---
    except QuarantineLimitExceeded as error:
        _print_validation(work / "validated")
        typer.echo(f"validation failed: {error}", err=True)
        raise typer.Exit(1) from None
    _print_validation(summary.validated_dir)
    typer.echo("quality gate: " + ", ".join(f"{k}={v:,}" for k, v in summary.quality_levels.items()))
    if summary.segments:
        typer.echo("rfm segments: " + ", ".join(f"{k}={v:,}" for k, v in summary.segments.items()))
        typer.echo("member tiers: " + ", ".join(f"{k}={v:,}" for k, v in summary.tiers.items()))
    if summary.model is not None:
        model = summary.model
        typer.echo(
            f"model: version {model.version} (validation NDCG {model.validation_ndcg:.4f}) is {model.alias}; "
            f"published lists from version {model.champion_version}"
        )
    if summary.missing_tables:
        typer.echo(
            f"went without table(s) {', '.join(summary.missing_tables)} (data.optional_tables); "
            "results that depend on them changed"
        )
    typer.echo(f"published {summary.files} files to {summary.export_dir} (now current)")
    typer.echo(f"mlflow run {summary.mlflow_run_id}")
    typer.echo(f"nightly done: as of {summary.as_of}, outputs in {work}")


@app.command()
def backfill(
    start: Annotated[str, typer.Option("--from", help="First as-of date, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--to", help="Last as-of date at most, YYYY-MM-DD.")],
    every: Annotated[
        str, typer.Option("--every", help="Step between as-of dates: 1M (months), 1W / 2W, 7D (days).")
    ] = "1M",
    config: ConfigOption = None,
    data: DataOption = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Work directory of the backfill (default: work_dir in config)."),
    ] = None,
) -> None:
    """Run the nightly once per as-of date, oldest first: one export per date, with its history.

    Tier migration, quality levels and the champion gate carry on from date to date as on
    consecutive nights; backfill.csv in the work directory sums up each date.
    """
    from pipelines.config import load_config
    from pipelines.steps.backfill import run_backfill

    settings = load_config(config)
    first, last = _backfill_date("--from", start), _backfill_date("--to", end)
    work = out or settings.work_dir
    outcome = run_backfill(config, data, first, last, every, work, settings)
    for summary in outcome.summaries:
        typer.echo(f"as of {summary.as_of}: {summary.export_dir}")
    typer.echo(f"backfilled {len(outcome.summaries)} exports; summary in {outcome.path}")


def _backfill_date(option: str, text: str) -> date:
    """A ``backfill`` date option: an as-of date, not after today (``_parse_as_of``'s rules)."""
    try:
        parsed = _parse_as_of(text)
    except SiyuError as error:
        raise SiyuError(str(error).replace("--as-of", option, 1)) from None
    assert parsed is not None  # the option is required
    return parsed.date


@app.command()
def serve(
    config: ConfigOption = None,
    data: DataOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Work directory (default: work_dir in config).")
    ] = None,
) -> None:
    """Serve the nightly flow on the cron in the config's schedule: section (needs a Prefect server).

    Start `prefect server start` first and set PREFECT_API_URL=http://127.0.0.1:4200/api;
    runs until interrupted. Without a server, use the cron line in docs/nightly.md.
    """
    from pipelines.config import load_config
    from pipelines.deployment import serve as serve_nightly

    settings = load_config(config)
    serve_nightly(settings.schedule, config, data, out)


def _parse_as_of(text: str | None) -> AsOf | None:
    """``--as-of`` as an ``AsOf``: a real date, not after today."""
    if text is None:
        return None
    try:
        as_of = AsOf.of(text)
    except ValueError:
        raise SiyuError(
            f"--as-of {text!r} is not a date\n  fix: write it as YYYY-MM-DD, e.g. 2025-12-31"
        ) from None
    today = date.today()
    if as_of.date > today:
        raise SiyuError(
            f"--as-of {text}: is after today ({today.isoformat()}); a run cannot see the future\n"
            f"  fix: pass --as-of {today.isoformat()} or an earlier date, or leave it out "
            "(the day of the latest order)"
        )
    return as_of


def _flow_head_start(settings: NightlyConfig, work: Path) -> None:
    """Import the flow, then its head start (``pipelines.flow.head_start``): what the night does
    anyway while the Prefect server starts in its own process."""
    from pipelines.runtime import paused_collection

    with paused_collection():  # the flow's imports (pipelines.runtime.freeze_long_lived)
        from pipelines.flow import head_start
    head_start(settings, work)


def _print_validation(out_dir: Path) -> None:
    from features.catalog import StepFile
    from reporting.console import validation_table

    for line in validation_table(out_dir / StepFile.VALIDATION_REPORT):
        typer.echo(line)


def freeze_heap_at_exit() -> None:
    """Freeze the heap when the process exits (``atexit``, registered once per process).

    A night creates hundreds of thousands of objects after ``pipelines.runtime.freeze_long_lived``
    froze its imports' (the modules its steps import, the run's own). At exit the interpreter's
    last collections walk them all, reference cycles included, to free memory the operating
    system takes back anyway: 5-7 s after "nightly done" on a busy 2-core machine, 0.5 s frozen.
    Every ``atexit`` handler still runs and objects are still freed when their last reference
    goes; only reference cycles are left to the operating system. In a longer-lived process (a
    test session) it runs only when that process exits.
    """
    global _HEAP_FROZEN_AT_EXIT
    if not _HEAP_FROZEN_AT_EXIT:
        atexit.register(gc.freeze)
        _HEAP_FROZEN_AT_EXIT = True


_HEAP_FROZEN_AT_EXIT = False


def main() -> None:
    """Console entry point: run the app, turning user errors into one clear message."""
    freeze_heap_at_exit()
    try:
        app(prog_name="siyu")
    except SiyuError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
