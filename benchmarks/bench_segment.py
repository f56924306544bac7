"""Benchmark of segmentation without CLV: wall time per stage, peak memory, ratio to one orders scan.

Run from the repository root on a contract data directory of Parquet files, e.g.::

    python benchmarks/bench_segment.py --data /tmp/data/sim10m --as-of 2025-12-31

It times one DuckDB scan of the orders file (``count(*)`` and ``sum(quantity x unit_price)``,
and one that reads every column: the floor any feature pass has to pay), then the whole
segmentation step with CLV switched off (features, RFM, member tiers, clusters, distributor
tiers, tags and every export) on the files as they are: validation is a separate step and
not part of this measurement. Outputs go to a temporary directory unless ``--out`` is given.
Peak memory is the process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from features.columns import Table
from features.engine import connect
from features.sql import render
from models.segmentation import SegmentationConfig
from pipelines.steps.segment import run_segmentation


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Directory of contract Parquet files.")
    parser.add_argument("--as-of", type=date.fromisoformat, required=True, help="As-of date YYYY-MM-DD.")
    parser.add_argument("--out", type=Path, default=None, help="Keep the outputs here (default: temp dir).")
    parser.add_argument("--verbose", action="store_true", help="Log each stage.")
    return parser.parse_args(argv)


SCANS = {
    "sum": "SELECT count(*), sum({quantity} * {unit_price}) FROM {orders}",
    "all columns": (
        "SELECT count(*), max({order_id}), max({consumer_id}), max({distributor_id}), max({product_id}), "
        "sum({quantity} * {unit_price}), max({ordered_at}), max({status}) FROM {orders}"
    ),
}


def scan_orders(paths: dict[str, Path], sql: str) -> tuple[float, int]:
    """Seconds for one full scan of the orders file, and its line count."""
    con = connect({Table.ORDERS: paths[Table.ORDERS]})
    began = time.perf_counter()
    found = con.execute(render(sql)).fetchone()
    seconds = time.perf_counter() - began
    con.close()
    return seconds, int(found[0]) if found else 0


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    paths = {table: args.data / f"{table}.parquet" for table in Table.ALL}
    paths = {table: path for table, path in paths.items() if path.exists()}
    settings = SegmentationConfig.model_validate({"clv": {"enabled": False}})
    scans = {name: scan_orders(paths, sql)[0] for name, sql in SCANS.items()}
    lines = scan_orders(paths, SCANS["sum"])[1]
    with tempfile.TemporaryDirectory(prefix="bench_segment_") as scratch:
        out = args.out or Path(scratch)
        began, cpu_began = time.perf_counter(), time.process_time()
        outcome = run_segmentation(paths, args.as_of, settings, out, None)
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    scans = {name: min(seconds, scan_orders(paths, SCANS[name])[0]) for name, seconds in scans.items()}
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"data          {args.data} as of {args.as_of}: {lines:,} order lines")
    print(f"consumers     {outcome.consumers:,} ({outcome.buyers:,} buyers); clusters k={outcome.clusters}")
    for name, seconds in scans.items():
        print(f"orders scan   {seconds:.2f} s ({name}; best of one run before and one after)")
    for stage, seconds in outcome.seconds.items():
        print(f"  {stage:<32}{seconds:7.1f} s")
    ratios = ", ".join(f"{wall / seconds:.0f} x the {name} scan" for name, seconds in scans.items())
    print(f"segmentation  {wall:.1f} s = {ratios}")
    print(f"CPU time      {cpu:.1f} s (user + system, all threads; robust to other load)")
    print(f"peak RSS      {peak_kib:,} KiB ({peak_kib / 2**20:.2f} GiB)")
    print(f"cores         {os.cpu_count()}; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
