"""The production model kept between nights: the refit cadence (``recommend.refit_every_days``).

Production recommenders are retrained on a cadence and score every night. A night that fits
the production model stores its *portable* state (``Recommender.portable_state``: product-side
arrays and the ranker's learned weights) with what it was trained on (``ModelKey``: the
``recommend:`` config hash, the as-of date and a fingerprint of the order history up to it)
and the evaluation that measured it. A later night reuses it (``StoredModel.carried_onto``:
tonight's data, no learning) unless ``refit_reason`` names a reason to fit again: none stored,
a cadence of 1, another config, a model as old as the cadence, a model fitted for this same
night (a rerun does what the night did, so its files come out identical) or after it, or a
history up to its as-of date that is not the one it was fitted on (another data set, or
restated orders).

On disk (a folder, e.g. ``<work>/production_model``), no pickle anywhere::

    model.json   format, configured name, kind and parameters, key, the array names (sparse
                 ones apart) and the evaluation (numbers for MLflow, gate NDCG, sample, report)
    state.npz    the portable arrays (a sparse matrix as <name>__data/indices/indptr/shape),
                 the fitted catalogue's product ids as ``product_ids``

The folder is replaced whole (written beside it, then swapped), so a crash leaves the old
model or none, never a mix.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.asof import AsOf
from models.cadence import Cadence, KeptKey, redo_reason
from models.recommenders.base import InteractionData, Recommender, registered_models

logger = logging.getLogger(__name__)

STORE_FORMAT = 1
STORED_META = "model.json"  # the settings and key; the one file a recipe needs
_STATE = "state.npz"
_PRODUCTS = "product_ids"
_SPARSE_PARTS = ("data", "indices", "indptr", "shape")


ModelKey = KeptKey  # what a stored model was trained on (``models.cadence.KeptKey``)


@dataclass(frozen=True)
class CarriedEvaluation:
    """The evaluation of the night a model was fitted: MLflow numbers, the gate's NDCG, the
    sample in words, the ``evaluation.json`` text it wrote and, when it measured the champion's
    settings too, (champion version, their name in ``metrics``) for the champion gate."""

    metrics: dict[str, float]
    ndcg: float
    sample: str | None
    report: str
    champion_measured: tuple[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "gate_ndcg": self.ndcg,
            "sample_words": self.sample,
            "report": self.report,
            "champion_measured": list(self.champion_measured) if self.champion_measured else None,
        }

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> CarriedEvaluation:
        measured = values.get("champion_measured")  # absent from models stored before it was kept
        return cls(
            dict(values["metrics"]),
            float(values["gate_ndcg"]),
            values["sample_words"],
            values["report"],
            (str(measured[0]), str(measured[1])) if measured else None,
        )


@dataclass(frozen=True)
class StoredModel:
    """A fitted production model's portable state and what it was trained on."""

    configured: str
    kind: str
    params: dict[str, Any]
    product_ids: pd.Index
    state: dict[str, Any]
    key: ModelKey
    evaluation: CarriedEvaluation

    @classmethod
    def of(
        cls, configured: str, model: Recommender, key: ModelKey, evaluation: CarriedEvaluation
    ) -> StoredModel:
        """What to store of ``model`` (fitted), configured as ``configured``."""
        return cls(
            configured,
            model.name,
            model.get_params(),
            model._data.product_ids,
            model.portable_state(),
            key,
            evaluation,
        )

    def unfitted(self) -> Recommender:
        """A model of the stored kind and settings, not fitted (what ``carried_onto`` fills)."""
        return registered_models()[self.kind](**self.params)

    def carried_onto(self, data: InteractionData) -> Recommender:
        """The stored model on ``data`` (tonight's), without learning (``Recommender.carried_onto``)."""
        return self.unfitted().carried_onto(data, self.state, self.product_ids)


