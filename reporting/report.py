"""The run report: one self-contained HTML page from the files a nightly run leaves, plus short summaries.

``write_report(run_dir, out_path)`` reads whichever of a run's files exist (the outputs folder
or an ``exports/<as_of>/`` folder) and writes one HTML page with inline CSS and inline SVG
charts: no script, no CDN, nothing fetched. Sections: segment sizes, member-tier migration,
the RFM heat map (R × F), the CLV distribution, distributor tiers, recommender metrics
against the baselines, and quality alerts. A section whose files the run did not produce
says so plainly instead of failing.

``summary_markdown(run_dir)`` and ``summary_table(run_dir)`` give the same headline numbers
for Prefect's markdown and table artifacts.

Charts use matplotlib when it is installed (object API only: no pyplot, no global backend);
without it the same numbers appear as tables.
"""

from __future__ import annotations

import html
import io
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.catalog import RunFile, StepFile
from features.columns import Col
from models.distributor_tiers import TIERS as DISTRIBUTOR_TIERS
from models.distributor_tiers import DistributorTierCol
from models.member_tiers import TierCol
from models.quality import LEVELS, QualityCol
from models.rfm import RFMCol

logger = logging.getLogger(__name__)

# Models counted as baselines when the evaluation compares the production model with them.
BASELINE_MODELS = ("repeat", "popularity_global", "popularity_category", "popularity_community")
NOT_PRODUCED = "not produced in this run"
TOP_ALERTS = 15
TOP_DISTRIBUTORS = 10
METRICS = ("ndcg", "recall", "precision", "map", "hit_rate", "coverage", "novelty")
_SEVERITY = {level: order for order, level in enumerate(LEVELS)}


class _Missing(Exception):
    """A section's input files are not in the run folder."""


@dataclass(frozen=True)
class Section:
    """One part of the report: an anchor, a title, and its HTML body (or why it is absent)."""

    anchor: str
    title: str
    body: str
    produced: bool


