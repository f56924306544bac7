"""MLflow for the nightly run: one tracked run per night, a nested run per model, the registry, the gate.

Everything lives under the work directory by default, with no server: the tracking and
registry store is ``sqlite:///<work_dir>/mlflow.db`` and artifacts go to
``<work_dir>/mlartifacts``. The experiment is tagged as custom model development
(``mlflow.experimentKind``), so the UI opens on its runs, not on the GenAI overview.

Each nightly run carries the tags MLflow's own ``start_run`` would set (source name and
type, user, the git commit of siyu's code when it runs from a checkout) and records the
config, a data manifest (rows read / kept / quarantined per table and the SHA-256 of every
input file), one input dataset per contract table (``log_input``; its digest is the file's
SHA-256 that validation already computed), segment and tier counts, and the run report.
Every model the nightly evaluated gets a nested run (its config as params, its metrics with
their 95% intervals); the production model is logged (pyfunc) in its own nested run, so the
logged model carries its evaluation metrics, and registered with ``model_id``.

Metric keys are grouped with ``/`` (the UI makes a chart section of the first part:
``data/orders/rows_read``, ``segments/size/Champions``, ``eval/ranker/ndcg_at_10``); a
part that comes from data (a segment or tier name) is made safe with ``key_part``, so a
``/`` in a name never opens a section of its own.

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

import getpass
import hashlib
import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from artifact.loader import sha256_of
from features.catalog import Folder
from features.errors import SiyuError
from features.vocabulary import MetricCol, ValidationKey
from pipelines import store_templates

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Dataset, DatasetInput, Param
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
# Where a registered version's run keeps the stored production model that scored its lists: a
# night whose new model loses the gate scores tonight's lists with the champion's (pipelines.champion).
STORED_MODEL_PATH = "production_model"
_PARAMS_PER_BATCH = 100
# The experiment tag the UI reads to open an experiment on its runs rather than the GenAI overview.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
CUSTOM_MODEL_DEVELOPMENT = "custom_model_development"
# What the runs' "Source" column shows.
SOURCE_NAME = "siyu nightly"
# Input datasets: their context, and MLflow's longest digest (the SHA-256 is cut to it).
TRAINING_CONTEXT = "training"
EVALUATION_CONTEXT = "evaluation"
DIGEST_LENGTH = 36
# Characters MLflow allows in a metric key besides "/" ("\w" is Unicode: Chinese names pass);
# ":" is left out because Windows refuses it. Anything else in a key part becomes "_".
_KEY_CHARACTERS = re.compile(r"[^\w.\- ]")
_MAX_KEY_LENGTH = 250


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
    keep = _from_template(uri)  # before anything of MLflow's opens the store
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        if keep is not None:
            client.search_experiments(max_results=1)  # the store is made (migrated) on first use
            store_templates.save(*keep, drop=_NOT_IN_TEMPLATE)
        yield client
    finally:
        mlflow.set_tracking_uri(previous)


# A template must not carry the Default experiment: MLflow makes it on first use, with the
# current folder as its artifact location (pipelines.store_templates).
_NOT_IN_TEMPLATE = ("DELETE FROM experiments WHERE experiment_id = 0",)


def _from_template(uri: str) -> tuple[Path, Path] | None:
    """A new SQLite store starts as a copy of this installation's migrated empty store
    (``pipelines.store_templates``); when there is none yet, the (database, template) to keep
    once MLflow has made the store, else None."""
    import mlflow

    database = store_templates.sqlite_file(uri)
    if database is None or database.exists():
        return None
    migrations = Path(mlflow.__file__).parent / "store" / "db_migrations" / "versions"
    template = store_templates.template_path("mlflow", mlflow.__version__, migrations)
    if template is None or store_templates.seed(database, template):
        return None
    return database, template


def start_nightly_run(
    client: MlflowClient, config: TrackingConfig, work_dir: Path, as_of: date | AsOf, tags: Mapping[str, str]
) -> str:
    """Create this night's run in the configured experiment (created when absent); return its id.

    The run carries the source, user and git tags of ``run_context_tags``, its as-of date and
    its work directory; ``tags`` add to them (the data directory, the Prefect flow run).
    """
    experiment_id = ensure_experiment(client, config, work_dir)
    tags = {
        **run_context_tags(),
        "as_of": str(as_of),
        WORK_DIR_TAG: _work_dir_tag(work_dir),
        **tags,
    }
    run = client.create_run(experiment_id, run_name=f"nightly-{as_of}", tags=tags)
    logger.info("mlflow run %s in experiment %r", run.info.run_id, config.experiment)
    return run.info.run_id


def ensure_experiment(client: MlflowClient, config: TrackingConfig, work_dir: Path) -> str:
    """The configured experiment's id, created when absent, tagged as custom model development.

    An experiment created before siyu tagged its kind gets the tag; one whose kind a user
    chose in the UI keeps it.
    """
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is None:
        return client.create_experiment(
            config.experiment,
            artifact_location=config.artifact_location(work_dir),
            tags={
                EXPERIMENT_KIND_TAG: CUSTOM_MODEL_DEVELOPMENT,
                "mlflow.note.content": "siyu nightly runs: one run per night, a nested run per "
                "evaluated recommender; the production model is registered as "
                f"{config.model_name!r}.",
            },
        )
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, CUSTOM_MODEL_DEVELOPMENT)
    return experiment.experiment_id


def run_context_tags(source_name: str = SOURCE_NAME) -> dict[str, str]:
    """The tags MLflow's fluent ``start_run`` would set: source name and type, user, and the
    git commit, branch and repository of siyu's code when it runs from a git checkout.

    The source type is ``JOB`` for a run of a Prefect deployment (``siyu serve``), else ``LOCAL``.
    """
    from mlflow.utils import mlflow_tags

    tags = {
        mlflow_tags.MLFLOW_SOURCE_NAME: source_name,
        mlflow_tags.MLFLOW_SOURCE_TYPE: "JOB" if _in_deployment() else "LOCAL",
        mlflow_tags.MLFLOW_USER: _user(),
    }
    return {**tags, **git_tags(Path(__file__).resolve().parent)}


def git_tags(path: Path) -> dict[str, str]:
    """``mlflow.source.git.*`` of the checkout holding ``path`` (commit, branch, repository URL,
    dirty); empty outside a git checkout or without git."""
    from mlflow.utils import mlflow_tags
    from mlflow.utils.git_utils import get_git_branch, get_git_commit, get_git_repo_url

    commit = get_git_commit(str(path))
    if commit is None:
        return {}
    found = {
        mlflow_tags.MLFLOW_GIT_COMMIT: commit,
        mlflow_tags.MLFLOW_GIT_BRANCH: get_git_branch(str(path)),
        mlflow_tags.MLFLOW_GIT_REPO_URL: get_git_repo_url(str(path)),
        mlflow_tags.MLFLOW_GIT_DIRTY: _git_dirty(path),
    }
    return {key: value for key, value in found.items() if value is not None}


def _git_dirty(path: Path) -> str | None:
    """ "true" when tracked files differ from the commit, "false" when not, None when git cannot tell."""
    try:
        from git import Repo

        return str(Repo(path, search_parent_directories=True).is_dirty(untracked_files=False)).lower()
    except Exception:  # no git, a broken checkout: the tag is only left out
        return None


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without the user in /etc/passwd)
        return "unknown"


def _in_deployment() -> bool:
    """Whether this process runs a flow of a Prefect deployment (``siyu serve``)."""
    try:
        from prefect.runtime import deployment

        return deployment.id is not None
    except Exception:  # outside Prefect, or a Prefect without runtime info
        return False


def _work_dir_tag(work_dir: Path) -> str:
    return str(work_dir.absolute()).replace("'", "")


def finish_run(client: MlflowClient, run_id: str, succeeded: bool) -> None:
    """Close the run as FINISHED or FAILED."""
    client.set_terminated(run_id, status="FINISHED" if succeeded else "FAILED")


def fail_abandoned_runs(client: MlflowClient, config: TrackingConfig, work_dir: Path) -> list[str]:
    """Mark FAILED the runs of ``work_dir`` still RUNNING: runs killed (``kill -9``, power loss)
    before they could close themselves. Call it only while holding the work directory's lock."""
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is None:
        return []
    folder = _work_dir_tag(work_dir)
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
    """Per input table: its file, SHA-256, columns, rows read, kept and quarantined.

    The SHA-256 comes from validation's cache (``input_digests``), which hashed every input
    file already; a table of several files gets the SHA-256 of its files' sorted hashes
    (one per line) and the list under ``files_sha256``. ``columns``: the clean table's
    column types (from its Parquet footer).
    """
    from features.store import clean_path

    report = json.loads(validation_report.read_text(encoding="utf-8"))
    validated = validation_report.parent
    tables = []
    for table in report[ValidationKey.TABLES]:
        name = table[ValidationKey.TABLE]
        source = Path(table[ValidationKey.SOURCE])
        files = input_digests(validated, name, source)
        tables.append(
            {
                ValidationKey.TABLE: name,
                "file": source.name,
                "path": str(source.absolute()),
                "sha256": _combined_digest(files),
                "files_sha256": files,
                "columns": parquet_columns(clean_path(validated, name)),
                ValidationKey.ROWS_READ: table[ValidationKey.ROWS_READ],
                ValidationKey.ROWS_KEPT: table[ValidationKey.ROWS_KEPT],
                ValidationKey.ROWS_QUARANTINED: table[ValidationKey.ROWS_QUARANTINED],
                ValidationKey.REASONS: table[ValidationKey.REASONS],
            }
        )
    return {ValidationKey.AS_OF: report[ValidationKey.AS_OF], ValidationKey.TABLES: tables}


