"""The churn / value models' choice kept between nights (``segmentation.churn.rechoose_every_days``).

Choosing the churn and value models fits every candidate on the validation window, most of the
CLV step's time, and the winner changes slowly. A night that makes the choice stores it with
what it was made on (``models.cadence.KeptKey``: a hash of the ``clv`` and ``churn`` config, the as-of date
and a fingerprint of the order history up to it) and the metrics it was made on; a later night
keeps it (``models.churn.choose_and_predict``'s ``carried``: no comparison; the chosen
candidates are refitted on tonight's validation frame, or predict as kept, below) unless
``models.cadence.redo_reason`` (with ``RECHOOSE``) names a reason to compare again, the
production model's reasons: none stored, a cadence of 1, another config, a choice as old as the
cadence, one made for this same night (a rerun does what the night did) or after it, another
order history.

On disk: one JSON file (e.g. ``<work>/churn_choice.json``), replaced whole. An unreadable file
is a choice not stored: the night compares again and writes a new one.

The chosen models as fitted are kept too (``segmentation.churn.refit_every_days``): a night that
fits them stores them (``write_models``: ``models.churn.FittedModels``, their arrays and what
they were fitted on, in one ``.npz`` file, e.g. ``<work>/churn_models.npz``, no pickle), and a
later night that keeps the choice predicts with them instead of fitting, unless
``models.cadence.redo_reason`` (with ``REFIT``) names a reason to fit again, or they are not the
models of tonight's choice. A night that chooses always fits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.files import atomic_path
from models.cadence import Cadence, KeptKey, read_kept, write_kept
from models.churn import Choice, ChurnConfig, Fitted, FittedModels
from models.clv import CLVConfig

logger = logging.getLogger(__name__)

CHOICE_FORMAT = 1
CHOICE_FILE = "churn_choice.json"  # its name in the nightly's work directory
MODELS_FORMAT = 1
MODELS_FILE = "churn_models.npz"  # the fitted models' file in the nightly's work directory
_MODELS_META = "meta"  # the array holding the models file's JSON document
_CADENCES = {"rechoose_every_days", "refit_every_days"}
_METRIC_COLUMNS = ["target", "candidate", "metric", "value"]


@dataclass(frozen=True)
class StoredChoice:
    key: KeptKey
    choice: Choice


def config_hash(clv: CLVConfig, churn: ChurnConfig) -> str:
    """Hash of the settings a choice and its fitted models depend on: ``clv`` and ``churn`` but
    the cadences themselves."""
    settings = {
        "clv": clv.model_dump(mode="json"),
        "churn": churn.model_dump(mode="json", exclude=_CADENCES),
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def write_choice(path: Path, key: KeptKey, choice: Choice) -> Path:
    """Store ``choice`` made on ``key`` at ``path`` (written beside it, then moved into place)."""
    metrics = choice.validation.reindex(columns=_METRIC_COLUMNS)
    body = {
        "chosen": dict(choice.chosen),
        "validation": [
            [str(t), str(c), str(m), None if pd.isna(v) else float(v)]
            for t, c, m, v in metrics.itertuples(index=False)
        ],
    }
    return write_kept(path, CHOICE_FORMAT, key, body)


def read_choice(path: Path) -> StoredChoice | None:
    """The choice stored at ``path``; None when there is none or it cannot be read (logged)."""
    kept = read_kept(path, CHOICE_FORMAT, "churn model choice")
    if kept is None:
        return None
    key, document = kept
    try:
        chosen = {str(target): str(name) for target, name in document["chosen"].items()}
        metrics = pd.DataFrame(document["validation"], columns=_METRIC_COLUMNS).astype({"value": "float64"})
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        logger.warning("%s: the stored churn model choice cannot be read (%s); choosing again", path, error)
        return None
    return StoredChoice(key, Choice(chosen, metrics))


RECHOOSE = Cadence(
    setting="segmentation.churn.rechoose_every_days",
    config="the clv / churn config",
    kept="the stored choice",
    made="made",
    again="chooses",
    every_night="choosing every night",
    none_stored="no stored choice",
)


@dataclass(frozen=True)
class StoredModels:
    key: KeptKey
    models: FittedModels


def write_models(path: Path, key: KeptKey, models: FittedModels) -> Path:
    """Store ``models`` fitted on ``key`` at ``path``: one ``.npz`` (written beside it, then moved
    into place) of every model's arrays, ``<position>/<array>``, and a JSON document (format,
    key, choice, each model's kind, name and array names) as its ``meta`` array."""
    meta = {
        "format": MODELS_FORMAT,
        "key": key.to_json(),
        "chosen": dict(models.chosen),
        "models": [[model.kind, model.name, sorted(model.arrays)] for model in models.models],
    }
    arrays = {
        f"{position}/{name}": np.asarray(array)
        for position, model in enumerate(models.models)
        for name, array in model.arrays.items()
    }
    with atomic_path(path) as partial, partial.open("wb") as out:
        np.savez(out, **{_MODELS_META: np.array(json.dumps(meta, sort_keys=True))}, **arrays)
    return path


def read_models(path: Path) -> StoredModels | None:
    """The models stored at ``path`` (``write_models``); None when there are none, or when the file
    cannot be read or is of another format (logged): the night then fits them again."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored[_MODELS_META]))
            if meta.get("format") != MODELS_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, this version reads {MODELS_FORMAT}")
            models = tuple(
                Fitted(str(kind), str(name), {array: stored[f"{position}/{array}"] for array in names})
                for position, (kind, name, names) in enumerate(meta["models"])
            )
            chosen = {str(target): str(name) for target, name in meta["chosen"].items()}
            return StoredModels(KeptKey.from_json(meta["key"]), FittedModels(chosen, models))
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile) as error:
        logger.warning("%s: the stored churn / value models cannot be read (%s); fitting again", path, error)
        return None


REFIT = Cadence(
    setting="segmentation.churn.refit_every_days",
    config="the clv / churn config",
    kept="the stored models",
    made="fitted",
    again="fits",
    every_night="fitting every night",
    none_stored="no stored models",
)
