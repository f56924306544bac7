"""Speed of the production recommender at scale: fit + top-50 for every consumer (and distributor).

Run from the repository root on a contract data directory of Parquet files, e.g.::

    python benchmarks/bench_recommend.py --data /tmp/data/sim10m --as-of 2025-12-31 [--k 50]

Stages, each timed: interaction data as of the date (DuckDB over orders, events, complaints,
profiles); tuning the production ranker on the 30 days before the date (data as of date − 30,
its components fitted there, the logistic regression on up to 50,000 consumers of the window);
fitting it as of the date; top-``k`` for every consumer with history, batched and streamed
to a Parquet file, and the per-distributor lists of ``models.recommenders.distributors``
from the SAME scoring pass (each score block feeds both the consumer's top-k, through
``Recommender.recommend_from_block``, and the members' aggregation). Then the reference:
bare ``implicit`` ALS fit + ``recommend(N=k)`` for every consumer
on the same matrix (64 factors, ``--bare-iterations``, default implicit's 15; the ranker's own
ALS runs 8), and the ratio. Peak memory is the process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits

from features.asof import AsOf
from features.columns import Table
from features.engine import connect
from features.interactions import purchased_pairs
from models.recommenders import InteractionData, RankerRecommender, Recommender, ScoreBlock
from models.recommenders.training import build_data

CONSUMERS_PER_WRITE = 50_000


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Directory of contract Parquet files.")
    parser.add_argument("--as-of", type=AsOf.of, required=True, help="As-of date YYYY-MM-DD.")
    parser.add_argument("--k", type=int, default=50, help="Products per consumer.")
    parser.add_argument("--out", type=Path, default=None, help="Keep the lists here (default: temp dir).")
    parser.add_argument("--skip-bare", action="store_true", help="Skip the bare implicit reference.")
    parser.add_argument("--bare-iterations", type=int, default=15, help="ALS iterations of the reference.")
    return parser.parse_args(argv)


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


class Stopwatch:
    def __init__(self) -> None:
        self.stages: dict[str, float] = {}

    def run(self, name: str, step):
        began = time.perf_counter()
        result = step()
        self.stages[name] = time.perf_counter() - began
        print(f"{name:<42}{self.stages[name]:>9.1f}s   peak {_peak_gib():.2f} GiB", flush=True)
        return result


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    logging.basicConfig(level=logging.WARNING)
    tables = {t: args.data / f"{t}.parquet" for t in Table.ALL if (args.data / f"{t}.parquet").exists()}
    con = connect(tables, threads=2)
    print(f"load before: {os.getloadavg()}; 2 threads everywhere")
    clock = Stopwatch()
    data = clock.run("interaction data as of the date", lambda: build_data(con, args.as_of))
    print(f"  {data.shape[0]:,} consumers x {data.shape[1]:,} products, {data.matrix.nnz:,} pairs")
    ranker = RankerRecommender()
    start = args.as_of.days_before(ranker.validation_days)
    window = clock.run("tuning: data as of date - 30", lambda: build_data(con, start))
    truth = purchased_pairs(con, start, args.as_of)
    clock.run("tuning: components + ranker", partial(ranker.tune, window, truth))
    del window, truth
    clock.run("fit as of the date", lambda: ranker.fit(data))
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_recommend_"))
    lists = _ListWriter(ranker, args.k, out / "consumer_recommendations.parquet")
    distributors = clock.run("top-k per consumer + distributor lists", lambda: _one_pass(ranker, data, lists))
    print(f"  {lists.rows:,} consumer rows ({lists.consumers:,} consumers) in {lists.path}; {distributors}")
    ours = sum(clock.stages.values())
    print(f"{'total (ours)':<42}{ours:>9.1f}s")
    if not args.skip_bare:
        bare = clock.run(
            f"bare implicit ALS ({args.bare_iterations} it.) fit + recommend",
            lambda: _bare_implicit(data, args.k, args.bare_iterations),
        )
        print(f"ratio ours / bare implicit: {ours / bare:.1f}x")
    print(f"load after: {os.getloadavg()}")
    return 0


class _ListWriter:
    """Streams consumer lists made from score blocks into one Parquet file."""

    def __init__(self, model: Recommender, k: int, path: Path) -> None:
        self.model, self.k, self.path = model, k, path
        self.writer: pq.ParquetWriter | None = None
        self.rows = self.consumers = 0

    def add(self, block: ScoreBlock) -> None:
        lists = self.model.recommend_from_block(block, self.k)
        table = pa.Table.from_pandas(lists, preserve_index=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = self.writer or pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table)
        self.rows += len(lists)
        self.consumers += lists["consumer_id"].nunique()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _ScoreOnce:
    """Hands the aggregation the model's score blocks and writes each block's lists on the way."""

    def __init__(self, model: Recommender, lists: _ListWriter) -> None:
        self.model, self.lists, self.data_ = model, lists, model.data_
        self.seen: set[str] = set()

    def score_blocks(self, consumer_ids, batch_size=None):
        for block in self.model.score_blocks(consumer_ids, batch_size):
            self.lists.add(block)
            self.seen.update(block.consumer_ids)
            yield block


def _one_pass(model: Recommender, data: InteractionData, lists: _ListWriter) -> str:
    """Consumer lists and distributor lists from one scoring pass over every consumer."""
    import pandas as pd

    from models.recommenders.base import RecommendFilters
    from models.recommenders.distributors import (
        aggregate_members,
        community_signals,
        distributor_lists,
        member_weights,
    )
    from models.recommenders.list_config import ListsConfig

    config = ListsConfig()
    homes = data.consumer_profiles["home_distributor_id"].dropna().astype(str)
    distributor_ids = pd.Index(sorted(homes.unique()))
    weights = member_weights(data, config)
    filters = RecommendFilters()
    once = _ScoreOnce(model, lists)
    aggregated = aggregate_members(once, homes, weights, distributor_ids, filters, config)
    rest = data.consumer_ids[~data.consumer_ids.isin(list(once.seen))]
    for block in model.score_blocks(rest):  # consumers without a home distributor
        lists.add(block)
    lists.close()
    signals = community_signals(data, homes, distributor_ids, config)
    pushed = distributor_lists(aggregated, signals, filters, config, data.product_attribute("category"))
    return f"{pushed['distributor_id'].nunique():,} distributors, {len(pushed):,} rows"


def _bare_implicit(data: InteractionData, k: int, iterations: int = 15) -> float:
    from implicit.cpu.als import AlternatingLeastSquares

    began = time.perf_counter()
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=64, regularization=0.05, alpha=10.0, iterations=iterations, random_state=42, num_threads=2
        )
        model.fit(data.matrix, show_progress=False)
        users = np.arange(data.shape[0])
        for start in range(0, len(users), CONSUMERS_PER_WRITE):
            batch = users[start : start + CONSUMERS_PER_WRITE]
            model.recommend(batch, data.matrix[batch], N=k, filter_already_liked_items=False)
    return time.perf_counter() - began


if __name__ == "__main__":
    sys.exit(main())
