"""The message catalog: every label, column header and sentence a person reads, per locale.

One folder per locale under ``features/messages/<locale>/`` holds YAML files that are merged
into one catalog (a key defined in two files of a locale is an error). Each file has up to
four sections, nested mappings flattened to dotted keys:

- ``header``: the column header a person reads, keyed by column name; a name with a
  ``{placeholder}`` (``median_{feature}``) matches the columns of its family, the value filling
  the placeholder being localized as a header itself when it is one (``{feature}中位数``).
- ``meaning``: a column's meaning, keyed by column name (``meaning_in.<file>.<column>`` for a
  meaning particular to one file).
- ``label``: ``label.<kind>.<code>``: the readable name of a code (a movement, a tier, a level).
- ``text``: sentences with ``{placeholders}`` (reasons, the coaching reason, the share kit).

In ``en`` a header is the column name itself and a meaning comes from ``features.catalog`` so
that English output stays as it was; ``en`` still spells every label and text. A key missing
from a locale raises ``SiyuError`` naming the locale, the key and the folder to add it to.
Only the standard library, PyYAML and the light ``features`` modules are imported.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from features.errors import SiyuError
from features.vocabulary import ClusterCol, DistributorTierCol, ExportCol, RecCol, RFMCol, TagCol, TierCol

SUPPORTED_LOCALES: tuple[str, ...] = ("en", "zh-CN")
DEFAULT_LOCALE = "en"
CATALOG_DIR = Path(__file__).with_name("messages")


class LabelKind:
    """The kinds of coded values that have a readable label (``m.label(kind, code)``)."""

    MOVEMENT = TierCol.MOVEMENT
    DISTRIBUTOR_TIER = DistributorTierCol.TIER
    QUALITY_LEVEL = "quality_level"
    LEVEL_CHANGE = "level_change"
    CHURN_BAND = ExportCol.CHURN_BAND
    TAG_TYPE = TagCol.TAG_TYPE
    TAG_VALUE = TagCol.TAG_VALUE
    RFM_SEGMENT = RFMCol.SEGMENT
    MEMBER_TIER = TierCol.MEMBER_TIER
    MEMBER_BENEFITS = "member_benefits"
    CLUSTER = ClusterCol.CLUSTER
    LIST_SOURCE = "list_source"
    REASON = RecCol.REASON
    FLAG = "flag"

    # names a user configures (segments, member levels): a name the catalog does not know is
    # shown as written, since the user chose it
    CONFIGURED: frozenset[str] = frozenset({RFM_SEGMENT, MEMBER_TIER, MEMBER_BENEFITS})


class Section:
    """The top-level sections of a catalog file."""

    HEADER = "header"
    MEANING = "meaning"
    MEANING_IN = "meaning_in"
    LABEL = "label"
    TEXT = "text"

    ALL: tuple[str, ...] = (HEADER, MEANING, MEANING_IN, LABEL, TEXT)


@dataclass(frozen=True)
class Messages:
    """One locale's merged catalog; build it with ``Messages.load(locale)``."""

    locale: str
    entries: Mapping[str, str]
    sources: Mapping[str, str] = field(default_factory=dict)  # key -> file it came from

    @staticmethod
    def load(locale: str = DEFAULT_LOCALE) -> Messages:
        """The merged catalog of ``locale`` (cached: the files are read once per process)."""
        return _load(check_locale(locale))

    # --- lookups -----------------------------------------------------------------------------

    def header(self, column: str) -> str:
        """The header a person reads for ``column`` (``en``: the column name itself)."""
        if self.locale == DEFAULT_LOCALE:
            return column
        key = f"{Section.HEADER}.{column}"
        if key in self.entries:
            return self.entries[key]
        for template, params in self._family_matches(column):
            return template.format(**{name: self._header_or_value(value) for name, value in params.items()})
        raise self._missing(key)

    def headers(self, columns: list[str] | tuple[str, ...]) -> dict[str, str]:
        """``{column: header}`` for ``columns`` (for ``DataFrame.rename``)."""
        return {column: self.header(column) for column in columns}

    def label(self, kind: str, code: object) -> str:
        """The readable label of ``code`` of ``kind`` (``"movement"``, ``"distributor_tier"``, ...)."""
        key = f"{Section.LABEL}.{kind}.{code}"
        if key in self.entries:
            return self.entries[key]
        if kind in LabelKind.CONFIGURED:
            return str(code)
        raise self._missing(key)

    def labels(self, kind: str) -> dict[str, str]:
        """Every ``{code: label}`` of ``kind`` in this locale."""
        prefix = f"{Section.LABEL}.{kind}."
        return {
            key.removeprefix(prefix): value for key, value in self.entries.items() if key.startswith(prefix)
        }

    def text(self, key: str, **params: object) -> str:
        """The sentence ``key`` with its ``{placeholders}`` filled from ``params``."""
        template = self._entry(f"{Section.TEXT}.{key}")
        try:
            return template.format(**params)
        except (KeyError, IndexError, ValueError) as error:
            raise SiyuError(
                f"message catalog {self.locale}: text.{key} {template!r} needs {error} "
                f"(given {sorted(params)})\n  fix: use only the placeholders the English text uses"
            ) from None

    def texts(self, key: str, **columns: Any) -> list[str]:
        """The sentence ``key`` for many rows at once: each placeholder filled from a sequence
        (one value per row) or a scalar of ``columns``. Each distinct set of values is
        formatted once, so long columns of few distinct values are cheap."""
        template = self._entry(f"{Section.TEXT}.{key}")
        fields = sorted({name for _, name, _, _ in string.Formatter().parse(template) if name is not None})
        absent = [name for name in fields if name not in columns]
        if absent:
            raise SiyuError(
                f"message catalog {self.locale}: text.{key} uses {absent}, not given "
                f"(given {sorted(columns)})\n  fix: use only the placeholders the English text uses"
            )
        rows = {name: list(columns[name]) for name in fields if _is_sequence(columns[name])}
        scalars = {name: columns[name] for name in fields if name not in rows}
        size = len(next(iter(rows.values()))) if rows else _longest(columns)
        if not rows:
            return [template.format(**scalars)] * size
        names = list(rows)
        done: dict[tuple[object, ...], str] = {}
        out = []
        for values in zip(*rows.values(), strict=True):
            sentence = done.get(values)
            if sentence is None:
                sentence = done[values] = template.format(**scalars, **dict(zip(names, values, strict=True)))
            out.append(sentence)
        return out

    def meaning(self, file: str, column: str) -> str:
        """What ``column`` of the exported ``file`` means (``en``: the catalog's ColumnDoc)."""
        if self.locale == DEFAULT_LOCALE:
            return _catalog_meaning(file, column)
        for key in (f"{Section.MEANING_IN}.{file}.{column}", f"{Section.MEANING}.{column}"):
            if key in self.entries:
                return self.entries[key]
        prefix = f"{Section.MEANING}."
        for key, meaning in self.entries.items():
            name = key.removeprefix(prefix)
            if key.startswith(prefix) and "{" in name and _family_pattern(name).fullmatch(column):
                return meaning
        raise self._missing(f"{Section.MEANING}.{column}")

    def has(self, key: str) -> bool:
        """Whether the dotted ``key`` (``label.movement.up``) is in this locale's catalog."""
        return key in self.entries

    # --- helpers -----------------------------------------------------------------------------

    def _entry(self, key: str) -> str:
        if key not in self.entries:
            raise self._missing(key)
        return self.entries[key]

    def _family_matches(self, column: str) -> Iterator[tuple[str, dict[str, str]]]:
        prefix = f"{Section.HEADER}."
        for key, template in self.entries.items():
            name = key.removeprefix(prefix)
            if key.startswith(prefix) and "{" in name:
                match = _family_pattern(name).fullmatch(column)
                if match:
                    yield template, match.groupdict()

    def _header_or_value(self, value: str) -> str:
        return self.entries.get(f"{Section.HEADER}.{value}", value)

    def _missing(self, key: str) -> SiyuError:
        return SiyuError(
            f"message catalog {self.locale}: no entry {key!r}\n"
            f"  fix: add it to a YAML file in {CATALOG_DIR / self.locale} "
            f"(labels.yaml for labels, headers and meanings)"
        )