def input_digests(validated: Path, table: str, source: Path) -> list[str]:
    """The SHA-256 of each input file of ``table``, sorted: read from the names of validation's
    cache folders (``<sha256>-<settings>``, only the files this validation used are kept);
    hashed here only when the cache has none (a file validated without a cache)."""
    cache = validated / Folder.VALIDATION_CACHE / table
    keys = (
        sorted({entry.name.split("-")[0] for entry in cache.iterdir() if entry.is_dir()})
        if cache.is_dir()
        else []
    )
    if keys:
        return keys
    return [sha256_of(source)] if source.is_file() else []


def _combined_digest(files: list[str]) -> str | None:
    if len(files) <= 1:
        return files[0] if files else None
    return hashlib.sha256("\n".join(files).encode()).hexdigest()


def parquet_columns(path: Path) -> dict[str, str]:
    """Column -> Arrow type of a Parquet file or folder of parts, from a footer (no rows read);
    {} when absent."""
    import pyarrow.dataset as ds

    if not path.exists():
        return {}
    return {field.name: str(field.type) for field in ds.dataset(path, format="parquet").schema}


def log_data_manifest(client: MlflowClient, run_id: str, manifest: Mapping[str, Any]) -> None:
    """The manifest as ``data_manifest.json``, row counts as metrics (``data/<table>/rows_read``),
    file hashes as tags, and one input dataset per table (``input_datasets``)."""
    client.log_dict(run_id, dict(manifest), "data_manifest.json")
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    for table in manifest[ValidationKey.TABLES]:
        name = table[ValidationKey.TABLE]
        for count in (ValidationKey.ROWS_READ, ValidationKey.ROWS_KEPT, ValidationKey.ROWS_QUARANTINED):
            metrics[metric_key("data", name, count)] = table[count]
        if table["sha256"]:
            tags[f"data.{name}.sha256"] = table["sha256"]
    set_tags(client, run_id, tags)
    log_metrics(client, run_id, metrics)
    client.log_inputs(run_id, datasets=input_datasets(manifest, TRAINING_CONTEXT))


