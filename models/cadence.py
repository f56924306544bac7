"""Work a night keeps for later nights on a cadence: when a night must do it again.

Four pieces of the nightly are made on some nights and kept for the nights between: the
production model (``models.recommenders.store``, ``recommend.refit_every_days``), the churn /
value models' choice and the chosen models as fitted (``models.churn_choice``,
``segmentation.churn.rechoose_every_days`` and ``refit_every_days``) and the clusters' k
(``models.cluster_choice``, ``segmentation.clusters.rechoose_every_days``). Each
is kept with the date it was made for, a hash of the config it was made with and a fingerprint
of the order history up to that date, and each is made again for the same reasons
(``redo_reason``): none stored, a cadence of 1, another config, as old as the cadence, made for
this same night (a rerun does what the night did, so its files come out identical) or after it,
or a history up to its date that is not the one it was made on (another data set, restated
orders). The two choices are small JSON documents (``write_kept`` / ``read_kept``); the models
are arrays (``.npz``, no pickle).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from features.asof import AsOf
from features.files import write_text_atomically

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cadence:
    """One kept piece of work's setting and the words its reasons use."""

    setting: str  # the config key of the cadence, e.g. "recommend.refit_every_days"
    config: str  # the config it depends on, e.g. "the recommend: config"
    kept: str  # what is kept, e.g. "the stored model"
    made: str  # how it came about, e.g. "fitted"
    again: str  # what a night does instead, e.g. "fits"
    every_night: str  # what a cadence of 1 does, e.g. "fitting every night"
    none_stored: str  # the reason when nothing is kept, e.g. "no stored production model"


@dataclass(frozen=True)
class KeptKey:
    """What kept work was made on: config hash, as-of date, history fingerprint."""

    config_hash: str
    as_of: date
    fingerprint: str

    def to_json(self) -> dict[str, str]:
        return {"config_hash": self.config_hash, "as_of": str(self.as_of), "fingerprint": self.fingerprint}

    @classmethod
    def from_json(cls, values: dict[str, str]) -> KeptKey:
        return cls(values["config_hash"], date.fromisoformat(values["as_of"]), values["fingerprint"])

    @property
    def label(self) -> str:
        """A short id for tags and logs: ``<as_of>/<config hash>/<8 hex of the fingerprint>``."""
        history = hashlib.sha256(self.fingerprint.encode()).hexdigest()[:8]
        return f"{self.as_of}/{self.config_hash}/{history}"


def redo_reason(
    cadence: Cadence,
    every_days: int,
    kept: KeptKey | None,
    config_hash: str,
    tonight: AsOf | date,
    fingerprint_at: Callable[[date], str],
    same_kind: bool = True,
) -> str | None:
    """Why tonight must make the kept work again, or None when it serves.

    ``kept``: what the kept work was made on (None: nothing kept); ``config_hash``: tonight's
    config's; ``same_kind``: False when the kept work is of another configured kind (a changed
    config too). ``fingerprint_at(day)``: tonight's history fingerprint up to ``day``
    (``features.interactions.history_fingerprint``), asked only when every other check passed.
    """
    if every_days <= 1:
        return f"{cadence.setting} is 1: {cadence.every_night}"
    if kept is None:
        return cadence.none_stored
    made, day = f"{cadence.kept} was {cadence.made}", kept.as_of
    if kept.config_hash != config_hash or not same_kind:
        hashes = f"config hash {kept.config_hash} -> {config_hash}"
        return f"{cadence.config} changed since {made} as of {day} ({hashes})"
    age = (AsOf.of(tonight).date - day).days
    if age < 0:
        return f"{made} as of {day}, after tonight's {AsOf.of(tonight).date}: it saw later data"
    if age == 0:
        return f"{made} for this same night ({day}): a rerun {cadence.again} again"
    if age >= every_days:
        return f"{cadence.kept} is {age} days old ({cadence.setting}: {every_days})"
    if fingerprint_at(day) != kept.fingerprint:
        return (
            f"tonight's order history up to {day} is not the one {made} on "
            "(another data set, or restated orders)"
        )
    return None


def write_kept(path: Path, version: int, key: KeptKey, body: dict[str, Any]) -> Path:
    """Store a kept choice at ``path``: ``body`` with its format ``version`` and ``key``, one JSON
    document replaced whole (written beside it, then moved into place)."""
    document = {**body, "format": version, "key": key.to_json()}
    return write_text_atomically(path, json.dumps(document, indent=1, sort_keys=True) + "\n")


def read_kept(path: Path, version: int, what: str) -> tuple[KeptKey, dict[str, Any]] | None:
    """The key and document of the choice stored at ``path`` (``write_kept``); None when there is
    none, or when it cannot be read or is of another format (logged, naming ``what``): the night
    then makes the choice again and stores a new one."""
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("format") != version:
            raise ValueError(f"format {document.get('format')!r}, this version reads {version}")
        return KeptKey.from_json(document["key"]), document
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        logger.warning("%s: the stored %s cannot be read (%s); choosing again", path, what, error)
        return None
