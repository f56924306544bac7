"""The distributor share kit: likely buyers per community and the ready-to-paste sentence."""

from __future__ import annotations

import pandas as pd

from features.catalog import ShareKitCol
from features.columns import Col
from features.messages import Messages
from features.vocabulary import ReasonCode, RecCol
from reporting.share_kit import SHARE_KIT_COLUMNS, share_kit


def _lists(codes: bool = True) -> pd.DataFrame:
    lists = pd.DataFrame(
        {
            Col.DISTRIBUTOR_ID: ["D1", "D1", "D2"],
            Col.PRODUCT_ID: ["P2", "P1", "P3"],
            RecCol.RANK: [2, 1, 1],
            RecCol.SCORE: [0.5, 0.9, 0.1],
            RecCol.REASON: ["你的 1 位顾客可能会买", "你的 3 位顾客可能会买", "平台热门（近 7 天 5 人购买）"],
        }
    )
    if codes:
        lists[RecCol.REASON_CODE] = [
            ReasonCode.LIKELY_BUYERS,
            ReasonCode.LIKELY_BUYERS,
            ReasonCode.PLATFORM_POPULAR,
        ]
    return lists


def _buyers() -> pd.DataFrame:
    """Likely buyers as the workbooks step counts them (tests/pipelines/steps/test_workbooks.py)."""
    return pd.DataFrame(
        {
            Col.DISTRIBUTOR_ID: ["D1", "D1", "D2"],
            RecCol.PRODUCT_ID: ["P1", "P2", "P1"],
            ShareKitCol.LIKELY_BUYERS: [3, 1, 1],
        }
    )


def _categories() -> pd.DataFrame:
    return pd.DataFrame({Col.PRODUCT_ID: ["P1", "P2"], Col.CATEGORY: ["beauty", "snacks"]})


def test_the_zh_sentence_for_a_hand_made_list() -> None:
    zh = Messages.load("zh-CN")
    kit = share_kit(_lists(), _buyers(), _categories(), zh)
    assert kit.columns.tolist() == list(SHARE_KIT_COLUMNS)
    assert kit[ShareKitCol.PRODUCT_ID].tolist() == ["P1", "P2", "P3"]  # by distributor, rank
    assert kit[ShareKitCol.LIKELY_BUYERS].tolist() == [3, 1, 0]
    assert kit[ShareKitCol.SHARE_TEXT].tolist() == [
        "【beauty】P1：好几位群友都很适合，群里有 3 位朋友可能会喜欢，想要的话私我～",
        "【snacks】P2：好几位群友都很适合，群里有 1 位朋友可能会喜欢，想要的话私我～",
        # no likely buyer: no count; a product the quality gate did not grade: category unknown
        "【unknown】P3：全平台都在抢的热门款，想要的话私我～",
    ]
    assert kit[ShareKitCol.REASON].tolist()[0] == "你的 3 位顾客可能会买"  # the list's reason, as is


def test_the_en_sentence_and_a_list_without_reason_codes() -> None:
    en = Messages.load("en")
    kit = share_kit(_lists(codes=False), _buyers(), _categories(), en)
    assert kit[ShareKitCol.SHARE_TEXT].tolist()[0] == (
        "[beauty] P1: 你的 3 位顾客可能会买; 3 people in our group may like it, message me if you want one"
    )


def test_a_trending_pitch_names_the_category() -> None:
    lists = _lists().iloc[[1]].assign(**{RecCol.REASON_CODE: ReasonCode.TRENDING})
    kit = share_kit(lists, _buyers(), _categories(), Messages.load("zh-CN"))
    assert kit[ShareKitCol.SHARE_TEXT].tolist() == [
        "【beauty】P1：这阵子 beauty 里卖得最火的一款，群里有 3 位朋友可能会喜欢，想要的话私我～"
    ]


def _sentence_by_sentence(kit: pd.DataFrame, messages: Messages) -> list[str]:
    """The sentences as the share kit wrote them before they were built a column at a time:
    each row's template formatted on its own."""
    codes = kit[RecCol.REASON_CODE] if RecCol.REASON_CODE in kit.columns else [None] * len(kit)
    texts = []
    for product, category, n, reason, code in zip(
        kit[ShareKitCol.PRODUCT_ID], kit[ShareKitCol.CATEGORY], kit[ShareKitCol.LIKELY_BUYERS],
        kit[ShareKitCol.REASON], codes, strict=True,
    ):  # fmt: skip
        key = f"share_kit.pitch.{code}"
        known = code is not None and not pd.isna(code) and messages.has(f"text.{key}")
        pitch = (messages.text(key, category=category) if known else "") or str(reason)
        template = messages.entries[
            "text.share_kit.sentence" if n > 0 else "text.share_kit.sentence_no_buyers"
        ]
        texts.append(template.format(product=product, category=category, pitch=pitch, n=n))
    return texts


def test_sentences_built_a_column_at_a_time_equal_the_row_by_row_ones_in_both_locales() -> None:
    lists = pd.concat([_lists()] * 3, ignore_index=True)
    lists[Col.PRODUCT_ID] = [
        "P1",
        "P2",
        "P3",
        "P4",
        7,
        "P1",
        "P2",
        "P3",
        "P1",
    ]  # an unknown product, an int id
    lists[RecCol.REASON_CODE] = [
        ReasonCode.LIKELY_BUYERS,
        None,
        ReasonCode.PLATFORM_POPULAR,
        "no_such_code",
        ReasonCode.LIKELY_BUYERS,
        float("nan"),
        ReasonCode.PLATFORM_POPULAR,
        ReasonCode.LIKELY_BUYERS,
        ReasonCode.PLATFORM_POPULAR,
    ]
    lists[Col.DISTRIBUTOR_ID] = [f"D{i}" for i in range(len(lists))]
    lists[RecCol.RANK] = 1
    buyers = pd.DataFrame({Col.DISTRIBUTOR_ID: ["D0", "D3", "D4"], RecCol.PRODUCT_ID: ["P1", "P4", 7]})
    buyers[ShareKitCol.LIKELY_BUYERS] = [3, 12, 1]
    for locale in ("en", "zh-CN"):
        messages = Messages.load(locale)
        kit = share_kit(lists, buyers, _categories(), messages)
        assert (
            kit[ShareKitCol.LIKELY_BUYERS].gt(0).sum() == 3
            and kit[ShareKitCol.LIKELY_BUYERS].eq(0).sum() == 6
        )
        assert kit[Col.DISTRIBUTOR_ID].tolist() == lists[Col.DISTRIBUTOR_ID].tolist()  # one row each
        coded = kit.assign(**{RecCol.REASON_CODE: lists[RecCol.REASON_CODE].to_numpy()})
        assert kit[ShareKitCol.SHARE_TEXT].tolist() == _sentence_by_sentence(coded, messages)
