"""Turning a bad config file into messages a user can act on.

``read_yaml`` parses the file (syntax errors name the line and column; a key given twice is
refused). ``describe_errors`` turns pydantic's ``ValidationError`` into one block per problem:
``file: dotted.key: problem (got value)``, then ``allowed:`` and ``fix:``. Both are derived
from pydantic's error dicts and the models' own field types, constraints, defaults and
descriptions, so a field added to any section gets the same quality of message for free.
"""

from __future__ import annotations

import difflib
import operator
import re
import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

from features.errors import SiyuError


class ConfigError(SiyuError):
    """A configuration file that cannot be used."""


# --- YAML ----------------------------------------------------------------------------------


class _DuplicateKeyError(yaml.MarkedYAMLError):
    """A key given twice in one mapping."""

    def __init__(self, key: Any, first_line: int, mark: yaml.Mark) -> None:
        super().__init__(
            problem=f"key {key!r} is given twice (first at line {first_line})", problem_mark=mark
        )
        self.fix = (
            f"keep one of the two '{key}:' lines (line {first_line} or line {mark.line + 1}); "
            "YAML would silently use the last"
        )


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (YAML would keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            if key in first_line:
                raise _DuplicateKeyError(key, first_line[key], key_node.start_mark)
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """The parsed file (None for an empty one becomes ``{}``); syntax errors name line and column."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{raw[error.start]:02x})\n"
            "  fix: save the file as UTF-8"
        ) from None
    try:
        content = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as error:
        raise ConfigError(_yaml_message(path, text, error)) from None
    return {} if content is None else content


def _yaml_message(path: Path, text: str, error: yaml.YAMLError) -> str:
    source = text.splitlines()
    problem = getattr(error, "problem", None) or str(error)
    context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
    mark = getattr(error, "problem_mark", None) or context_mark
    if mark is None:
        return f"{path}: not valid YAML ({problem})\n  fix: correct the syntax"
    if context_mark is not None and (mark.line >= len(source) or not source[mark.line].strip()):
        mark, context = context_mark, None  # the end of the file: point at where the open construct began
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    lines = [f"{path}: {where}: not valid YAML: {problem}"]
    if context and context_mark is not None and context_mark.line != mark.line:
        lines[0] += f" ({context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
    if mark.line < len(source):
        lines.append(f"  {mark.line + 1} | {source[mark.line]}")
        lines.append("  " + " " * (len(str(mark.line + 1)) + 3 + mark.column) + "^")
    fix = getattr(error, "fix", None) or (
        f"correct the syntax at {where}: 'key: value' pairs, nested keys indented by two "
        "spaces, lists in [ ] or on '- ' lines; quote a value that holds ': ' or ' #'"
    )
    lines.append(f"  fix: {fix}")
    return "\n".join(lines)


# --- pydantic errors -----------------------------------------------------------------------


@dataclass
class _Spot:
    """Where an error's ``loc`` points in the config tree: the key and what the models say of it."""

    annotation: Any
    parts: list[str | int] = field(default_factory=list)
    info: FieldInfo | None = None
    parent: type[BaseModel] | None = None
    tagged: bool = False
    key_error: bool = False

    @property
    def key(self) -> str:
        text = ""
        for part in self.parts:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
        return text or "(top level)"


def describe_errors(path: Path, error: ValidationError, root: type[BaseModel], reference: Path) -> str:
    """One block per problem: ``file: key: problem (got value)``, then ``allowed:`` and ``fix:``.

    ``root`` is the model the file was validated against; ``reference`` is the file with a
    working example of every key, named in fixes.
    """
    located = [
        (_locate(root, problem["loc"]), problem) for problem in _relevant(error.errors(include_url=False))
    ]
    deeper = [spot.parts for spot, _ in located]
    groups: dict[str, list[tuple[_Spot, Any]]] = {}
    for spot, problem in located:
        # A union member that failed deeper down says more than the other members' "wrong type".
        if spot.tagged and any(parts[: len(spot.parts)] == spot.parts != parts for parts in deeper):
            continue
        groups.setdefault(spot.key, []).append((spot, problem))
    blocks = [_block(path, group, root, reference) for group in groups.values()]
    header = [f"{path}: {len(blocks)} problems in the config"] if len(blocks) > 1 else []
    return "\n".join(header + blocks)


def _relevant(problems: list[Any]) -> list[Any]:
    """Drop the echo of an item's error: "at least 1 item after validation" on a long enough list."""
    kept = []
    for problem in problems:
        ctx = problem.get("ctx") or {}
        value = problem.get("input")
        echo = isinstance(value, (list, tuple, dict)) and len(value) >= ctx.get("min_length", 0)
        if problem["type"] == "too_short" and echo:
            continue
        kept.append(problem)
    return kept or problems


def _block(path: Path, group: list[tuple[_Spot, Any]], root: type[BaseModel], reference: Path) -> str:
    """The block of one key; several problems at one key (a union's members) share it."""
    spot, problem = group[0]
    kind = problem["type"]
    if kind in ("extra_forbidden", "invalid_key"):
        return _unknown_key_block(path, spot, problem, root, reference)
    text = "; or ".join(dict.fromkeys(_problem_text(member) for _, member in group))
    if spot.key_error:
        text = f"the key {_show(problem.get('input'))} {text}"
    value = problem.get("input")
    echoed = any(f"got {shown}" in text for shown in (_show(value), _show_plain(value), repr(value)))
    got = "" if kind == "missing" or echoed else f" (got {_show(value)})"
    allowed = _allowed(spot, problem, reference)
    return f"{path}: {spot.key}: {text}{got}\n  allowed: {allowed}\n  fix: {_fix(spot, problem, reference)}"


_PROBLEMS = {
    "missing": "required, but not given",
    "model_type": "should be a mapping (indented 'key: value' lines)",
    "model_attributes_type": "should be a mapping (indented 'key: value' lines)",
    "dict_type": "should be a mapping (indented 'key: value' lines)",
    "path_type": "should be a path (text)",
}


def _problem_text(problem: Any) -> str:
    """Pydantic's message in the user's words; a validator's own text is kept (less its fix line)."""
    if problem["type"] in _PROBLEMS:
        return _PROBLEMS[problem["type"]]
    message = str(problem["msg"]).partition("fix:")[0].rstrip()
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if message.startswith("Input "):
        message = message.removeprefix("Input ")
    return re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", message)


def _unknown_key_block(path: Path, spot: _Spot, problem: Any, root: type[BaseModel], reference: Path) -> str:
    name = str(spot.parts[-1])
    section = _Spot(root, spot.parts[:-1]).key if len(spot.parts) > 1 else ""
    known = list(spot.parent.model_fields) if spot.parent else []
    guess = _closest_key(name, known, section, root)
    where = f"the keys of {section}:" if section else "the top-level keys:"
    problem_text = "unknown key" if problem["type"] == "extra_forbidden" else "a key must be text"
    problem_text += f" — did you mean {guess}?" if guess else ""
    fix = f"rename {spot.key} to {guess}" if guess else f"remove {spot.key}"
    fix += f" (see {reference})" if guess else f", or check its spelling against {reference}"
    return (
        f"{path}: {spot.key}: {problem_text} (got {_show(problem.get('input'))})\n"
        f"  allowed: {where} {', '.join(known) or '(none)'}\n  fix: {fix}"
    )


def _closest_key(name: str, known: list[str], section: str, root: type[BaseModel]) -> str | None:
    """The known key ``name`` most likely meant: a close spelling here, else the same name elsewhere."""
    here = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if here:
        return f"{section}.{here[0]}" if section else here[0]
    everywhere = _all_keys(root)
    same_name = [key for key in everywhere if key.rsplit(".", 1)[-1] == name]
    if same_name:
        return same_name[0]
    close = difflib.get_close_matches(name, [key.rsplit(".", 1)[-1] for key in everywhere], n=1, cutoff=0.8)
    return next((key for key in everywhere if close and key.endswith("." + close[0])), None)


def _all_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key of the config tree (through sections, not into lists or mappings)."""
    keys = []
    for name, info in model.model_fields.items():
        keys.append(prefix + name)
        core, _, _ = _unwrap(info.annotation)
        if _is_model(core):
            keys.extend(_all_keys(core, f"{prefix}{name}."))
    return keys


# --- walking the models along an error's loc --------------------------------------------------


def _locate(root: type[BaseModel], loc: tuple[str | int, ...]) -> _Spot:
    """Follow ``loc`` from ``root`` through the models, skipping pydantic's union-member tags."""
    spot = _Spot(root)
    for index, part in enumerate(loc):
        core, _, _ = _unwrap(spot.annotation)
        origin, args = typing.get_origin(core), typing.get_args(core)
        last = index == len(loc) - 1
        if part == "[key]":  # the error is about the mapping key just named, not its value
            spot.key_error = True
            continue
        if _is_model(core):
            spot.parent, spot.info = core, core.model_fields.get(str(part))
            spot.annotation = _field_type(spot.info) if spot.info else Any
            part = str(part)
        elif origin is dict:
            key_error = not last and loc[index + 1] == "[key]"
            spot.info, spot.annotation = None, (args[0] if key_error else args[1]) if len(args) == 2 else Any
        elif origin in (list, tuple, set, frozenset) and isinstance(part, int):
            item = args[0] if origin is not tuple or (len(args) == 2 and args[1] is Ellipsis) else None
            if item is None:
                item = args[part] if part < len(args) else Any
            spot.info, spot.annotation = None, item
        elif _union_members(core) and isinstance(part, str):
            spot.tagged = True  # a tag naming the union member pydantic tried, not a key
            if not last:
                spot.annotation = _union_member(core, part)
            continue
        else:
            spot.info, spot.annotation = None, Any
        spot.parts.append(part)
    return spot


def _field_type(info: FieldInfo) -> Any:
    if info.metadata:
        return typing.Annotated[(info.annotation, *info.metadata)]
    return info.annotation


def _unwrap(annotation: Any) -> tuple[Any, list[Any], bool]:
    """(core type, constraints, optional): strips ``Annotated`` and ``| None``."""
    constraints: list[Any] = []
    optional = False
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            base, *extras = typing.get_args(annotation)
            for extra in extras:
                constraints.extend(extra.metadata if isinstance(extra, FieldInfo) else [extra])
            annotation = base
            continue
        members = _union_members(annotation)
        if members and type(None) in members:
            optional = True
            rest = [member for member in members if member is not type(None)]
            annotation = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
            continue
        return annotation, constraints, optional


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return ()


def _union_member(union: Any, tag: str) -> Any:
    """The member of ``union`` a pydantic tag such as ``int`` or ``list[int]`` names (else the union)."""
    members = _union_members(union)
    names = {
        member: (getattr(member, "__name__", ""), str(member).replace("typing.", "")) for member in members
    }
    exact = [member for member in members if tag.lower() in (name.lower() for name in names[member] if name)]
    if exact:
        return exact[0]
    partial = [member for member in members if names[member][0] and names[member][0].lower() in tag.lower()]
    return max(partial, key=lambda member: len(names[member][0]), default=union)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


# --- what is allowed, and the fix --------------------------------------------------------------


def _allowed(spot: _Spot, problem: Any, reference: Path) -> str:
    """What the key accepts: from its type and constraints, else from the error's own ctx."""
    core, _, _ = _unwrap(spot.annotation)
    text = _kind(spot.annotation) if core is not Any else _kind_from_error(problem, reference)
    if _is_model(core) and problem["type"] in ("value_error", "assertion_error"):
        text = _first_paragraph(core.__doc__) or text
    description = spot.info.description if spot.info else None
    return f"{text} — {description}" if description and description not in text else text


def _first_paragraph(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].replace("``", "").split())


