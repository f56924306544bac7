"""The nightly on ``engine.kind: spark`` (issue #11): the same exports as on DuckDB, the engine on record.

One tiny simulated set (the one tests/pipelines/test_flow.py runs) goes through the whole flow
twice, once per engine, each in its own work folder. The feature builders run on Spark in
``local[2]``, and so does the scoring pass (its lists as Spark tasks); everything else runs on the
driver either way. Every exported file must be the same bytes (the manifest aside: run ids and
times), up to float summation order in the files the scoring pass's scores reach: where BLAS
picks its kernel by block shape (OpenBLAS on CPUs without AVX-512) the Spark tasks' blocks sum
in another order, so those scores move in their last bits. Those files are held to that weaker
promise precisely (``SCORED_FILES``). The Spark run's session must be on the
MLflow run and gone afterwards, its JVM included. A Spark night starts one Spark session, which
validates and then serves the steps, and stops it once, also when validation fails (then the run
fails with validation's message and no JVM is left). Without Java the Spark run fails with the fix
in its message: nothing here is skipped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import psutil
import pytest
import yaml

import features.spark_engine as spark_engine
import pipelines.steps.recommend as recommend_step
from features.catalog import Folder, RunFile
from features.columns import Col, Table
from features.errors import QuarantineLimitExceeded
from models.recommenders.base import InteractionData
from models.recommenders.training import RecommendConfig
from pipelines.flow import NightlySummary, run_nightly
from pipelines.run_engine import ENGINE_TAG, SPARK_CONF_PREFIX
from sources.simulator import SimulationConfig, simulate
from tests.cli import run_cli
from tests.ranked_lists import assert_same_list_file, assert_same_ranked_lists

# its nights share one Prefect server, and start and stop their Spark sessions themselves (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("shared_prefect_server", "own_spark_sessions")

# The ranker learns its product-level state from 150 of the 300 consumers (max_fit_consumers), so
# the Spark night holds only their rows on the driver (InteractionData.partial) and its scoring
# parts read every consumer's own rows; the DuckDB night fits on the same sample from all rows.
# The evaluated models are configs/nightly.yaml's (the baselines count popularity on the engine),
# so the Spark night's evaluation and tuning read partial data too.
SAMPLED = 150
MODELS = {name: spec.model_dump() for name, spec in RecommendConfig().models.items()}
MODELS["ranker"]["params"]["max_fit_consumers"] = SAMPLED
NIGHTLY_MODELS = ["ranker", "repeat", "popularity_global", "popularity_category", "popularity_community"]

CONFIG = {
    "tracking": {"experiment": "test-nightly-spark", "champion_margin": 0.001},
    "segmentation": {"clv": {"enabled": False}},
    "recommend": {
        "models": MODELS,
        "evaluation": {"models": ["ranker", "popularity_global"], "nightly_models": NIGHTLY_MODELS},
    },
    "flow": {"concurrent_steps": True},  # segmentation and the quality gate on two cursors
    # as tests/features/test_spark_parity.py: a quick JVM and no code generation on a few hundred rows
    "spark": {
        "master": "local[2]",
        "driver_memory": "1g",
        "shuffle_partitions": 2,
        "conf": {
            "spark.sql.codegen.wholeStage": False,
            "spark.sql.codegen.factoryMode": "NO_CODEGEN",
            "spark.sql.adaptive.enabled": False,
            "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        },
    },
}


# The export files the scoring pass's scores reach, and what one list is in each; every other
# exported file must be the same bytes.
LIST_FILES = {
    "consumer_recommendations.parquet": ["consumer_id"],
    "distributor_recommendations.parquet": ["distributor_id"],
    "distributor_outreach.parquet": ["distributor_id"],
}
ARTIFACT_LISTS = ("consumer", "distributor")  # artifact/{name}_items.npy beside {name}_scores.npy
ARTIFACT_MANIFEST = "artifact/manifest.json"  # holds those arrays' sha256
SCORED_FILES = {
    *LIST_FILES,
    *(f"artifact/{name}_{part}.npy" for name in ARTIFACT_LISTS for part in ("items", "scores")),
    ARTIFACT_MANIFEST,
}


def _artifact_lists(folder: Path, name: str) -> pd.DataFrame:
    """An artifact's item and score arrays as ranked lists (row: list, column: rank)."""
    items, scores = np.load(folder / f"{name}_items.npy"), np.load(folder / f"{name}_scores.npy")
    assert items.shape == scores.shape, name
    rows, ranks = np.indices(items.shape)
    return pd.DataFrame(
        {"list": rows.ravel(), "rank": ranks.ravel(), "item": items.ravel(), "score": scores.ravel()}
    )