def input_datasets(manifest: Mapping[str, Any], context: str) -> list[DatasetInput]:
    """One MLflow input dataset per table of a data manifest, used in ``context``.

    Name: the table; digest: the file's SHA-256 cut to MLflow's 36 characters (the whole
    hash is in the profile); source: the input file; schema: the clean table's columns;
    profile: the whole SHA-256 (of each file) and the rows read.
    """
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    return [
        DatasetInput(_dataset(table), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])
        for table in manifest[ValidationKey.TABLES]
        if table["sha256"]
    ]


def _dataset(table: Mapping[str, Any]) -> Dataset:
    from mlflow.entities import Dataset
    from mlflow.types.schema import ColSpec, Schema

    columns = [ColSpec(_mlflow_type(kind), name, required=False) for name, kind in table["columns"].items()]
    # Only what the file itself decides: MLflow keeps one dataset per (name, digest) for every
    # run that reads the file, while rows kept and quarantined depend on the night (its metrics).
    profile = {
        "sha256": table["sha256"],
        "files_sha256": table["files_sha256"],
        ValidationKey.ROWS_READ: table[ValidationKey.ROWS_READ],
    }
    return Dataset(
        name=table[ValidationKey.TABLE],
        digest=table["sha256"][:DIGEST_LENGTH],
        source_type="local",
        source=json.dumps({"uri": table["path"]}),
        schema=json.dumps({"mlflow_colspec": Schema(columns).to_dict()}) if columns else None,
        profile=json.dumps(profile),
    )


