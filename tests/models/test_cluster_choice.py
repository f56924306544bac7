"""The clusters' k kept between nights: what is stored, what an unreadable store is."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from models.cadence import KeptKey, redo_reason
from models.cluster_choice import RECHOOSE_K, config_hash, read_k, write_k
from models.clusters import ClusterConfig

KEY = KeptKey("abc", date(2025, 12, 1), "100:ff")
SILHOUETTES = {3: 0.26, 4: 0.285, 5: 0.2889}


def test_a_stored_k_reads_back_as_written(tmp_path: Path) -> None:
    path = write_k(tmp_path / "cluster_choice.json", KEY, 5, SILHOUETTES)
    stored = read_k(path)
    assert stored is not None and (stored.key, stored.k, stored.silhouettes) == (KEY, 5, SILHOUETTES)
    assert list(tmp_path.iterdir()) == [path]  # no partial file left beside it


@pytest.mark.parametrize(
    "document",
    [
        "{not json",
        json.dumps({"format": 2, "key": KEY.to_json(), "k": 5, "silhouettes": {"5": 0.3}}),
        json.dumps({"format": 1, "k": 5, "silhouettes": {"5": 0.3}}),  # no key
        json.dumps({"format": 1, "key": KEY.to_json(), "k": "five", "silhouettes": {"5": 0.3}}),
        json.dumps({"format": 1, "key": KEY.to_json(), "k": 6, "silhouettes": {"5": 0.3}}),  # k not tried
    ],
)
def test_an_unreadable_store_is_no_k_and_says_so(tmp_path: Path, document: str, caplog) -> None:
    path = tmp_path / "cluster_choice.json"
    path.write_text(document)
    with caplog.at_level("WARNING"):
        assert read_k(path) is None
    assert f"{path}: the stored clusters' k cannot be read" in caplog.text
    assert read_k(tmp_path / "absent.json") is None


def test_the_config_hash_follows_what_k_depends_on_not_the_cadence() -> None:
    base = config_hash(ClusterConfig())
    assert config_hash(ClusterConfig(rechoose_every_days=1)) == base
    assert config_hash(ClusterConfig(k_max=6)) != base
    assert config_hash(ClusterConfig(fit_sample=10_000)) != base


def test_a_stored_k_is_chosen_again_when_due_with_its_own_setting_named() -> None:
    def same(day: date) -> str:
        return KEY.fingerprint

    assert redo_reason(RECHOOSE_K, 7, KEY, "abc", date(2025, 12, 7), same) is None
    due = redo_reason(RECHOOSE_K, 7, KEY, "abc", date(2025, 12, 8), same)
    assert due == "the stored k is 7 days old (segmentation.clusters.rechoose_every_days: 7)"
    assert redo_reason(RECHOOSE_K, 1, KEY, "abc", date(2025, 12, 2), same).startswith(
        "segmentation.clusters.rechoose_every_days is 1"
    )
