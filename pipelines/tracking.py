"""MLflow for the nightly run: one tracked run per night, the model registry and the champion gate.

Everything lives under the work directory by default, with no server: the tracking and
registry store is ``sqlite:///<work_dir>/mlflow.db`` and artifacts go to
``<work_dir>/mlartifacts``. Each nightly run records the config, a data manifest (rows
read / kept / quarantined per table and the SHA-256 of every input file), the evaluator's
metrics, segment and tier counts, and the run report.

The champion gate: a newly registered recommender version takes the alias ``champion``
only if its validation NDCG beats the current champion's by more than
``tracking.champion_margin`` (the first version always does); otherwise it takes the alias
``challenger`` and the published lists come from the champion. Each version carries its
validation NDCG as the tag ``validation_ndcg``. The gate decides (``judge``) before
publishing but moves the alias (``apply_gate``) only after the export is published, so
``models:/<name>@champion`` and ``exports/current`` never disagree after a failed publish.

Every run is tagged with its work directory (``siyu.work_dir``); a run that a ``kill -9``
left RUNNING is marked FAILED by the next run in that folder (``fail_abandoned_runs``).

``mlflow`` is imported inside the functions so that reading the config stays fast.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from artifact.loader import sha256_of
from features.errors import SiyuError
from features.vocabulary import ValidationKey

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from features.asof import AsOf

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
NDCG_TAG = "validation_ndcg"
WORK_DIR_TAG = "siyu.work_dir"
ENDED_TAG = "siyu.ended"
# Key of the backend artifact directory in the pyfunc model's ``artifacts`` mapping.
ARTIFACT_KEY = "recommender"
_PARAMS_PER_BATCH = 100
_METRIC_NAME = re.compile(r"[^0-9A-Za-z_\-. /]")


class TrackingConfig(BaseModel):
    """Where MLflow keeps runs and models, and the rule that crowns a new champion."""

    model_config = ConfigDict(extra="forbid")

    uri: str | None = None
    artifacts_dir: Path | None = None
    experiment: str = "siyu-nightly"
    model_name: str = "siyu-recommender"
    champion_margin: float = Field(0.001, ge=0.0, le=1.0)

    def tracking_uri(self, work_dir: Path) -> str:
        """The configured URI, or the SQLite store ``<work_dir>/mlflow.db``."""
        return self.uri or f"sqlite:///{(work_dir / 'mlflow.db').absolute().as_posix()}"

    def artifact_location(self, work_dir: Path) -> str:
        """Where a newly created experiment stores its artifacts (default ``<work_dir>/mlartifacts``)."""
        return (self.artifacts_dir or work_dir / "mlartifacts").absolute().as_uri()


@contextmanager
def using_tracking(config: TrackingConfig, work_dir: Path) -> Iterator[MlflowClient]:
    """Point MLflow's fluent API at the configured store for the block; yield a client for it."""
    import mlflow

    work_dir.mkdir(parents=True, exist_ok=True)
    uri = config.tracking_uri(work_dir)
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    finally:
        mlflow.set_tracking_uri(previous)


def start_nightly_run(
    client: MlflowClient, config: TrackingConfig, work_dir: Path, as_of: date | AsOf, tags: Mapping[str, str]
) -> str:
    """Create this night's run in the configured experiment (created when absent); return its id."""
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is None:
        experiment_id = client.create_experiment(
            config.experiment, artifact_location=config.artifact_location(work_dir)
        )
    else:
        experiment_id = experiment.experiment_id
    tags = {"as_of": str(as_of), WORK_DIR_TAG: str(work_dir.absolute()).replace("'", ""), **tags}
    run = client.create_run(experiment_id, run_name=f"nightly-{as_of}", tags=tags)
    logger.info("mlflow run %s in experiment %r", run.info.run_id, config.experiment)
    return run.info.run_id


def finish_run(client: MlflowClient, run_id: str, succeeded: bool) -> None:
    """Close the run as FINISHED or FAILED."""
    client.set_terminated(run_id, status="FINISHED" if succeeded else "FAILED")