def _mlflow_type(arrow_type: str) -> str:
    """An MLflow column type for an Arrow type name (``large_string`` -> ``string``, ...)."""
    if arrow_type.startswith(("int", "uint")):
        return "long"
    if arrow_type in ("double", "float", "halffloat") or arrow_type.startswith("decimal"):
        return "double"
    if arrow_type in ("bool", "boolean"):
        return "boolean"
    if arrow_type.startswith(("timestamp", "date")):
        return "datetime"
    if arrow_type in ("binary", "large_binary"):
        return "binary"
    return "string"


def key_part(name: object) -> str:
    """One part of a metric key made safe: a character MLflow refuses, or a "/" (which would
    open a chart section of its own), becomes "_"; spaces too. Unicode letters stay, so a
    Chinese segment name keeps its name: ``Hibernating/Lost`` -> ``Hibernating_Lost``."""
    text = _KEY_CHARACTERS.sub("_", str(name).strip()).replace(" ", "_")
    return "_" if text in ("", ".", "..") else text


def metric_key(*parts: object) -> str:
    """A grouped metric key: the parts made safe (``key_part``), joined with "/"
    (``metric_key("segments", "size", "Hibernating/Lost")`` -> ``segments/size/Hibernating_Lost``)."""
    return "/".join(key_part(part) for part in parts)


def grouped(metrics: Mapping[str, float], *group: str) -> dict[str, float]:
    """``metrics`` keyed under ``group``: each name becomes the last part of a ``metric_key``;
    names that would share a key get a short hash of the name each (``unique_keys``)."""
    keys = unique_keys({name: metric_key(*group, name) for name in metrics})
    return {keys[name]: value for name, value in metrics.items()}


def unique_keys(keys: Mapping[str, str]) -> dict[str, str]:
    """name -> key, where keys that several names share get ``_<8 hex of the name's SHA-256>``."""
    clashing = {key for key, count in Counter(keys.values()).items() if count > 1}
    return {name: _disambiguated(key, name) if key in clashing else key for name, key in keys.items()}


