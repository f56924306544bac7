"""Benchmark of the backend loader: build time, load time, memory and ``recommend`` latency at scale.

Run from the repository root::

    python benchmarks/bench_loader.py                       # 1M consumers x top-50, 100k products
    python benchmarks/bench_loader.py --consumers 100000    # smaller

It builds a synthetic but valid artifact with ``artifact.writer.write_artifact`` (every
consumer gets ``--length`` distinct random products, ranked; every distributor a list and
a community fallback; every product ``--length`` similar products; a global list), then, in
a fresh child process pinned to one CPU core (``sched_setaffinity``), loads it with
``artifact.loader.load`` (checksums verified) and times ``--queries`` calls of
``recommend(consumer_id, k, exclude=...)`` one by one: 90% known consumers, 10% unknown ids
(fallback path), each excluding ``--exclude`` random products. Reported: percentiles of the
per-call latency, load time with and without checksum verification, and resident memory.
The artifact goes to a temporary directory unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consumers", type=int, default=1_000_000)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--distributors", type=int, default=3_000)
    parser.add_argument("--length", type=int, default=50, help="List length per consumer / product.")
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--exclude", type=int, default=5, help="Products excluded per query.")
    parser.add_argument("--out", type=Path, default=None, help="Artifact directory (default: temporary).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def ranked_lists(owner: str, owners: pd.Index, products: pd.Index, length: int, seed: int) -> pd.DataFrame:
    """``length`` distinct random products per owner, ranked 1..length, owner and product as categoricals."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_owners, n_products = len(owners), len(products)
    start = rng.integers(0, n_products, n_owners)
    stride = rng.integers(1, max(n_products // length, 2), n_owners)
    steps = np.arange(length)
    items = (start[:, None] + stride[:, None] * steps[None, :]) % n_products  # distinct: stride*length < P
    scores = np.sort(rng.random((n_owners, length), dtype=np.float32), axis=1)[:, ::-1]
    codes = np.repeat(np.arange(n_owners, dtype=np.int32), length)
    return pd.DataFrame(
        {
            owner: pd.Categorical.from_codes(codes, categories=owners),
            "product_id": pd.Categorical.from_codes(items.ravel().astype(np.int32), categories=products),
            "rank": np.tile(steps + 1, n_owners).astype(np.int32),
            "score": scores.ravel(),
        }
    )


def build(args: argparse.Namespace, out_dir: Path) -> dict[str, float]:
    """Write the synthetic artifact; return build seconds and the process's peak RSS (GiB)."""
    import pandas as pd

    from artifact.writer import write_artifact

    consumers = pd.Index([f"C{i:08d}" for i in range(args.consumers)])
    products = pd.Index([f"P{i:07d}" for i in range(args.products)])
    distributors = pd.Index([f"D{i:05d}" for i in range(args.distributors)])
    began = time.perf_counter()
    consumer_lists = ranked_lists("consumer_id", consumers, products, args.length, args.seed)
    distributor_lists = ranked_lists("distributor_id", distributors, products, args.length, args.seed + 1)
    similar = ranked_lists("product_id", products, products, args.length, args.seed + 2)
    similar = similar.rename(columns={"product_id": "similar_product_id"}).assign(
        product_id=pd.Categorical.from_codes(
            np.repeat(np.arange(args.products, dtype=np.int32), args.length), categories=products
        )
    )
    community = ranked_lists("distributor_id", distributors, products, args.length, args.seed + 3)
    global_list = ranked_lists("distributor_id", pd.Index(["global"]), products, 200, args.seed + 4)
    fallback = pd.concat(
        [community.astype({"distributor_id": object, "product_id": object}),
         global_list.astype({"product_id": object}).assign(distributor_id=None)],
        ignore_index=True,
    )  # fmt: skip
    rng = np.random.default_rng(args.seed + 5)
    homes = pd.DataFrame(
        {
            "consumer_id": consumers,
            "distributor_id": pd.Categorical.from_codes(
                rng.integers(0, args.distributors, args.consumers).astype(np.int32), categories=distributors
            ),
        }
    )
    frames_seconds = time.perf_counter() - began
    began = time.perf_counter()
    write_artifact(
        out_dir, consumer_lists, distributor_lists, similar, fallback, homes, {"as_of": "synthetic"}
    )
    return {
        "frames_s": round(frames_seconds, 2),
        "write_artifact_s": round(time.perf_counter() - began, 2),
        "build_peak_rss_gib": round(_peak_rss_gib(), 2),
        "artifact_mib": round(sum(p.stat().st_size for p in out_dir.iterdir()) / 2**20, 1),
    }


def measure(args: argparse.Namespace, artifact: Path) -> dict[str, float]:
    """In this (child) process, pinned to one core: load times, memory and recommend latency."""
    from artifact.loader import load

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rss_before = _rss_gib()
    began = time.perf_counter()
    recommender = load(artifact)  # verifies every checksum
    load_seconds = time.perf_counter() - began
    rss_loaded = _rss_gib()
    began = time.perf_counter()
    load(artifact, verify=False)
    unverified_seconds = time.perf_counter() - began
    rng = np.random.default_rng(args.seed + 6)
    known = rng.integers(0, args.consumers, args.queries)
    ids = [f"C{i:08d}" if rng.random() < 0.9 else f"X{i:08d}" for i in known]
    excludes = [
        {f"P{j:07d}" for j in rng.integers(0, args.products, args.exclude)} for _ in range(args.queries)
    ]
    for consumer_id in ids[:1000]:  # warm-up
        recommender.recommend(consumer_id, args.k)
    latencies = np.empty(args.queries)
    short = 0
    for n, (consumer_id, exclude) in enumerate(zip(ids, excludes, strict=True)):
        began_ns = time.perf_counter_ns()
        picks = recommender.recommend(consumer_id, args.k, exclude=exclude)
        latencies[n] = (time.perf_counter_ns() - began_ns) / 1e6
        short += len(picks) < args.k
    return {
        "load_verified_s": round(load_seconds, 2),
        "load_unverified_s": round(unverified_seconds, 2),
        "rss_before_load_gib": round(rss_before, 3),
        "rss_after_load_gib": round(rss_loaded, 3),
        "peak_rss_gib": round(_peak_rss_gib(), 3),
        "queries": args.queries,
        "lists_shorter_than_k": int(short),
        "p50_ms": round(float(np.percentile(latencies, 50)), 4),
        "p90_ms": round(float(np.percentile(latencies, 90)), 4),
        "p99_ms": round(float(np.percentile(latencies, 99)), 4),
        "p999_ms": round(float(np.percentile(latencies, 99.9)), 4),
        "max_ms": round(float(latencies.max()), 4),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
    }


def _rss_gib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def _peak_rss_gib() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it does not carry over an exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    if args.child is not None:
        print(json.dumps(measure(args, args.child)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as scratch:
        artifact = args.out or Path(scratch) / "artifact"
        built = build(args, artifact)
        print(json.dumps({"build": built}, indent=2), flush=True)
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                *(argv if argv is not None else sys.argv[1:]),
                "--child",
                str(artifact),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        print(json.dumps({"serve": json.loads(child.stdout.strip().splitlines()[-1])}, indent=2))
        print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
