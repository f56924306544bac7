"""One feature builder on one engine: wall time and peak memory (issue #11).

    python benchmarks/bench_spark_features.py --data /tmp/data/sim100k --engine spark \\
        [--builder consumer_features] [--master local[2]] [--driver-memory 4g] [--work /tmp/x]
        [--max-gib 1.9] [--repeat 2]

Run it once per engine (one process each, so that the memory figures do not mix). It opens the
engine on the data folder's Parquet tables (DuckDB: ``features.engine.connect``; Spark:
``spark_session`` + ``SparkConnection``), runs the builder as of the latest order's date and
prints the time to open the engine, the builder's time (each of ``--repeat`` runs: the first
carries Spark's warm-up), the rows it returned, and the peak
resident memory of this process **and its children** (the Spark JVM is one), sampled every 0.2 s,
with the load average (the machine may be shared).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psutil

from features import clv, interactions, quality_counts
from features.asof import AsOf
from features.columns import Table
from features.consumer_features import consumer_features
from features.distributor_features import distributor_features
from features.engine import connect
from features.spark_engine import SparkConfig, SparkConnection, spark_session

BUILDERS: dict[str, Callable[[object, AsOf], pd.DataFrame]] = {
    "consumer_features": lambda con, day: consumer_features(con, day),
    "distributor_features": lambda con, day: distributor_features(con, day),
    "btyd_summary": lambda con, day: clv.btyd_summary(con, day),
    "quality_counts": lambda con, day: quality_counts.complaint_counts(con, day, 30, 7),
    "interactions": lambda con, day: interactions.build_interactions(con, day),
}


class PeakMemory:
    """Peak summed RSS of this process and all its descendants, sampled on a thread."""

    def __init__(self, every: float = 0.2, limit_gib: float | None = None) -> None:
        self.peak = 0
        self._every = every
        self._limit = limit_gib * 1024**3 if limit_gib else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            if self._limit is not None and total > self._limit:
                print(f"process tree at {total / 1024**3:.2f} GiB, over --max-gib: stopping", flush=True)
                for child in me.children(recursive=True):
                    child.kill()
                os._exit(3)
            self._stop.wait(self._every)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--engine", choices=("duckdb", "spark"), required=True)
    parser.add_argument("--builder", choices=sorted(BUILDERS), default="consumer_features")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_spark_features"))
    parser.add_argument("--repeat", type=int, default=1, help="run the builder this many times (warm runs)")
    parser.add_argument(
        "--max-gib", type=float, default=None, help="stop the run when the process tree passes this many GiB"
    )
    args = parser.parse_args()
    tables = {
        name: args.data / f"{name}.parquet" for name in Table.ALL if (args.data / f"{name}.parquet").exists()
    }
    with PeakMemory(limit_gib=args.max_gib) as memory:
        started = time.perf_counter()
        if args.engine == "duckdb":
            con = connect(tables)
            frame = _run(con, args.builder, started, args.repeat)
        else:
            config = SparkConfig(
                master=args.master,
                driver_memory=args.driver_memory,
                shuffle_partitions=args.shuffle_partitions,
            )
            with spark_session(config, args.work) as spark:
                frame = _run(SparkConnection(spark, tables), args.builder, started, args.repeat)
    digest = hashlib.sha1(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()[
        :12
    ]
    print(f"rows {len(frame)}  frame digest {digest}")
    print(f"peak RSS (process tree) {memory.peak / 1024**3:.2f} GiB")
    print("load average " + " ".join(f"{value:.2f}" for value in os.getloadavg()))


def _run(con: object, builder: str, started: float, repeat: int) -> pd.DataFrame:
    day = AsOf(interactions.latest_activity(con).date())
    opened = time.perf_counter()
    print(f"engine open + latest date    {opened - started:7.1f} s   as of {day.date}")
    frame = pd.DataFrame()
    for run in range(repeat):
        started_run = time.perf_counter()
        frame = BUILDERS[builder](con, day)
        print(f"{builder:<28} {time.perf_counter() - started_run:7.1f} s   run {run + 1} of {repeat}")
    return frame


if __name__ == "__main__":
    main()
