"""The churn / value models' choice kept between nights (``segmentation.churn.rechoose_every_days``).

Choosing the churn and value models fits every candidate on the validation window, most of the
CLV step's time, and the winner changes slowly. A night that makes the choice stores it with
what it was made on (``models.cadence.KeptKey``: a hash of the ``clv`` and ``churn`` config, the as-of date
and a fingerprint of the order history up to it) and the metrics it was made on; a later night
keeps it (``models.churn.choose_and_predict``'s ``carried``: the chosen candidates refitted on
tonight's validation frame, no comparison) unless ``models.cadence.redo_reason`` (with
``RECHOOSE``) names a reason to compare again, the production model's reasons: none stored, a
cadence of 1, another config, a choice as old as the cadence, one made for this same night (a
rerun does what the night did) or after it, another order history.

On disk: one JSON file (e.g. ``<work>/churn_choice.json``), replaced whole. An unreadable file
is a choice not stored: the night compares again and writes a new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from models.cadence import Cadence, KeptKey, read_kept, write_kept
from models.churn import Choice, ChurnConfig
from models.clv import CLVConfig

logger = logging.getLogger(__name__)

CHOICE_FORMAT = 1
CHOICE_FILE = "churn_choice.json"  # its name in the nightly's work directory
_METRIC_COLUMNS = ["target", "candidate", "metric", "value"]


@dataclass(frozen=True)
class StoredChoice:
    key: KeptKey
    choice: Choice


def config_hash(clv: CLVConfig, churn: ChurnConfig) -> str:
    """Hash of the settings a choice depends on: ``clv`` and ``churn`` but the cadence itself."""
    settings = {
        "clv": clv.model_dump(mode="json"),
        "churn": churn.model_dump(mode="json", exclude={"rechoose_every_days"}),
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
