"""The run report's public names, where the flow, benchmarks, notebooks and tests import them from.

The report itself lives in ``reporting.page`` (the page, ``write_report`` and the Prefect
summaries), ``reporting.sections`` (one data builder per section), ``reporting.charts`` (the
SVG charts) and ``reporting/templates`` (the Jinja2 page and section templates).
"""

from __future__ import annotations

from reporting.page import render_page, summary_markdown, summary_table, write_report
from reporting.sections import BASELINE_MODELS, NOT_PRODUCED, SECTIONS

__all__ = [
    "BASELINE_MODELS",
    "NOT_PRODUCED",
    "SECTIONS",
    "render_page",
    "summary_markdown",
    "summary_table",
    "write_report",
]
