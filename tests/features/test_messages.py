"""The message catalog: every label kind's codes and every exported column are translated in every
locale, en keeps the English output as it was, and a missing or duplicate key is a clear error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from features import messages as messages_module
from features.catalog import EXPORTS, Unit
from features.errors import SiyuError
from features.messages import SUPPORTED_LOCALES, LabelKind, Messages
from features.vocabulary import (
    ChurnBand,
    DistributorTier,
    LevelChange,
    ListSource,
    Movement,
    QualityLevel,
    ReasonCode,
    TagType,
    TagValue,
)
from models.clusters import FEATURES

ROOT = Path(__file__).parents[2]
CONFIGS = (ROOT / "configs" / "nightly.yaml", *sorted((ROOT / "configs").glob("rfm_*.yaml")))


def _configured(section: str, key: str) -> set[str]:
    """Names of the configured segments (``rfm``) or member levels in the shipped configs."""
    names: set[str] = set()
    for path in CONFIGS:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        block = config.get("segmentation", {}).get(section, {})
        names |= {entry["name"] for entry in block.get(key, [])}
        if section == "rfm" and block.get("no_purchase_segment"):
            names.add(block["no_purchase_segment"])
    return names


def _benefits() -> set[str]:
    config = yaml.safe_load(CONFIGS[0].read_text(encoding="utf-8"))
    return {level["benefits"] for level in config["segmentation"]["member_tiers"]["levels"]}


CLUSTER_WORDS = {"average"} | {word for _, above, below in FEATURES.values() for word in (above, below)}

CODES: dict[str, set[str]] = {
    LabelKind.MOVEMENT: {*Movement.ALL, Movement.NEW_ROW},
    LabelKind.DISTRIBUTOR_TIER: set(DistributorTier.ALL),
    LabelKind.QUALITY_LEVEL: set(QualityLevel.ALL),
    LabelKind.LEVEL_CHANGE: set(LevelChange.ALL),
    LabelKind.CHURN_BAND: set(ChurnBand.ALL),
    LabelKind.TAG_TYPE: set(TagType.ALL),
    LabelKind.TAG_VALUE: set(TagValue.ALL),
    LabelKind.CLUSTER: CLUSTER_WORDS,
    LabelKind.LIST_SOURCE: set(ListSource.ALL),
    LabelKind.REASON: set(ReasonCode.ALL),
    LabelKind.FLAG: {"True", "False"},
    LabelKind.RFM_SEGMENT: _configured("rfm", "segments"),
    LabelKind.MEMBER_TIER: _configured("member_tiers", "levels"),
    LabelKind.MEMBER_BENEFITS: _benefits(),
}


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("kind", sorted(CODES))
def test_every_code_of_every_kind_has_a_label(locale: str, kind: str) -> None:
    messages = Messages.load(locale)
    missing = sorted(code for code in CODES[kind] if not messages.has(f"label.{kind}.{code}"))
    assert not missing, f"{locale}: label.{kind} lacks {missing}"


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_every_reason_code_has_a_sentence(locale: str) -> None:
    messages = Messages.load(locale)
    missing = [code for code in ReasonCode.ALL if not messages.has(f"text.reason.{code}")]
    assert not missing


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_every_column_of_every_export_has_a_header_and_meaning(locale: str) -> None:
    messages = Messages.load(locale)
    for entry in EXPORTS:
        for column in entry.columns:
            if column.name.startswith("{"):  # a family named by a value: its headers are labels
                continue
            assert messages.header(column.name)
            assert messages.meaning(entry.name, column.name)


def test_every_exported_column_has_a_known_unit() -> None:
    bad = [(e.name, c.name, c.unit) for e in EXPORTS for c in e.columns if c.unit not in Unit.ALL]
    assert not bad


def test_zh_headers_of_families_fill_their_placeholders() -> None:
    zh = Messages.load("zh-CN")
    assert zh.header("median_recency_days") == "距上次购买天数中位数"
    assert zh.header("expected_value_90d") == "未来90天预计消费"


def test_en_keeps_the_english_output() -> None:
    en = Messages.load("en")
    assert en.header("expected_value_90d") == "expected_value_90d"
    assert en.label(LabelKind.DISTRIBUTOR_TIER, DistributorTier.LONG_TAIL) == "long tail"
    assert en.text("reason.likely_buyers", n=12) == "12 of your customers are likely to buy"
    assert en.meaning("consumer_tiers.csv", "expected_value_90d").startswith("expected net spend")


def test_zh_reason_sentences_fill_their_numbers() -> None:
    zh = Messages.load("zh-CN")
    assert zh.text("reason.likely_buyers", n=12) == "你的 12 位顾客可能会买"
    assert zh.texts("reason.bought_times", times=[2, 3]) == ["你买过 2 次", "你买过 3 次"]


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_no_ascii_letters_in_zh_labels_and_headers_alone(locale: str) -> None:
    if locale == "en":
        pytest.skip("English is allowed in en")
    zh = Messages.load(locale)
    english = {
        key: value
        for key, value in zh.entries.items()
        if key.startswith(("label.", "header.", "text."))
        and re.search(r"[A-Za-z]", re.sub(r"\{[^}]*\}", "", value))
    }
    assert not english


def test_a_configured_name_without_translation_is_shown_as_written() -> None:
    assert Messages.load("zh-CN").label(LabelKind.RFM_SEGMENT, "VIP friends") == "VIP friends"


def test_a_missing_key_names_locale_key_and_folder() -> None:
    with pytest.raises(SiyuError, match=r"zh-CN.*label\.movement\.sideways(?s:.*)fix: add it to.*zh-CN"):
        Messages.load("zh-CN").label(LabelKind.MOVEMENT, "sideways")


def test_an_unknown_locale_is_refused() -> None:
    with pytest.raises(SiyuError, match="'fr'.*\n  fix: use one of en, zh-CN"):
        Messages.load("fr")


def test_a_key_in_two_files_of_a_locale_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "a.yaml").write_text("label:\n  movement:\n    up: up\n", encoding="utf-8")
    (tmp_path / "en" / "b.yaml").write_text("label:\n  movement: {up: rise}\n", encoding="utf-8")
    monkeypatch.setattr(messages_module, "CATALOG_DIR", tmp_path)
    messages_module._load.cache_clear()
    try:
        with pytest.raises(SiyuError, match="'label.movement.up' is in both a.yaml and b.yaml"):
            Messages.load("en")
    finally:
        messages_module._load.cache_clear()


@pytest.mark.parametrize("locale", [locale for locale in SUPPORTED_LOCALES if locale != "en"])
def test_headers_and_labels_of_a_kind_are_unique(locale: str) -> None:
    """A CSV read back (the run report) maps each header and label to one column and code."""
    messages = Messages.load(locale)
    headers = [value for key, value in messages.entries.items() if key.startswith("header.")]
    assert len(headers) == len(set(headers))
    for kind in CODES:
        labels = list(messages.labels(kind).values())
        assert len(labels) == len(set(labels)), kind


def test_the_catalog_finds_a_concrete_columns_doc_and_unit() -> None:
    from features.catalog import StepFile, export_file

    assert export_file(StepFile.CLUSTER_PROFILES).doc("median_orders").unit == Unit.RATIO
    assert export_file(StepFile.CONSUMER_TIERS).doc("expected_value_90d").unit == Unit.YUAN
    assert export_file(StepFile.TIER_MIGRATION).doc("gold").unit == Unit.COUNT
    with pytest.raises(KeyError, match="no column 'gold'"):
        export_file(StepFile.CONSUMER_TIERS).doc("gold")
