"""Contract names inside DuckDB SQL text, and the as-of time bounds every builder shares.

SQL templates spell contract tables and columns as ``{orders}``, ``{consumer_id}``,
``{ordered_at}`` and statuses or event types as ``{paid}``, ``{share}``; :func:`render`
fills them from ``features.columns`` so that no raw contract name is typed twice.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from features.columns import Col, EventType, OrderStatus, Table


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _constants(holder: type) -> dict[str, str]:
    return {key: value for key, value in vars(holder).items() if key.isupper() and isinstance(value, str)}


NAMES: dict[str, str] = {
    **{key.lower(): ident(value) for key, value in _constants(Col).items()},
    **{key.lower(): ident(value) for key, value in _constants(Table).items()},
    **{key.lower(): literal(value) for key, value in _constants(OrderStatus).items()},
    **{key.lower(): literal(value) for key, value in _constants(EventType).items()},
}


def render(template: str, **extra: object) -> str:
    """``template`` with contract names (``{consumer_id}``, ``{orders}``, ``{paid}``) and ``extra`` filled."""
    return template.format(**NAMES, **extra)


def end_of(as_of: date) -> datetime:
    """The exclusive upper time bound of an as-of date: the next day at 00:00.

    Everything that happened on the as-of date itself is in; a ``datetime`` is cut to its date.
    """
    day = as_of.date() if isinstance(as_of, datetime) else as_of
    return datetime.combine(day + timedelta(days=1), datetime.min.time())


def as_date(as_of: date) -> date:
    """``as_of`` as a plain date."""
    return as_of.date() if isinstance(as_of, datetime) else as_of
