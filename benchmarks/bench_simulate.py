"""Benchmark of the data simulator: wall time and peak memory for a given size.

Run from the repository root, e.g. ``python benchmarks/bench_simulate.py --consumers 1000000`` for
about 10M order lines (the simulator writes ~10 lines per consumer and 365 days). The files go
to a temporary directory that is removed afterwards unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

from sources.simulator import SimulationConfig, simulate


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    defaults = SimulationConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consumers", type=int, default=defaults.consumers)
    parser.add_argument("--distributors", type=int, default=defaults.distributors)
    parser.add_argument("--products", type=int, default=defaults.products)
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", type=Path, default=None, help="Keep the files here (default: temp dir).")
    parser.add_argument("--verbose", action="store_true", help="Log progress per chunk.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    config = SimulationConfig(
        consumers=args.consumers,
        distributors=args.distributors,
        products=args.products,
        days=args.days,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory(prefix="bench_simulate_") as scratch:
        out = args.out or Path(scratch)
        began = time.perf_counter()
        summary = simulate(out, config)
        wall = time.perf_counter() - began
        size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    sizes = {"consumers", "distributors", "products", "days", "seed"}
    print(f"config        {config.model_dump(include=sizes)}")
    print(f"order lines   {summary.order_lines:,}  ({summary.orders:,} orders)")
    print("rows          " + ", ".join(f"{table}={rows:,}" for table, rows in summary.rows.items()))
    print(f"wall seconds  {wall:.1f}")
    print(f"peak RSS      {peak_kib:,} KiB ({peak_kib / 2**20:.2f} GiB)")
    print(f"files         {size / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
