"""DuckDB SQL, the one text of each feature, turned into Spark SQL.

The feature builders write DuckDB SQL (``features.sql.render``) and nothing else: this module
is the single place where that text becomes Spark SQL, so that no feature has two hand-written
copies. ``to_spark`` parses the statement with SQLGlot's DuckDB dialect, applies the few
rewrites that SQLGlot's own DuckDB → Spark translation does not do, and writes Spark SQL:

- **parameters** (``$name`` or ``?``) are bound as typed literals: a ``datetime`` as a
  ``TIMESTAMP_NTZ`` (DuckDB's ``TIMESTAMP``, like the contract's time columns read from
  Parquet), a ``date`` as a ``DATE``, a float as a ``DOUBLE`` (as DuckDB binds it), an int as
  an integer, a string as a string;
- **table macros** (``FROM order_baskets($end)``, ``features.engine.TABLE_MACROS``) are
  replaced by a view name that the caller's ``macro_view`` gives for the macro and its bound
  arguments (the Spark connection creates one temporary view per distinct argument);
- ``a / b`` divides doubles, as DuckDB does (Spark would keep two decimals a decimal);
- ``round(x, n)`` of a double is written out as DuckDB computes it (the product ``x * 10^n``
  exactly, halves away from zero), so that both engines give the same double: Spark would
  round the decimal text of ``x`` (an argument that is a DECIMAL on DuckDB is taken as a double);
- ``epoch(a - b)`` of two timestamps (DuckDB: the seconds of the interval) becomes
  ``timestampdiff(MICROSECOND, b, a) / 1e6``, a ``DOUBLE`` (SQLGlot writes ``unix_timestamp(a - b)``).

Everything else (``count(*) FILTER``, ``date_diff``, ``median``, ``arg_min``, ``generate_series``,
``::`` casts, ``GROUP BY ALL``, ``VALUES`` aliases, ``CREATE TEMP TABLE`` as a temporary view) is
SQLGlot's translation as it is; ``hash`` becomes Spark's ``xxhash64`` (engine-local values, for
digests only: ``ENGINE_LOCAL``) and ``HUGEINT`` a ``DECIMAL(38, 0)``. ``current_setting('name')``
is the connection's answer (``settings``); ``COPY (query) TO 'file' (FORMAT parquet)`` is split
by ``copy_target`` for the connection to write. SQL that cannot be translated raises ``TranspileError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal

import sqlglot
from sqlglot import exp

from features.errors import SiyuError

READ = "duckdb"
WRITE = "spark"

Params = Mapping[str, object] | Sequence[object] | None
MacroView = Callable[[str, list[str]], str]
"""``macro_view(macro_name, argument_sql)`` → the name of a view holding the macro's rows for
those arguments (Spark SQL literals)."""


class TranspileError(SiyuError):
    """DuckDB SQL that cannot be run on Spark as it is."""


def to_spark(
    sql: str,
    params: Params = None,
    macros: Mapping[str, object] | None = None,
    macro_view: MacroView | None = None,
    settings: Mapping[str, str] | None = None,
) -> str:
    """The Spark SQL of one DuckDB statement ``sql``, with ``params`` bound as literals, each
    call of a table macro named in ``macros`` replaced by ``macro_view(name, arguments)`` and
    each ``current_setting('name')`` by the string ``settings[name]`` (NULL when empty)."""
    try:
        tree = sqlglot.parse_one(sql, read=READ)
    except sqlglot.errors.ParseError as error:
        raise TranspileError(f"DuckDB SQL that SQLGlot cannot parse: {error}\n  sql: {sql[:300]}") from error
    tree = bind_params(_engine_local(tree), params)
    if macros:
        if macro_view is None:
            raise ValueError("macro_view is needed to expand table macros")
        tree = _expand_macros(tree, macros, macro_view)
    tree = tree.transform(lambda node: _current_setting(node, settings or {}))
    return _rewrite(tree).sql(dialect=WRITE)


def copy_target(sql: str) -> tuple[str, str] | None:
    """``(query, path)`` of a DuckDB ``COPY (query) TO 'path' (FORMAT parquet)``, the query as
    DuckDB SQL; None for any other statement. Another format is refused (Spark writes Parquet)."""
    if not sql.lstrip().upper().startswith("COPY"):
        return None
    tree = sqlglot.parse_one(sql, read=READ)
    if not isinstance(tree, exp.Copy) or not tree.args.get("files"):
        return None
    options = " ".join(option.sql(dialect=READ).upper() for option in tree.args.get("params") or [])
    if "PARQUET" not in options:
        raise TranspileError(f"COPY on Spark writes Parquet only, the statement asks for: {options}")
    query = tree.this.this if isinstance(tree.this, exp.Subquery) else tree.this
    return query.sql(dialect=READ), tree.args["files"][0].name


def _current_setting(node: exp.Expression, settings: Mapping[str, str]) -> exp.Expression:
    """DuckDB's ``current_setting('name')``: the connection's value of that setting, or NULL."""
    if not (isinstance(node, exp.Anonymous) and node.name.lower() == "current_setting"):
        return node
    argument = node.expressions[0] if node.expressions else None
    if not isinstance(argument, exp.Literal) or not argument.is_string:
        raise TranspileError("current_setting() on Spark needs the setting's name as a string literal")
    value = settings.get(argument.name)
    if value is None:
        raise TranspileError(
            f"current_setting({argument.name!r}) is a DuckDB setting a Spark connection does not answer\n"
            "  fix: run the query on DuckDB (engine.kind: duckdb), "
            "or add the setting to SparkConnection.settings"
        )
    return exp.Literal.string(value) if value else exp.null()


def substitute(select: str, names: Mapping[str, str]) -> str:
    """The Spark SQL of a DuckDB ``select`` whose bare column names ``names`` (a macro's
    parameters) are replaced by Spark SQL expressions (its arguments)."""
    tree = sqlglot.parse_one(select, read=READ)
    replacements = {name: sqlglot.parse_one(value, read=WRITE) for name, value in names.items()}

    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name in replacements:
            return replacements[node.name].copy()
        return node

    return _rewrite(tree.transform(replace)).sql(dialect=WRITE)


# Functions whose values depend on the engine (DuckDB's hash is not Spark's): their values are
# engine-local, fit only for digests compared with another digest of the same engine
# (features.interactions.history_fingerprint: a model stored by a DuckDB night is refitted on a
# Spark night, never mistaken for the same history). Spark computes ``hash(a, b, ...)`` as
# ``xxhash64(a, b, ...)``; a query that must give the same numbers on both cannot use them.
ENGINE_LOCAL = {"hash": "XXHASH64"}


def _engine_local(tree: exp.Expression) -> exp.Expression:
    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Anonymous) and node.name.lower() in ENGINE_LOCAL:
            return exp.Anonymous(this=ENGINE_LOCAL[node.name.lower()], expressions=node.expressions)
        if isinstance(node, exp.DataType) and node.this in (
            exp.DataType.Type.INT128,
            exp.DataType.Type.UINT128,
        ):
            return exp.DataType.build("DECIMAL(38, 0)")  # DuckDB's HUGEINT: Spark has no 128-bit integer
        return node

    return tree.transform(replace)


def bind_params(tree: exp.Expression, params: Params) -> exp.Expression:
    """``tree`` with every ``$name`` (from a mapping) or ``?`` (from a sequence, in order)
    replaced by the literal of its value."""
    placeholders = list(tree.find_all(exp.Placeholder))
    if not placeholders:
        return tree
    if params is None:
        raise TranspileError(f"the SQL has {len(placeholders)} parameters but none were given")
    positional = iter(params) if not isinstance(params, Mapping) else None

    def replace(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Placeholder):
            return node
        if positional is not None:
            try:
                return literal(next(positional))
            except StopIteration:
                raise TranspileError("more ? parameters in the SQL than values given") from None
        assert isinstance(params, Mapping)
        if node.name not in params:
            raise TranspileError(f"parameter ${node.name} has no value; given: {sorted(params)}")
        return literal(params[node.name])

    return tree.transform(replace)


def literal(value: object) -> exp.Expression:
    """A SQL literal of ``value`` with DuckDB's parameter type (see the module docstring)."""
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.true() if value else exp.false()
    if isinstance(value, datetime):
        timestamp = exp.DataType.build("TIMESTAMP", dialect=READ)  # no time zone: Spark's TIMESTAMP_NTZ
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), timestamp)
    if isinstance(value, date):
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("DATE", dialect=READ))
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, float | Decimal):
        if isinstance(value, float) and not math.isfinite(value):
            raise TranspileError(f"a parameter is {value!r}: not a finite number")
        return exp.cast(exp.Literal.number(repr(float(value))), exp.DataType.build("DOUBLE"))
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise TranspileError(f"a parameter of type {type(value).__name__} cannot be bound: {value!r}")