class RunFiles:
    """Read-only access to a run folder's files; absent files raise ``_Missing`` (the section is skipped)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def has(self, name: str) -> bool:
        return (self.run_dir / name).is_file()

    def csv(self, name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """A CSV the pipeline wrote for Excel (UTF-8 with BOM), only ``columns`` when given."""
        path = self._path(name)
        wanted = None if columns is None else (lambda column: column in columns)
        return pd.read_csv(path, encoding="utf-8-sig", usecols=wanted, keep_default_na=True)

    def columns(self, name: str) -> list[str]:
        """The header of a CSV."""
        return pd.read_csv(self._path(name), encoding="utf-8-sig", nrows=0).columns.tolist()

    def json(self, name: str) -> Any:
        return json.loads(self._path(name).read_text(encoding="utf-8"))

    def parquet_rows(self, name: str) -> int:
        return pq.ParquetFile(self._path(name)).metadata.num_rows

    def _path(self, name: str) -> Path:
        path = self.run_dir / name
        if not path.is_file():
            raise _Missing(name)
        return path


# --- the page ---------------------------------------------------------------------------------------


def write_report(
    run_dir: Path, out_path: Path, as_of: date | None = None, run_info: Mapping[str, Any] | None = None
) -> Path:
    """Write the HTML report of the run in ``run_dir`` to ``out_path`` (atomically); return ``out_path``.

    ``as_of`` and ``run_info`` (MLflow run id, model version, ...) default to what the folder's
    ``manifest.json`` says, when it has one.
    """
    files = RunFiles(run_dir)
    manifest = files.json(RunFile.MANIFEST) if files.has(RunFile.MANIFEST) else {}
    as_of_text = str(as_of or manifest.get("as_of") or _month_of(files) or "unknown date")
    info = dict(run_info if run_info is not None else manifest.get("run", {}))
    sections = [build(files) for build in SECTIONS]
    page = render_page(as_of_text, info, sections, run_dir)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    partial.write_text(page, encoding="utf-8")
    os.replace(partial, out_path)
    logger.info(
        "report: %d of %d sections produced, written to %s",
        sum(s.produced for s in sections),
        len(sections),
        out_path,
    )
    return out_path


def render_page(as_of: str, run_info: Mapping[str, Any], sections: list[Section], run_dir: Path) -> str:
    """The whole HTML document."""
    contents = "".join(
        f'<li><a href="#{s.anchor}">{_e(s.title)}</a>'
        + ("" if s.produced else f' <span class="muted">({NOT_PRODUCED})</span>')
        + "</li>"
        for s in sections
    )
    body = "".join(f'<section id="{s.anchor}"><h2>{_e(s.title)}</h2>{s.body}</section>' for s in sections)
    facts = "".join(
        f"<div><dt>{_e(key.replace('_', ' '))}</dt><dd>{_e(value)}</dd></div>"
        for key, value in run_info.items()
        if key in _RUN_FACTS and value not in (None, "")
    )
    return _PAGE.format(
        title=_e(f"siyu nightly run — {as_of}"),
        css=_CSS,
        as_of=_e(as_of),
        source=_e(str(run_dir)),
        facts=f"<dl class='facts'>{facts}</dl>" if facts else "",
        contents=contents,
        body=body,
    )


_RUN_FACTS = (
    "mlflow_run_id",
    "model_name",
    "model_version",
    "model_alias",
    "published_model_version",
    "validation_ndcg",
    "champion_ndcg",
    "published_at",
)


def _section(anchor: str, title: str, needs: str) -> Callable[[Callable[[RunFiles], str]], Callable]:
    """Turn ``body(files) -> html`` into a section builder that reports missing files instead of failing."""

    def decorate(body: Callable[[RunFiles], str]) -> Callable[[RunFiles], Section]:
        def build(files: RunFiles) -> Section:
            try:
                return Section(anchor, title, body(files), True)
            except _Missing as missing:
                text = f"{title}: {NOT_PRODUCED} (no {missing.args[0]} in the run folder; from {needs})."
                return Section(anchor, title, f'<p class="absent">{_e(text)}</p>', False)

        build.__doc__ = body.__doc__
        return build

    return decorate


# --- sections ---------------------------------------------------------------------------------------


@_section("segments", "Segment sizes", "the segmentation step")
def segments_section(files: RunFiles) -> str:
    """RFM segments (rfm_segments.csv) and member tiers (consumer_tiers.csv), as bars."""
    segments = files.csv(StepFile.RFM_SEGMENTS)
    rows = [
        (s[RFMCol.SEGMENT], s["consumers"], [_num(s["mean_recency_days"], 0), _num(s["mean_orders"], 1),
                                            _money(s["mean_monetary"])])
        for _, s in segments.iterrows()
    ]  # fmt: skip
    total = int(segments["consumers"].sum())
    html_parts = [
        f"<p>{_int(total)} consumers. Segments come from the R × F map (see the heat map below); "
        "means are over the segment's consumers.</p>",
        _bar_table("RFM segment", rows, total, ["mean recency (days)", "mean orders", "mean spend"]),
    ]
    if files.has(StepFile.CONSUMER_TIERS):
        tiers = files.csv(StepFile.CONSUMER_TIERS, [TierCol.MEMBER_TIER])[TierCol.MEMBER_TIER]
        order = _tier_order(files, tiers)
        counts = tiers.value_counts()
        tier_rows = [(tier, int(counts.get(tier, 0)), []) for tier in order]
        html_parts += ["<h3>Member tiers</h3>", _bar_table("member tier", tier_rows, len(tiers), [])]
    return "".join(html_parts)


@_section("migration", "Member-tier migration", "the segmentation step")
def migration_section(files: RunFiles) -> str:
    """Consumers from each previous tier (rows) to each current tier (columns)."""
    matrix = files.csv(StepFile.TIER_MIGRATION).set_index(TierCol.PREVIOUS)
    current = [c for c in matrix.columns if c != TierCol.TOTAL]
    moved = matrix.drop(index="(new)", errors="ignore")[current].to_numpy().sum()
    note = (
        "<p>First run (or no previous export): every consumer is <em>new</em>, so there is no "
        "movement to show yet. From the next run on, rows are last run's tiers.</p>"
        if moved == 0
        else "<p>Rows: tier in the previous run; columns: tier now. Shading is the share of the "
        "row; the diagonal (bold) stayed.</p>"
    )
    header = "".join(f"<th>{_e(c)}</th>" for c in current)
    body = []
    for previous, row in matrix.iterrows():
        total = row[TierCol.TOTAL] if TierCol.TOTAL in row else row[current].sum()
        cells = "".join(
            _heat_cell(row[c], row[c] / total if total else 0.0, bold=(c == previous)) for c in current
        )
        body.append(f"<tr><th>{_e(previous)}</th>{cells}<td class='num'>{_int(total)}</td></tr>")
    table = (
        f"<table class='heat'><thead><tr><th>previous ↓ / now →</th>{header}<th>total</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )
    return note + table


@_section("rfm", "RFM heat map (recency × frequency)", "the segmentation step")
def rfm_section(files: RunFiles) -> str:
    """Buyers per (R, F) cell, R = 5 (most recent) on top, F = 5 (most frequent) on the right."""
    grid = files.csv(StepFile.RFM_GRID)
    counts = grid.pivot_table(index=RFMCol.R_SCORE, columns=RFMCol.F_SCORE, values="consumers", aggfunc="sum")
    names = grid.set_index([RFMCol.R_SCORE, RFMCol.F_SCORE])[RFMCol.SEGMENT]
    spend = grid.set_index([RFMCol.R_SCORE, RFMCol.F_SCORE])["mean_monetary"]
    top = max(float(np.nanmax(counts.to_numpy())), 1.0)
    rows = []
    for r in sorted(counts.index, reverse=True):
        cells = "".join(
            _heat_cell(
                counts.loc[r, f],
                counts.loc[r, f] / top,
                note=f"{names.get((r, f), '')}<br>mean spend {_money(spend.get((r, f), np.nan))}",
            )
            for f in sorted(counts.columns)
        )
        rows.append(f"<tr><th>R = {int(r)}</th>{cells}</tr>")
    header = "".join(f"<th>F = {int(f)}</th>" for f in sorted(counts.columns))
    buyers = int(grid["consumers"].sum())
    return (
        f"<p>{_int(buyers)} buyers (consumers without a purchase have no scores). Each fifth of buyers "
        "gets one score per letter, 5 = best; darker = more buyers.</p>"
        f"<table class='heat rfm'><thead><tr><th></th>{header}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


@_section("clv", "Customer lifetime value", "the segmentation step (CLV on)")
def clv_section(files: RunFiles) -> str:
    """Distribution of expected spend over the CLV horizon (consumer_tiers.csv), by member tier."""
    columns = files.columns(StepFile.CONSUMER_TIERS)
    value_column = next((c for c in columns if c.startswith("expected_value_")), None)
    if value_column is None:
        raise _Missing(f"{StepFile.CONSUMER_TIERS} column expected_value_<days>d")
    frame = files.csv(StepFile.CONSUMER_TIERS, [value_column, TierCol.MEMBER_TIER, "frequency"])
    values = frame[value_column].dropna()
    if values.empty:
        return f"<p>CLV was not estimated for any consumer ({_e(value_column)} is empty).</p>"
    horizon = value_column.removeprefix("expected_value_")
    quantiles = values.quantile([0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
    stats = [
        ("consumers with a value", _int(len(values))),
        ("without (no purchase or set aside)", _int(len(frame) - len(values))),
        ("total expected spend", _money(values.sum())),
        *((f"p{int(q * 100)}", _money(v)) for q, v in quantiles.items()),
        ("max", _money(values.max())),
    ]
    by_tier = frame.dropna(subset=[value_column]).groupby(TierCol.MEMBER_TIER)[value_column]
    tier_rows = "".join(
        f"<tr><td>{_e(tier)}</td><td class='num'>{_int(group.size)}</td>"
        f"<td class='num'>{_money(group.median())}</td><td class='num'>{_money(group.mean())}</td>"
        f"<td class='num'>{_money(group.sum())}</td></tr>"
        for tier, group in sorted(by_tier, key=lambda item: -item[1].mean())
    )
    chart = _clv_chart(values, horizon)
    return (
        f"<p>Expected spend per consumer over the next {_e(horizon)} (BG/NBD × Gamma-Gamma).</p>"
        f"<div class='row'>{chart}<div>{_kv_table(stats)}</div></div>"
        "<h3>By member tier</h3><table><thead><tr><th>member tier</th><th>consumers</th><th>median</th>"
        f"<th>mean</th><th>total</th></tr></thead><tbody>{tier_rows}</tbody></table>"
    )


@_section("distributors", "Distributor tiers", "the segmentation step")
def distributors_section(files: RunFiles) -> str:
    """Distributors per tier with their GMV, and the top distributors of the month."""
    frame = files.csv(StepFile.DISTRIBUTOR_TIERS)
    tier = DistributorTierCol.TIER
    month = str(frame["month"].iloc[0]) if len(frame) else "?"
    grouped = frame.groupby(tier).agg(
        distributors=(Col.DISTRIBUTOR_ID, "size"),
        gmv=("gmv_month", "sum"),
        customers=("active_customers", "sum"),
        coached=(DistributorTierCol.COACHING, _true_count),
    )
    total_gmv = float(frame["gmv_month"].sum())
    order = [t for t in DISTRIBUTOR_TIERS if t in grouped.index] + sorted(
        set(grouped.index) - set(DISTRIBUTOR_TIERS)
    )
    rows = [
        (t, int(grouped.loc[t, "distributors"]), [_money(grouped.loc[t, "gmv"]),
         _pct(grouped.loc[t, "gmv"] / total_gmv if total_gmv else 0.0), _int(grouped.loc[t, "customers"]),
         _int(grouped.loc[t, "coached"])])
        for t in order
    ]  # fmt: skip
    top = frame.sort_values(DistributorTierCol.RANK).head(TOP_DISTRIBUTORS)
    top_columns = [Col.DISTRIBUTOR_ID, tier, "gmv_month", DistributorTierCol.GMV_SHARE, "growth",
                   "active_customers", "repeat_rate", DistributorTierCol.COACHING]  # fmt: skip
    return (
        f"<p>Month {_e(month)}: {_int(len(frame))} distributors, GMV {_money(total_gmv)}, "
        f"{_int(grouped['coached'].sum())} on the coaching list.</p>"
        + _bar_table("tier", rows, len(frame), ["GMV", "GMV share", "active customers", "coached"])
        + f"<h3>Top {TOP_DISTRIBUTORS} by GMV</h3>"
        + _frame_table(
            top[[c for c in top_columns if c in top.columns]], percent={"gmv_share", "growth", "repeat_rate"}
        )
    )


@_section("recommenders", "Recommenders against the baselines", "the evaluation step")
def recommenders_section(files: RunFiles) -> str:
    """Every model × protocol from the evaluation JSON; baselines marked, lift over the best baseline."""
    report = files.json(StepFile.EVALUATION)
    results = pd.DataFrame(report["results"] if isinstance(report, dict) else report)
    k = report.get("k", "k") if isinstance(report, dict) else "k"
    production = report.get("production") if isinstance(report, dict) else None
    window = (
        f"trained up to {_e(report['cutoff'])}, tested on the days up to {_e(report['test_end'])}. "
        if isinstance(report, dict) and "cutoff" in report
        else ""
    )
    parts = [
        f"<p>Metrics at k = {_e(k)}; {window}<span class='tag base'>baseline</span> marks the "
        "non-personalised baselines; <em>vs best baseline</em> compares NDCG with the best of them "
        "under the same protocol.</p>",
        _metrics_chart(results, k),
    ]
    for protocol, table in results.groupby("protocol", sort=False):
        parts.append(f"<h3>Protocol: {_e(protocol)}</h3>{_metrics_table(table, production)}")
    parts.append(_lists_paragraph(files))
    return "".join(parts)


@_section("quality", "Product quality alerts", "the quality gate")
def quality_section(files: RunFiles) -> str:
    """Products per level, what changed since the last run, and the worst products now."""
    alerts = files.csv(StepFile.QUALITY_ALERTS)
    level = QualityCol.LEVEL
    counts = alerts[level].value_counts()
    rows = [(name, int(counts.get(name, 0)), []) for name in reversed(LEVELS)]
    changes = alerts[QualityCol.CHANGE].value_counts()
    change_text = ", ".join(f"{_int(n)} {_e(c)}" for c, n in changes.items())
    flagged = alerts[alerts[level] != LEVELS[0]].assign(_severity=lambda f: f[level].map(_SEVERITY))
    # Within a level, the lower bound of the rate first: 2 complaints on 3 orders is less sure than 9 on 60.
    rank_by = (
        QualityCol.RATE_LOWER_BOUND if QualityCol.RATE_LOWER_BOUND in flagged else QualityCol.COMPLAINT_RATE
    )
    worst = flagged.sort_values(["_severity", rank_by], ascending=[False, False]).head(TOP_ALERTS)
    columns = [
        Col.PRODUCT_ID, Col.SUPPLIER_ID, Col.CATEGORY, QualityCol.ORDERS_30D, QualityCol.COMPLAINTS_30D,
        QualityCol.COMPLAINT_RATE, QualityCol.RATE_LOWER_BOUND, QualityCol.THRESHOLD, level,
        QualityCol.CHANGE, QualityCol.SINCE,
    ]  # fmt: skip
    suppliers = ""
    if files.has(StepFile.QUALITY_SUPPLIERS):
        n = len(files.csv(StepFile.QUALITY_SUPPLIERS))
        who = "No supplier has" if n == 0 else ("1 supplier has" if n == 1 else f"{_int(n)} suppliers have")
        suppliers = f" {who} two or more products at warning or pulled."
    worst_html = (
        _frame_table(
            worst[[c for c in columns if c in worst]],
            percent={QualityCol.COMPLAINT_RATE, QualityCol.RATE_LOWER_BOUND, QualityCol.THRESHOLD},
            levels=True,
        )
        if len(worst)
        else "<p>No product is above normal.</p>"
    )
    return (
        f"<p>{_int(len(alerts))} products graded on the last 30 days' complaints. Changes since the "
        f"previous run: {change_text or 'none'}.{suppliers}</p>"
        + _bar_table("level", rows, len(alerts), [], levels=True)
        + f"<h3>Top alerts (worst level first, then the rate's lower bound; at most {TOP_ALERTS})</h3>"
        + worst_html
    )


SECTIONS: tuple[Callable[[RunFiles], Section], ...] = (
    segments_section,
    migration_section,
    rfm_section,
    clv_section,
    distributors_section,
    recommenders_section,
    quality_section,
)


# --- summaries for Prefect --------------------------------------------------------------------------


def summary_table(run_dir: Path) -> list[dict[str, str]]:
    """Headline numbers as rows ``{"area", "measure", "value"}`` (for ``create_table_artifact``)."""
    files = RunFiles(run_dir)
    rows: list[dict[str, str]] = []
    for area, measure in _HEADLINES:
        try:
            values = measure(files)
        except _Missing:
            values = {"status": NOT_PRODUCED}
        rows.extend({"area": area, "measure": name, "value": value} for name, value in values.items())
    return rows


def summary_markdown(run_dir: Path) -> str:
    """A short markdown summary of the run (for ``create_markdown_artifact``)."""
    lines = [f"## siyu nightly run: `{run_dir}`", "", "| area | measure | value |", "|---|---|---|"]
    lines += [f"| {r['area']} | {r['measure']} | {r['value']} |" for r in summary_table(run_dir)]
    return "\n".join(lines) + "\n"


def _segment_headlines(files: RunFiles) -> dict[str, str]:
    segments = files.csv(StepFile.RFM_SEGMENTS)
    largest = segments.sort_values("consumers", ascending=False).iloc[0]
    return {
        "consumers": _plain_int(segments["consumers"].sum()),
        "segments": str(len(segments)),
        "largest segment": f"{largest[RFMCol.SEGMENT]} ({_plain_pct(largest['share'])})",
    }


def _tier_headlines(files: RunFiles) -> dict[str, str]:
    tiers = files.csv(StepFile.CONSUMER_TIERS, [TierCol.MEMBER_TIER])[TierCol.MEMBER_TIER]
    counts = tiers.value_counts()
    return {str(t): _plain_int(counts.get(t, 0)) for t in _tier_order(files, tiers)}


def _distributor_headlines(files: RunFiles) -> dict[str, str]:
    frame = files.csv(StepFile.DISTRIBUTOR_TIERS, [DistributorTierCol.TIER, DistributorTierCol.COACHING])
    counts = frame[DistributorTierCol.TIER].value_counts()
    values = {t: _plain_int(counts.get(t, 0)) for t in DISTRIBUTOR_TIERS if t in counts}
    values["coaching list"] = _plain_int(_true_count(frame[DistributorTierCol.COACHING]))
    return values


def _recommender_headlines(files: RunFiles) -> dict[str, str]:
    report = files.json(StepFile.EVALUATION)
    results = pd.DataFrame(report["results"] if isinstance(report, dict) else report)
    values = {}
    for protocol, table in results.groupby("protocol", sort=False):
        best = table.sort_values("ndcg", ascending=False).iloc[0]
        baselines = table[table["model"].isin(BASELINE_MODELS)]
        text = f"{best['model']} {best['ndcg']:.4f}"
        if len(baselines):
            base = baselines.sort_values("ndcg", ascending=False).iloc[0]
            text += f" (best baseline {base['model']} {base['ndcg']:.4f})"
        values[f"best ndcg, {protocol}"] = text
    return values


def _quality_headlines(files: RunFiles) -> dict[str, str]:
    counts = files.csv(StepFile.QUALITY_ALERTS, [QualityCol.LEVEL])[QualityCol.LEVEL].value_counts()
    return {level: _plain_int(counts.get(level, 0)) for level in LEVELS}


_HEADLINES: tuple[tuple[str, Callable[[RunFiles], dict[str, str]]], ...] = (
    ("segments", _segment_headlines),
    ("member tiers", _tier_headlines),
    ("distributor tiers", _distributor_headlines),
    ("recommenders", _recommender_headlines),
    ("quality levels", _quality_headlines),
)


# --- building blocks --------------------------------------------------------------------------------


def _bar_table(
    label: str, rows: list[tuple[str, int, list[str]]], total: int, extra: list[str], levels: bool = False
) -> str:
    """A table with a count, a share and a horizontal bar per row, plus extra text columns."""
    widest = max((count for _, count, _ in rows), default=0) or 1
    head = "".join(f"<th>{_e(h)}</th>" for h in extra)
    body = []
    for name, count, cells in rows:
        share = count / total if total else 0.0
        badge = f"<span class='level {_e(_slug(name))}'>{_e(name)}</span>" if levels else _e(name)
        bar = f"<div class='bar' style='width:{100 * count / widest:.1f}%'></div>" if count else ""
        extras = "".join(f"<td class='num'>{cell}</td>" for cell in cells)
        body.append(
            f"<tr><td>{badge}</td><td class='num'>{_int(count)}</td><td class='num'>{_pct(share)}</td>"
            f"<td class='barcell'>{bar}</td>{extras}</tr>"
        )
    return (
        f"<table class='bars'><thead><tr><th>{_e(label)}</th><th>count</th><th>share</th><th></th>{head}</tr>"
        f"</thead><tbody>{''.join(body)}</tbody></table>"
    )


def _heat_cell(count: float, intensity: float, bold: bool = False, note: str = "") -> str:
    """A table cell shaded by ``intensity`` (0..1), with white text on dark shades."""
    intensity = 0.0 if not np.isfinite(intensity) else min(max(intensity, 0.0), 1.0)
    background = f"rgba(37, 99, 235, {0.06 + 0.84 * intensity:.2f})"
    color = "#fff" if intensity > 0.62 else "#111"
    weight = "font-weight:700;" if bold else ""
    extra = f"<div class='note'>{note}</div>" if note else ""
    value = "–" if pd.isna(count) else _int(count)
    return f"<td class='num' style='background:{background};color:{color};{weight}'>{value}{extra}</td>"


def _frame_table(frame: pd.DataFrame, percent: set[str] = frozenset(), levels: bool = False) -> str:  # type: ignore[assignment]
    head = "".join(f"<th>{_e(str(c).replace('_', ' '))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for column, value in row.items():
            if levels and column == QualityCol.LEVEL:
                cells.append(f"<td><span class='level {_e(_slug(value))}'>{_e(value)}</span></td>")
            elif column in percent:
                cells.append(f"<td class='num'>{_pct(value)}</td>")
            elif isinstance(value, bool | np.bool_) or str(value) in ("True", "False"):
                cells.append(f"<td>{'yes' if str(value) == 'True' else ''}</td>")
            elif isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_):
                cells.append(f"<td class='num'>{_number(value)}</td>")
            else:
                cells.append(f"<td>{_e('' if pd.isna(value) else value)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _kv_table(pairs: list[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td class='num'>{v}</td></tr>" for k, v in pairs)
    return f"<table class='kv'><tbody>{rows}</tbody></table>"


def _metrics_table(table: pd.DataFrame, production: str | None) -> str:
    ordered = table.sort_values("ndcg", ascending=False)
    baselines = ordered[ordered["model"].isin(BASELINE_MODELS)]
    best_baseline = float(baselines["ndcg"].max()) if len(baselines) else np.nan
    metrics = [m for m in METRICS if m in ordered.columns]
    head = "".join(f"<th>{_e(m.replace('_', ' '))}</th>" for m in metrics)
    rows = []
    for _, row in ordered.iterrows():
        name = _e(row["model"])
        if row["model"] in BASELINE_MODELS:
            name += " <span class='tag base'>baseline</span>"
        if production is not None and row["model"] == production:
            name += " <span class='tag prod'>production</span>"
        lift = row["ndcg"] / best_baseline - 1 if best_baseline and np.isfinite(best_baseline) else np.nan
        lift_text = "–" if not np.isfinite(lift) or row["model"] in BASELINE_MODELS else f"{lift:+.0%}"
        values = "".join(f"<td class='num'>{_number(row[m], 4)}</td>" for m in metrics)
        rows.append(
            f"<tr><td>{name}</td><td class='num'>{_int(row.get('consumers', np.nan))}</td>{values}"
            f"<td class='num'>{lift_text}</td></tr>"
        )
    return (
        f"<table><thead><tr><th>model</th><th>consumers</th>{head}<th>vs best baseline</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _lists_paragraph(files: RunFiles) -> str:
    parts = []
    for name, who in ((StepFile.CONSUMER_LISTS, "consumer"), (StepFile.DISTRIBUTOR_LISTS, "distributor")):
        if files.has(name):
            parts.append(f"{_int(files.parquet_rows(name))} {who} list rows ({_e(name)})")
    if not parts:
        return f"<p class='muted'>Published lists: {NOT_PRODUCED}.</p>"
    return f"<p>Published lists: {'; '.join(parts)}.</p>"


# --- charts -----------------------------------------------------------------------------------------


def _clv_chart(values: pd.Series, horizon: str) -> str:
    """Histogram of expected spend on a log axis (CLV is heavy-tailed); values below 1 share the first bin."""
    figure = _figure(5.8, 3.0)
    if figure is None:
        return ""
    top = max(float(values.max()), 10.0)
    bins = np.geomspace(1.0, top * 1.001, 41)
    axes = figure.add_subplot()
    axes.hist(values.clip(lower=1.0), bins=bins, color="#2563eb")
    axes.set_xscale("log")
    axes.set_xlabel(f"expected spend, next {horizon} (log scale; below 1 counted at 1)")
    axes.set_ylabel("consumers")
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)


def _metrics_chart(results: pd.DataFrame, k: object) -> str:
    protocols = list(dict.fromkeys(results["protocol"]))
    height = 0.9 + 0.24 * results["model"].nunique()
    figure = _figure(8.5, min(height, 9.0))
    if figure is None or not len(results):
        return ""
    axes_list = figure.subplots(1, len(protocols), sharey=True, squeeze=False)[0]
    first = results[results["protocol"] == protocols[0]]
    models = first.sort_values("ndcg")["model"].tolist()
    models += sorted(set(results["model"]) - set(models))
    for axes, protocol in zip(axes_list, protocols, strict=True):
        ndcg = results[results["protocol"] == protocol].set_index("model")["ndcg"].reindex(models)
        colors = ["#9ca3af" if m in BASELINE_MODELS else "#2563eb" for m in models]
        bars = axes.barh(models, ndcg.fillna(0.0), color=colors, height=0.7)
        axes.bar_label(
            bars, labels=[f"{v:.3f}" if np.isfinite(v) else "" for v in ndcg], padding=2, fontsize=8
        )
        axes.set_title(f"NDCG@{k}, {protocol}", fontsize=10)
        axes.set_xlim(0, float(np.nanmax(results["ndcg"])) * 1.18)
        axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:  # charts are optional: the tables carry the same numbers
        return None
    return Figure(figsize=(width, height), layout="constrained")


def _svg(figure: Any) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9, "svg.hashsalt": "siyu"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return "<figure>" + text[text.index("<svg") :] + "</figure>"


# --- formatting -------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value))


def _int(value: object) -> str:
    return "–" if value is None or pd.isna(value) else f"{round(float(value)):,}"


def _plain_int(value: object) -> str:
    return str(round(float(value)))  # type: ignore[arg-type]


def _pct(value: object) -> str:
    return "–" if value is None or pd.isna(value) else f"{100 * float(value):.1f}%"


def _plain_pct(value: object) -> str:
    return f"{100 * float(value):.1f}%"  # type: ignore[arg-type]


def _money(value: object) -> str:
    if value is None or pd.isna(value):
        return "–"
    value = float(value)  # type: ignore[arg-type]
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.2f}"


def _num(value: object, digits: int) -> str:
    return "–" if value is None or pd.isna(value) else f"{float(value):,.{digits}f}"


def _number(value: object, digits: int = 2) -> str:
    if value is None or pd.isna(value):
        return "–"
    if float(value).is_integer() and digits != 4:
        return _int(value)
    return f"{float(value):,.{digits}f}"


def _slug(text: object) -> str:
    return str(text).replace(" ", "-").lower()


def _true_count(values: pd.Series) -> int:
    return int(values.astype(str).str.lower().eq("true").sum())


def _tier_order(files: RunFiles, tiers: pd.Series) -> list[str]:
    """Member tiers lowest first as configured (member_tiers.csv), else by count."""
    if files.has(StepFile.MEMBER_TIERS):
        configured = files.csv(StepFile.MEMBER_TIERS, [TierCol.MEMBER_TIER])[TierCol.MEMBER_TIER].tolist()
        return configured + sorted(set(tiers.dropna()) - set(configured))
    return tiers.value_counts().index.tolist()


def _month_of(files: RunFiles) -> str | None:
    if not files.has(StepFile.DISTRIBUTOR_TIERS):
        return None
    months = files.csv(StepFile.DISTRIBUTOR_TIERS, ["month"])["month"]
    return f"month {months.iloc[0]}" if len(months) else None


_CSS = """
:root { --ink:#111827; --muted:#6b7280; --line:#e5e7eb; --blue:#2563eb; --bg:#f9fafb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 -apple-system, "Segoe UI", Roboto, "Noto Sans", "Noto Sans CJK SC",
       "PingFang SC", "Microsoft YaHei", sans-serif; color: var(--ink); background: var(--bg); }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; }
