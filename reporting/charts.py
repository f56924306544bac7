"""The report's charts as inline SVG, drawn with matplotlib's object API (no pyplot, no global backend).

Each function returns the ``<svg>`` element as ``Markup`` (trusted: matplotlib wrote it, and
``svg.fonttype: none`` keeps labels as escaped text), or an empty ``Markup`` when matplotlib
is not installed: charts are optional, the tables beside them carry the same numbers.
The SVG is deterministic (fixed hash salt, no date), so the same files give the same page.
"""

from __future__ import annotations

import io
from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from models.evaluation import MetricCol
from reporting import trends as trend

BLUE = "#2563eb"
GREY = "#9ca3af"
RED = "#dc2626"
NO_CHART = Markup("")


def clv_chart(values: pd.Series, horizon: str) -> Markup:
    """Histogram of expected spend on a log axis (CLV is heavy-tailed); values below 1 share the first bin."""
    figure = _figure(5.8, 3.0)
    if figure is None:
        return NO_CHART
    top = max(float(values.max()), 10.0)
    bins = np.geomspace(1.0, top * 1.001, 41)
    axes = figure.add_subplot()
    axes.hist(values.clip(lower=1.0), bins=bins, color=BLUE)
    axes.set_xscale("log")
    axes.set_xlabel(f"expected spend, next {horizon} (log scale; below 1 counted at 1)")
    axes.set_ylabel("consumers")  # vocabulary: a value, not a column
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)


def clv_bands_chart(bands: pd.Series, consumers: pd.Series, value: pd.Series, horizon: str) -> Markup:
    """Per band of expected spend: its share of the consumers (grey) and of the total expected
    spend (blue), side by side, so that "most consumers, little of the value" reads at once."""
    figure = _figure(5.8, 0.9 + 0.42 * len(bands))
    if figure is None or not len(bands):
        return NO_CHART
    from matplotlib.ticker import PercentFormatter

    axes = figure.add_subplot()
    positions = np.arange(len(bands))
    shares = consumers.to_numpy(dtype=float)
    who = "consumers"  # vocabulary: a value, not a column
    axes.barh(positions - 0.2, shares, height=0.38, color=GREY, label=who)
    spend = np.nan_to_num(value.to_numpy(dtype=float))
    axes.barh(positions + 0.2, spend, height=0.38, color=BLUE, label="expected spend")
    axes.set_yticks(positions, [str(band) for band in bands])
    axes.invert_yaxis()
    axes.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axes.set_xlabel(f"share of consumers and of expected spend, next {horizon}")
    axes.set_ylabel(f"expected spend, next {horizon}")
    axes.legend(loc="upper right", fontsize=8, frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)


def reliability_chart(calibration: pd.DataFrame) -> Markup:
    """Reliability plot of churn risk: observed churn against mean predicted risk per decile."""
    figure = _figure(4.2, 3.6)
    if figure is None or not len(calibration):
        return NO_CHART
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color=GREY, linestyle="--", linewidth=1)
    axes.plot(calibration["mean_risk"], calibration["observed_churn"], marker="o", color=BLUE)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("mean predicted churn risk (decile)")
    axes.set_ylabel("observed churn (no purchase in the horizon)")
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)


def metrics_chart(results: pd.DataFrame, k: object, baselines: Collection[str]) -> Markup:
    """NDCG@k per model, one panel per protocol; ``baselines`` in grey, the rest in blue."""
    model, protocol_col, ndcg_col = MetricCol.MODEL, MetricCol.PROTOCOL, MetricCol.NDCG
    protocols = list(dict.fromkeys(results[protocol_col]))
    height = 0.9 + 0.24 * results[model].nunique()
    figure = _figure(8.5, min(height, 9.0))
    if figure is None or not len(results):
        return NO_CHART
    axes_list = figure.subplots(1, len(protocols), sharey=True, squeeze=False)[0]
    first = results[results[protocol_col] == protocols[0]]
    models = first.sort_values(ndcg_col)[model].tolist()
    models += sorted(set(results[model]) - set(models))
    for axes, protocol in zip(axes_list, protocols, strict=True):
        ndcg = results[results[protocol_col] == protocol].set_index(model)[ndcg_col].reindex(models)
        colors = [GREY if m in baselines else BLUE for m in models]
        bars = axes.barh(models, ndcg.fillna(0.0), color=colors, height=0.7)
        axes.bar_label(
            bars, labels=[f"{v:.3f}" if np.isfinite(v) else "" for v in ndcg], padding=2, fontsize=8
        )
        axes.set_title(f"NDCG@{k}, {protocol}", fontsize=10)
        axes.set_xlim(0, float(np.nanmax(results[ndcg_col])) * 1.18)
        axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)


