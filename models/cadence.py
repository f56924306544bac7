"""Work a night keeps for later nights on a cadence: when a night must do it again.

Two pieces of the nightly are made on some nights and kept for the nights between: the
production model (``models.recommenders.store``, ``recommend.refit_every_days``) and the churn /
value models' choice (``models.churn_choice``, ``segmentation.churn.rechoose_every_days``). Both
are kept with the date they were made for, a hash of the config they were made with and a
fingerprint of the order history up to that date, and both are made again for the same reasons
(``redo_reason``): none stored, a cadence of 1, another config, as old as the cadence, made for
this same night (a rerun does what the night did, so its files come out identical) or after it,
or a history up to its date that is not the one it was made on (another data set, restated
orders).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from features.asof import AsOf


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
