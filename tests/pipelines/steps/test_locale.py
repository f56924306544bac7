"""zh-CN end to end: segment, quality gate and lists on a small simulated world, once in en and
once in zh-CN. No English word is left in a header or cell a marketer reads (ids and codes
aside), the lists' reasons are Chinese beside their English codes, the Parquet twins keep codes
so that history works across a locale switch, and a zh-CN CSV read back (the run report) is the
en CSV again."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from features.catalog import StepFile, Unit, export_file
from features.messages import Messages
from models.clusters import ClusterConfig
from models.recommenders import ALSRecommender
from models.segmentation import SegmentationConfig
from pipelines.config import NightlyConfig
from pipelines.steps.quality import run_quality
from pipelines.steps.recommend import run_recommend
from pipelines.steps.segment import run_segmentation
from pipelines.steps.validate import load_and_validate
from reporting.localize import delocalize_frame, localize_frame
from sources.simulator import SimulationConfig, simulate

SETTINGS = SegmentationConfig(
    clusters=ClusterConfig(k_min=2, k_max=4, fit_sample=2_000, silhouette_sample=500, n_init=2),
)
MARKETING_CSVS = (
    StepFile.CONSUMER_TIERS,
    StepFile.DISTRIBUTOR_TIERS,
    StepFile.DISTRIBUTOR_COACHING,
    StepFile.TIER_MIGRATION,
    StepFile.MEMBER_TIERS,
    StepFile.RFM_SEGMENTS,
    StepFile.RFM_GRID,
    StepFile.CLUSTER_PROFILES,
    StepFile.QUALITY_ALERTS,
    StepFile.QUALITY_SUPPLIERS,
)
LISTS = (StepFile.CONSUMER_LISTS, StepFile.DISTRIBUTOR_LISTS, StepFile.OUTREACH)
LETTERS = re.compile(r"[A-Za-z]")


def _fit_als(con: object, as_of: object, config: object, data: object) -> ALSRecommender:
    return ALSRecommender(factors=16, iterations=5, num_threads=1).fit(data)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same world through segment, quality and recommend in en and in zh-CN; then en again
    with the zh-CN run as the previous one."""
    root = tmp_path_factory.mktemp("locale")
    simulate(
        root / "data",
        SimulationConfig(consumers=600, distributors=12, products=100, days=120, seed=5, defective_share=0.1),
    )
    validated = load_and_validate(root / "data", None, NightlyConfig(), root / "validated")
    patch = pytest.MonkeyPatch()
    patch.setattr("pipelines.steps.recommend.fit_production", _fit_als)
    outs = {}
    try:
        for name, locale, previous in (("en", "en", None), ("zh", "zh-CN", "en"), ("back", "en", "zh")):
            out = root / name
            config = NightlyConfig(locale=locale)
            before = outs.get(previous)
            run_segmentation(validated.clean_paths, validated.as_of, SETTINGS, out, before, locale=locale)
            run_quality(validated.clean_paths, validated.as_of, config, out, before)
            if name != "back":
                run_recommend(validated.clean_paths, validated.as_of, config, out, 6, None, out)
            outs[name] = out
    finally:
        patch.undo()
    return outs


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)


def _unit(file: str, column: str) -> str:
    """The catalog's unit of ``column`` (a family member such as ``median_orders`` included)."""
    for doc in export_file(file).columns:
        if doc.name == column:
            return doc.unit
    for doc in export_file(file).columns:
        pattern = re.sub(r"\\\{\w+\\\}", ".+", re.escape(doc.name))
        if "{" in doc.name and re.fullmatch(pattern, column):
            return doc.unit
    raise AssertionError(f"{file}: {column} not in the catalog")


def english_in(localized: pd.DataFrame, file: str, english_columns: list[str]) -> list[str]:
    """Headers and cells of a localized CSV with ASCII letters, outside id and code columns
    (the columns' units are looked up by the English column at the same position)."""
    found = [f"header {header!r}" for header in localized.columns if LETTERS.search(header)]
    for header, column in zip(localized.columns, english_columns, strict=True):
        if _unit(file, column) in Unit.UNTRANSLATED:
            continue
        cells = localized[header][localized[header].str.contains(LETTERS)]
        found += [f"{column}: {cell!r}" for cell in cells.unique()[:3]]
    return found


@pytest.mark.parametrize("file", MARKETING_CSVS)
def test_no_english_in_the_zh_cn_marketing_csvs(runs: dict[str, Path], file: str) -> None:
    english = _read(runs["en"] / file)
    localized = _read(runs["zh"] / file)
    assert localized.shape == english.shape
    assert not english_in(localized, file, list(english.columns)), file