def _manifest_but_scored_digests(path: Path) -> dict:
    manifest = json.loads(path.read_text())
    for name in ARTIFACT_LISTS:
        for part in ("items", "scores"):
            manifest["files"][f"{name}_{part}.npy"].pop("sha256")
    return manifest


def _assert_same_scored_files(spark_dir: Path, duckdb_dir: Path) -> None:
    """The scored files the same up to float summation order: list files by
    ``assert_same_list_file``, the artifact's arrays as ranked lists, its manifest exactly but for
    those arrays' digests."""
    for name, list_key in LIST_FILES.items():
        assert_same_list_file(spark_dir / name, duckdb_dir / name, list_key)
    for name in ARTIFACT_LISTS:
        assert_same_ranked_lists(
            _artifact_lists(spark_dir / "artifact", name),
            _artifact_lists(duckdb_dir / "artifact", name),
            ["list"],
            obj=f"artifact {name} lists",
        )
    assert _manifest_but_scored_digests(spark_dir / ARTIFACT_MANIFEST) == _manifest_but_scored_digests(
        duckdb_dir / ARTIFACT_MANIFEST
    )


def _java_children() -> list[psutil.Process]:
    return [child for child in psutil.Process().children(recursive=True) if "java" in child.name()]


def _counting(calls: Counter, name: str, fn: Callable) -> Callable:
    def counted(*args, **kwargs):
        calls[name] += 1
        return fn(*args, **kwargs)

    return counted


def _counting_spark(patch: pytest.MonkeyPatch) -> Counter:
    """Count Spark session starts (``start_spark``: every siyu Spark session, ``spark_session``'s
    too, starts there) and stops (``stop_jvm``: a running session's stop ends its JVM)."""
    calls: Counter = Counter()
    patch.setattr(spark_engine, "start_spark", _counting(calls, "starts", spark_engine.start_spark))
    patch.setattr(spark_engine, "stop_jvm", _counting(calls, "stops", spark_engine.stop_jvm))
    return calls


def _night_config(root: Path, kind: str, **sections: dict) -> Path:
    config_path = root / f"{kind}.yaml"
    config_path.write_text(yaml.safe_dump({**CONFIG, "engine": {"kind": kind}, **sections}))
    return config_path


@pytest.fixture(scope="module")
def spark_calls() -> Counter:
    """The Spark session starts and stops of the Spark night in ``nights``."""
    return Counter()


@pytest.fixture(scope="module")
def production_data() -> dict[str, list[tuple[int, int, bool]]]:
    """Per engine, each interaction data the nights' production model was fitted or carried on:
    (consumers, consumers with rows, partial)."""
    return {}


@pytest.fixture(scope="module")
def driver_data() -> dict[str, list[tuple[int, int, bool]]]:
    """Per engine, every interaction data the nights built on the driver (evaluation, tuning,
    production): (consumers, consumers with rows, partial)."""
    return {}


def _shape(data: InteractionData) -> tuple[int, int, bool]:
    return data.shape[0], int((np.diff(data.matrix.indptr) > 0).sum()), data.partial