def log_metrics(
    client: MlflowClient,
    run_id: str,
    metrics: Mapping[str, float],
    prefix: str = "",
    model_id: str | None = None,
    params: Sequence[Param] = (),
) -> None:
    """Log the finite numbers of ``metrics`` (``model_id``: also on that logged model), and
    ``params`` with them in the same batches.

    Keys are ``prefix`` + name, with "/" kept as the group separator and any other character
    MLflow refuses made "_" (build keys from data with ``metric_key``). Two names that would
    end as the same key get a short hash of the name each, so none overwrites another.
    """
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    finite = {name: value for name, value in metrics.items() if _finite(value)}
    keys = unique_keys({name: _safe_key(f"{prefix}{name}") for name in finite})
    rows = [
        Metric(keys[name], float(value), now, 0, model_id=model_id) for name, value in sorted(finite.items())
    ]
    for start in range(0, max(len(rows), len(params)), _PARAMS_PER_BATCH):
        end = start + _PARAMS_PER_BATCH
        client.log_batch(run_id, metrics=rows[start:end], params=list(params[start:end]))


def _finite(value: object) -> bool:
    return value is not None and math.isfinite(float(value))  # type: ignore[arg-type]


def _safe_key(name: str) -> str:
    key = "/".join(key_part(part) for part in name.split("/") if part.strip())
    if len(key) <= _MAX_KEY_LENGTH:
        return key
    return key[: _MAX_KEY_LENGTH - 9] + "_" + hashlib.sha256(key.encode()).hexdigest()[:8]


def _disambiguated(key: str, name: str) -> str:
    return f"{key[: _MAX_KEY_LENGTH - 9]}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def set_tags(client: MlflowClient, run_id: str, tags: Mapping[str, str]) -> None:
    """Set ``tags`` on the run in one batch (one store transaction, where ``set_tag`` makes one each)."""
    from mlflow.entities import RunTag

    rows = [RunTag(key, str(value)) for key, value in sorted(tags.items())]
    for start in range(0, len(rows), _PARAMS_PER_BATCH):
        client.log_batch(run_id, tags=rows[start : start + _PARAMS_PER_BATCH])


def log_file(client: MlflowClient, run_id: str, path: Path, folder: str | None = None) -> None:
    """Attach a file (the report, the export manifest) to the run."""
    client.log_artifact(run_id, str(path), folder)


# --- one nested run per evaluated model --------------------------------------------------------

# Parts of a model's metric keys: the numbers reported at k, and where the timings go.
PRODUCTION_TAG = "siyu.production"
TIMING_GROUP = "time"
SUMMARY_GROUP = "eval"  # the parent run's section of every model's headline numbers
SUMMARY_METRICS: tuple[str, ...] = (MetricCol.NDCG, MetricCol.RECALL)
_FOLD_PREFIX = re.compile(r"(fold\d+)\.")


def evaluation_by_model(metrics: Mapping[str, float]) -> dict[str, dict[str, dict[str, float]]]:
    """model -> protocol -> metric -> value, from the evaluator's ``<protocol>.<model>.<metric>``
    names (``models.evaluation.metrics_by_name``); a rolling fold's ``fold<i>.<protocol>.…``
    (``fold_metrics_by_name``) goes under the protocol ``fold<i>/<protocol>``; other names are
    left out."""
    from models.evaluation import EVALUATION_COLUMNS, Protocol

    numbers = sorted(set(EVALUATION_COLUMNS) - {MetricCol.MODEL, MetricCol.PROTOCOL}, key=len, reverse=True)
    found: dict[str, dict[str, dict[str, float]]] = {}
    for full_name, value in metrics.items():
        fold = _FOLD_PREFIX.match(full_name)
        name = full_name[fold.end() :] if fold else full_name
        protocol = next((p for p in Protocol.ALL if name.startswith(f"{p}.")), None)
        number = next((n for n in numbers if name.endswith(f".{n}")), None)
        if protocol is None or number is None or len(name) <= len(protocol) + len(number) + 2:
            continue
        model = name[len(protocol) + 1 : -len(number) - 1]
        group = f"{fold.group(1)}/{protocol}" if fold else protocol
        found.setdefault(model, {}).setdefault(group, {})[number] = value
    return found