def fail_abandoned_runs(client: MlflowClient, config: TrackingConfig, work_dir: Path) -> list[str]:
    """Mark FAILED the runs of ``work_dir`` still RUNNING: runs killed (``kill -9``, power loss)
    before they could close themselves. Call it only while holding the work directory's lock."""
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is None:
        return []
    folder = str(work_dir.absolute()).replace("'", "")
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.{WORK_DIR_TAG} = '{folder}'",
    )
    for run in runs:
        client.set_tag(run.info.run_id, ENDED_TAG, "abandoned: still RUNNING when the next run started")
        client.set_terminated(run.info.run_id, status="FAILED")
        logger.warning("mlflow run %s was left RUNNING by a killed run: marked FAILED", run.info.run_id)
    return [run.info.run_id for run in runs]


def log_config(client: MlflowClient, run_id: str, settings: Mapping[str, Any]) -> None:
    """The whole config as ``config.json``, and its leaves as params (``quality.window_days``, ...)."""
    from mlflow.entities import Param

    client.log_dict(run_id, dict(settings), "config.json")
    params = [Param(key, _param_value(value)) for key, value in sorted(flatten(settings).items())]
    for start in range(0, len(params), _PARAMS_PER_BATCH):
        client.log_batch(run_id, params=params[start : start + _PARAMS_PER_BATCH])


def data_manifest(validation_report: Path) -> dict[str, Any]:
    """Per input table: its file, SHA-256, rows read, kept and quarantined (validation.json's keys)."""
    report = json.loads(validation_report.read_text(encoding="utf-8"))
    tables = []
    for table in report[ValidationKey.TABLES]:
        source = Path(table[ValidationKey.SOURCE])
        tables.append(
            {
                ValidationKey.TABLE: table[ValidationKey.TABLE],
                "file": source.name,
                "sha256": sha256_of(source) if source.is_file() else None,
                ValidationKey.ROWS_READ: table[ValidationKey.ROWS_READ],
                ValidationKey.ROWS_KEPT: table[ValidationKey.ROWS_KEPT],
                ValidationKey.ROWS_QUARANTINED: table[ValidationKey.ROWS_QUARANTINED],
                ValidationKey.REASONS: table[ValidationKey.REASONS],
            }
        )
    return {ValidationKey.AS_OF: report[ValidationKey.AS_OF], ValidationKey.TABLES: tables}


def log_data_manifest(client: MlflowClient, run_id: str, manifest: Mapping[str, Any]) -> None:
    """The manifest as ``data_manifest.json``, row counts as metrics, file hashes as tags."""
    client.log_dict(run_id, dict(manifest), "data_manifest.json")
    metrics: dict[str, float] = {}
    for table in manifest[ValidationKey.TABLES]:
        name = table[ValidationKey.TABLE]
        for count in (ValidationKey.ROWS_READ, ValidationKey.ROWS_KEPT, ValidationKey.ROWS_QUARANTINED):
            metrics[f"data.{name}.{count}"] = table[count]
        if table["sha256"]:
            client.set_tag(run_id, f"data.{name}.sha256", table["sha256"])
    log_metrics(client, run_id, metrics)


def log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, float], prefix: str = "") -> None:
    """Log finite numbers as metrics, names made MLflow-safe (``segment.Champions``, ...)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    rows = [
        Metric(_METRIC_NAME.sub("_", f"{prefix}{name}"), float(value), now, 0)
        for name, value in sorted(metrics.items())
        if value is not None and math.isfinite(float(value))
    ]
    for start in range(0, len(rows), _PARAMS_PER_BATCH):
        client.log_batch(run_id, metrics=rows[start : start + _PARAMS_PER_BATCH])


def log_file(client: MlflowClient, run_id: str, path: Path, folder: str | None = None) -> None:
    """Attach a file (the report, the export manifest) to the run."""
    client.log_artifact(run_id, str(path), folder)


@dataclass(frozen=True)
class GateDecision:
    """What the champion gate did with a new model version."""

    version: str
    alias: str
    validation_ndcg: float
    champion_version: str
    champion_ndcg: float
    previous_champion: str | None

    @property
    def promoted(self) -> bool:
        return self.alias == CHAMPION


def register_version(
    client: MlflowClient, model_name: str, model_uri: str, run_id: str, validation_ndcg: float
) -> ModelVersion:
    """Register ``model_uri`` as a new version of ``model_name``, tagged with its validation NDCG."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
    except MlflowException:
        client.create_registered_model(model_name, description="siyu production recommender (nightly)")
    version = client.create_model_version(
        model_name, source=model_uri, run_id=run_id, tags={NDCG_TAG: repr(float(validation_ndcg))}
    )
    logger.info(
        "registered %s version %s (validation NDCG %.4f)", model_name, version.version, validation_ndcg
    )
    return version