@pytest.fixture(scope="module")
def nights(
    tmp_path_factory: pytest.TempPathFactory, spark_calls: Counter, production_data: dict, driver_data: dict
) -> dict[str, tuple[NightlySummary, Path]]:
    """The same night on DuckDB and on Spark: summary and work folder of each."""
    root = tmp_path_factory.mktemp("nightly_engines")
    data = root / "data"
    simulate(data, SimulationConfig(consumers=300, distributors=10, products=50, days=120, seed=7))
    nights = {}
    for kind in ("duckdb", "spark"):
        work = root / f"work_{kind}"
        with pytest.MonkeyPatch.context() as patch:
            calls = _counting_spark(patch)
            built = production_data.setdefault(kind, [])
            night_data = recommend_step.night_data

            def recorded(*args, built=built, night_data=night_data):
                data = night_data(*args)
                built.append(_shape(data))
                return data

            every = driver_data.setdefault(kind, [])
            from_frames = InteractionData.from_frames.__func__

            def assembled(cls, *args, every=every, from_frames=from_frames, **kwargs):
                data = from_frames(cls, *args, **kwargs)
                every.append(_shape(data))
                return data

            patch.setattr(recommend_step, "night_data", recorded)
            patch.setattr(InteractionData, "from_frames", classmethod(assembled))
            summary = run_nightly(config_path=_night_config(root, kind), data_dir=data, out_dir=work)
        nights[kind] = (summary, work)
        spark_calls.update({f"{kind} {name}": n for name, n in calls.items()})
    return nights


def _export_files(summary: NightlySummary) -> dict[str, bytes]:
    return {
        str(path.relative_to(summary.export_dir)): path.read_bytes()
        for path in sorted(summary.export_dir.rglob("*"))
        if path.is_file() and (path.name != "manifest.json" or path.parent.name == "artifact")
    }


def test_the_spark_night_exports_the_same_files_as_the_duckdb_night(nights) -> None:
    """Tiers, segments, quality levels, workbooks: byte for byte; lists and artifact: the same up
    to float summation order (the module docstring)."""
    on_duckdb, _ = nights["duckdb"]
    on_spark, _ = nights["spark"]
    assert on_spark.tiers == on_duckdb.tiers and sum(on_spark.tiers.values()) == 300
    assert on_spark.quality_levels == on_duckdb.quality_levels
    duckdb_files, spark_files = _export_files(on_duckdb), _export_files(on_spark)
    assert {"consumer_tiers.parquet", "consumer_recommendations.parquet", "artifact/manifest.json"} <= set(
        duckdb_files
    )
    assert sorted(spark_files) == sorted(duckdb_files)
    assert set(duckdb_files) >= SCORED_FILES
    unscored = [name for name in duckdb_files if name not in SCORED_FILES]
    assert [name for name in unscored if spark_files[name] != duckdb_files[name]] == []
    _assert_same_scored_files(on_spark.export_dir, on_duckdb.export_dir)