def check_locale(locale: str) -> str:
    """``locale`` when supported, else a ``SiyuError`` listing the supported ones."""
    if locale not in SUPPORTED_LOCALES:
        raise SiyuError(
            f"locale {locale!r} is not supported\n  fix: use one of {', '.join(SUPPORTED_LOCALES)}"
        )
    return locale


@cache
def _load(locale: str) -> Messages:
    folder = CATALOG_DIR / locale
    entries: dict[str, str] = {}
    sources: dict[str, str] = {}
    for path in sorted(folder.glob("*.yaml")):
        for key, value in _flatten(_read(path)):
            if key in entries:
                raise SiyuError(
                    f"message catalog {locale}: {key!r} is in both {sources[key]} and {path.name}\n"
                    f"  fix: keep it in one file"
                )
            entries[key], sources[key] = value, path.name
    return Messages(locale, entries, sources)


def _read(path: Path) -> dict[str, Any]:
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise SiyuError(f"{path}: not valid YAML ({error})\n  fix: correct the file") from None
    unknown = sorted(set(content) - set(Section.ALL))
    if not isinstance(content, dict) or unknown:
        raise SiyuError(f"{path}: unknown section(s) {unknown}\n  fix: use only {', '.join(Section.ALL)}")
    return content


def _longest(columns: Mapping[str, Any]) -> int:
    """The number of rows: the length of the longest sequence among ``columns`` (1 without one)."""
    return max((len(value) for value in columns.values() if _is_sequence(value)), default=1)


def _is_sequence(value: object) -> bool:
    return hasattr(value, "__len__") and not isinstance(value, str)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, dotted + ".")
        else:
            yield dotted, "" if value is None else str(value)


@cache
def _family_pattern(name: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", name)
    pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
    return re.compile(pattern)


def _catalog_meaning(file: str, column: str) -> str:
    from features.catalog import export_file  # light; imported here to keep this module's import minimal

    for doc in export_file(file).columns:
        if doc.name == column or (
            "{" in doc.name and _family_pattern(doc.name).fullmatch(column) is not None
        ):
            return doc.meaning
    raise SiyuError(
        f"{file}: no column {column!r} in the catalog\n  fix: add it to features/catalog.py EXPORTS"
    )
