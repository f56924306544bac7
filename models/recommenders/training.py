"""Recommender settings (the ``recommend:`` config section) and fitting models the way production does.

``RecommendConfig`` names every model to build (``models``: name → ``{kind, params}``), which
one is production, the interaction weights and the evaluation windows and sample. ``fit_production``
trains a model as of a date: models that learn from a validation window (the ranker) are
tuned on the ``validation_days`` before the as-of date, then every model is fitted on all
data up to the as-of date. When the evaluation already fitted the same model at the start of
that window (``FittedModel``; the nightly with ``validation_days == holdout_days``), its
components are reused and only the weights are learned (``RankerRecommender.tune_fitted``).
``build_data`` is the one way interaction data are assembled.

``evaluate_folds`` is the one rolling-origin evaluation (``siyu evaluate --folds``, the nightly
with ``evaluation.folds``, the benchmarks' fold loop): for each fold of
``models.evaluation.rolling_folds`` it builds the test task, samples its consumers with the
configured seed, tunes fresh models on the fold's own tuning window (``tune_models``) and
measures them; the per-fold rows and their summary (mean and interval over folds) come back
with the latest fold's fitted models, which production can reuse like a single window's.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.errors import SiyuError
from features.interactions import (
    Cutoff,
    InteractionConfig,
    cutoff_before,
    interaction_ids,
    purchased_pairs,
)
from features.progress import progress
from models.evaluation import (
    EvaluationTask,
    PartialRows,
    RollingFold,
    evaluate_models,
    fold_rows,
    interaction_data,
    make_task,
    rolling_folds,
    summarise_folds,
)
from models.recommenders.base import InteractionData, Recommender, registered_models
from models.recommenders.popularity import CATEGORY, COMMUNITY, GLOBAL

logger = logging.getLogger(__name__)


# The name under which the nightly's evaluation measures the champion's model settings when no
# configured model has them (pipelines.champion.measure_champion); no configured model may take it.
CHAMPION_RECIPE = "champion_recipe"


class ModelSpec(BaseModel):
    """One model: its kind (als, bpr, itemknn, ease, lightfm, popularity, repeat, ranker) and parameters."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_kind(self) -> ModelSpec:
        import models.recommenders  # noqa: F401  (registers every model class)

        if self.kind not in registered_models():
            raise ValueError(f"unknown model kind {self.kind!r}; use one of {sorted(registered_models())}")
        import inspect

        allowed = set(inspect.signature(registered_models()[self.kind].__init__).parameters) - {"self"}
        unknown = sorted(set(self.params) - allowed)
        if unknown:
            raise ValueError(f"{self.kind}: unknown parameter(s) {unknown}; allowed: {sorted(allowed)}")
        return self

    def build(self) -> Recommender:
        """A fresh, unfitted model."""
        import models.recommenders  # noqa: F401

        return registered_models()[self.kind](**self.params)


# Kinds too slow to fit every night at scale (tens of minutes at 10M lines): left to `siyu evaluate`.
EXPENSIVE_KINDS: frozenset[str] = frozenset({"als", "bpr", "lightfm", "spark_als"})


def default_models() -> dict[str, ModelSpec]:
    """The models ``siyu evaluate`` compares by default (tuned on Online Retail's validation window)."""
    specs: dict[str, tuple[str, dict[str, Any]]] = {
        "ranker": ("ranker", {}),
        "repeat": ("repeat", {}),
        "popularity_global": ("popularity", {"scope": GLOBAL}),
        "popularity_category": ("popularity", {"scope": CATEGORY}),
        "popularity_community": ("popularity", {"scope": COMMUNITY}),
        "itemknn_bm25": ("itemknn", {"similarity": "bm25"}),
        "itemknn_cosine": ("itemknn", {"similarity": "cosine"}),
        "ease": ("ease", {"l2": 500.0}),
        "als": ("als", {}),
        "bpr": ("bpr", {}),
        "lightfm": ("lightfm", {}),
    }
    return {name: ModelSpec(kind=kind, params=params) for name, (kind, params) in specs.items()}


class EvaluationSettings(BaseModel):
    """Windows of ``siyu evaluate`` (the command's options override them)."""

    model_config = ConfigDict(extra="forbid")

    holdout_days: int = Field(30, gt=0, description="Test window: the last days of the data.")
    validation_days: int = Field(30, gt=0, description="Tuning window: the days before the test window.")
    k: int = Field(10, gt=0, description="List length the metrics are computed at.")
    models: list[str] | None = Field(
        None, description="Models siyu evaluate compares (names in models:); empty = all."
    )
    nightly_models: list[str] | None = Field(
        None,
        description="Models the nightly evaluates (the production model always is); "
        "empty = every model whose kind is not als, bpr, lightfm or spark_als.",
    )
    sample_consumers: int | None = Field(
        50_000, gt=0, description="Test consumers measured (a seeded sample); empty = all."
    )
    seed: int = Field(0, description="Seed of the test-consumer sample.")
    folds: int = Field(
        1,
        ge=1,
        description="Rolling folds the nightly evaluates: test windows of holdout_days ending at the "
        "as-of date, each tuned on the validation_days before it (siyu evaluate: --folds, default 3).",
    )


