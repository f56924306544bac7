"""Localize an export frame for people: coded values become the locale's labels, then the
column names become its headers (``features.messages``).

The steps call ``localize_frame`` at write time, on the frame that goes to a CSV a person
opens; the Parquet twins and lists keep the stable English codes and column names, so a later
run reads them back whatever the locale. In ``en`` a frame is returned as it is (the codes
are the English labels and the column names the English headers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from features.messages import DEFAULT_LOCALE, LabelKind, Messages
from features.vocabulary import (
    ClusterCol,
    DistributorTierCol,
    ExportCol,
    Movement,
    QualityCol,
    RFMCol,
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
