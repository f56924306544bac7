"""How well the quality gate finds the simulator's planted defective products.

For each (consumers, seed) the benchmark simulates a year (``SimulationConfig`` defaults but
for size and seed; browse events are switched off: they are drawn after orders and
complaints from the same chunk streams, so the orders and complaints are byte-identical),
then runs the gate with the default ``QualityConfig`` as of every month end whose order
window lies inside the simulated year (11 dates), and compares the levels with
``truth/defective_products.csv``.

The unit is a product on an as-of date (a "product-month"). Truth set, the same rule for
both sides, and the gate's own volume rule:

- *with volume*: ``orders_30d >= min_orders`` (the gate's count of the matured window);
- recall: defective product-months with volume at level warning or pulled / all defective
  product-months with volume;
- false alarms: healthy product-months with volume at warning or pulled / all healthy
  product-months with volume.

Defective products below the volume rule are reported apart (the gate can only put them on
watch). Misses and false alarms are listed with their counts, rate, bound and threshold.

    python benchmarks/quality_gate.py --consumers 100000 300000 --seeds 1 2 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

import duckdb
import pandas as pd

from features.asof import AsOf
from features.columns import Col, Table
from features.engine import connect
from features.quality_counts import quality_counts, window_bounds
from models.quality import PULLED, WARNING, QualityCol, QualityConfig, QualityReport, assess
from sources.simulator import SimulationConfig, simulate

TRUTH_FILE = Path("truth") / "defective_products.csv"
DETAIL_COLUMNS = [
    "consumers",
    "seed",
    "as_of",
    Col.PRODUCT_ID,
    Col.CATEGORY,
    QualityCol.ORDERS_30D,
    QualityCol.COMPLAINTS_30D,
    QualityCol.COMPLAINT_RATE,
    QualityCol.RATE_LOWER_BOUND,
    QualityCol.THRESHOLD,
    QualityCol.LEVEL,
    "true_probability",
    "category_baseline",
]
VOLUME_BANDS = (1, 20, 50, 100, 200, 500)


def month_ends(first: date, last: date, config: QualityConfig) -> list[date]:
    """Month ends up to ``last`` whose order window starts on or after ``first``."""
    ends, day = [], first
    while day <= last:
        following = day + timedelta(days=1)
        month_end = following.month != day.month or day == last
        if (
            month_end
            and window_bounds(AsOf(day), config.window_days, config.maturity_days)[0].date() >= first
        ):
            ends.append(day)
        day = following
    return ends


def grade(con: duckdb.DuckDBPyConnection, as_of: AsOf, config: QualityConfig) -> QualityReport:
    """The gate as the quality step runs it: counts, then the rules."""
    return assess(quality_counts(con, as_of, config.window_days, config.maturity_days), as_of, config)


def graded_product_months(consumers: int, seed: int, products: int, config: QualityConfig) -> pd.DataFrame:
    """Every product on every as-of date of one simulated data set, with its level and truth."""
    simulation = SimulationConfig(consumers=consumers, products=products, seed=seed, events=False)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        summary = simulate(data, simulation)
        con = connect({t: data / f"{t}.parquet" for t in (Table.ORDERS, Table.PRODUCTS, Table.COMPLAINTS)})
        frames = [
            grade(con, AsOf(day), config).alerts.assign(as_of=day)
            for day in month_ends(simulation.start, summary.as_of, config)
        ]
        truth = pd.read_csv(data / TRUTH_FILE, dtype={Col.PRODUCT_ID: str})
        con.close()
    graded = pd.concat(frames, ignore_index=True).merge(
        truth[[Col.PRODUCT_ID, "complaint_probability", "category_baseline"]], on=Col.PRODUCT_ID, how="left"
    )
    return graded.rename(columns={"complaint_probability": "true_probability"}).assign(
        consumers=consumers,
        seed=seed,
        order_lines=summary.order_lines,
        defective=graded["complaint_probability"].notna(),
        flagged=graded[QualityCol.LEVEL].astype(str).isin([WARNING, PULLED]),
        with_volume=graded[QualityCol.ORDERS_30D] >= config.min_orders,
    )


def scores(graded: pd.DataFrame) -> dict[str, object]:
    """Recall and false alarms (counts and shares) of a set of graded product-months."""
    volume = graded[graded["with_volume"]]
    defective, healthy = volume[volume["defective"]], volume[~volume["defective"]]
    sold_below = graded[graded["defective"] & ~graded["with_volume"] & (graded[QualityCol.ORDERS_30D] > 0)]
    caught, alarms = int(defective["flagged"].sum()), int(healthy["flagged"].sum())
    return {
        "defective_with_volume": len(defective),
        "caught": caught,
        "recall": caught / len(defective) if len(defective) else float("nan"),
        "distinct_defective": len(defective[["consumers", "seed", Col.PRODUCT_ID]].drop_duplicates()),
        "healthy_with_volume": len(healthy),
        "false_alarms": alarms,
        "false_alarm_rate": alarms / len(healthy) if len(healthy) else float("nan"),
        "defective_sold_below_volume": len(sold_below),
        "of_which_watch": int((sold_below[QualityCol.LEVEL].astype(str) == "watch").sum()),
    }


def recall_by_volume(graded: pd.DataFrame) -> pd.DataFrame:
    """Defective product-months per band of orders_30d: how many, how many flagged or watched."""
    defective = graded[graded["defective"] & (graded[QualityCol.ORDERS_30D] > 0)]
    edges = [*VOLUME_BANDS, float("inf")]
    labels = [f"{low}-{high - 1}" for low, high in pairwise(VOLUME_BANDS)] + [f"{VOLUME_BANDS[-1]}+"]
    band = pd.cut(defective[QualityCol.ORDERS_30D], edges, right=False, labels=labels)
    level = defective[QualityCol.LEVEL].astype(str)
    table = defective.assign(orders_30d_band=band, watch=level == "watch").groupby(
        ["consumers", "orders_30d_band"], observed=True
    )
    return table.agg(
        defective=("flagged", "size"), flagged=("flagged", "sum"), watch=("watch", "sum")
    ).reset_index()


def _details(graded: pd.DataFrame, rows: pd.Series, truth: bool = True) -> pd.DataFrame:
    columns = DETAIL_COLUMNS if truth else DETAIL_COLUMNS[:-2]
    picked = graded[rows][columns].sort_values(["consumers", "seed", "as_of", Col.PRODUCT_ID])
    return picked.assign(as_of=picked["as_of"].astype(str), level=picked[QualityCol.LEVEL].astype(str))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consumers", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--json", type=Path, default=None, help="Also write every number to this file.")
    return parser.parse_args()


def _show(title: str, frame: pd.DataFrame) -> None:
    print(f"\n{title}")
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.4f}") if len(frame) else "  (none)")


def main() -> None:
    args = _arguments()
    logging.basicConfig(level=logging.WARNING)
    config = QualityConfig()
    graded, runs = [], []
    for consumers in args.consumers:
        for seed in args.seeds:
            started = time.perf_counter()
            one = graded_product_months(consumers, seed, args.products, config)
            seconds = round(time.perf_counter() - started, 1)
            graded.append(one)
            lines, dates = int(one["order_lines"].iloc[0]), one["as_of"].nunique()
            runs.append(
                {"consumers": consumers, "seed": seed, "order_lines": lines, "as_of_dates": dates}
                | scores(one)
                | {"seconds": seconds}
            )
    everything = pd.concat(graded, ignore_index=True)
    summary = [{"consumers": c} | scores(g) for c, g in everything.groupby("consumers")]
    summary.append({"consumers": "all"} | scores(everything))
    misses = _details(
        everything, everything["defective"] & everything["with_volume"] & ~everything["flagged"]
    )
    alarms = _details(
        everything, ~everything["defective"] & everything["with_volume"] & everything["flagged"], truth=False
    )
    bands = recall_by_volume(everything)
    print(f"quality gate benchmark, default QualityConfig: {config.model_dump()}")
    print(f"load average: {os.getloadavg()}")
    _show("per run (unit: product x month-end as-of date)", pd.DataFrame(runs))
    _show("summary", pd.DataFrame(summary))
    _show("defective product-months by volume (orders_30d band)", bands)
    _show("missed defective products (with volume, below warning)", misses)
    _show("false alarms (healthy, with volume, at warning or pulled)", alarms)
    if args.json is not None:
        report = {
            "config": config.model_dump(),
            "runs": runs,
            "summary": summary,
            "by_volume": bands.to_dict("records"),
            "misses": misses.to_dict("records"),
            "false_alarms": alarms.to_dict("records"),
        }
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