def _kind(annotation: Any, *, or_empty: bool = True) -> str:
    """A type and its constraints in words: "a whole number ≥ 1", "one of: a, b", ..."""
    core, constraints, optional = _unwrap(annotation)
    limits = {
        attr: getattr(item, attr)
        for item in constraints
        for attr in ("ge", "gt", "le", "lt", "min_length", "max_length")
        if getattr(item, attr, None) is not None
    }
    text = _core_kind(core, limits) + _bounds(limits)
    return f"{text}, or empty" if optional and or_empty else text


def _core_kind(core: Any, limits: dict[str, Any]) -> str:
    origin, args = typing.get_origin(core), typing.get_args(core)
    if core is Any or core is object:
        return "any value"
    if origin is typing.Literal:
        return "one of: " + ", ".join(_show_plain(value) for value in args)
    if isinstance(core, type) and issubclass(core, Enum):
        return "one of: " + ", ".join(_show_plain(member.value) for member in core)
    if _union_members(core):
        return " or ".join(_kind(member) for member in _union_members(core))
    if origin is dict:
        return f"a mapping {{name: {_kind(args[1]) if len(args) == 2 else 'any value'}}}"
    if origin in (list, set, frozenset) or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        return f"a list{_size(limits, 'item')}, each {_kind(args[0]) if args else 'any value'}"
    if origin is tuple:
        return f"a list of {len(args)}: [" + ", ".join(_kind(arg) for arg in args) + "]"
    if _is_model(core):
        return "a mapping with keys: " + ", ".join(core.model_fields)
    if core is str:
        return "text" + _size(limits, "character")
    names = {
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        Path: "a file or folder path (text)",
        datetime: "a date and time (YYYY-MM-DD HH:MM:SS)",
        date: "a date (YYYY-MM-DD)",
    }
    return names.get(core, getattr(core, "__name__", str(core)))


