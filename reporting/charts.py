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

BLUE = "#2563eb"
GREY = "#9ca3af"
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