def model_run_metrics(by_protocol: Mapping[str, Mapping[str, float]], k: int | None) -> dict[str, float]:
    """A model's evaluation as grouped keys: ``all_items/ndcg_at_10``, ``all_items/ndcg_at_10_ci_low``,
    ``all_items/consumers``, ``time/fit_seconds``, ``time/all_items/recommend_seconds``."""
    keys: dict[str, float] = {}
    for protocol, numbers in by_protocol.items():
        for number, value in numbers.items():
            parts = protocol.split("/")  # fold<i>/<protocol> for a rolling fold's numbers
            if number == MetricCol.FIT_SECONDS:
                keys[metric_key(TIMING_GROUP, *parts[:-1], number)] = value
            elif number in MetricCol.TIMINGS:
                keys[metric_key(TIMING_GROUP, *parts, number)] = value
            else:
                keys[metric_key(*parts, at_k(number, k))] = value
    return keys


def at_k(number: str, k: int | None) -> str:
    """``ndcg`` -> ``ndcg_at_10``, ``ndcg_ci_low`` -> ``ndcg_at_10_ci_low``; counts stay as they are."""
    if k is None or number == MetricCol.CONSUMERS:
        return number
    for metric, *bounds in MetricCol.INTERVALS:
        if number in bounds:
            return f"{metric}_at_{k}{number[len(metric) :]}"
    return f"{number}_at_{k}"


def log_model_runs(
    client: MlflowClient, parent_run_id: str, metrics: Mapping[str, float], production: str | None
) -> dict[str, str]:
    """One nested run per evaluated model under the nightly run; return model -> run id.

    Each run (named ``<model>-<as_of>``) has the model's config as params (the parent's
    ``recommend.models.<model>.*`` params), its metrics (``model_run_metrics``), the parent's
    input datasets in the context ``evaluation``, the parent's source tags and the tag
    ``siyu.production``; it ends FINISHED. The parent gets every model's headline numbers
    as ``eval/<model>/ndcg_at_<k>`` (new-items protocol: ``eval_new_items/...``). A model run
    that an earlier try of the same registration finished is reused, not made twice.
    """
    from mlflow.entities import DatasetInput, InputTag, Param
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT, MLFLOW_PARENT_RUN_ID

    parent = client.get_run(parent_run_id)
    params, tags = parent.data.params, parent.data.tags
    k = int(params["recommend.evaluation.k"]) if "recommend.evaluation.k" in params else None
    inherited = {key: value for key, value in tags.items() if key.startswith("mlflow.source.")}
    inherited.update({key: tags[key] for key in ("mlflow.user", "as_of", WORK_DIR_TAG) if key in tags})
    datasets = [
        DatasetInput(found.dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, EVALUATION_CONTEXT)])
        for found in (parent.inputs.dataset_inputs if parent.inputs else [])
    ]
    done = {  # a retried registration reuses the model runs it finished before
        run.info.run_name: run.info.run_id
        for run in client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.{MLFLOW_PARENT_RUN_ID} = '{parent_run_id}' "
            "and attributes.status = 'FINISHED'",
        )
    }
    runs: dict[str, str] = {}
    summary: dict[str, float] = {}
    for model, by_protocol in evaluation_by_model(metrics).items():
        name = f"{model}-{tags.get('as_of', parent.info.run_name)}"
        summary.update(_summary(model, by_protocol, k))
        if name in done:
            runs[model] = done[name]
            continue
        run = client.create_run(
            parent.info.experiment_id,
            run_name=name,
            tags={
                **inherited,
                MLFLOW_PARENT_RUN_ID: parent_run_id,
                PRODUCTION_TAG: str(model == production).lower(),
            },
        )
        runs[model] = run.info.run_id
        prefix = f"recommend.models.{model}."
        own = [
            Param(key[len(prefix) :], value)
            for key, value in sorted(params.items())
            if key.startswith(prefix)
        ]
        log_metrics(client, run.info.run_id, model_run_metrics(by_protocol, k), params=own)
        if datasets:
            client.log_inputs(run.info.run_id, datasets=datasets)
        client.set_terminated(run.info.run_id, status="FINISHED")
    log_metrics(client, parent_run_id, summary)
    logger.info("mlflow: %d nested model runs under %s", len(runs), parent_run_id)
    return runs


