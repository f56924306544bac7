"""How well the quality gate finds the simulator's planted defective products.

For each (size, seed) it simulates a data set, runs the gate as of the last day with the
default config, and reports, against ``truth/defective_products.csv``:
- recall: defective products at level >= warning, among defective products with at least
  ``min_orders`` order lines in the window (and among all defective products sold in it);
- false alarms: healthy products at level >= warning, among healthy products with at least
  ``min_orders`` lines.

    python benchmarks/quality_gate.py --consumers 20000 100000 --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from features.engine import connect
from models.quality import PULLED, WARNING, QualityConfig, assess
from pipelines.simulator import SimulationConfig, simulate


def measure(consumers: int, seed: int, products: int, config: QualityConfig) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        summary = simulate(data, SimulationConfig(consumers=consumers, products=products, seed=seed))
        tables = {t: data / f"{t}.parquet" for t in ("orders", "products", "complaints")}
        alerts = assess(connect(tables), summary.as_of, config).alerts
        defective = set(pd.read_csv(data / "truth" / "defective_products.csv", dtype=str)["product_id"])
    flagged = alerts["level"].isin([WARNING, PULLED])
    is_defective = alerts["product_id"].isin(defective)
    enough = alerts["orders_30d"] >= config.min_orders
    sold = alerts["orders_30d"] > 0
    return {
        "consumers": consumers,
        "seed": seed,
        "order_lines": summary.order_lines,
        "defective_with_volume": int((is_defective & enough).sum()),
        "recall_with_volume": _share(flagged & is_defective & enough, is_defective & enough),
        "recall_all_sold": _share(flagged & is_defective & sold, is_defective & sold),
        "healthy_with_volume": int((~is_defective & enough).sum()),
        "false_alarm_rate": _share(flagged & ~is_defective & enough, ~is_defective & enough),
    }


def _share(hit: pd.Series, base: pd.Series) -> float:
    return float(hit.sum() / base.sum()) if base.sum() else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consumers", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--products", type=int, default=2_000)
    args = parser.parse_args()
    rows = [
        measure(consumers, seed, args.products, QualityConfig())
        for consumers in args.consumers
        for seed in args.seeds
    ]
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
