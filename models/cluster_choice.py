"""The clusters' k kept between nights (``segmentation.clusters.rechoose_every_days``).

Choosing k fits KMeans for every k in ``[k_min, k_max]`` and scores each by silhouette, most of
the clusters' time (1.7 s of 2.0 s on 60,000 buyers), and the best k changes slowly. A night
that chooses stores k and the silhouettes it was chosen on, with what it was made on
(``models.cadence.KeptKey``: a hash of the ``clusters`` config, the as-of date and a
fingerprint of the order history up to it); a later night fits KMeans for that k alone on
tonight's buyers (``BehaviourClusters.fit``'s ``k``), the same clusters a night that chose the
same k gets, unless ``models.cadence.redo_reason`` (with ``RECHOOSE_K``) names a reason to
choose again: the production model's and the churn choice's reasons.

On disk: one JSON file (``<work>/cluster_choice.json``), replaced whole. An unreadable file is a
choice not stored: the night chooses again and writes a new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from models.cadence import Cadence, KeptKey, read_kept, write_kept
from models.clusters import ClusterConfig

logger = logging.getLogger(__name__)

K_FORMAT = 1
K_FILE = "cluster_choice.json"  # its name in the nightly's work directory
_WHAT = "clusters' k"
_K = "k"  # vocabulary: a value, not a column


@dataclass(frozen=True)
class StoredK:
    key: KeptKey
    k: int
    silhouettes: dict[int, float]  # the silhouette of each k tried when k was chosen


def config_hash(clusters: ClusterConfig) -> str:
    """Hash of the settings k depends on: the ``clusters`` config but the cadence itself."""
    settings = clusters.model_dump(mode="json", exclude={"rechoose_every_days"})
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def write_k(path: Path, key: KeptKey, k: int, silhouettes: dict[int, float]) -> Path:
    """Store ``k`` chosen on ``key`` (by ``silhouettes``) at ``path``."""
    body = {_K: k, "silhouettes": {str(tried): value for tried, value in silhouettes.items()}}
    return write_kept(path, K_FORMAT, key, body)


def read_k(path: Path) -> StoredK | None:
    """The k stored at ``path``; None when there is none or it cannot be read (logged)."""
    kept = read_kept(path, K_FORMAT, _WHAT)
    if kept is None:
        return None
    key, document = kept
    try:
        k = int(document[_K])
        silhouettes = {int(tried): float(value) for tried, value in document["silhouettes"].items()}
        if k not in silhouettes:
            raise ValueError(f"k {k} is not among the k tried {sorted(silhouettes)}")
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        logger.warning("%s: the stored %s cannot be read (%s); choosing again", path, _WHAT, error)
        return None
    return StoredK(key, k, silhouettes)


RECHOOSE_K = Cadence(
    setting="segmentation.clusters.rechoose_every_days",
    config="the clusters config",
    kept="the stored k",
    made="chosen",
    again="chooses",
    every_night="choosing k every night",
    none_stored="no stored k",
)
