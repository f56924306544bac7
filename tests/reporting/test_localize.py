"""reporting.localize: labels and headers in a locale, and the way back for the run report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.messages import Messages
from reporting.localize import delocalize_frame, localize_frame, tag_labels
from reporting.run_files import RunFiles

ZH = Messages.load("zh-CN")
TIERS = pd.DataFrame(
    {
        "consumer_id": ["C1", "C2", "C3"],
        "member_tier": ["gold", "regular", "vip friends"],  # the last: a configured name, no translation
        "movement": ["up", "new", None],
        "cluster_label": ["frequent, high spend", "average", None],
        "expected_value_90d": [12.5, 0.0, None],
    }
)


def test_zh_cn_labels_and_headers() -> None:
    localized = localize_frame(TIERS, ZH)
    assert list(localized.columns) == ["顾客编号", "会员等级", "会员等级变化", "群组特征", "未来90天预计消费"]
    assert localized["会员等级"].tolist() == ["黄金会员", "普通会员", "vip friends"]
    assert localized["会员等级变化"].tolist()[:2] == ["升级", "新增"] and pd.isna(
        localized["会员等级变化"][2]
    )
    assert localized["群组特征"].tolist()[:2] == ["高频、高消费", "普通"]


def test_tier_migration_columns_are_tier_labels() -> None:
    migration = pd.DataFrame({"previous": ["gold", "(new)"], "gold": [1, 2], "total": [1, 2]})
    localized = localize_frame(migration, ZH, tier_columns=["gold"])
    assert list(localized.columns) == ["上次等级", "黄金会员", "合计"]
    assert localized["上次等级"].tolist() == ["黄金会员", "新顾客"]


def test_a_localized_csv_reads_back_through_the_report(tmp_path: Path) -> None:
    localize_frame(TIERS, ZH).to_csv(tmp_path / "consumer_tiers.csv", index=False, encoding="utf-8-sig")
    files = RunFiles(tmp_path)
    assert files.columns("consumer_tiers.csv") == list(TIERS.columns)
    back = files.csv("consumer_tiers.csv", ["member_tier", "movement"])
    assert list(back.columns) == ["member_tier", "movement"]
    assert back["member_tier"].tolist() == ["gold", "regular", "vip friends"]
    assert back["movement"].tolist()[:2] == ["up", "new"]
    pd.testing.assert_frame_equal(
        delocalize_frame(localize_frame(TIERS, ZH)),
        TIERS.astype({"movement": "string", "member_tier": "string", "cluster_label": "string"}),
        check_dtype=False,
    )


def test_tag_labels_translate_computed_tags_only() -> None:
    tags = pd.DataFrame(
        {
            "tag_type": ["age_band", "spending_power", "favourite_category"],
            "tag_value": ["25-34", "high", "beauty"],
        }
    )
    assert tag_labels(tags, ZH).tolist() == ["25-34", "高", "beauty"]