def _size(limits: dict[str, Any], noun: str) -> str:
    """The size words of a list or text, e.g. " of at least 1 item", from min/max_length."""
    low, high = limits.get("min_length"), limits.get("max_length")
    if low is not None and high is not None:
        return f" of {low} to {high} {noun}s"
    if low is not None:
        return f" of at least {low} {noun}" + ("s" if low != 1 else "")
    if high is not None:
        return f" of at most {high} {noun}" + ("s" if high != 1 else "")
    return ""


def _bounds(limits: dict[str, Any]) -> str:
    """The bound words of a number, e.g. " ≥ 1", " from 0 to 1", " > 0 and ≤ 1"."""
    found = {attr: value for attr, value in limits.items() if attr in ("ge", "gt", "le", "lt")}
    words = []
    if "ge" in found and "le" in found:
        words.append(f"from {_num(found.pop('ge'))} to {_num(found.pop('le'))}")
    symbols = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    words += [f"{symbols[attr]} {_num(found[attr])}" for attr in symbols if attr in found]
    return (" " + " and ".join(words)) if words else ""


def _kind_from_error(problem: Any, reference: Path) -> str:
    """What is allowed when the models say nothing of the key: read it from the error itself."""
    ctx = problem.get("ctx") or {}
    symbols = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    for attr, symbol in symbols.items():
        if attr in ctx:
            return f"a number {symbol} {_num(ctx[attr])}"
    if "expected" in ctx:
        return f"one of: {ctx['expected']}"
    kind = problem["type"]
    prefixes = {
        "bool": "true or false",
        "int": "a whole number",
        "float": "a number",
        "string": "text",
        "dict": "a mapping",
        "model": "a mapping",  # vocabulary: a value, not a column
        "list": "a list",
        "tuple": "a list",
        "path": "a file or folder path (text)",
        "date": "a date (YYYY-MM-DD)",
        "datetime": "a date and time (YYYY-MM-DD HH:MM:SS)",
    }
    for prefix, words in prefixes.items():
        if kind.startswith(prefix + "_"):
            return words
    return f"a value as described in {reference}"