def _expand_macros(
    tree: exp.Expression, macros: Mapping[str, object], macro_view: MacroView
) -> exp.Expression:
    def replace(node: exp.Expression) -> exp.Expression:
        if not (isinstance(node, exp.Table) and isinstance(node.this, exp.Anonymous)):
            return node
        call = node.this
        if call.name.lower() not in macros:
            return node
        arguments = [argument.sql(dialect=WRITE) for argument in call.expressions]
        view = exp.to_table(macro_view(call.name.lower(), arguments))
        alias = node.args.get("alias")
        return exp.Table(this=view.this, alias=alias.copy() if alias else None)

    return tree.transform(replace)


def _rewrite(tree: exp.Expression) -> exp.Expression:
    """The rewrites SQLGlot's own DuckDB → Spark translation leaves to us."""
    return _double_division(tree).transform(_epoch_of_interval).transform(_round_to_places)


def _double_division(tree: exp.Expression) -> exp.Expression:
    """``a / b``: DuckDB divides as doubles whatever the operands (a DECIMAL too); Spark keeps
    decimals decimal (pandas then gets Python ``Decimal`` objects). Both operands as doubles."""
    for division in list(tree.find_all(exp.Div)):
        if not division.args.get("typed"):
            division.set("this", exp.cast(division.this, "DOUBLE", copy=False))
            division.set("expression", exp.cast(division.expression, "DOUBLE", copy=False))
    return tree