def _summary(model: str, by_protocol: Mapping[str, Mapping[str, float]], k: int | None) -> dict[str, float]:
    from models.evaluation import Protocol

    keys: dict[str, float] = {}
    for protocol, numbers in by_protocol.items():
        if protocol not in Protocol.ALL:  # a rolling fold's numbers stay in the model's own run
            continue
        group = SUMMARY_GROUP if protocol == Protocol.ALL_ITEMS else f"{SUMMARY_GROUP}_{protocol}"
        for metric in SUMMARY_METRICS:
            if metric in numbers:
                keys[metric_key(group, model, at_k(metric, k))] = numbers[metric]
    return keys


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
    client: MlflowClient,
    model_name: str,
    model_uri: str,
    run_id: str,
    validation_ndcg: float,
    *,
    model_id: str | None = None,
    description: str | None = None,
    tags: Mapping[str, str | None] | None = None,
) -> ModelVersion:
    """Register ``model_uri`` as a new version of ``model_name``, tagged with its validation NDCG.

    ``model_id``: the logged model the version comes from (``model_uri`` is then
    ``models:/<model_id>``); the logged model gets the version in its tag
    ``mlflow.modelVersions``, as ``mlflow.register_model`` does, so its page shows it
    registered. ``description`` and ``tags`` (None values left out) go on the version.
    """
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
    except MlflowException:
        client.create_registered_model(model_name, description="siyu production recommender (nightly)")
    version_tags = {key: value for key, value in (tags or {}).items() if value is not None}
    version = client.create_model_version(
        model_name,
        source=model_uri,
        run_id=run_id,
        tags={**version_tags, NDCG_TAG: repr(float(validation_ndcg))},
        description=description,
        model_id=model_id,
    )
    if model_id is not None:
        _link_logged_model(client, model_id, model_name, version.version)
    logger.info(
        "registered %s version %s (validation NDCG %.4f)", model_name, version.version, validation_ndcg
    )
    return version


def _link_logged_model(client: MlflowClient, model_id: str, model_name: str, version: int | str) -> None:
    """Name the version on its logged model (the tag ``mlflow.modelVersions``, as
    ``mlflow.register_model`` sets it): the model's page then shows it registered."""
    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    existing = client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS)
    versions = [*(json.loads(existing) if existing else []), {"name": model_name, "version": version}]
    client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(versions)})


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


def download_stored_model(
    client: MlflowClient, model_name: str, version: str, destination: Path, only: str | None = None
) -> Path | None:
    """A registered version's stored production model (``models.recommenders.store``: the model
    that scored its lists, logged beside it in its run as ``STORED_MODEL_PATH``), downloaded to
    ``destination`` (with ``only``: that one file of it, e.g. ``store.STORED_META``); returns the
    stored model's folder, or None for a version registered without one (before siyu logged it)."""
    import mlflow

    run_id = client.get_model_version(model_name, version).run_id
    if not run_id or not any(item.path == STORED_MODEL_PATH for item in client.list_artifacts(run_id)):
        return None
    path = Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path=f"{STORED_MODEL_PATH}/{only}" if only else STORED_MODEL_PATH,
            dst_path=str(destination),
        )
    )
    return path.parent if only else path


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
