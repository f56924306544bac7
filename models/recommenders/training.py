"""Recommender settings (the ``recommend:`` config section) and fitting models the way production does.

``RecommendConfig`` names every model to build (``models``: name → ``{kind, params}``), which
one is production, the interaction weights and the evaluation windows. ``fit_production``
trains a model as of a date: models that learn from a validation window (the ranker) are
tuned on the ``validation_days`` before the as-of date, then every model is fitted on all
data up to the as-of date. ``build_data`` is the one way interaction data are assembled.
"""

from __future__ import annotations

import logging
from typing import Any

import duckdb
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.interactions import (
    Cutoff,
    InteractionConfig,
    build_interactions,
    consumer_profiles,
    cutoff_before,
    product_profiles,
    purchased_pairs,
)
from models.recommenders.base import InteractionData, Recommender, registered_models
from models.recommenders.popularity import CATEGORY, COMMUNITY, GLOBAL

logger = logging.getLogger(__name__)


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
    models: list[str] | None = Field(None, description="Models to evaluate (names in models:); empty = all.")


class RecommendConfig(BaseModel):
    """The ``recommend:`` section of configs/nightly.yaml."""

    model_config = ConfigDict(extra="forbid")

    production: str = Field("ranker", description="Name (in models:) of the model whose lists are published.")
    k: int = Field(50, gt=0, description="Products per consumer list.")
    interactions: InteractionConfig = Field(default_factory=InteractionConfig)
    models: dict[str, ModelSpec] = Field(default_factory=default_models)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)

    @model_validator(mode="after")
    def _production_known(self) -> RecommendConfig:
        if self.production not in self.models:
            raise ValueError(
                f"production model {self.production!r} is not in models: ({sorted(self.models)})"
            )
        unknown = set(self.evaluation.models or ()) - set(self.models)
        if unknown:
            raise ValueError(f"evaluation.models names unknown models {sorted(unknown)}")
        return self


def build_data(
    con: duckdb.DuckDBPyConnection, as_of: Cutoff, interactions: InteractionConfig | None = None
) -> InteractionData:
    """Interactions with consumer and product profiles, as of ``as_of``."""
    frame = build_interactions(con, as_of, interactions)
    return InteractionData.from_frames(
        frame, consumer_profiles(con, as_of), product_profiles(con), as_of=as_of
    )


def tune_on_window(
    model: Recommender,
    con: duckdb.DuckDBPyConnection,
    as_of: Cutoff,
    validation_days: int,
    interactions: InteractionConfig | None = None,
) -> Recommender:
    """Tune ``model`` (if it has ``tune``) on the ``validation_days`` ending at ``as_of``."""
    tune = getattr(model, "tune", None)
    if tune is None:
        return model
    start = cutoff_before(as_of, validation_days)
    train = build_data(con, start, interactions)
    truth = purchased_pairs(con, start, as_of)
    logger.info("tuning %s on the window %s .. %s", model.name, start, as_of)
    tune(train, truth)
    return model


def fit_production(
    con: duckdb.DuckDBPyConnection,
    as_of: Cutoff,
    config: RecommendConfig,
    name: str | None = None,
    data: InteractionData | None = None,
) -> Recommender:
    """Tune (on the window before ``as_of``) and fit the named model (default: production) as of ``as_of``."""
    spec = config.models[name or config.production]
    model = tune_on_window(spec.build(), con, as_of, config.evaluation.validation_days, config.interactions)
    return model.fit(data if data is not None else build_data(con, as_of, config.interactions))