def _round_to_places(node: exp.Expression) -> exp.Expression:
    """``round(x, n)`` of a double, as DuckDB computes it: ``x * 10^n`` in extended precision,
    rounded half away from zero, divided back. Spark rounds the shortest decimal text of ``x``
    instead (84.785 → 84.79, where DuckDB, seeing 84.78499999…, gives 84.78). The exact product's
    error is recovered in plain doubles (a Veltkamp split of ``x``), and decides the halves."""
    places = node.args.get("decimals") if isinstance(node, exp.Round) else None
    if not isinstance(places, exp.Literal) or places.is_string or int(places.this) <= 0:
        return node
    value = node.this.sql(dialect=WRITE)
    written = _ROUND_AS_DUCKDB.format(
        x=f"CAST(({value}) AS DOUBLE)", s=f"CAST({10 ** int(places.this)} AS DOUBLE)"
    )
    return exp.paren(sqlglot.parse_one(written, read=WRITE))


# y = x*s rounded to a double; x = hi + lo exactly (hi: 26 bits), so hi*s and lo*s are exact and
# err = x*s - y to within a rounding that keeps its sign. y a half: err says which side x*s is on.
_ROUND_AS_DUCKDB = """
CASE WHEN {x} * {s} - floor({x} * {s}) = 0.5D THEN
    CASE WHEN ((({x} * 134217729.0D) - (({x} * 134217729.0D) - {x})) * {s} - {x} * {s})
              + ({x} - (({x} * 134217729.0D) - (({x} * 134217729.0D) - {x}))) * {s} > 0 THEN ceil({x} * {s})
         WHEN ((({x} * 134217729.0D) - (({x} * 134217729.0D) - {x})) * {s} - {x} * {s})
              + ({x} - (({x} * 134217729.0D) - (({x} * 134217729.0D) - {x}))) * {s} < 0 THEN floor({x} * {s})
         WHEN {x} > 0 THEN ceil({x} * {s}) ELSE floor({x} * {s}) END
ELSE round({x} * {s}) END / {s}
"""


def _epoch_of_interval(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.TimeToUnix) and isinstance(node.this, exp.Sub):
        later, earlier = node.this.this, node.this.expression
        micros = exp.Anonymous(this="TIMESTAMPDIFF", expressions=[exp.var("MICROSECOND"), earlier, later])
        return exp.paren(exp.Div(this=micros, expression=exp.cast(exp.Literal.number(1_000_000), "DOUBLE")))
    return node
