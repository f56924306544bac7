"""implicit's ALS against Spark MLlib's ALS (``spark_als``), the same hyper-parameters, on Online Retail II.

Run from the repository root on the data imported with ``siyu import online-retail``::

    python -m benchmarks.spark_als_online_retail --data /tmp/data/online_retail --kind spark_als [--json FILE]

The protocol of ``benchmarks/recommenders_online_retail.py`` (fold 1: cutoff = the last order
minus 30 days, distinct invoices per consumer-product, truth = products bought after the cutoff),
"all items" NDCG@10. No tuning: each setting below is fitted as given, by ``--kind`` (``als`` or
``spark_als``), one kind per process so that each process's peak memory (``/usr/bin/time -v``)
is its kind's. Issue 11 asks the two kinds to be within 0.01 NDCG@10 on every setting.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import pandas as pd

from benchmarks.recommenders_online_retail import PROTOCOL_INTERACTIONS
from features.engine import connect
from features.interactions import latest_activity
from features.vocabulary import MetricCol
from models.evaluation import Protocol, evaluate_models, make_task, rolling_folds
from models.recommenders.ranker import build_component

# ALSRecommender's defaults, the ranker's component (8 iterations) and heavier regularisation / alpha.
SETTINGS: dict[str, dict[str, object]] = {
    "default": {"factors": 64, "regularization": 0.05, "alpha": 10.0, "iterations": 15},
    "ranker component": {"factors": 64, "regularization": 0.05, "alpha": 10.0, "iterations": 8},
    "reg 0.1 alpha 40": {"factors": 64, "regularization": 0.1, "alpha": 40.0, "iterations": 15},
    "128 factors": {"factors": 128, "regularization": 0.01, "alpha": 10.0, "iterations": 15},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Online Retail II imported to the contract.")
    parser.add_argument("--kind", choices=["als", "spark_als"], required=True, help="Which ALS to fit.")
    parser.add_argument(
        "--settings", nargs="*", default=list(SETTINGS), help="Settings to run (names above)."
    )
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows as JSON.")
    parser.add_argument(
        "--one-session",
        action="store_true",
        help="spark_als: start one local[2] session first (fit times without the JVM's start).",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tables = {t: args.data / f"{t}.parquet" for t in ("orders", "products", "consumers")}
    con = connect({t: p for t, p in tables.items() if p.exists()})
    fold = rolling_folds(latest_activity(con), 1, 30, 30)[0]
    task = make_task(con, fold.test, PROTOCOL_INTERACTIONS)
    print(
        f"{args.kind}: {task.train.shape[0]} consumers x {task.train.shape[1]} products, "
        f"{task.train.matrix.nnz} pairs; {task.consumers} test consumers",
        flush=True,
    )
    rows = []
    with ExitStack() as stack:
        peak = stack.enter_context(_peak_rss())
        if args.one_session:
            stack.enter_context(_local_session(stack))
        for name in args.settings:
            rows.append(_run(args.kind, name, task))
    print(
        f"peak RSS, this process and its children (Spark's JVM) together: {peak[0] / 2**30:.2f} GiB; "
        f"load {os.getloadavg()[0]:.2f}"
    )
    if args.json:
        args.json.write_text(pd.DataFrame(rows).to_json(orient="records", indent=2) + "\n", encoding="utf-8")
    return 0


def _run(kind: str, name: str, task: object) -> dict[str, object]:
    """Fit and measure one setting; prints and returns its row."""
    model = build_component({"kind": kind, **SETTINGS[name]})
    began = time.perf_counter()
    table = evaluate_models({name: model}, task, 10, (Protocol.ALL_ITEMS,))
    row = {
        "kind": kind,
        "setting": name,
        **SETTINGS[name],
        "ndcg@10": float(table[MetricCol.NDCG].iloc[0]),
        "fit_s": float(table[MetricCol.FIT_SECONDS].iloc[0]),
        "wall_s": time.perf_counter() - began,
    }
    print(json.dumps(row), flush=True)
    return row


@contextmanager
def _peak_rss(every_s: float = 0.5) -> Iterator[list[int]]:
    """Samples the RSS of this process plus its descendants; ``[peak bytes]`` is filled in as it runs."""
    import psutil

    peak = [0]
    done = threading.Event()

    def sample() -> None:
        me = psutil.Process()
        while not done.wait(every_s):
            total = me.memory_info().rss
            for child in me.children(recursive=True):
                with suppress(psutil.Error):
                    total += child.memory_info().rss
            peak[0] = max(peak[0], total)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


@contextmanager
def _local_session(stack: ExitStack) -> Iterator[object]:
    """One local[2] Spark session for every fit (``--one-session``)."""
    from features.spark_engine import SparkConfig, spark_session

    work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="spark_als_bench_")))
    with spark_session(SparkConfig(master="local[2]", shuffle_partitions=2), work) as spark:
        yield spark


if __name__ == "__main__":
    raise SystemExit(main())
