"""The ``siyu`` command line. Commands resolve paths and options, then call ``pipelines.steps``.

Any error a user can cause (a bad file, config or option) prints one message and exits
with status 2; a validation run that quarantines too much exits with status 1.
"""

from __future__ import annotations

import logging
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from features.errors import QuarantineLimitExceeded, SiyuError

app = typer.Typer(
    help="siyu: nightly segmentation, recommendation and quality gate for S2b2C social retail.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
import_app = typer.Typer(help="Turn a public data set into the siyu data contract.", no_args_is_help=True)
app.add_typer(import_app, name="import")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="YAML config (default: configs/nightly.yaml if present).")
]
DataOption = Annotated[Path | None, typer.Option("--data", help="Directory of contract files (Parquet/CSV).")]
AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="As-of date YYYY-MM-DD (default: day of the latest order, at most today)."),
]


@app.callback()
def _configure(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings and errors only.")] = False,
) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the data set into.")],
    consumers: Annotated[int, typer.Option(help="Consumers (about 10 order lines each per year).")] = 10_000,
    distributors: Annotated[int, typer.Option(help="Distributors (communities).")] = 300,
    products: Annotated[int, typer.Option(help="Products in the catalogue over the period.")] = 2_000,
    days: Annotated[int, typer.Option(help="Days simulated.")] = 365,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes byte-identical files.")] = 42,
) -> None:
    """Simulate a contract-valid S2b2C data set with ground truth under OUT/truth/."""
    from pipelines.simulator import SimulationConfig
    from pipelines.simulator import simulate as run_simulation

    config = SimulationConfig(
        consumers=consumers, distributors=distributors, products=products, days=days, seed=seed
    )
    summary = run_simulation(out, config)
    typer.echo(
        f"wrote {out}: "
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
    from pipelines.steps import load_and_validate

    settings = load_config(config)
    try:
        validated = load_and_validate(data, _parse_date(as_of), settings, out)
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
    from pipelines.online_retail import read_online_retail, to_contract, write_contract

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
) -> None:
    """Grade every product's 30-day complaint rate: normal / watch / warning / pulled."""
    from pipelines.config import load_config
    from pipelines.steps import load_and_validate, run_quality

    settings = load_config(config)
    validated = load_and_validate(data, _parse_date(as_of), settings, out / "validated")
    outcome = run_quality(validated.clean_paths, validated.as_of, settings, out, previous)
    typer.echo(
        f"quality as of {validated.as_of}: "
        + ", ".join(f"{k}={v:,}" for k, v in outcome.level_counts.items())
    )
    typer.echo(f"wrote {outcome.alerts_path} and {outcome.suppliers_path}")


@app.command()
def nightly(
    config: ConfigOption = None,
    data: DataOption = None,
    as_of: AsOfOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Work directory (default: work_dir in config).")
    ] = None,
) -> None:
    """Run the nightly job: load + validate, then every step built so far. No arguments: demo data."""
    from pipelines.config import load_config
    from pipelines.steps import load_and_validate, resolve_data_dir, run_quality

    settings = load_config(config)
    data_dir = resolve_data_dir(settings, data)
    work = out or settings.work_dir
    validated = load_and_validate(data_dir, _parse_date(as_of), settings, work / "validated")
    _print_validation(validated.out_dir)
    outcome = run_quality(validated.clean_paths, validated.as_of, settings, work, previous_dir=None)
    typer.echo("quality gate: " + ", ".join(f"{k}={v:,}" for k, v in outcome.level_counts.items()))
    typer.echo(f"nightly done: as of {validated.as_of}, outputs in {work}")


def _parse_date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise SiyuError(
            f"--as-of {text!r} is not a date\n  fix: write it as YYYY-MM-DD, e.g. 2025-12-31"
        ) from None


def _print_validation(out_dir: Path) -> None:
    import json

    report_path = out_dir / "validation.json"
    if not report_path.exists():
        return
    report = json.loads(report_path.read_text())
    typer.echo(f"{'table':<13}{'read':>12}{'kept':>12}{'quarantined':>13}  reasons")
    for table in report["tables"]:
        reasons = ", ".join(f"{k}={v:,}" for k, v in table["reasons"].items()) or "-"
        typer.echo(
            f"{table['table']:<13}{table['rows_read']:>12,}{table['rows_kept']:>12,}"
            f"{table['rows_quarantined']:>13,}  {reasons}"
        )


def main() -> None:
    """Console entry point: run the app, turning user errors into one clear message."""
    try:
        app(prog_name="siyu")
    except SiyuError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