def judge(
    client: MlflowClient,
    model_name: str,
    version: str,
    margin: float,
    remeasured: Callable[[str], float | None] | None = None,
) -> GateDecision:
    """What the champion gate decides for ``version``; moves no alias (``apply_gate`` does, after publishing).

    ``version`` becomes champion if its NDCG beats the champion's by more than ``margin``
    (the first version always does); otherwise it becomes the challenger and the champion stays.
    The champion's NDCG is ``remeasured(champion_version)`` (measured on ``version``'s sample)
    when that gives one, else the one it was registered with.
    """
    new_ndcg = version_ndcg(client, model_name, version)
    champion = alias_version(client, model_name, CHAMPION)
    champion_ndcg = math.nan
    if champion is not None:
        again = remeasured(champion) if remeasured is not None else None
        champion_ndcg = again if again is not None else version_ndcg(client, model_name, champion)
    if champion is None or new_ndcg > champion_ndcg + margin:
        decision = GateDecision(version, CHAMPION, new_ndcg, version, new_ndcg, champion)
    else:
        decision = GateDecision(version, CHALLENGER, new_ndcg, champion, champion_ndcg, champion)
    logger.info(
        "champion gate: version %s (NDCG %.4f) is %s; champion is version %s (NDCG %.4f, margin %.4f)",
        version,
        new_ndcg,
        decision.alias,
        decision.champion_version,
        decision.champion_ndcg,
        margin,
    )
    return decision


def apply_gate(client: MlflowClient, model_name: str, decision: GateDecision) -> None:
    """Give the new version the alias the gate chose (``champion`` or ``challenger``)."""
    client.set_registered_model_alias(model_name, decision.alias, decision.version)
    logger.info("model %s version %s now holds the alias %s", model_name, decision.version, decision.alias)


def alias_version(client: MlflowClient, model_name: str, alias: str) -> str | None:
    """The version holding ``alias``, or None when no version does."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None


def version_ndcg(client: MlflowClient, model_name: str, version: str) -> float:
    """The validation NDCG a version was registered with."""
    tags = client.get_model_version(model_name, version).tags
    if NDCG_TAG not in tags:
        raise SiyuError(
            f"model {model_name} version {version}: no '{NDCG_TAG}' tag\n"
            f"  fix: set the tag in the MLflow UI, or move '{CHAMPION}' to a version that siyu registered"
        )
    return float(tags[NDCG_TAG])


def download_model_artifact(client: MlflowClient, model_name: str, version: str, destination: Path) -> Path:
    """Download a registered version's backend artifact directory; return where it landed."""
    import mlflow

    model_version = client.get_model_version(model_name, version)
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{model_name}/{model_version.version}", dst_path=str(destination)
        )
    )
    mlmodel = yaml.safe_load((local / "MLmodel").read_text(encoding="utf-8"))
    artifacts = mlmodel.get("flavors", {}).get("python_function", {}).get("artifacts", {})
    if ARTIFACT_KEY not in artifacts:
        raise SiyuError(
            f"model {model_name} version {version}: no '{ARTIFACT_KEY}' artifact in its MLmodel\n"
            "  fix: register models with pipelines' model logger, which stores the backend artifact"
        )
    return local / artifacts[ARTIFACT_KEY]["path"]


def flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys: ``{"quality": {"floor": 0.01}}`` -> ``{"quality.floor": 0.01}``."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _param_value(value: Any) -> str:
    text = json.dumps(value, default=str) if isinstance(value, list | dict) else str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def close_run(config: TrackingConfig, work_dir: Path, run_id: str, status: str) -> None:
    """Close ``run_id`` with ``status`` (FINISHED, FAILED or KILLED) in the configured store."""
    with using_tracking(config, work_dir) as client:
        client.set_terminated(run_id, status=status)
