"""The run report page: one self-contained HTML file from a run's files, plus short summaries.

``write_report(run_dir, out_path)`` reads whichever of a run's files exist (the outputs folder
or an ``exports/<as_of>/`` folder) and writes one HTML page with inline CSS and inline SVG
charts: no script, no CDN, nothing fetched. The sections (``reporting.sections``) are drawn
by the Jinja2 templates in ``reporting/templates`` with autoescaping on, so a name read from
the data is always shown as text. A section whose files the run did not produce says so
plainly instead of failing.

``summary_markdown(run_dir)`` and ``summary_table(run_dir)`` give the same headline numbers
for Prefect's markdown and table artifacts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from features.catalog import RunFile, StepFile
from features.distributor_features import DistributorCol
from features.files import write_text_atomically
from features.vocabulary import EvaluationKey
from models.distributor_tiers import TIERS as DISTRIBUTOR_TIERS
from models.distributor_tiers import DistributorTierCol
from models.evaluation import MetricCol
from models.member_tiers import TierCol
from models.quality import LEVELS, QualityCol
from models.rfm import RFMCol
from reporting.formatting import FILTERS, plain_integer, plain_percent
from reporting.run_files import MissingFile, RunFiles
from reporting.sections import (
    BASELINE_MODELS,
    CONSUMERS,
    NOT_PRODUCED,
    SHARE,
    Section,
    build_sections,
    tier_order,
    true_count,
)
from reporting.trends import TREND_NIGHTS, earlier_nights, exports_beside

logger = logging.getLogger(__name__)

PAGE_TEMPLATE = "report.html.j2"
# Keys of the run information (MLflow run, model version, ...) shown in the page header.
RUN_FACTS = (
    "mlflow_run_id",
    "model_name",
    "model_version",
    "model_alias",
    "published_model_version",
    "validation_ndcg",
    "champion_ndcg",
    "published_at",
)


def write_report(
    run_dir: Path,
    out_path: Path,
    as_of: date | None = None,
    run_info: Mapping[str, Any] | None = None,
    exports_dir: Path | None = None,
    trend_nights: int = TREND_NIGHTS,
) -> Path:
    """Write the HTML report of the run in ``run_dir`` to ``out_path`` (atomically); return ``out_path``.

    ``as_of`` and ``run_info`` (MLflow run id, model version, ...) default to what the folder's
    ``manifest.json`` says, when it has one. The trend section reads the ``trend_nights`` − 1
    newest exports before ``as_of`` in ``exports_dir`` (default: the exports folder beside
    ``run_dir``, see ``reporting.trends.exports_beside``).
    """
    files = RunFiles(run_dir)
    manifest = files.json(RunFile.MANIFEST) if files.has(RunFile.MANIFEST) else {}
    night = as_of or manifest.get("as_of")
    as_of_text = str(night or _month_of(files) or "unknown date")
    info = dict(run_info if run_info is not None else manifest.get("run", {}))
    history = exports_dir if exports_dir is not None else exports_beside(run_dir)
    earlier = earlier_nights(history, str(night), trend_nights - 1) if night else []
    sections = build_sections(RunFiles(run_dir, str(night) if night else None, earlier))
    write_text_atomically(out_path, render_page(as_of_text, info, sections, run_dir))
    logger.info(
        "report: %d of %d sections produced, written to %s",
        sum(s.produced for s in sections),
        len(sections),
        out_path,
    )
    return out_path


def render_page(as_of: str, run_info: Mapping[str, Any], sections: list[Section], run_dir: Path) -> str:
    """The whole HTML document."""
    facts = [
        (key.replace("_", " "), value)
        for key, value in run_info.items()
        if key in RUN_FACTS and value not in (None, "")
    ]
    return (
        environment()
        .get_template(PAGE_TEMPLATE)
        .render(
            title=f"siyu nightly run — {as_of}",
            as_of=as_of,
            source=str(run_dir),
            facts=facts,
            sections=sections,
        )
    )


@cache
def environment() -> jinja2.Environment:
    """The Jinja2 environment of the report: templates shipped in the package, autoescaping on."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reporting", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(FILTERS)
    env.globals["not_produced"] = NOT_PRODUCED
    return env


# --- summaries for Prefect --------------------------------------------------------------------------


