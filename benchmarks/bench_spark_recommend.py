"""A reuse night's recommend step on Spark: what the driver holds for it, and how long it takes.

    python benchmarks/bench_spark_scoring.py --data /tmp/data/sim10m --work W --prepare
    python benchmarks/bench_spark_recommend.py --work W --store
    python benchmarks/bench_spark_recommend.py --work W [--master local[2]] [--driver-memory 4g]

``--store`` writes the model ``bench_spark_scoring.py --prepare`` fitted (``configs/nightly.yaml``'s
production model, on DuckDB) as the model store does (``write_stored``: its product-level state
only), so that loading it costs the run nothing. A run then does what a night that reuses the
stored model does on Spark (``engine.kind: spark``), in one process: start the session, build
tonight's interaction data on the driver (``night_data``), carry the stored model onto them, and
write every list (``run_recommend``: the quality gate's alerts, filters, fallback lists and trend,
the scoring pass as Spark tasks, similar items). It prints each stage's wall time, the peak RSS
of this process alone (``ru_maxrss``: the driver) and the peak summed RSS of the process tree
(the JVM and the Python workers too, sampled every 0.2 s), the interaction data's shape and
whether it holds every consumer's rows, and a digest of each list file (equal digests: equal
bytes). It runs with any checkout on ``PYTHONPATH`` since session 28's (``night_data`` takes the
model to be carried only since session 29; an older one is called without it).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import logging
import os
import resource
import time
from pathlib import Path

from bench_spark_features import PeakMemory  # (run as a file: its folder is on the path)

from features.asof import AsOf
from features.catalog import StepFile
from features.spark_engine import SparkConfig, SparkConnection, spark_session
from models.recommenders import Recommender
from models.recommenders.base import registered_models
from models.recommenders.store import CarriedEvaluation, ModelKey, StoredModel, read_stored, write_stored
from pipelines.config import load_config
from pipelines.steps.recommend import night_data, run_recommend

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "nightly.yaml"
LISTS = (
    StepFile.CONSUMER_LISTS,
    StepFile.DISTRIBUTOR_LISTS,
    StepFile.OUTREACH,
    StepFile.SIMILAR_ITEMS,
    StepFile.FALLBACK_COMMUNITY,
    StepFile.FALLBACK_GLOBAL,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="bench_spark_scoring.py --prepare's folder")
    parser.add_argument("--store", action="store_true", help="Write the prepared model as a stored model.")
    parser.add_argument("--out", default="lists_night", help="Folder under --work for the lists.")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(CONFIG)
    state = json.loads((args.work / "state.json").read_text())
    as_of = AsOf.of(state["as_of"])
    if args.store:
        model = Recommender.load(args.work / "model")
        key = ModelKey("benchmark", as_of.date, "benchmark")
        write_stored(
            args.work / "stored", StoredModel.of("ranker", model, key, CarriedEvaluation({}, 0.0, None, ""))
        )
        print(f"stored {model.name} ({len(model.data_.product_ids)} products) under {args.work / 'stored'}")
        return
    clean_paths = {name: Path(path) for name, path in state["clean_paths"].items()}
    stored = read_stored(args.work / "stored")
    if stored is None:
        raise SystemExit(f"{args.work / 'stored'}: no stored model; run with --store first")
    recipe = registered_models()[stored.kind](**stored.params)
    takes_model = len(inspect.signature(night_data).parameters) > 3
    out = args.work / args.out
    load_before = os.getloadavg()
    stages: dict[str, float] = {}
    with PeakMemory() as memory:
        began = time.perf_counter()
        with spark_session(
            SparkConfig(master=args.master, driver_memory=args.driver_memory), args.work
        ) as spark:
            stages["spark session"] = time.perf_counter() - began
            con = SparkConnection(spark, clean_paths, spill_dir=args.work)
            started = time.perf_counter()
            interactions = config.recommend.interactions
            data = (
                night_data(con, as_of, interactions, recipe)
                if takes_model
                else night_data(con, as_of, interactions)
            )
            stages["interaction data"] = time.perf_counter() - started
            started = time.perf_counter()
            model = stored.carried_onto(data)
            stages["carry stored model"] = time.perf_counter() - started
            started = time.perf_counter()
            outcome = run_recommend(clean_paths, as_of, config, out, con=con, data=data, model=model)
            stages["lists (run_recommend)"] = time.perf_counter() - started
        wall = time.perf_counter() - began
    with_rows = int((data.matrix.getnnz(axis=1) > 0).sum())
    partial = getattr(data, "partial", False)
    print(
        f"interaction data: {data.shape[0]} consumers ({with_rows} with rows), {data.shape[1]} products, ",
        end="",
    )
    print(f"{data.matrix.nnz} positive pairs; partial: {partial}")
    print("stages: " + ", ".join(f"{stage} {seconds:.1f}s" for stage, seconds in stages.items()))
    print(f"wall {wall:.1f}s; {outcome.consumers} consumers listed")
    driver = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux
    print(f"peak RSS, this process (the driver): {driver:.2f} GiB")
    print(f"peak RSS, process tree (driver, JVM, Python workers): {memory.peak / 1024**3:.2f} GiB")
    print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}")
    for name in LISTS:
        digest = hashlib.sha256((out / name).read_bytes()).hexdigest()[:12]
        print(f"{name}: {(out / name).stat().st_size / 1e6:.1f} MB, sha256 {digest}")


if __name__ == "__main__":
    main()
