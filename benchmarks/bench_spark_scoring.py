"""The scoring pass on the driver vs on Spark (``mapInPandas``): wall, peak memory, per-part throughput.

    python benchmarks/bench_spark_scoring.py --data /tmp/data/sim100k --work /tmp/x --prepare
    python benchmarks/bench_spark_scoring.py --data /tmp/data/sim100k --work /tmp/x --engine duckdb
    python benchmarks/bench_spark_scoring.py --data /tmp/data/sim100k --work /tmp/x --engine spark \\
        [--master local[2]] [--driver-memory 4g] [--partitions N]

``--prepare`` validates the data (as of its latest order), fits the production model
(``configs/nightly.yaml``'s ``recommend:``) and saves it under ``--work`` (``Recommender.save``),
so that both engines score the same model. Each run (one process per engine, so that the memory
figures do not mix) loads it, builds the pass's inputs on DuckDB as the recommend step does
(filters with the quality gate's alerts, fallback lists, homes) and times the pass alone:
``list_pass`` + ``write_chunks`` on the driver, or ``spark_list_pass`` (plus the session's start,
timed apart). It prints the pass's wall time, the peak summed RSS of this process and its
children (the JVM and the Python workers) sampled every 0.2 s, each part's consumers per second,
the load average, and a digest of the three list files (equal digests: equal bytes).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import pandas as pd
from bench_spark_features import PeakMemory  # (run as a file: its folder is on the path)
from threadpoolctl import threadpool_limits

from features.asof import AsOf
from features.catalog import StepFile
from features.columns import Table
from features.engine import connect
from features.interactions import build_interactions, interactions_query, keep_interactions
from features.messages import Messages
from features.popularity import NightRows
from features.spark_engine import SparkConfig, SparkConnection, spark_session
from models.recommenders import Recommender
from models.recommenders.distributors import Trend, decayed_spend
from models.recommenders.fallback import PopularityCounts, build_fallback_lists
from models.recommenders.filters import build_filters
from models.recommenders.lists import home_distributors
from models.recommenders.scoring_pass import LIST_SCHEMAS, PassOrder, PassPlan, list_pass, write_chunks
from models.recommenders.spark_scoring import (
    PartInputs,
    ScoringInputs,
    _merge_parts,
    consumers_per_second,
    part_folder,
    part_targets,
    spark_list_pass,
)
from models.recommenders.training import build_data, fit_production
from pipelines.config import load_config
from pipelines.steps.quality import grade_products
from pipelines.steps.validate import load_and_validate

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "nightly.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--prepare", action="store_true")
    parser.add_argument("--engine", choices=["duckdb", "spark", "parts"], default="duckdb")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--partitions", type=int, default=None)
    parser.add_argument("--max-gib", type=float, default=None, help="Stop when the process tree passes it.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(CONFIG)
    if args.prepare:
        with PeakMemory(limit_gib=args.max_gib) as memory:
            _prepare(args.data, args.work, config)
        print(f"prepare peak {memory.peak / 1024**3:.2f} GiB")
        return
    state = json.loads((args.work / "state.json").read_text())
    as_of = AsOf.of(state["as_of"])
    checked_paths = {name: Path(path) for name, path in state["clean_paths"].items()}
    con = connect(checked_paths)
    started = time.perf_counter()
    model = Recommender.load(args.work / "model")
    data = model.data_
    lists = config.lists
    k = config.recommend.k
    products = con.execute(f'SELECT * FROM "{Table.PRODUCTS}"').df()
    alerts = grade_products(con, as_of, config.quality).alerts
    filters = build_filters(products, as_of, lists, alerts, config.quality)
    homes = home_distributors(data)
    rows = NightRows.of(con, as_of, config.recommend.interactions)  # counted by DuckDB, as the nightly does
    counts = PopularityCounts.of(con, rows, lists.fallback_window_days, lists.trend_days)
    fallback = build_fallback_lists(counts, filters, depth=3 * k)
    trend = Trend.of_counts(counts, data.product_ids, lists)
    spend = (
        decayed_spend(con, as_of, lists.member_half_life_days) if lists.member_weighting == "spend" else None
    )
    listed = set(
        con.execute(f'SELECT distributor_id FROM "{Table.DISTRIBUTORS}"').df().iloc[:, 0].astype(str)
    )
    print(f"inputs: {time.perf_counter() - started:.1f}s; {len(homes)} consumers, {data.shape[1]} products")
    out = args.work / f"lists_{args.engine}"
    targets = {name: out / name for name in LIST_SCHEMAS}
    load_before = os.getloadavg()
    if args.engine == "duckdb":
        with PeakMemory(limit_gib=args.max_gib) as memory:
            started = time.perf_counter()
            chunks = list_pass(
                model,
                data,
                homes,
                k,
                fallback,
                filters,
                lists,
                listed,
                spend,
                Messages.load(config.locale),
                trend,
            )
            written = write_chunks(chunks, targets)
            wall = time.perf_counter() - started
        rate = written.consumers / wall
        print(f"driver pass: {wall:.1f}s, {rate:.0f} consumers/s, peak {memory.peak / 1024**3:.2f} GiB")
    elif args.engine == "parts":
        plan = PassPlan.of(PassOrder.of(homes, listed), data, lists.batch_size)
        inputs = ScoringInputs(
            model, plan, homes, k, fallback, filters, lists, spend, config.locale, as_of.date, trend
        )
        rows = build_interactions(con, as_of, config.recommend.interactions, ordered=False)
        _parts_alone(inputs, rows, args.work, args.partitions or 4, targets, args.max_gib)
    else:
        spark_config = SparkConfig(master=args.master, driver_memory=args.driver_memory)
        with PeakMemory(limit_gib=args.max_gib) as memory:
            opened = time.perf_counter()
            with spark_session(spark_config, args.work) as spark:
                print(f"spark session: {time.perf_counter() - opened:.1f}s")
                plan = PassPlan.of(PassOrder.of(homes, listed), data, lists.batch_size)
                inputs = ScoringInputs(
                    model, plan, homes, k, fallback, filters, lists, spend, config.locale, as_of.date, trend
                )
                tables = SparkConnection(spark, checked_paths, spill_dir=args.work)
                # as the night's night_data does before building the driver's interaction data
                kept = time.perf_counter()
                keep_interactions(tables, as_of, config.recommend.interactions)
                print(f"interaction rows kept (aggregated and written): {time.perf_counter() - kept:.1f}s")
                started = time.perf_counter()  # the pass: its plan, inputs, rows by part, tasks, merge
                sql, params = interactions_query(tables, as_of, config.recommend.interactions, ordered=False)
                rows = tables.execute(sql, params).frame()
                result = spark_list_pass(spark, inputs, rows, targets, args.work, args.partitions)
                wall = time.perf_counter() - started
        print(result.parts.to_string(index=False))
        print("stages: " + ", ".join(f"{stage} {sec:.1f}s" for stage, sec in result.stages.items()))
        print(f"spark pass: {wall:.1f}s ({len(result.parts)} parts), {len(homes) / wall:.0f} consumers/s")
        print(f"per part (mean): {consumers_per_second(result):.0f} consumers/s")
        print(f"peak {memory.peak / 1024**3:.2f} GiB (process tree: driver, JVM, Python workers)")
    print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}")
    for name in (StepFile.CONSUMER_LISTS, StepFile.DISTRIBUTOR_LISTS, StepFile.OUTREACH):
        digest = hashlib.sha256(targets[name].read_bytes()).hexdigest()[:12]
        print(f"{name}: {targets[name].stat().st_size / 1e6:.1f} MB, sha256 {digest}")


def _parts_alone(
    inputs: ScoringInputs,
    rows: pd.DataFrame,
    work: Path,
    n: int,
    targets: dict[str, Path],
    max_gib: float | None,
) -> None:
    """A Spark task's work without Spark: the product-level model and each part's inputs saved
    (as ``spark_list_pass`` saves them), then each part loaded back with its own consumers' rows
    (as a worker loads its part) and its pass and part files run in turn, with BLAS on one thread
    (one core)."""
    parts = inputs.plan.parts(n)
    started = time.perf_counter()
    inputs.product_model().save(work / "inputs" / "product_model")
    for index, part in enumerate(inputs.parts(parts)):
        part.save(part_folder(work / "inputs", index))
    print(f"{len(parts)} parts' inputs saved: {time.perf_counter() - started:.1f}s")
    del inputs
    gc.collect()
    with PeakMemory(limit_gib=max_gib) as memory, threadpool_limits(1, "blas"):
        for index in range(len(parts)):
            began = time.perf_counter()
            loaded = PartInputs.load(part_folder(work / "inputs", index))
            own = rows[rows["consumer_id"].isin(loaded.plan.order.consumer_ids)]
            model = loaded.model(Recommender.load(work / "inputs" / "product_model"), own)
            load_seconds = time.perf_counter() - began
            written = write_chunks(loaded.chunks(model), part_targets(work / "parts", index))
            del loaded, model, own
            seconds = time.perf_counter() - began
            rate = written.consumers / seconds
            print(
                f"part {index}: {written.consumers} consumers in {seconds:.1f}s "
                f"({load_seconds:.1f}s loading and extending the model), {rate:.0f}/s"
            )
        _merge_parts(work / "parts", len(parts), targets)
    print(f"parts alone: peak {memory.peak / 1024**3:.2f} GiB")


def _prepare(data_dir: Path, work: Path, config: object) -> None:
    started = time.perf_counter()
    checked = load_and_validate(data_dir, None, config, work / "validated")
    con = connect(checked.clean_paths)
    as_of = AsOf.of(checked.as_of)
    data = build_data(con, as_of, config.recommend.interactions)
    model = fit_production(con, as_of, config.recommend, data=data)
    model.save(work / "model")
    state = {"as_of": str(checked.as_of), "clean_paths": {k: str(v) for k, v in checked.clean_paths.items()}}
    (work / "state.json").write_text(json.dumps(state))
    print(f"prepared in {time.perf_counter() - started:.1f}s: {model.name} on {data.shape}")


if __name__ == "__main__":
    main()