class RecommendConfig(BaseModel):
    """The ``recommend:`` section of configs/nightly.yaml."""

    model_config = ConfigDict(extra="forbid")

    production: str = Field("ranker", description="Name (in models:) of the model whose lists are published.")
    k: int = Field(50, gt=0, description="Products per consumer list.")
    interactions: InteractionConfig = Field(default_factory=InteractionConfig)
    models: dict[str, ModelSpec] = Field(default_factory=default_models)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    refit_every_days: int = Field(
        7,
        ge=1,
        description="Fit (and evaluate) the production model when the stored one is this many days "
        "old; nights in between score the stored model on tonight's data (1 = every night).",
    )

    @model_validator(mode="after")
    def _production_known(self) -> RecommendConfig:
        if CHAMPION_RECIPE in self.models:
            raise ValueError(
                f"models: {CHAMPION_RECIPE!r} is the name the nightly gives the champion's settings "
                "when it measures them; rename that model"
            )
        if self.production not in self.models:
            raise ValueError(
                f"production model {self.production!r} is not in models: ({sorted(self.models)})"
            )
        for key in ("models", "nightly_models"):
            unknown = set(getattr(self.evaluation, key) or ()) - set(self.models)
            if unknown:
                raise ValueError(
                    f"evaluation.{key} names unknown models {sorted(unknown)}; "
                    f"configured: {sorted(self.models)}"
                )
        return self

    def model_hash(self) -> str:
        """A digest of everything that shapes the fitted model and its evaluation (not the list
        length ``k`` nor the cadence): a stored model with another hash is refitted."""
        import hashlib
        import json

        ignored = {"k", "refit_every_days"}  # vocabulary: a value, not a column
        settings = self.model_dump(mode="json", exclude=ignored)
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]

    def nightly_model_names(self) -> list[str]:
        """The models the nightly evaluates: the production model first, then ``nightly_models``
        (default: every configured model whose kind is not in ``EXPENSIVE_KINDS``)."""
        chosen = self.evaluation.nightly_models
        if chosen is None:
            chosen = [name for name, spec in self.models.items() if spec.kind not in EXPENSIVE_KINDS]
        return [self.production, *(name for name in chosen if name != self.production)]


@dataclass(frozen=True)
class FittedModel:
    """A configured model (``name`` in ``recommend.models``) fitted on the data up to ``cutoff``:
    what the evaluation hands to production so that production need not fit it again."""

    name: str
    model: Recommender
    cutoff: Cutoff


def build_data(
    con: duckdb.DuckDBPyConnection, as_of: Cutoff, interactions: InteractionConfig | None = None
) -> InteractionData:
    """Interactions with consumer and product profiles, as of ``as_of``
    (``models.evaluation.interaction_data``)."""
    return interaction_data(con, as_of, interactions)


def validation_window(
    con: duckdb.DuckDBPyConnection,
    as_of: Cutoff,
    validation_days: int,
    interactions: InteractionConfig | None = None,
) -> tuple[InteractionData, pd.DataFrame]:
    """The data up to the start of the ``validation_days`` ending at ``as_of``, and the pairs
    bought in that window (what ``tune`` learns from)."""
    start = cutoff_before(as_of, validation_days)
    return build_data(con, start, interactions), purchased_pairs(con, start, as_of)


def tune_on_window(
    model: Recommender,
    con: duckdb.DuckDBPyConnection,
    as_of: Cutoff,
    validation_days: int,
    interactions: InteractionConfig | None = None,
    window: tuple[InteractionData, pd.DataFrame] | None = None,
) -> Recommender:
    """Tune ``model`` (if it has ``tune``) on the ``validation_days`` ending at ``as_of``;
    ``window``: that window's ``validation_window`` when the caller already built it."""
    tune = getattr(model, "tune", None)
    if tune is None:
        return model
    train, truth = (
        window if window is not None else validation_window(con, as_of, validation_days, interactions)
    )
    logger.info("tuning %s on the %d days before %s", model.name, validation_days, as_of)
    tune(train, truth)
    return model