def test_the_scan_finds_one_label_left_english(runs: dict[str, Path]) -> None:
    english = _read(runs["en"] / StepFile.DISTRIBUTOR_TIERS)
    localized = _read(runs["zh"] / StepFile.DISTRIBUTOR_TIERS)
    tier = localized.columns[list(english.columns).index("distributor_tier")]
    localized.loc[0, tier] = "long tail"
    assert english_in(localized, StepFile.DISTRIBUTOR_TIERS, list(english.columns)) == [
        "distributor_tier: 'long tail'"
    ]


@pytest.mark.parametrize("file", LISTS)
def test_list_reasons_are_chinese_beside_the_same_english_codes(runs: dict[str, Path], file: str) -> None:
    english, localized = (pd.read_parquet(runs[name] / file) for name in ("en", "zh"))
    assert list(localized.columns) == list(english.columns)  # machine file: English column names
    pd.testing.assert_series_equal(localized["reason_code"], english["reason_code"])
    categories = set(pd.read_parquet(runs["en"].parent / "data" / "products.parquet")["category"])
    pattern = "|".join(re.escape(c) for c in sorted(categories, key=len, reverse=True))
    reasons = localized["reason"].str.replace(pattern, "", regex=True)
    assert not reasons.str.contains(LETTERS).any(), reasons[reasons.str.contains(LETTERS)].unique()[:3]
    assert (localized["reason"] != english["reason"]).all()


def test_a_distributor_reason_reads_as_in_the_issue(runs: dict[str, Path]) -> None:
    lists = pd.read_parquet(runs["zh"] / StepFile.DISTRIBUTOR_LISTS)
    likely = lists[lists["reason_code"] == "likely_buyers"]["reason"]
    assert len(likely) and likely.str.fullmatch(r"你的 \d+ 位顾客可能会买").all()


def test_twins_keep_codes_and_history_works_across_a_locale_switch(runs: dict[str, Path]) -> None:
    zh_twin = pd.read_parquet(runs["zh"] / StepFile.CONSUMER_TIERS_TWIN)
    en_twin = pd.read_parquet(runs["en"] / StepFile.CONSUMER_TIERS_TWIN)
    assert list(zh_twin.columns) == list(en_twin.columns)
    assert set(zh_twin["movement"]) == {"same"}  # previous run en, same data: nobody moved
    back = pd.read_parquet(runs["back"] / StepFile.CONSUMER_TIERS_TWIN)
    assert set(back["movement"]) == {"same"}  # previous run zh-CN, read from its twin's codes
    alerts = pd.read_parquet(runs["back"] / StepFile.QUALITY_ALERTS_TWIN)
    assert set(alerts["change"]) == {"unchanged"} and set(alerts["level"]) <= {
        "normal",
        "watch",
        "warning",
        "pulled",
    }


@pytest.mark.parametrize("file", MARKETING_CSVS)
def test_a_zh_cn_csv_read_back_is_the_en_csv(runs: dict[str, Path], file: str) -> None:
    """``delocalize_frame`` (what the run report reads through) gives the en file back. The "back"
    run is en with the same previous tiers and levels as the zh-CN run (both nobody moved)."""
    back = delocalize_frame(pd.read_csv(runs["zh"] / file, encoding="utf-8-sig"))
    expected = pd.read_csv(runs["back"] / file, encoding="utf-8-sig")
    sentences = [column for column in ("coaching_reason",) if column in expected]  # localized text
    pd.testing.assert_frame_equal(back.drop(columns=sentences), expected.drop(columns=sentences))


def test_en_is_returned_as_it_is() -> None:
    frame = pd.DataFrame({"movement": ["up"], "member_tier": ["gold"]})
    assert localize_frame(frame, Messages.load("en")) is frame


def test_profile_tags_carry_a_localized_label_beside_the_code(runs: dict[str, Path]) -> None:
    english, localized = (pd.read_parquet(runs[name] / StepFile.PROFILE_TAGS) for name in ("en", "zh"))
    pd.testing.assert_series_equal(localized["tag_value"], english["tag_value"])
    assert (english["tag_label"] == english["tag_value"]).all()
    computed = ~localized["tag_type"].astype(str).isin(["age_band", "favourite_category"])
    assert computed.any() and not localized.loc[computed, "tag_label"].str.contains(LETTERS).any()
    assert (localized.loc[~computed, "tag_label"] == localized.loc[~computed, "tag_value"]).all()
