"""An earlier model's lists, rebuilt from its artifact for the ids of this run's lists.

When the new model loses the champion gate, the export keeps the champion's lists: every
consumer (or distributor) of this run's list file gets the champion's list of the same length,
from ``artifact.loader``, with the products to exclude left out; ``reason`` says where each
item came from (``champion: personal``, ``champion: community``, ...).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from artifact.loader import Recommender
from features.columns import Col
from features.files import write_parquet_atomically
from features.vocabulary import RecCol


def relist(champion: Recommender, lists_file: Path, exclude: set[str], out: Path) -> Path:
    """``lists_file`` (consumer or distributor lists) redone from the loaded artifact into ``out``."""
    owner = Col.CONSUMER_ID if Col.CONSUMER_ID in pq.read_schema(lists_file).names else Col.DISTRIBUTOR_ID
    lookup = champion.recommend if owner == Col.CONSUMER_ID else champion.for_distributor
    sizes = pd.read_parquet(lists_file, columns=[owner])[owner].value_counts(sort=False)
    rows = [
        (owner_id, pick.product_id, rank, pick.score, f"champion: {pick.source}")
        for owner_id, k in sorted(sizes.items())
        for rank, pick in enumerate(lookup(owner_id, int(k), exclude=exclude), start=1)
    ]
    frame = pd.DataFrame(rows, columns=[owner, Col.PRODUCT_ID, RecCol.RANK, RecCol.SCORE, RecCol.REASON])
    return write_parquet_atomically(frame.astype({RecCol.RANK: "int32", RecCol.SCORE: "float32"}), out)