def fit_production(
    con: duckdb.DuckDBPyConnection,
    as_of: Cutoff,
    config: RecommendConfig,
    name: str | None = None,
    data: InteractionData | None = None,
    evaluated: FittedModel | None = None,
) -> Recommender:
    """Tune (on the window before ``as_of``) and fit the named model (default: production) as of
    ``as_of``: ``tune_production``, then ``fit`` on ``data`` (default: built as of ``as_of``)."""
    model = tune_production(con, as_of, config, name, evaluated)
    return model.fit(data if data is not None else build_data(con, as_of, config.interactions))


def tune_production(
    con: duckdb.DuckDBPyConnection,
    as_of: Cutoff,
    config: RecommendConfig,
    name: str | None = None,
    evaluated: FittedModel | None = None,
) -> Recommender:
    """The named model (default: production) tuned on the window before ``as_of``, holding no
    learned state (``Recommender.forget``), for ``fit`` on the data as of ``as_of``.

    ``evaluated``: the same model as the evaluation fitted it. When it was fitted at the start of
    the tuning window (``cutoff_before(as_of, validation_days)``) and can learn its weights over
    fitted components (``tune_fitted``), it is reused: the weights are learned on the window and
    only the fit up to ``as_of`` remains; otherwise a fresh model is tuned as always. Either way
    the window's data and components are dropped here, so that they are not held while tonight's
    data are built.
    """
    name = name or config.production
    days = config.evaluation.validation_days
    if evaluated is not None and _reusable(evaluated, name, cutoff_before(as_of, days)):
        logger.info("tuning %s on the components the evaluation fitted at %s", name, evaluated.cutoff)
        model = evaluated.model
        model.tune_fitted(purchased_pairs(con, evaluated.cutoff, as_of))  # type: ignore[attr-defined]
    else:
        model = tune_on_window(config.models[name].build(), con, as_of, days, config.interactions)
    return model.forget()


def _reusable(evaluated: FittedModel, name: str, window_start: Cutoff) -> bool:
    """Whether ``evaluated`` is model ``name`` fitted at ``window_start`` and can be tuned as fitted."""
    return (
        evaluated.name == name
        and evaluated.cutoff == window_start
        and hasattr(evaluated.model, "tune_fitted")
    )


# --- rolling-origin evaluation -------------------------------------------------------------------


def _partial(con: duckdb.DuckDBPyConnection, partial: bool | None, models: list[Recommender]) -> int | None:
    """``partial_sample(models)`` when partial data are wanted (``partial``; None: on Spark), else None."""
    wanted = getattr(con, "spark", None) is not None if partial is None else partial
    if not wanted:
        return None
    sample = partial_sample(models)
    if sample is None:
        logger.info("evaluation: a model needs every consumer's rows (rows_to_fit), so every row is read")
    return sample


@dataclass(frozen=True)
class FoldedEvaluation:
    """What ``evaluate_folds`` measured: ``per_fold`` rows (``FOLD_COLUMNS``, fold 1 first), their
    ``summary`` (``SUMMARY_COLUMNS``), each fold's test consumers and sample size, and the models
    fitted at fold 1's cutoff with their training data (``latest_task.train``)."""

    folds: list[RollingFold]
    per_fold: pd.DataFrame
    summary: pd.DataFrame
    test_consumers: list[int]
    sampled: list[int]
    latest_task: EvaluationTask
    latest_models: dict[str, Recommender]


def tune_models(
    con: duckdb.DuckDBPyConnection,
    config: RecommendConfig,
    models: dict[str, Recommender],
    fold: RollingFold,
    sample: int | None = None,
) -> dict[str, Recommender]:
    """``models``, those that learn from a window tuned on ``fold.tuning`` (built once; ``sample``:
    partial data, as ``partial_sample`` gives)."""
    tuned = [model for model in models.values() if hasattr(model, "tune")]
    if tuned:
        window = _tuning_window(con, config, fold, tuned, sample)
        days = config.evaluation.validation_days
        for model in tuned:
            tune_on_window(model, con, fold.cutoff, days, config.interactions, window=window)
    return models


def partial_sample(models: list[Recommender]) -> int | None:
    """How many consumers' rows (their ``hashed_sample``) an evaluation of ``models`` reads besides
    those it measures or tunes on: the largest ``Recommender.rows_to_fit`` (the samples are nested),
    or None when a model needs every consumer's rows."""
    needs = [model.rows_to_fit() for model in models]
    return None if any(need is None for need in needs) else max(needs, default=0)


