"""Champion selection: register the night's model, decide what gets published, move the alias after.

The transaction, in the order the flow runs it:

1. ``register_recommender`` gives every evaluated model a nested run under the night's
   MLflow run, logs the production model in its nested run, registers it as a new version
   (no alias yet; linked to the logged model, with a description, the as-of date, its name in
   ``recommend.models`` and the evaluation sample its NDCG comes from) and lets the gate
   *judge* it (``tracking.judge``).
2. ``choose_exports`` picks the files to publish: this run's outputs, with the champion's
   artifact and lists instead of the new ones when the new version loses the gate.
3. The flow publishes (``pipelines.publish``).
4. ``promote`` gives the new version its alias (``champion`` or ``challenger``) — only after
   a successful publish, so ``models:/<name>@champion`` and ``exports/current`` move together.

Same sample: on a night that fits, when the champion was fitted with another recipe (the
``recommend:`` config hash in its ``MODEL_KEY_TAG``) and its stored model's settings (kind and
parameters) differ from tonight's production model's, tonight's evaluation measures those
settings too (``champion_recipe``, ``measure_champion``): under the name of a configured model
tonight evaluates anyway when its settings are the same, else as ``CHAMPION_RECIPE``. The gate
then compares tonight's numbers of both, measured on tonight's folds and test sample
(``remeasured_ndcg``). A champion registered without a stored model, or a recipe that differs
only outside the model's settings (interaction weights, evaluation windows), falls back to the
configured model it was trained as when tonight measured that one, else to the NDCG it was
registered with (its own, earlier window and sample).

Same folds: with ``recommend.evaluation.folds`` > 1 both numbers are means over tonight's
rolling folds (``models.recommenders.training.evaluate_folds``: the same cutoffs and, per fold,
the same seeded consumer sample for every model), and the version's sample tag names the folds.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.catalog import Folder, RunFile, StepFile, output_names
from features.vocabulary import MetricCol
from models.evaluation import Protocol, metric_name
from models.recommenders.store import STORED_META, stored_recipe
from models.recommenders.training import CHAMPION_RECIPE, ModelSpec, RecommendConfig
from pipelines import tracking
from pipelines.publish import sha256_of
from pipelines.workdir import clear_own

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

# Model-version tags: the name of the model in recommend.models, and the sample its NDCG was measured on.
MODEL_TAG = "siyu.model"
SAMPLE_TAG = "siyu.evaluation_sample"
AS_OF_TAG = "as_of"  # the night's date, as on the nightly run
# The nightly run's metric of the number the gate compares.
GATE_NDCG_METRIC = "champion_gate/validation_ndcg"
# Refit cadence: what the production model was trained on (same on every night that reuses it), and
# the nightly run's metrics of whether tonight reused it and how old it is.
MODEL_KEY_TAG = "siyu.model_key"
FITTED_AS_OF_TAG = "siyu.fitted_as_of"
REUSED_METRIC = "recommend/reused_model"
MODEL_AGE_METRIC = "recommend/model_age_days"


@dataclass(frozen=True)
class RecommenderOutcome:
    """What the recommender step hands on to registration and publishing.

    ``artifact_dir``: the backend artifact of the production model's lists;
    ``validation_ndcg``: the production model's NDCG@k (all-items protocol) on the holdout
    window before the as-of date, which the champion gate compares; ``metrics``: the
    evaluator's numbers for MLflow; ``model``: the production model's name; ``log_model``:
    logs ``artifact_dir`` as a pyfunc model in the active MLflow run, returning its URI;
    ``configured``: the production model's name in ``recommend.models``; ``sample``: the
    evaluation window and sample that ``metrics`` were measured on, in words; ``model_key``: what
    the production model was trained on (``models.recommenders.store.ModelKey.label``),
    ``fitted_as_of`` when, and ``reused`` whether tonight carried the stored model instead of
    fitting (``recommend.refit_every_days``; ``metrics`` are then its fitting night's);
    ``stored_model``: the folder of the stored production model that scored the lists
    (``models.recommenders.store``), logged with the version so that a later night can score with
    it; ``champion_measured``: (champion version, name in ``metrics``) when tonight's evaluation
    measured the champion's model settings (``measure_champion``).
    """

    artifact_dir: Path
    validation_ndcg: float
    metrics: dict[str, float]
    model: str
    log_model: Callable[[Path], str]
    configured: str | None = None
    sample: str | None = None
    model_key: str | None = None
    fitted_as_of: str | None = None
    reused: bool = False
    stored_model: Path | None = None
    champion_measured: tuple[str, str] | None = None


def register_recommender(
    recommenders: RecommenderOutcome, config: tracking.TrackingConfig, work: Path, run_id: str
) -> tracking.GateDecision:
    """Log a nested run per evaluated model, log the production model (pyfunc) in its own
    nested run, register it as a new version and judge it; no alias moves.

    Logged in its model's nested run, the pyfunc model carries that run's evaluation metrics
    (MLflow links a run's metrics to the model logged in it) and its config as params; the
    version is registered with the logged model's ``model_id``, a description and the tags
    ``as_of``, ``siyu.model`` and ``siyu.evaluation_sample``. Without a nested run for the
    production model (no evaluation numbers for it), the model is logged in the nightly run.
    """
    import mlflow

    with tracking.using_tracking(config, work) as client:
        model_runs = tracking.log_model_runs(client, run_id, recommenders.metrics, recommenders.configured)
        model_run = model_runs.get(recommenders.configured or "", run_id)
        with mlflow.start_run(run_id=model_run):
            model_uri = recommenders.log_model(recommenders.artifact_dir)
            logged = mlflow.last_logged_model()
            if recommenders.stored_model is not None and recommenders.stored_model.is_dir():
                mlflow.log_artifacts(str(recommenders.stored_model), tracking.STORED_MODEL_PATH)
        if logged is not None:  # MLflow names the process's script as its source: name siyu's
            client.set_logged_model_tags(logged.model_id, tracking.run_context_tags())
        if model_run == run_id:
            client.update_run(run_id, status="RUNNING")  # leaving start_run's block marked it FINISHED
        as_of = client.get_run(run_id).data.tags.get(AS_OF_TAG)
        tracking.log_metrics(
            client,
            run_id,
            {GATE_NDCG_METRIC: recommenders.validation_ndcg, **cadence_metrics(recommenders, as_of)},
        )
        version = tracking.register_version(
            client,
            config.model_name,
            model_uri,
            model_run,
            recommenders.validation_ndcg,
            model_id=logged.model_id if logged is not None else None,
            description=version_description(recommenders, as_of),
            tags={
                AS_OF_TAG: as_of,
                MODEL_TAG: recommenders.configured,
                SAMPLE_TAG: recommenders.sample,
                MODEL_KEY_TAG: recommenders.model_key,
                FITTED_AS_OF_TAG: recommenders.fitted_as_of,
            },
        )
        kept = same_model_as_champion(client, config.model_name, str(version.version), recommenders)
        if kept is None:
            kept = same_recipe_as_champion(client, config.model_name, str(version.version), recommenders)
        if kept is not None:
            return kept
        return tracking.judge(
            client,
            config.model_name,
            str(version.version),
            config.champion_margin,
            lambda champion: remeasured_ndcg(client, config.model_name, champion, recommenders),
        )


def cadence_metrics(recommenders: RecommenderOutcome, as_of: str | None) -> dict[str, float]:
    """Whether tonight reused the stored production model (1) or fitted it (0), and its age in days."""
    metrics = {REUSED_METRIC: float(recommenders.reused)}
    if as_of and recommenders.fitted_as_of:
        age = date.fromisoformat(as_of[:10]) - date.fromisoformat(recommenders.fitted_as_of)
        metrics[MODEL_AGE_METRIC] = float(age.days)
    return metrics


def same_model_as_champion(
    client: MlflowClient, model_name: str, version: str, tonight: RecommenderOutcome
) -> tracking.GateDecision | None:
    """On a night that reused the stored model: when the champion is a version of that same fitted
    model (its ``MODEL_KEY_TAG``), the new version (the same model on fresher data) takes over as
    champion without a comparison (it was judged the night it was fitted); else None (judge it)."""
    if not tonight.reused or tonight.model_key is None:
        return None
    champion = tracking.alias_version(client, model_name, tracking.CHAMPION)
    if (
        champion is None
        or client.get_model_version(model_name, champion).tags.get(MODEL_KEY_TAG) != tonight.model_key
    ):
        return None
    logger.info(
        "champion gate: version %s carries champion version %s's model (fitted as of %s) onto tonight's "
        "data: it becomes champion without a new comparison",
        version,
        champion,
        tonight.fitted_as_of,
    )
    ndcg = tonight.validation_ndcg
    return tracking.GateDecision(version, tracking.CHAMPION, ndcg, version, ndcg, champion)


def same_recipe_as_champion(
    client: MlflowClient, model_name: str, version: str, tonight: RecommenderOutcome
) -> tracking.GateDecision | None:
    """On a night that fitted: when the champion was fitted with the same recipe (the
    ``recommend:`` config hash in its ``MODEL_KEY_TAG``) on older data, the new version takes over
    unless tonight's NDCG is clearly below the champion's: the top of tonight's 95% interval
    under the champion's registered NDCG. Else None (judge it).

    Measured on the same folds, one recipe gives one number, so the gate cannot tell two fits of
    it apart there; the champion's registered NDCG comes from its own, older window and sample,
    and a margin of 0.001 between numbers of two windows is noise (a review's backfill kept a
    month-old model on 0.4561 against 0.4634, both inside each other's intervals). So the fresher
    fit of the same recipe is published, and a clear drop (a broken night's data, a regression in
    the code) still keeps the champion."""
    if tonight.reused or tonight.model_key is None or tonight.fitted_as_of is None:
        return None
    champion = tracking.alias_version(client, model_name, tracking.CHAMPION)
    if champion is None:
        return None
    tags = client.get_model_version(model_name, champion).tags
    recipe, fitted = _recipe(tags.get(MODEL_KEY_TAG)), tags.get(FITTED_AS_OF_TAG)
    if recipe is None or recipe != _recipe(tonight.model_key) or not fitted or fitted >= tonight.fitted_as_of:
        return None
    champion_ndcg = tracking.version_ndcg(client, model_name, champion)
    high = tonight.metrics.get(
        metric_name(Protocol.ALL_ITEMS, tonight.configured or tonight.model, MetricCol.NDCG_HIGH)
    )
    ndcg = tonight.validation_ndcg
    if high is not None and high < champion_ndcg:
        logger.info(
            "champion gate: version %s (NDCG %.4f, at most %.4f) is clearly below champion version %s "
            "(%.4f, the same recipe fitted as of %s): it stays challenger",
            version,
            ndcg,
            high,
            champion,
            champion_ndcg,
            fitted,
        )
        return tracking.GateDecision(version, tracking.CHALLENGER, ndcg, champion, champion_ndcg, champion)
    logger.info(
        "champion gate: version %s is champion version %s's recipe fitted on newer data (as of %s, "
        "against %s); NDCG %.4f against %.4f on another window: it takes over",
        version,
        champion,
        tonight.fitted_as_of,
        fitted,
        ndcg,
        champion_ndcg,
    )
    return tracking.GateDecision(version, tracking.CHAMPION, ndcg, version, ndcg, champion)


def _recipe(model_key: str | None) -> str | None:
    """The config hash in a ``ModelKey.label`` (``<as_of>/<config hash>/<history>``)."""
    parts = (model_key or "").split("/")
    return parts[1] if len(parts) == 3 else None


def version_description(recommenders: RecommenderOutcome, as_of: str | None) -> str:
    """What a registered version is, in words: model, data date, validation NDCG and its sample."""
    model = recommenders.configured or recommenders.model
    if recommenders.reused:
        words = f"siyu nightly: {model} fitted on the data up to {recommenders.fitted_as_of}, scored on "
        words += f"the data up to {as_of or 'the run date'} (recommend.refit_every_days); "
    else:
        words = f"siyu nightly: {model} fitted on the data up to {as_of or 'the run date'}; "
    words += f"validation NDCG {recommenders.validation_ndcg:.4f} (all-items protocol"
    words += f", {recommenders.sample})." if recommenders.sample else ")."
    return words + " The published lists come from this version only while it holds the alias 'champion'."


@dataclass(frozen=True)
class ChampionRecipe:
    """The champion's model settings: the kind and parameters of the stored model that scored
    its lists, for tonight's evaluation to measure (``measure_champion``)."""

    version: str
    kind: str
    params: dict[str, Any]


def champion_recipe(config: tracking.TrackingConfig, work: Path, recipe: str) -> ChampionRecipe | None:
    """The champion's model settings when tonight fits with another recipe than the champion's
    (``recipe``: tonight's ``recommend:`` config hash; the champion's is in its ``MODEL_KEY_TAG``);
    None when there is no champion, the same recipe, or no stored model logged with it (a version
    registered by an older siyu), or no tracking store yet. Reads only the stored model's
    ``model.json``."""
    from pipelines.store_templates import sqlite_file

    database = sqlite_file(config.tracking_uri(work))
    if database is not None and not database.exists():
        return None  # no night has registered a model here
    with tracking.using_tracking(config, work) as client:
        champion = tracking.alias_version(client, config.model_name, tracking.CHAMPION)
        if champion is None:
            return None
        theirs = _recipe(client.get_model_version(config.model_name, champion).tags.get(MODEL_KEY_TAG))
        if theirs is None or theirs == recipe:
            return None
        with tempfile.TemporaryDirectory(prefix="siyu-champion-") as scratch:
            folder = tracking.download_stored_model(
                client, config.model_name, champion, Path(scratch), only=STORED_META
            )
            found = stored_recipe(folder) if folder is not None else None
    if found is None:
        logger.info("champion version %s has no stored model to measure tonight", champion)
        return None
    return ChampionRecipe(champion, *found)


def measure_champion(
    recommend: RecommendConfig, names: list[str], champion: ChampionRecipe | None
) -> tuple[RecommendConfig, list[str], str | None]:
    """What tonight's evaluation runs so that it measures the champion's settings too: (config,
    model names, the name the champion is measured under, or None when it is not measured).

    A configured model tonight evaluates anyway with the same settings measures it (no extra
    fit); else the settings join as ``CHAMPION_RECIPE``. Not measured: settings that no longer
    build a model (a kind or parameter this siyu lacks), or the same settings as tonight's
    production model (the recipes then differ outside the model, and one number would stand for
    both)."""
    if champion is None:
        return recommend, names, None
    try:
        spec = ModelSpec(kind=champion.kind, params=champion.params)
    except ValueError as error:
        logger.warning("champion version %s's model settings do not build here: %s", champion.version, error)
        return recommend, names, None
    settings = _settings(spec)
    if settings == _settings(recommend.models[recommend.production]):
        return recommend, names, None
    same = [name for name in names if _settings(recommend.models[name]) == settings]
    if same:
        logger.info("champion version %s has the settings of %s, measured tonight", champion.version, same[0])
        return recommend, names, same[0]
    logger.info(
        "champion version %s (%s, another recipe): measured tonight as %s",
        champion.version,
        champion.kind,
        CHAMPION_RECIPE,
    )
    models = {**recommend.models, CHAMPION_RECIPE: spec}
    return recommend.model_copy(update={"models": models}), [*names, CHAMPION_RECIPE], CHAMPION_RECIPE


def _settings(spec: ModelSpec) -> str:
    """A model's kind and full parameters (defaults included) as canonical JSON."""
    params = spec.build().get_params()
    return json.dumps({"kind": spec.kind, "params": params}, sort_keys=True, default=str)


def remeasured_ndcg(
    client: MlflowClient, model_name: str, champion_version: str, tonight: RecommenderOutcome
) -> float | None:
    """The champion's NDCG on tonight's sample, or None when tonight did not measure it.

    Tonight measured it when its evaluation measured the champion's stored settings
    (``champion_measured``), or else when the champion was trained as a configured model (its
    ``MODEL_TAG``) other than tonight's production model and tonight's evaluation holds that model.
    """
    if tonight.champion_measured is not None and tonight.champion_measured[0] == champion_version:
        measured_as = tonight.champion_measured[1]
        ndcg = tonight.metrics.get(metric_name(Protocol.ALL_ITEMS, measured_as, MetricCol.NDCG))
        if ndcg is not None:
            logger.info(
                "champion %s's settings (as %s) on tonight's sample: NDCG %.4f",
                champion_version,
                measured_as,
                ndcg,
            )
            return ndcg
    tags = client.get_model_version(model_name, champion_version).tags
    trained_as = tags.get(MODEL_TAG)
    if trained_as is None or trained_as == tonight.configured:
        return None
    ndcg = tonight.metrics.get(metric_name(Protocol.ALL_ITEMS, trained_as, MetricCol.NDCG))
    if ndcg is not None:
        logger.info("champion %s (%s) on tonight's sample: NDCG %.4f", champion_version, trained_as, ndcg)
    return ndcg


def promote(decision: tracking.GateDecision, config: tracking.TrackingConfig, work: Path) -> None:
    """Give the new version the alias the gate chose; call it after the export is published."""
    with tracking.using_tracking(config, work) as client:
        tracking.apply_gate(client, config.model_name, decision)


def choose_exports(
    outputs: Path,
    recommenders: RecommenderOutcome,
    decision: tracking.GateDecision,
    config: tracking.TrackingConfig,
    work: Path,
    score_with: Callable[[Path], Path | None],
) -> dict[str, Path]:
    """Export name -> file or folder: every output; when the champion stays, its lists and artifact.

    The champion's lists are tonight's lists scored by the champion's model:
    ``score_with(stored_model_folder)`` carries the stored production model logged with the
    champion's version onto tonight's data and writes every list file and the artifact over
    ``outputs``, through the night's own scoring pass (tonight's filters, reasons, outreach,
    similar items and fallbacks), returning the artifact folder. A champion registered without a
    stored model (by an older siyu), or with one that cannot be read, has its lists rebuilt from
    its artifact instead (``champion_lists``)."""
    sources = {path.name: path for path in sorted(outputs.iterdir()) if path.name in output_names()}
    if decision.promoted:
        return sources
    champion_dir = work / Folder.CHAMPION
    clear_own(champion_dir, {Folder.CHAMPION_MODEL, Folder.CHAMPION_LISTS, Folder.CHAMPION_STORED})
    with tracking.using_tracking(config, work) as client:
        artifact = tracking.download_model_artifact(
            client, config.model_name, decision.champion_version, champion_dir / Folder.CHAMPION_MODEL
        )
        if same_artifact(artifact, recommenders.artifact_dir):
            logger.info("the champion's artifact is this run's (a rerun): publishing this run's lists")
            return sources
        stored = tracking.download_stored_model(
            client, config.model_name, decision.champion_version, champion_dir / Folder.CHAMPION_STORED
        )
    if stored is not None:
        logger.info(
            "the new model lost the champion gate: scoring tonight's lists with champion version %s's model",
            decision.champion_version,
        )
        if score_with(stored) is not None:
            return {path.name: path for path in sorted(outputs.iterdir()) if path.name in output_names()}
    logger.warning(
        "the new model lost the champion gate: publishing lists rebuilt from champion version %s's "
        "artifact (no readable model in its run)",
        decision.champion_version,
    )
    sources[Folder.ARTIFACT] = artifact
    sources.update(champion_lists(artifact, outputs, champion_dir / Folder.CHAMPION_LISTS))
    return sources


def same_artifact(first: Path, second: Path) -> bool:
    """Whether two artifacts hold the same files (their manifests list every file's SHA-256)."""
    return sha256_of(first / RunFile.MANIFEST) == sha256_of(second / RunFile.MANIFEST)


def champion_lists(champion_artifact: Path, outputs: Path, folder: Path) -> dict[str, Path]:
    """The consumer and distributor lists rebuilt from the champion's artifact for this run's ids
    and list lengths, this run's pulled products left out (``artifact.relist``)."""
    from artifact.loader import load
    from artifact.relist import relist
    from models.quality import pulled_products
    from pipelines.steps.quality import read_levels

    champion = load(champion_artifact)
    pulled = set(pulled_products(read_levels(outputs)))
    return {name: relist(champion, outputs / name, pulled, folder / name) for name in StepFile.LISTS}
