"""configs/rfm_zh_cn.yaml: the Chinese 8-class RFM map passes the 125-cell partition check, puts
each cell where high/low on R, F and M says, and is configs/nightly.yaml otherwise."""

from __future__ import annotations

from itertools import product
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from models.rfm import RFMConfig, partition_problems, segment_lookup
from pipelines.config import load_config

CONFIGS = Path(__file__).parents[3] / "configs"
PRESET = CONFIGS / "rfm_zh_cn.yaml"
# (R high, F high, M high) -> class; high = score 3-5
CLASSES = {
    (True, True, True): "重要价值客户",
    (True, False, True): "重要发展客户",
    (False, True, True): "重要保持客户",
    (False, False, True): "重要挽留客户",
    (True, True, False): "一般价值客户",
    (True, False, False): "一般发展客户",
    (False, True, False): "一般保持客户",
    (False, False, False): "一般挽留客户",
}


def test_the_preset_partitions_the_125_cells() -> None:
    rfm = load_config(PRESET).segmentation.rfm
    assert partition_problems(rfm.segments) == []
    assert [rule.name for rule in rfm.segments] == list(CLASSES.values())
    assert rfm.no_purchase_segment == "暂无购买"


def test_every_cell_is_in_its_high_low_class() -> None:
    lookup = segment_lookup(load_config(PRESET).segmentation.rfm)
    for r, f, m in product(range(1, 6), repeat=3):
        assert lookup[r - 1, f - 1, m - 1] == CLASSES[(r >= 3, f >= 3, m >= 3)], (r, f, m)


def test_a_class_left_out_is_refused_naming_the_missing_cells() -> None:
    rules = yaml.safe_load(PRESET.read_text(encoding="utf-8"))["segmentation"]["rfm"]["segments"]
    with pytest.raises(ValidationError, match=r"12 cell\(s\) missing \(R,F,M\): 113, 114, 115"):
        RFMConfig(segments=[rule for rule in rules if rule["name"] != "重要挽留客户"])


def test_the_preset_is_the_nightly_config_with_locale_and_segments_changed() -> None:
    preset, nightly = load_config(PRESET), load_config(CONFIGS / "nightly.yaml")
    assert preset.locale == "zh-CN" and nightly.locale == "en"
    same = preset.model_copy(
        update={
            "locale": nightly.locale,
            "segmentation": preset.segmentation.model_copy(update={"rfm": nightly.segmentation.rfm}),
        }
    )
    assert same == nightly