def _fix(spot: _Spot, problem: Any, reference: Path) -> str:
    """A concrete change: the user's own fix text, else "set <key> to <allowed>, e.g. <default>"."""
    own = str(problem.get("msg", "")).partition("fix:")[2].strip()
    if own:
        return own
    core, _, optional = _unwrap(spot.annotation)
    has_default = spot.info is not None and not spot.info.is_required()
    reset = f", or remove {spot.key} to use the default" if has_default else ""
    if problem["type"] in ("value_error", "assertion_error") and _is_model(core):
        return f"change {spot.key} as the problem above says ({reference} has a working example){reset}"
    if core is Any:
        return f"set {spot.key} as described in {reference}{reset}"
    if spot.key_error:
        return f"rename the key {spot.key} to {_kind(spot.annotation, or_empty=False)}"
    kind = _kind(spot.annotation, or_empty=False)
    example = _example_text(spot)
    if problem["type"] == "missing":
        text = f"add {spot.key} ({kind})" + (f", e.g. {example}" if example else "")
    else:
        text = f"set {spot.key} to {kind}" + (f", e.g. {example}" if example else "")
    if optional:
        text += ", or leave it empty"
    return text if example or optional else text + reset


def _example_text(spot: _Spot) -> str | None:
    """The field's default when it is short and not empty, else a value its constraints allow."""
    default = _default(spot.info) if spot.info else None
    if default not in (None, {}, [], ()) and not isinstance(default, BaseModel):
        shown = _show_plain(default)
        if len(shown) <= 60:
            return shown
    example = _example(spot.annotation)
    return None if example is None else _show_plain(example)


