"""The backend loader: lookups, fallbacks, checksums, and that it imports with numpy and pyarrow only."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from artifact import loader
from artifact.loader import MANIFEST_FILE, ArtifactError, Files, Recommendation, Source, load
from tests.artifact.test_writer import sample_frames, write_sample


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("loader") / "artifact")


@pytest.fixture(scope="module")
def recommender(artifact: Path) -> loader.Recommender:
    return load(artifact)


def ids(picks: list[Recommendation]) -> list[str]:
    return [pick.product_id for pick in picks]


def test_a_consumer_gets_their_list_in_rank_order(recommender: loader.Recommender) -> None:
    picks = recommender.recommend("C1", k=2)
    assert ids(picks) == ["P1", "P2"]
    assert [pick.source for pick in picks] == [Source.PERSONAL] * 2
    assert picks[0].score == pytest.approx(0.9)


def test_a_short_list_is_topped_up_by_community_then_global(recommender: loader.Recommender) -> None:
    picks = recommender.recommend("C1", k=6)
    # P1 from the community list and P1, P2 from the global list are already in: skipped
    assert ids(picks) == ["P1", "P2", "P3", "P4", "P5", "P6"]
    assert [p.source for p in picks] == ["personal"] * 3 + ["community", "global", "global"]


def test_exclude_removes_products_and_the_fallback_fills_in(recommender: loader.Recommender) -> None:
    assert ids(recommender.recommend("C1", k=3, exclude={"P1", "P3"})) == ["P2", "P4", "P5"]
    assert ids(recommender.recommend("C1", k=2, exclude="P1")) == ["P2", "P3"]
    assert ids(recommender.recommend("C1", k=2, exclude=["unknown product"])) == ["P1", "P2"]


def test_a_consumer_without_a_list_gets_their_community_list(recommender: loader.Recommender) -> None:
    picks = recommender.recommend("C3", k=3)
    assert ids(picks) == ["P4", "P1", "P5"]
    assert [p.source for p in picks] == ["community", "community", "global"]


def test_a_community_without_a_list_falls_back_to_global(recommender: loader.Recommender) -> None:
    assert ids(recommender.recommend("C2", k=3)) == ["P3", "P5", "P1"]  # C2 lives in D2: no list


def test_an_unknown_consumer_gets_the_global_list(recommender: loader.Recommender) -> None:
    picks = recommender.recommend("never seen", k=2)
    assert ids(picks) == ["P5", "P1"] and {p.source for p in picks} == {"global"}
    assert not recommender.knows_consumer("never seen") and recommender.knows_consumer("C3")


def test_an_unknown_consumer_arriving_through_a_distributor_gets_its_community(
    recommender: loader.Recommender,
) -> None:
    assert ids(recommender.recommend("new", k=2, distributor_id="D1")) == ["P4", "P1"]
    assert ids(recommender.recommend("C2", k=1, distributor_id="D1")) == ["P3"]  # own list first
    assert ids(recommender.recommend("new", k=1, distributor_id="D9")) == ["P5"]


def test_the_answer_is_never_empty_while_a_fallback_exists(recommender: loader.Recommender) -> None:
    for consumer in ["C1", "C2", "C3", "", "x" * 100, 12345, None]:
        assert len(recommender.recommend(consumer, k=10)) >= 4  # the global list has four products


def test_distributor_lists_and_their_fallback(recommender: loader.Recommender) -> None:
    assert ids(recommender.for_distributor("D1", k=3)) == ["P3", "P1", "P4"]
    assert ids(recommender.for_distributor("D2", k=2)) == ["P5", "P1"]  # no list, no community list
    assert ids(recommender.for_distributor("unknown", k=1)) == ["P5"]


def test_similar_products_never_include_the_product_itself(recommender: loader.Recommender) -> None:
    picks = recommender.similar("P1", k=3)
    assert ids(picks) == ["P2", "P3", "P5"]
    assert [p.source for p in picks] == ["similar", "similar", "global"]
    assert ids(recommender.similar("unknown", k=2)) == ["P5", "P1"]


def test_ids_are_matched_as_text(tmp_path: Path) -> None:
    frames = sample_frames()
    numeric = frames["consumer_lists"].assign(consumer_id=[2, 1, 1, 1])
    recommender = load(write_sample(tmp_path / "artifact", consumer_lists=numeric, consumer_community=None))
    assert ids(recommender.recommend(1, k=1)) == ids(recommender.recommend("1", k=1)) == ["P1"]
    assert ids(recommender.recommend(np.int64(2), k=1)) == ["P3"]


@pytest.mark.parametrize("k", [0, -1, 2.5, "3", True])
def test_k_must_be_a_positive_integer(recommender: loader.Recommender, k: object) -> None:
    with pytest.raises(ValueError, match="k must be a positive integer"):
        recommender.recommend("C1", k=k)  # type: ignore[arg-type]


def test_reading_into_memory_answers_the_same(artifact: Path, recommender: loader.Recommender) -> None:
    in_memory = load(artifact, mmap=False)
    for consumer in ["C1", "C2", "C3", "nobody"]:
        assert in_memory.recommend(consumer, k=5) == recommender.recommend(consumer, k=5)
    assert in_memory.meta["as_of"] == "2025-03-31" and in_memory.counts["products"] == 6


def test_a_changed_file_is_named_on_load(artifact: Path, tmp_path: Path) -> None:
    copy = _copy(artifact, tmp_path / "copy")
    items = np.load(copy / Files.CONSUMER_ITEMS)
    items[0, 0] = 5  # same shape and size, different content
    np.save(copy / Files.CONSUMER_ITEMS, items, allow_pickle=False)
    with pytest.raises(ArtifactError, match=r"consumer_items\.npy: checksum mismatch"):
        load(copy)
    assert load(copy, verify=False).recommend("C1", k=1)[0].product_id == "P6"


@pytest.mark.parametrize("offset", [10, 30, 60])
def test_a_damaged_array_header_is_named_without_verification(
    artifact: Path, tmp_path: Path, offset: int
) -> None:
    copy = _copy(artifact, tmp_path / "copy")
    path = copy / Files.CONSUMER_ITEMS
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF  # inside numpy's header: its parser fails in one way or another
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match=r"consumer_items\.npy: not a readable NumPy array"):
        load(copy, verify=False)
    with pytest.raises(ArtifactError, match=r"consumer_items\.npy: checksum mismatch"):
        load(copy)


def test_a_manifest_entry_without_its_size_is_named(artifact: Path, tmp_path: Path) -> None:
    copy = _copy(artifact, tmp_path / "copy")
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    del manifest["files"][Files.CONSUMER_ITEMS]["bytes"]
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"no byte size or SHA-256 for consumer_items\.npy"):
        load(copy)


def test_a_missing_file_is_named_on_load(artifact: Path, tmp_path: Path) -> None:
    copy = _copy(artifact, tmp_path / "copy")
    (copy / Files.PRODUCT_IDS).unlink()
    with pytest.raises(ArtifactError, match=r"product_ids\.parquet: missing from the artifact"):
        load(copy)


def test_an_unknown_format_version_is_refused(artifact: Path, tmp_path: Path) -> None:
    copy = _copy(artifact, tmp_path / "copy")
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    manifest["format_version"] = 99
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format version 99"):
        load(copy)
    (copy / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ArtifactError, match="cannot read the artifact manifest"):
        load(copy)


# Modules a backend would not have: importing any of them fails in the child process.
FORBIDDEN = ("pandas", "sklearn", "scipy", "implicit", "lightfm", "mlflow", "prefect", "duckdb")
FORBIDDEN += ("pandera", "pydantic", "yaml", "pymc_marketing", "features", "models")


@pytest.mark.parametrize("how", ["package", "vendored file"])
def test_the_loader_needs_only_numpy_and_pyarrow(artifact: Path, how: str) -> None:
    imported = (
        "from artifact.loader import load"
        if how == "package"
        else textwrap.dedent(f"""
            import importlib.util
            spec = importlib.util.spec_from_file_location("siyu_loader", {str(Path(loader.__file__))!r})
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            load = module.load
            """)
    )
    script = (
        textwrap.dedent(f"""
        import sys

        class Forbid:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {FORBIDDEN!r}:
                    raise ImportError(f"forbidden in this test: {{name}}")
                return None

        sys.meta_path.insert(0, Forbid())
        """)
        + imported
        + textwrap.dedent(f"""
        picks = load({str(artifact)!r}).recommend("C1", k=4)
        print([p.product_id for p in picks])
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {FORBIDDEN!r})
        print(heavy)
        """)
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=Path.cwd())
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["['P1', 'P2', 'P3', 'P4']", "[]"]


def test_the_forbidding_hook_really_forbids() -> None:
    """The import test above would pass vacuously if the hook let pandas through."""
    script = (
        "import sys\n"
        "class Forbid:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'pandas':\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Forbid())\n"
        "import pandas\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode != 0 and "ImportError" in done.stderr


def _copy(artifact: Path, target: Path) -> Path:
    target.mkdir()
    for file in artifact.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    return target
