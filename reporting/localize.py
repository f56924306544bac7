"""Localize an export frame for people: coded values become the locale's labels, then the
column names become its headers (``features.messages``).

The steps call ``localize_frame`` at write time, on the frame that goes to a CSV a person
opens; the Parquet twins and lists keep the stable English codes and column names, so a later
run reads them back whatever the locale. In ``en`` a frame is returned as it is (the codes
are the English labels and the column names the English headers). ``delocalize_frame`` is
the way back, for the run report, which reads the CSVs by column name and code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache

import pandas as pd

from features.messages import DEFAULT_LOCALE, SUPPORTED_LOCALES, LabelKind, Messages
from features.vocabulary import (
    ClusterCol,
    DistributorTierCol,
    ExportCol,
    Movement,
    QualityCol,
    RFMCol,
    TagCol,
    TagValue,
    TierCol,
)

# column -> the label kind of its values
VALUE_KINDS: dict[str, str] = {
    RFMCol.SEGMENT: LabelKind.RFM_SEGMENT,
    TierCol.MEMBER_TIER: LabelKind.MEMBER_TIER,
    TierCol.PREVIOUS_TIER: LabelKind.MEMBER_TIER,
    TierCol.PREVIOUS: LabelKind.MEMBER_TIER,
    TierCol.MOVEMENT: LabelKind.MOVEMENT,
    TierCol.BENEFITS: LabelKind.MEMBER_BENEFITS,
    ExportCol.CHURN_BAND: LabelKind.CHURN_BAND,
    ClusterCol.LABEL: LabelKind.CLUSTER,
    DistributorTierCol.TIER: LabelKind.DISTRIBUTOR_TIER,
    DistributorTierCol.COACHING: LabelKind.FLAG,
    QualityCol.LEVEL: LabelKind.QUALITY_LEVEL,
    QualityCol.PREVIOUS_LEVEL: LabelKind.QUALITY_LEVEL,
    QualityCol.CHANGE: LabelKind.LEVEL_CHANGE,
}
# a cluster label lists the words where the cluster stands out, joined with this (models.clusters)
CLUSTER_WORD_SEPARATOR = ", "


def localize_frame(frame: pd.DataFrame, messages: Messages, tier_columns: Iterable[str] = ()) -> pd.DataFrame:
    """A copy of ``frame`` with its coded values as labels and its headers in ``messages``' locale.

    ``tier_columns`` are columns named by a member tier (tier_migration.csv): their header is
    the tier's label. Missing values stay missing.
    """
    if messages.locale == DEFAULT_LOCALE:
        return frame
    localized = frame.copy()
    for column in localized.columns:
        kind = VALUE_KINDS.get(column)
        if kind is not None:
            localized[column] = localize_values(localized[column], kind, messages)
    tiers = set(tier_columns)
    headers = {
        column: messages.label(LabelKind.MEMBER_TIER, column) if column in tiers else messages.header(column)
        for column in localized.columns
    }
    return localized.rename(columns=headers)


def localize_values(values: pd.Series, kind: str, messages: Messages) -> pd.Series:
    """``values`` (codes of ``kind``) as labels; a value is looked up once however often it occurs."""
    present = values.dropna()
    mapping = {code: _label(kind, code, messages) for code in pd.unique(present)}
    labelled = present.map(mapping).astype("string")
    return labelled.reindex(values.index)


def _label(kind: str, code: object, messages: Messages) -> str:
    if kind == LabelKind.CLUSTER:
        words = str(code).split(CLUSTER_WORD_SEPARATOR)
        return messages.text("list_separator").join(messages.label(kind, word) for word in words)
    if kind == LabelKind.MEMBER_TIER and code == Movement.NEW_ROW:
        return messages.label(LabelKind.MOVEMENT, code)
    if kind == LabelKind.FLAG:
        return messages.label(kind, str(bool(code)))
    return messages.label(kind, code)


def label_map(kind: str, codes: Iterable[str], messages: Messages) -> Mapping[str, str]:
    """``{code: label}`` for ``codes`` of ``kind`` (e.g. to rename per-tier columns)."""
    return {code: _label(kind, code, messages) for code in codes}


# --- back to codes: what the report reads from a localized CSV --------------------------------------


def is_localized(headers: Iterable[str]) -> bool:
    """Whether a CSV's ``headers`` are a non-English locale's (English column names are ASCII)."""
    return any(not header.isascii() for header in headers)


def delocalize_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A localized export frame (``localize_frame``'s output in any supported locale) with the
    English column names and codes again, for readers that work on codes (the run report).

    The locale is the one whose headers explain the most columns; a header or label it does not
    know is kept as it is (a configured name is its own code).
    """
    if not is_localized(frame.columns):
        return frame
    messages = max(
        (Messages.load(locale) for locale in SUPPORTED_LOCALES if locale != DEFAULT_LOCALE),
        key=lambda m: sum(column in _header_inverse(m.locale) for column in frame.columns),
    )
    renamed = frame.rename(columns=lambda header: _column_of(header, messages))
    for column in renamed.columns:
        kind = VALUE_KINDS.get(column)
        if kind is not None:
            renamed[column] = _codes_of(renamed[column], kind, messages)
    return renamed