def _default(info: FieldInfo) -> Any:
    if info.default is not PydanticUndefined:
        return info.default
    factory = info.default_factory
    if factory is None or _is_model(factory):
        return None
    try:
        return factory()
    except TypeError:  # a factory that takes the validated data
        return None


def _example(annotation: Any) -> Any:
    """A value of ``annotation`` inside its constraints, for the fix line (None: none to offer)."""
    core, constraints, _ = _unwrap(annotation)
    origin, args = typing.get_origin(core), typing.get_args(core)
    if origin is typing.Literal:
        return args[0]
    if isinstance(core, type) and issubclass(core, Enum):
        return next(iter(core)).value
    if core is bool:
        return True
    if core in (int, float):
        candidates = (1, 0, 10, 100) if core is int else (0.5, 1, 0, 10, 100)
        return next((value for value in candidates if _fits(value, core, constraints)), None)
    if _is_model(core):
        first, info = next(iter(core.model_fields.items()), (None, None))
        value = None if info is None else _default(info)
        if value is None and info is not None:
            value = _example(_field_type(info))
        return None if value is None or isinstance(value, BaseModel) else {first: value}
    if origin is dict and len(args) == 2:
        value = _example(args[1])
        return None if value is None else {"name": value}
    if origin in (list, set, frozenset, tuple) and args and not _is_model(args[0]):
        items = [_example(arg) for arg in (args if origin is tuple and Ellipsis not in args else args[:1])]
        return None if None in items else items
    return None


def _fits(value: float, core: Any, constraints: list[Any]) -> bool:
    if core is int and not float(value).is_integer():
        return False
    checks = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}
    return all(
        check(value, getattr(item, attr))
        for item in constraints
        for attr, check in checks.items()
        if getattr(item, attr, None) is not None
    )


# --- showing values as the user wrote them ---------------------------------------------------------

_MAX_SHOWN = 120


def _show(value: Any) -> str:
    """A bad value for the message: strings quoted, so '' and 'true' are told from empty and true."""
    if isinstance(value, str):
        return _cut(repr(value))
    return _show_plain(value)


def _show_plain(value: Any) -> str:
    """A value as it would be written in the YAML file (flow style, cut when long)."""
    if value is None:
        return "empty"
    data = to_jsonable_python(value, fallback=str)
    if isinstance(data, str) and data.strip() == data and data:
        return _cut(data)
    text = yaml.safe_dump(data, default_flow_style=True, width=10**6, allow_unicode=True, sort_keys=False)
    return _cut(text.strip().removesuffix("...").strip())


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
