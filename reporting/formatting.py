"""How the report writes numbers: counts, shares, money and plain numbers, with "–" for a missing value.

The page template uses these as Jinja filters (``integer``, ``percent``, ``money``, ``fixed``,
``number``, ``slug``); the Prefect summaries use the ``plain_*`` forms, which have no
thousands separator.
"""

from __future__ import annotations

import pandas as pd

MISSING = "–"


def integer(value: object) -> str:
    """A count with thousands separators: ``12,345``."""
    return MISSING if value is None or pd.isna(value) else f"{round(float(value)):,}"


def plain_integer(value: object) -> str:
    """A count without separators (for the Prefect summary table)."""
    return str(round(float(value)))  # type: ignore[arg-type]


def percent(value: object) -> str:
    """A share as a percentage with one decimal: ``0.1234`` → ``12.3%``."""
    return MISSING if value is None or pd.isna(value) else f"{100 * float(value):.1f}%"


def plain_percent(value: object) -> str:
    """A share as a percentage; the value must be present."""
    return f"{100 * float(value):.1f}%"  # type: ignore[arg-type]


def money(value: object) -> str:
    """An amount: whole units from 1,000 on, cents below."""
    if value is None or pd.isna(value):
        return MISSING
    amount = float(value)  # type: ignore[arg-type]
    return f"{amount:,.0f}" if abs(amount) >= 1000 else f"{amount:,.2f}"


def fixed(value: object, digits: int) -> str:
    """A number with exactly ``digits`` decimals."""
    return MISSING if value is None or pd.isna(value) else f"{float(value):,.{digits}f}"


def number(value: object, digits: int = 2) -> str:
    """A table number: whole numbers as counts (except for 4-digit metrics), else ``digits`` decimals."""
    if value is None or pd.isna(value):
        return MISSING
    if float(value).is_integer() and digits != 4:
        return integer(value)
    return f"{float(value):,.{digits}f}"


def slug(text: object) -> str:
    """A CSS class from a label: ``"Long tail"`` → ``long-tail``."""
    return str(text).replace(" ", "-").lower()


FILTERS = {
    "integer": integer,
    "percent": percent,
    "money": money,
    "fixed": fixed,
    "number": number,
    "slug": slug,
}