def summary_table(run_dir: Path) -> list[dict[str, str]]:
    """Headline numbers as rows ``{"area", "measure", "value"}`` (for ``create_table_artifact``)."""
    files = RunFiles(run_dir)
    rows: list[dict[str, str]] = []
    for area, measure in HEADLINES:
        try:
            values = measure(files)
        except MissingFile:
            values = {"status": NOT_PRODUCED}  # vocabulary: a value, not a column
        rows.extend({"area": area, "measure": name, "value": value} for name, value in values.items())
    return rows


def summary_markdown(run_dir: Path) -> str:
    """A short markdown summary of the run (for ``create_markdown_artifact``)."""
    lines = [f"## siyu nightly run: `{run_dir}`", "", "| area | measure | value |", "|---|---|---|"]
    lines += [f"| {r['area']} | {r['measure']} | {r['value']} |" for r in summary_table(run_dir)]
    return "\n".join(lines) + "\n"


def _segment_headlines(files: RunFiles) -> dict[str, str]:
    segments = files.csv(StepFile.RFM_SEGMENTS)
    largest = segments.sort_values(CONSUMERS, ascending=False).iloc[0]
    return {
        "consumers": plain_integer(segments[CONSUMERS].sum()),  # vocabulary: a value, not a column
        "segments": str(len(segments)),
        "largest segment": f"{largest[RFMCol.SEGMENT]} ({plain_percent(largest[SHARE])})",
    }


def _tier_headlines(files: RunFiles) -> dict[str, str]:
    tiers = files.csv(StepFile.CONSUMER_TIERS, [TierCol.MEMBER_TIER])[TierCol.MEMBER_TIER]
    counts = tiers.value_counts()
    return {str(t): plain_integer(counts.get(t, 0)) for t in tier_order(files, tiers)}


def _distributor_headlines(files: RunFiles) -> dict[str, str]:
    frame = files.csv(StepFile.DISTRIBUTOR_TIERS, [DistributorTierCol.TIER, DistributorTierCol.COACHING])
    counts = frame[DistributorTierCol.TIER].value_counts()
    values = {t: plain_integer(counts.get(t, 0)) for t in DISTRIBUTOR_TIERS if t in counts}
    values["coaching list"] = plain_integer(true_count(frame[DistributorTierCol.COACHING]))
    return values


def _recommender_headlines(files: RunFiles) -> dict[str, str]:
    report = files.json(StepFile.EVALUATION)
    results = pd.DataFrame(report[EvaluationKey.RESULTS] if isinstance(report, dict) else report)
    model, ndcg = MetricCol.MODEL, MetricCol.NDCG
    values = {}
    for protocol, table in results.groupby(MetricCol.PROTOCOL, sort=False):
        best = table.sort_values(ndcg, ascending=False).iloc[0]
        baselines = table[table[model].isin(BASELINE_MODELS)]
        text = f"{best[model]} {best[ndcg]:.4f}"
        if len(baselines):
            base = baselines.sort_values(ndcg, ascending=False).iloc[0]
            text += f" (best baseline {base[model]} {base[ndcg]:.4f})"
        values[f"best ndcg, {protocol}"] = text
    return values


def _quality_headlines(files: RunFiles) -> dict[str, str]:
    counts = files.csv(StepFile.QUALITY_ALERTS, [QualityCol.LEVEL])[QualityCol.LEVEL].value_counts()
    return {level: plain_integer(counts.get(level, 0)) for level in LEVELS}


HEADLINES: tuple[tuple[str, Callable[[RunFiles], dict[str, str]]], ...] = (
    ("segments", _segment_headlines),
    ("member tiers", _tier_headlines),
    ("distributor tiers", _distributor_headlines),
    ("recommenders", _recommender_headlines),
    ("quality levels", _quality_headlines),
)


def _month_of(files: RunFiles) -> str | None:
    """ "month <YYYY-MM>" from the distributor tiers, the page's date when there is no manifest."""
    if not files.has(StepFile.DISTRIBUTOR_TIERS):
        return None
    months = files.csv(StepFile.DISTRIBUTOR_TIERS, [DistributorCol.MONTH])[DistributorCol.MONTH]
    return f"month {months.iloc[0]}" if len(months) else None