def learners_of(models: Sequence[Recommender], consumer_ids: pd.Index, truth: pd.DataFrame) -> pd.Index:
    """Every consumer whose rows one of ``models``' ``tune`` learns from on a window of ``truth``."""
    learners = [model.tuning_consumers(consumer_ids, truth) for model in models]
    return functools.reduce(pd.Index.union, learners, pd.Index([], dtype=object))


def _tuning_window(
    con: duckdb.DuckDBPyConnection,
    config: RecommendConfig,
    fold: RollingFold,
    models: list[Recommender],
    sample: int | None,
) -> tuple[InteractionData, pd.DataFrame]:
    """The fold's tuning data and truth: nothing after ``fold.tuning.test_end`` (≤ the test cutoff).
    With ``sample``, the data hold its rows and the rows the models' ``tuning_consumers`` learn from."""
    tuning = fold.tuning
    truth = purchased_pairs(con, tuning.cutoff, tuning.test_end)
    if sample is None:
        train = build_data(con, tuning.cutoff, config.interactions)
    else:
        ids = interaction_ids(con, tuning.cutoff, config.interactions)
        also = learners_of(models, ids[0], truth)
        train = interaction_data(con, tuning.cutoff, config.interactions, True, sample, also, ids)
    return _require_history(fold, train, "its tuning window"), truth


def _require_history(fold: RollingFold, train: InteractionData, before: str) -> InteractionData:
    """``train``, or a ``SiyuError`` naming the fold when it holds no consumer at all."""
    if train.shape[0] == 0:
        raise SiyuError(
            f"evaluation fold {fold.number}: no order lines before {before} starts; the data are "
            "too short for this many folds and windows\n"
            "  fix: run as of a later date (--as-of), or shorten the windows in the config: fewer "
            "evaluation.folds (siyu evaluate: --folds), smaller evaluation.holdout_days / "
            "validation_days (siyu evaluate: --holdout-days)"
        )
    return train


def evaluate_folds(
    con: duckdb.DuckDBPyConnection,
    config: RecommendConfig,
    names: list[str],
    last: Cutoff,
    folds: int | None = None,
    k: int | None = None,
    holdout_days: int | None = None,
    partial: bool | None = None,
) -> FoldedEvaluation:
    """Measure models ``names`` on ``folds`` rolling folds ending at ``last`` (defaults: ``evaluation``).

    Every fold uses the configured consumer sample size and seed, so every model (champion and
    challenger alike) is measured on the same consumers of the same windows. Folds run oldest
    first, so only the latest fold's models are held when the call returns.

    ``partial`` (None: on Spark): when every model can fit on partial data (``partial_sample``),
    each window's data hold only the rows that are read: the models' fitting sample, the test
    consumers measured, the consumers the tuning learns from and, on fold 1, those production's
    tuning learns from on the same data (``tune_production``) — the same numbers as from every
    row, with no process holding every consumer's rows (docs/spark.md).
    """
    settings = config.evaluation
    made = rolling_folds(
        last, folds or settings.folds, holdout_days or settings.holdout_days, settings.validation_days
    )
    rows, test_consumers, sampled = {}, {}, {}
    latest: tuple[EvaluationTask, dict[str, Recommender]] | None = None
    folds_unit = "folds"  # vocabulary: a value, not a column
    with progress(f"evaluating {len(made)} rolling folds", total=len(made), unit=folds_unit) as bar:
        for fold in reversed(made):
            logger.info("fold %d of %d: test after %s", fold.number, len(made), fold.cutoff)
            models = {name: config.models[name].build() for name in names}
            sample = _partial(con, partial, list(models.values()))
            kept = None
            if sample is not None:
                # fold 1's models are the ones production may tune on these data (tune_production)
                tuning = tuple(models.values()) if fold.number == 1 else ()
                also = functools.partial(learners_of, tuning)
                kept = PartialRows(sample, settings.sample_consumers, settings.seed, also)
            full = make_task(con, fold.test, config.interactions, rows=kept)
            _require_history(fold, full.train, f"its test window ({fold.cutoff})")
            task = full.sample(settings.sample_consumers, settings.seed)
            models = tune_models(con, config, models, fold, sample)
            rows[fold.number] = fold_rows(evaluate_models(models, task, k or settings.k), fold)
            test_consumers[fold.number], sampled[fold.number] = full.consumers, task.consumers
            if fold.number == 1:
                latest = (task, models)
            del models
            bar.advance()
    assert latest is not None  # rolling_folds always makes fold 1
    per_fold = pd.concat([rows[fold.number] for fold in made], ignore_index=True)
    return FoldedEvaluation(
        made,
        per_fold,
        summarise_folds(per_fold),
        [test_consumers[fold.number] for fold in made],
        [sampled[fold.number] for fold in made],
        *latest,
    )
