"""The backend artifact writer: layout, checksums, no pickle, determinism, atomic replacement, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from artifact import writer as artifact_module
from artifact.loader import FORMAT, FORMAT_VERSION, MANIFEST_FILE, Files, sha256_of
from artifact.writer import build_arrays, write_artifact, write_artifact_from_lists
from features.catalog import StepFile
from features.errors import SiyuError

META = {"as_of": "2025-03-31", "model_name": "siyu-recommender", "model_version": "3"}


def sample_frames() -> dict[str, pd.DataFrame]:
    """Lists whose layout is known by hand.

    C1: P1, P2, P3 (personal); C2: P3; C3: no list, community D1. D1 shares P3, P1.
    Community D1 falls back to P4, P1; D2 has no community list. Global: P5, P1, P2, P6.
    P1 is similar to P2, itself, P3.
    """
    return {
        "consumer_lists": pd.DataFrame(
            {
                "consumer_id": ["C2", "C1", "C1", "C1"],  # not in order on purpose
                "product_id": ["P3", "P3", "P1", "P2"],
                "rank": [1, 3, 1, 2],
                "score": [0.7, 0.3, 0.9, 0.5],
                "reason": ["x", "y", "z", "w"],  # extra columns are ignored
            }
        ),
        "distributor_lists": pd.DataFrame(
            {"distributor_id": ["D1", "D1"], "product_id": ["P3", "P1"], "rank": [1, 2], "score": [3.0, 2.0]}
        ),
        "similar_items": pd.DataFrame(
            {
                "product_id": ["P1", "P1", "P1"],
                "similar_product_id": ["P2", "P1", "P3"],
                "rank": [1, 2, 3],
                "score": [0.8, 1.0, 0.4],
            }
        ),
        "fallback": pd.DataFrame(
            {
                "distributor_id": ["D1", "D1", None, None, None, None],
                "product_id": ["P4", "P1", "P5", "P1", "P2", "P6"],
                "rank": [1, 2, 1, 2, 3, 4],
                "score": [10.0, 9.0, 100.0, 90.0, 80.0, 70.0],
            }
        ),
        "consumer_community": pd.DataFrame(
            {"consumer_id": ["C1", "C2", "C3"], "distributor_id": ["D1", "D2", "D1"]}
        ),
    }


def write_sample(out_dir: Path, **changes: pd.DataFrame | None) -> Path:
    """The sample artifact, with any frame replaced by ``changes``."""
    frames = {**sample_frames(), **changes}
    return write_artifact(out_dir, meta=META, **frames)


def test_the_directory_holds_every_file_with_its_checksum(tmp_path: Path) -> None:
    artifact = write_sample(tmp_path / "artifact")
    manifest = json.loads((artifact / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["format"] == FORMAT and manifest["format_version"] == FORMAT_VERSION
    assert manifest["meta"] == META
    assert set(manifest["files"]) == set(Files.ALL)
    assert {p.name for p in artifact.iterdir()} == {*Files.ALL, MANIFEST_FILE}
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256_of(artifact / name)
        assert entry["bytes"] == (artifact / name).stat().st_size
    assert manifest["counts"]["consumers"] == 3 and manifest["counts"]["products"] == 6
    assert manifest["counts"]["consumers_with_list"] == 2


def test_arrays_are_plain_numbers_that_load_without_pickle(tmp_path: Path) -> None:
    artifact = write_sample(tmp_path / "artifact")
    for name in Files.ARRAYS:
        array = np.load(artifact / name, allow_pickle=False)
        assert array.dtype in (np.int32, np.float32), name


def test_lists_are_laid_out_by_rank_and_padded() -> None:
    built = build_arrays(**sample_frames())
    products = list(built.product_ids)
    assert list(built.consumer_ids) == ["C1", "C2", "C3"]
    assert products == ["P1", "P2", "P3", "P4", "P5", "P6"]
    items = built.arrays[Files.CONSUMER_ITEMS]
    assert items.tolist() == [[0, 1, 2], [2, -1, -1], [-1, -1, -1]]
    scores = built.arrays[Files.CONSUMER_SCORES]
    assert scores[0].tolist() == pytest.approx([0.9, 0.5, 0.3])
    assert np.isnan(scores[1, 1:]).all()
    assert built.arrays[Files.CONSUMER_COMMUNITY].tolist() == [0, 1, 0]  # D1, D2, D1
    assert built.arrays[Files.GLOBAL_ITEMS].tolist() == [4, 0, 1, 5]
    assert built.arrays[Files.COMMUNITY_ITEMS].tolist() == [[3, 0], [-1, -1]]


def test_gaps_in_ranks_close_up() -> None:
    frames = sample_frames()
    frames["consumer_lists"] = frames["consumer_lists"].assign(rank=[4, 30, 2, 7])
    items = build_arrays(**frames).arrays[Files.CONSUMER_ITEMS]
    assert items.tolist()[:2] == [[0, 1, 2], [2, -1, -1]]


def test_categorical_and_numeric_ids_give_the_same_artifact(tmp_path: Path) -> None:
    frames = sample_frames()
    as_categories = {
        name: frame.astype({c: "category" for c in frame.columns if c.endswith("_id")})
        for name, frame in frames.items()
    }
    plain = write_sample(tmp_path / "plain")
    categorical = write_artifact(tmp_path / "categorical", meta=META, **as_categories)
    assert _manifest(plain)["files"] == _manifest(categorical)["files"]
    numeric = sample_frames()["consumer_lists"].assign(consumer_id=[2, 1, 1, 1])
    built = build_arrays(numeric, None, None, None, None)
    assert list(built.consumer_ids) == ["1", "2"]


def test_the_same_lists_give_byte_identical_files(tmp_path: Path) -> None:
    first = write_sample(tmp_path / "first")
    shuffled = {name: frame.sample(frac=1.0, random_state=3) for name, frame in sample_frames().items()}
    second = write_artifact(tmp_path / "second", meta=META, **shuffled)
    assert (first / MANIFEST_FILE).read_bytes() == (second / MANIFEST_FILE).read_bytes()


def test_a_rewrite_replaces_the_artifact_whole(tmp_path: Path) -> None:
    artifact = write_sample(tmp_path / "artifact")
    shorter = sample_frames()["consumer_lists"].iloc[:1]
    write_sample(artifact, consumer_lists=shorter)
    assert _manifest(artifact)["counts"]["consumers_with_list"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]  # no staging or set-aside leftovers


def test_a_crash_while_writing_leaves_the_previous_artifact(tmp_path: Path, monkeypatch) -> None:
    artifact = write_sample(tmp_path / "artifact")
    before = (artifact / MANIFEST_FILE).read_bytes()
    calls = {"n": 0}
    real_save = np.save

    def failing_save(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk full")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(artifact_module.np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_sample(artifact, consumer_lists=sample_frames()["consumer_lists"].iloc[:1])
    assert (artifact / MANIFEST_FILE).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]


def test_a_folder_that_is_not_an_artifact_is_never_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "consumer_tiers.csv").write_text("keep me")
    with pytest.raises(SiyuError, match="is not a recommendation artifact"):
        write_sample(folder)
    assert (folder / "consumer_tiers.csv").read_text() == "keep me"


def test_a_rank_used_twice_in_one_list_is_refused() -> None:
    frames = sample_frames()
    frames["consumer_lists"] = frames["consumer_lists"].assign(rank=[1, 2, 1, 2])
    with pytest.raises(SiyuError, match="consumer_lists: rank 2 appears twice in the list of C1"):
        build_arrays(**frames)


@pytest.mark.parametrize(
    ("frame", "change", "message"),
    [
        ("consumer_lists", lambda f: f.drop(columns="rank"), "consumer_lists: missing column"),
        ("similar_items", lambda f: f.drop(columns="similar_product_id"), "similar_items: missing column"),
        ("consumer_lists", lambda f: f.assign(product_id=[None, "P3", "P1", "P2"]), "'product_id' has empty"),
        ("distributor_lists", lambda f: f.assign(rank=[1.5, 2.0]), "'rank' must be whole numbers"),
        ("fallback", lambda f: f.assign(rank=0), "'rank' must be whole numbers ≥ 1"),
    ],
)
def test_bad_frames_are_refused_with_the_frame_and_column(frame: str, change, message: str) -> None:
    frames = sample_frames()
    frames[frame] = change(frames[frame])
    with pytest.raises(SiyuError, match=message):
        build_arrays(**frames)


def test_optional_frames_may_be_left_out(tmp_path: Path) -> None:
    artifact = write_sample(
        tmp_path / "artifact", distributor_lists=None, similar_items=None, consumer_community=None
    )
    counts = _manifest(artifact)["counts"]
    assert counts["distributor_list_length"] == 0 and counts["similar_list_length"] == 0
    assert counts["distributors"] == 1  # D1 still has a community fallback list


def _manifest(artifact: Path) -> dict:
    return json.loads((artifact / MANIFEST_FILE).read_text(encoding="utf-8"))


def test_the_recommend_steps_files_give_the_same_artifact(tmp_path: Path) -> None:
    frames = sample_frames()
    lists = tmp_path / "lists"
    _write_list_files(lists, frames)
    from_files = write_artifact_from_lists(lists, tmp_path / "from_files", META, frames["consumer_community"])
    direct = write_sample(tmp_path / "direct")
    assert (from_files / MANIFEST_FILE).read_bytes() == (direct / MANIFEST_FILE).read_bytes()
    (lists / StepFile.CONSUMER_LISTS).unlink()
    with pytest.raises(SiyuError, match="consumer_recommendations.parquet: not found"):
        write_artifact_from_lists(lists, tmp_path / "none", META)


def _write_list_files(lists: Path, frames: dict[str, pd.DataFrame]) -> None:
    lists.mkdir(exist_ok=True)
    fallback = frames["fallback"]
    files = {
        StepFile.CONSUMER_LISTS: frames["consumer_lists"],
        StepFile.DISTRIBUTOR_LISTS: frames["distributor_lists"],
        StepFile.SIMILAR_ITEMS: frames["similar_items"],
        StepFile.FALLBACK_COMMUNITY: fallback[fallback["distributor_id"].notna()],
        StepFile.FALLBACK_GLOBAL: fallback[fallback["distributor_id"].isna()].drop(columns="distributor_id"),
    }
    for name, frame in files.items():
        frame.to_parquet(lists / name, index=False, row_group_size=3)


@pytest.mark.parametrize("in_rank_order", [True, False])
def test_streamed_in_small_batches_gives_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_rank_order: bool
) -> None:
    # batches of 2 rows: C1's list spans batches (streamed), or goes back in rank (read whole)
    frames = sample_frames()
    if in_rank_order:
        frames["consumer_lists"] = frames["consumer_lists"].sort_values(["consumer_id", "rank"])
    _write_list_files(tmp_path / "lists", frames)
    monkeypatch.setattr(artifact_module, "BATCH_ROWS", 2)
    read_whole: list[str] = []
    whole_matrix = artifact_module._whole_matrix
    monkeypatch.setattr(
        artifact_module,
        "_whole_matrix",
        lambda source, *rest: read_whole.append(source.name) or whole_matrix(source, *rest),
    )
    streamed = write_artifact_from_lists(
        tmp_path / "lists", tmp_path / "streamed", META, frames["consumer_community"]
    )
    direct = write_artifact(tmp_path / "direct", meta=META, **frames)
    assert (streamed / MANIFEST_FILE).read_bytes() == (direct / MANIFEST_FILE).read_bytes()
    assert read_whole == ([] if in_rank_order else ["consumer_lists"])


def test_streamed_one_pass_lists_give_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # real lists (grouped by home distributor, not by consumer id) in batches of 1,000 rows
    fixture = Path(__file__).parents[1] / "pipelines" / "steps" / "fixtures" / "three_pass" / "small"
    lists = tmp_path / "lists"
    lists.mkdir()
    consumers = pd.read_parquet(fixture / StepFile.CONSUMER_LISTS)
    consumers = consumers.sample(frac=1.0, random_state=3)  # owners in any order, ranks in order
    consumers = consumers.sort_values("rank", kind="stable")
    consumers = consumers.sort_values("consumer_id", key=lambda ids: ids.str[::-1], kind="stable")
    consumers.to_parquet(lists / StepFile.CONSUMER_LISTS, index=False, row_group_size=700)
    distributors = pd.read_parquet(fixture / StepFile.DISTRIBUTOR_LISTS)
    distributors.to_parquet(lists / StepFile.DISTRIBUTOR_LISTS, index=False)
    monkeypatch.setattr(artifact_module, "BATCH_ROWS", 1000)
    streamed = write_artifact_from_lists(lists, tmp_path / "streamed", META)
    direct = write_artifact(tmp_path / "direct", consumers, distributors, None, None, None, META)
    assert (streamed / MANIFEST_FILE).read_bytes() == (direct / MANIFEST_FILE).read_bytes()
    assert _manifest(streamed)["counts"]["consumers"] == consumers["consumer_id"].nunique()


def test_a_list_file_of_many_batches_reports_each_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each pass over a list file longer than one batch (the consumer lists: 50M rows at 10M order
    lines, read three times) reports its rows; a file of one batch passes silently."""
    import features.progress as progress_module

    frames = sample_frames()
    frames["consumer_lists"] = frames["consumer_lists"].sort_values(["consumer_id", "rank"])
    _write_list_files(tmp_path / "lists", frames)
    monkeypatch.setattr(artifact_module, "BATCH_ROWS", len(frames["consumer_lists"]) - 1)
    updates: list[progress_module.ProgressUpdate] = []
    remove = progress_module.add_listener(updates.append)
    try:
        write_artifact_from_lists(
            tmp_path / "lists", tmp_path / "artifact", META, frames["consumer_community"]
        )
    finally:
        remove()
    finished = [update for update in updates if update.finished]
    rows = len(frames["consumer_lists"])
    assert all(update.total > artifact_module.BATCH_ROWS for update in finished)  # small files: silent
    assert [
        (update.step, update.done, update.total) for update in finished if "consumer_lists" in update.step
    ] == [
        ("artifact: consumer_lists (consumer_id)", rows, rows),
        ("artifact: consumer_lists (product_id)", rows, rows),
        ("artifact: consumer_lists (consumer_id, product_id, rank, score)", rows, rows),
    ]