def test_the_mlflow_run_records_the_engine_and_the_sessions_conf(nights) -> None:
    for kind, (summary, work) in nights.items():
        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work.absolute()}/mlflow.db")
        run = client.get_run(summary.mlflow_run_id)
        assert run.info.status == "FINISHED" and run.data.tags[ENGINE_TAG] == kind
        assert run.data.params["engine.kind"] == kind
    _, spark_work = nights["spark"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{spark_work.absolute()}/mlflow.db")
    tags = client.get_run(nights["spark"][0].mlflow_run_id).data.tags
    assert tags[SPARK_CONF_PREFIX + "spark.master"] == "local[2]"
    assert tags[SPARK_CONF_PREFIX + "spark.sql.shuffle.partitions"] == "2"
    assert tags[SPARK_CONF_PREFIX + "spark.sql.session.timeZone"] == "UTC"


def test_the_spark_session_and_its_jvm_are_gone_after_the_night(nights) -> None:
    """The close task stopped the session and ended the JVM; the spill folder went with it."""
    _, work = nights["spark"]
    assert _java_children() == []
    assert not (work / "spark_tmp").exists()
    tasks = yaml.safe_load((work / RunFile.RUN_TIMINGS).read_text())["tasks"]
    assert {"start spark session", "open engine session", "close engine session"} <= set(tasks)


def test_a_spark_night_starts_one_session_for_validation_and_the_steps(nights, spark_calls) -> None:
    """Validation ran on the night's session (it starts none of its own), the steps on the same
    one; it was stopped once. The DuckDB night started no Spark at all."""
    assert spark_calls == {"spark starts": 1, "spark stops": 1}
    _, duckdb_work = nights["duckdb"]
    duckdb_tasks = yaml.safe_load((duckdb_work / RunFile.RUN_TIMINGS).read_text())["tasks"]
    assert "start spark session" not in duckdb_tasks and "open engine session" in duckdb_tasks


def test_a_spark_night_whose_validation_fails_stops_its_session_once(tmp_path: Path) -> None:
    """Bad data: the run fails with validation's message, and the session it started for validation
    is stopped (once, by the engine block), its JVM and spill folder with it."""
    data = tmp_path / "data"
    simulate(data, SimulationConfig(consumers=60, distributors=4, products=30, days=60, seed=3))
    orders = pd.read_parquet(data / f"{Table.ORDERS}.parquet")
    orders.loc[orders.index % 4 == 0, Col.UNIT_PRICE] = -1.0  # a quarter of the rows quarantined
    orders.to_parquet(data / f"{Table.ORDERS}.parquet", index=False)
    work = tmp_path / "work"
    with pytest.MonkeyPatch.context() as patch:
        calls = _counting_spark(patch)
        with pytest.raises(QuarantineLimitExceeded, match="too many bad rows"):
            run_nightly(config_path=_night_config(tmp_path, "spark"), data_dir=data, out_dir=work)
    assert calls == {"starts": 1, "stops": 1}
    assert _java_children() == []
    assert not (work / "spark_tmp").exists()
    assert (work / Folder.VALIDATED / Folder.QUARANTINE / f"{Table.ORDERS}.csv").exists()  # written by Spark


def test_siyu_validate_alone_starts_and_stops_a_session_of_its_own(tmp_path: Path, monkeypatch) -> None:
    """No night, no engine block: ``siyu validate`` on Spark starts its own session and stops it."""
    data = tmp_path / "data"
    simulate(data, SimulationConfig(consumers=60, distributors=4, products=30, days=60, seed=3))
    out = tmp_path / "validated"
    calls = _counting_spark(monkeypatch)
    config = str(_night_config(tmp_path, "spark"))
    assert run_cli(monkeypatch, "validate", "--data", str(data), "--out", str(out), "--config", config) == 0
    assert calls == {"starts": 1, "stops": 1}
    assert _java_children() == [] and not (out / "spark_tmp").exists()
    assert (out / Folder.CLEAN / f"{Table.ORDERS}.parquet").is_dir()  # Spark writes a folder of parts


def test_the_spark_night_held_only_the_sampled_consumers_rows(nights, production_data) -> None:
    """The same exports (above), although the Spark night's production model was fitted on data
    with only the sample's rows: every consumer's id, 150 consumers' rows."""
    assert production_data["duckdb"] and production_data["spark"]
    for _, with_rows, partial in production_data["duckdb"]:
        assert with_rows > SAMPLED and not partial
    for consumers, with_rows, partial in production_data["spark"]:
        assert consumers > SAMPLED and with_rows <= SAMPLED and partial


def test_the_spark_nights_evaluation_and_tuning_held_only_the_rows_they_read(nights, driver_data) -> None:
    """The same evaluation.json (above), although on Spark each interaction data the driver built
    with more consumers than the fitting sample (the evaluation's fold and tonight's; the tuning
    window 60 days back has fewer, so all its rows) held only some consumers' rows: the fitting
    sample's, the measured and the learning consumers' (models.evaluation.PartialRows)."""
    assert len(driver_data["duckdb"]) == len(driver_data["spark"]) >= 3
    assert not any(partial for _, _, partial in driver_data["duckdb"])
    assert sum(partial for _, _, partial in driver_data["spark"]) >= 2
    for consumers, with_rows, partial in driver_data["spark"]:
        assert partial == (consumers > SAMPLED)
        assert with_rows < consumers or not partial


def test_the_spark_night_scored_its_lists_on_spark(nights) -> None:
    """The list files above are the same bytes although the Spark night's scoring pass ran as Spark
    tasks (models.recommenders.spark_scoring) and the DuckDB night's on the driver."""
    stage = "recommenders: scoring pass on Spark"
    for kind, (_, work) in nights.items():
        tasks = yaml.safe_load((work / RunFile.RUN_TIMINGS).read_text())["tasks"]
        assert (stage in tasks) == (kind == "spark"), kind