header { border-bottom: 2px solid var(--ink); margin-bottom: 16px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 0 0 8px; padding-top: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px;
          margin: 16px 0; }
p { margin: 6px 0 10px; max-width: 80ch; }
.muted, .source { color: var(--muted); }
.absent { color: var(--muted); font-style: italic; }
nav ol { columns: 2; margin: 8px 0; padding-left: 20px; }
nav a { color: var(--blue); text-decoration: none; }
dl.facts { display: flex; flex-wrap: wrap; gap: 4px 24px; margin: 8px 0; }
dl.facts div { display: flex; gap: 6px; }
dt { color: var(--muted); } dd { margin: 0; font-family: ui-monospace, Menlo, Consolas, monospace; }
table { border-collapse: collapse; margin: 6px 0 12px; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background: #f3f4f6; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
table.bars { min-width: 640px; }
td.barcell { width: 260px; }
.bar { height: 12px; background: var(--blue); border-radius: 2px; min-width: 1px; margin-top: 4px; }
table.heat td { min-width: 92px; text-align: center; }
table.rfm td { height: 64px; }
table.heat .note { font-size: 11px; opacity: .85; font-weight: 400; }
table.kv th { font-weight: 400; color: var(--muted); }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
figure { margin: 4px 0 8px; }
figure svg { max-width: 100%; height: auto; }
.tag { font-size: 11px; padding: 1px 6px; border-radius: 9px; margin-left: 4px; white-space: nowrap; }
.tag.base { background: #e5e7eb; color: #374151; }
.tag.prod { background: #dbeafe; color: #1e40af; }
.level { padding: 1px 8px; border-radius: 9px; font-size: 12px; white-space: nowrap; }
.level.normal { background: #dcfce7; color: #166534; }
.level.watch { background: #fef9c3; color: #854d0e; }
.level.warning { background: #ffedd5; color: #9a3412; }
.level.pulled { background: #fee2e2; color: #991b1b; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<main>
<header>
<h1>siyu nightly run — {as_of}</h1>
<p class="source">Built from <code>{source}</code>.</p>
{facts}
</header>
<nav><strong>Contents</strong><ol>{contents}</ol></nav>
{body}
</main>
</body>
</html>
"""