def _column_of(header: str, messages: Messages) -> str:
    inverse = _header_inverse(messages.locale)
    if header in inverse:
        return inverse[header]
    for pattern, name in _family_inverse(messages.locale):
        match = pattern.fullmatch(header)
        if match:
            return name.format(**{key: inverse.get(value, value) for key, value in match.groupdict().items()})
    tiers = {label: code for code, label in messages.labels(LabelKind.MEMBER_TIER).items()}
    return tiers.get(header, header)


@cache
def _header_inverse(locale: str) -> dict[str, str]:
    prefix = "header."
    entries = Messages.load(locale).entries
    return {
        value: key.removeprefix(prefix)
        for key, value in entries.items()
        if key.startswith(prefix) and "{" not in key
    }


@cache
def _family_inverse(locale: str) -> list[tuple[re.Pattern[str], str]]:
    prefix = "header."
    families = []
    for key, template in Messages.load(locale).entries.items():
        name = key.removeprefix(prefix)
        if key.startswith(prefix) and "{" in name:
            parts = re.split(r"\{(\w+)\}", template)
            pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
            families.append((re.compile(pattern), name))
    return families


def _codes_of(values: pd.Series, kind: str, messages: Messages) -> pd.Series:
    inverse = {label: code for code, label in messages.labels(kind).items()}
    if kind == LabelKind.MEMBER_TIER:
        inverse[messages.label(LabelKind.MOVEMENT, Movement.NEW_ROW)] = Movement.NEW_ROW
    if kind == LabelKind.FLAG:
        flags = {label: code == str(True) for label, code in inverse.items()}
        return values.map(lambda value: flags.get(value, value))
    if kind == LabelKind.CLUSTER:
        separator = messages.text("list_separator")
        return values.map(
            lambda value: (
                CLUSTER_WORD_SEPARATOR.join(inverse.get(w, w) for w in value.split(separator))
                if isinstance(value, str)
                else value
            )
        )
    return values.map(lambda value: inverse.get(value, value))


def tag_labels(tags: pd.DataFrame, messages: Messages) -> pd.Series:
    """The readable label of each row of the profile-tag table: a computed tag value's label in
    ``messages``' locale; an age band or category (the data's own values) as it is."""
    computed = ~tags[TagCol.TAG_TYPE].isin(TagValue.DATA_TYPES)  # on the categories, not a str per row
    values = tags[TagCol.TAG_VALUE].astype("string")
    labels = values.copy()
    labels[computed] = localize_values(values[computed], LabelKind.TAG_VALUE, messages)
    return labels.rename(TagCol.TAG_LABEL)