def write_stored(folder: Path, stored: StoredModel) -> Path:
    """Write ``stored`` to ``folder`` (replaced whole); returns ``folder``."""
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    arrays: dict[str, np.ndarray] = {_PRODUCTS: stored.product_ids.to_numpy(dtype=str)}
    sparse = []
    for name, value in stored.state.items():
        if sp.issparse(value):
            matrix = value.tocsr()
            sparse.append(name)
            for part in _SPARSE_PARTS:
                arrays[f"{name}__{part}"] = np.asarray(getattr(matrix, part))
        else:
            arrays[name] = np.asarray(value)
    np.savez(partial / _STATE, **arrays)
    meta = {
        "format": STORE_FORMAT,
        "configured": stored.configured,
        "kind": stored.kind,
        "params": stored.params,
        "key": stored.key.to_json(),
        "dense": sorted(set(stored.state) - set(sparse)),
        "sparse": sorted(sparse),
        "evaluation": stored.evaluation.to_json(),
    }
    (partial / STORED_META).write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(partial, folder)
    logger.info("stored the production model fitted as of %s in %s", stored.key.as_of, folder)
    return folder


def read_stored(folder: Path) -> StoredModel | None:
    """The model ``write_stored`` left in ``folder``; None (with a log line) when there is none or
    it cannot be read (another format, a damaged file): the night then fits a new one."""
    if not (folder / STORED_META).is_file():
        return None
    try:
        meta = json.loads((folder / STORED_META).read_text(encoding="utf-8"))
        if meta.get("format") != STORE_FORMAT:
            raise ValueError(f"format {meta.get('format')}, this code reads {STORE_FORMAT}")
        with np.load(folder / _STATE, allow_pickle=False) as arrays:
            state: dict[str, Any] = {name: arrays[name] for name in meta["dense"]}
            for name in meta["sparse"]:
                data, indices, indptr, shape = (arrays[f"{name}__{part}"] for part in _SPARSE_PARTS)
                state[name] = sp.csr_matrix((data, indices, indptr), shape=tuple(shape))
            products = pd.Index(arrays[_PRODUCTS].astype(str), name=None)
        return StoredModel(
            meta["configured"],
            meta["kind"],
            meta["params"],
            products,
            state,
            ModelKey.from_json(meta["key"]),
            CarriedEvaluation.from_json(meta["evaluation"]),
        )
    except (OSError, KeyError, ValueError, TypeError) as error:
        logger.warning(
            "%s: the stored production model cannot be read (%s); fitting a new one", folder, error
        )
        return None


def stored_recipe(folder: Path) -> tuple[str, dict[str, Any]] | None:
    """The kind and parameters of the model ``write_stored`` left in ``folder``, read from its
    ``model.json`` alone (the arrays are not needed); None when that file is missing or unreadable."""
    try:
        meta = json.loads((folder / STORED_META).read_text(encoding="utf-8"))
        return str(meta["kind"]), dict(meta["params"])
    except (OSError, KeyError, ValueError, TypeError) as error:
        logger.warning("%s: the stored model's settings cannot be read (%s)", folder, error)
        return None


REFIT = Cadence(
    setting="recommend.refit_every_days",
    config="the recommend: config",
    kept="the stored model",
    made="fitted",
    again="fits",
    every_night="fitting every night",
    none_stored="no stored production model",
)


def refit_reason(
    stored: StoredModel | None,
    configured: str,
    config_hash: str,
    as_of: AsOf | date,
    refit_every_days: int,
    fingerprint_at: Any,
) -> str | None:
    """Why tonight (``as_of``) must fit the production model, or None when ``stored`` can be reused
    (``models.cadence.redo_reason``; a model of another configured name is another config).

    ``fingerprint_at(day)``: tonight's history fingerprint up to ``day``
    (``features.interactions.history_fingerprint``), asked only when every other check passed.
    """
    key = None if stored is None else stored.key
    same_kind = stored is None or stored.configured == configured
    return redo_reason(REFIT, refit_every_days, key, config_hash, as_of, fingerprint_at, same_kind)