def category_rates_chart(rates: pd.Series, thresholds: pd.Series) -> Markup:
    """Each category's pooled complaint rate (a bar; red above its threshold) with its threshold
    (a black tick), one row per category in the given order, first on top."""
    figure = _figure(6.4, min(0.9 + 0.28 * len(rates), 9.0))
    if figure is None or not len(rates):
        return NO_CHART
    from matplotlib.ticker import PercentFormatter

    axes = figure.add_subplot()
    names = [str(name) for name in rates.index]
    positions = np.arange(len(names))
    values = rates.fillna(0.0).to_numpy(dtype=float)
    limits = thresholds.reindex(rates.index).to_numpy(dtype=float)
    over = values > np.nan_to_num(limits, nan=np.inf)
    axes.barh(positions, values, color=np.where(over, RED, BLUE), height=0.6)
    tick = "threshold"  # vocabulary: a value, not a column
    axes.scatter(limits, positions, marker="|", s=260, color="#111", linewidths=2, label=tick)
    axes.set_yticks(positions, names)
    axes.invert_yaxis()
    axes.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    axes.set_xlabel("complaint rate, last 30 days (bar) and threshold (tick)")
    axes.legend(loc="lower right", fontsize=8, frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)


def trends_chart(measures: pd.DataFrame, segments: pd.DataFrame) -> Markup:
    """Four small panels over the nights (x, oldest first): consumers per RFM segment, member-tier
    moves up and down, the production model's NDCG and the platform's monthly GMV."""
    figure = _figure(8.5, 5.2)
    if figure is None or not len(measures):
        return NO_CHART
    from matplotlib.ticker import FuncFormatter

    nights = [str(night)[5:] if len(str(night)) == 10 else str(night) for night in measures.index]
    (top_left, top_right), (bottom_left, bottom_right) = figure.subplots(2, 2, sharex=True)
    for name, counts in segments.iterrows():
        sizes = counts.reindex(measures.index).to_numpy(dtype=float)
        top_left.plot(nights, sizes, marker=".", label=str(name))
    top_left.set_title("consumers per RFM segment", fontsize=9)
    top_left.legend(fontsize=6, ncols=2, frameon=False)
    panels = (
        (top_right, (trend.UPGRADED, trend.DOWNGRADED), "member-tier moves", (BLUE, RED)),
        (bottom_left, (trend.PRODUCTION_NDCG,), "production NDCG (all items)", (BLUE,)),
        (bottom_right, (trend.GMV_MONTH,), "platform GMV, last full month", (BLUE,)),
    )
    for axes, columns, title, colors in panels:
        for column, color in zip(columns, colors, strict=True):
            if column in measures:
                values = measures[column].to_numpy(dtype=float)
                axes.plot(nights, values, marker="o", color=color, label=column)
        axes.set_title(title, fontsize=9)
        axes.yaxis.set_major_formatter(FuncFormatter(_plain_number))
        if len(columns) > 1:
            axes.legend(fontsize=7, frameon=False)
    for axes in (top_left, top_right, bottom_left, bottom_right):
        axes.spines[["top", "right"]].set_visible(False)
        axes.tick_params(axis="x", labelrotation=45, labelsize=7)
    return _svg(figure)


def _plain_number(value: float, _position: object = None) -> str:
    """An axis label without scientific notation: 752,757 and 0.3866."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4g}"


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:  # charts are optional: the tables carry the same numbers
        return None
    return Figure(figsize=(width, height), layout="constrained")


def _svg(figure: Any) -> Markup:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9, "svg.hashsalt": "siyu"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return Markup(text[text.index("<svg") :])
