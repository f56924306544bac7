"""Contract names inside DuckDB SQL text.

SQL templates spell contract tables and columns as ``{orders}``, ``{consumer_id}``,
``{ordered_at}`` and statuses or event types as ``{paid}``, ``{share}``; :func:`render`
fills them from ``features.columns`` so that no raw contract name is typed twice. Time
bounds come from ``features.asof.AsOf`` (``.end``, ``.date``), never from here.
"""

from __future__ import annotations

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
