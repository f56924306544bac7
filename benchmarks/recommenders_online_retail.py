"""Recommenders on UCI Online Retail II (2009-2010) under the issue's protocol; prints the full table.

Run from the repository root on the data imported with ``siyu import online-retail``::

    python benchmarks/recommenders_online_retail.py --data /tmp/data/online_retail [--json FILE]

Protocol: cutoff = the last order timestamp minus 30 days (an exact instant); training = every
paid line before it, interactions = distinct invoices per consumer-product (no decay, no
returns, no events); truth = distinct products each consumer bought after the cutoff, among
products seen before it, for consumers who bought before and after; binary NDCG@10 (plus
recall, precision, MAP, hit rate, coverage, novelty), under "all items" and "new items".

Honesty: every hyper-parameter (the baselines' grids, the ranker's logistic regression) is
chosen on the validation window cutoff − 30 days → cutoff, with training data before
cutoff − 30 days; then the models are refitted on everything before the cutoff and the test
window is measured once. Baselines are tuned separately for each protocol; the production
ranker is one model for both.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd

from features.engine import connect
from features.interactions import InteractionConfig, latest_activity, purchased_pairs
from models.evaluation import MetricCol, Protocol, TimeSplit, evaluate_models, grid_search, make_task
from models.recommenders.ranker import RankerRecommender, build_component

PROTOCOL_INTERACTIONS = InteractionConfig(
    half_life_days=None, return_weight=0, complaint_weight=0, use_events=False
)
PUBLISHED_BASELINES = {  # the issue's independently measured numbers, for the ratio column
    Protocol.ALL_ITEMS: 0.361,
    Protocol.NEW_ITEMS: 0.104,
}
GRIDS: dict[str, tuple[str, dict[str, list[object]]]] = {
    "repeat purchase": ("repeat", {"window_days": [7, 30, None], "popularity_weight": [0.0, 1.0]}),
    "popularity (recent)": ("popularity", {"window_days": [7, 30, 90]}),
    "popularity per community": ("popularity", {"scope": ["community"], "window_days": [30, 90, None]}),
    "popularity per category": ("popularity", {"scope": ["category"], "window_days": [30, 90]}),
    "item-kNN BM25": ("itemknn", {"similarity": ["bm25"], "neighbours": [50, 100, 200, 400]}),
    "item-kNN cosine": ("itemknn", {"similarity": ["cosine"], "neighbours": [50, 100, 200, 400]}),
    "EASE": ("ease", {"l2": [100.0, 250.0, 500.0, 1000.0, 2000.0]}),
    "ALS": ("als", {"factors": [32, 64, 128], "regularization": [0.01, 0.1], "alpha": [1.0, 10.0, 40.0]}),
    "BPR": ("bpr", {"factors": [64], "learning_rate": [0.01, 0.05], "iterations": [100, 200]}),
    "LightFM WARP": ("lightfm", {"components": [32], "epochs": [10, 30], "learning_rate": [0.05]}),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Online Retail II imported to the contract.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the table as JSON.")
    parser.add_argument("--skip", nargs="*", default=[], help="Baselines to leave out (names as printed).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tables = {t: args.data / f"{t}.parquet" for t in ("orders", "products", "consumers")}
    con = connect({t: p for t, p in tables.items() if p.exists()})
    last = latest_activity(con)
    split = TimeSplit(last - timedelta(days=30), last)
    validation = split.validation(30)
    began = time.perf_counter()
    test_task = make_task(con, split, PROTOCOL_INTERACTIONS)
    validation_task = make_task(con, validation, PROTOCOL_INTERACTIONS)
    print(f"cutoff {split.cutoff}, test until {split.test_end}; validation from {validation.cutoff}")
    print(f"test: {test_task.truth['consumer_id'].nunique()} consumers, {len(test_task.truth)} truth pairs")

    rows = []
    ranker = RankerRecommender()
    ranker.tune(validation_task.train, purchased_pairs(con, validation.cutoff, validation.test_end))
    rows.append(_test_rows("ranker (production)", {}, ranker, test_task, Protocol.ALL))
    for label, (kind, grid) in GRIDS.items():
        if label in args.skip:
            continue
        for protocol in Protocol.ALL:
            params, _ = grid_search(kind, grid, validation_task, 10, protocol)
            rows.append(
                _test_rows(label, params, build_component({"kind": kind, **params}), test_task, (protocol,))
            )
    table = pd.concat(rows, ignore_index=True)
    _print(table)
    print(f"total {time.perf_counter() - began:.0f}s; load {os.getloadavg()[0]:.2f} (1-min average)")
    if args.json:
        args.json.write_text(table.to_json(orient="records", indent=2) + "\n", encoding="utf-8")
    return 0


def _test_rows(
    label: str, params: dict, model: object, task: object, protocols: tuple[str, ...]
) -> pd.DataFrame:
    table = evaluate_models({label: model}, task, 10, protocols)
    return table.assign(params=json.dumps(params, default=str))


def _print(table: pd.DataFrame) -> None:
    best_baseline = (
        table[table[MetricCol.MODEL] != "ranker (production)"]
        .groupby(MetricCol.PROTOCOL)[MetricCol.NDCG]
        .max()
    )
    table = table.assign(
        vs_best_baseline=table[MetricCol.NDCG] / table[MetricCol.PROTOCOL].map(best_baseline),
        vs_issue_best=table[MetricCol.NDCG] / table[MetricCol.PROTOCOL].map(PUBLISHED_BASELINES),
    )
    columns = [
        MetricCol.MODEL,
        MetricCol.PROTOCOL,
        MetricCol.CONSUMERS,
        MetricCol.NDCG,
        MetricCol.RECALL,
        MetricCol.PRECISION,
        MetricCol.MAP,
        MetricCol.HIT_RATE,
        MetricCol.COVERAGE,
        MetricCol.NOVELTY,
        "vs_best_baseline",
        "vs_issue_best",
        "params",
    ]
    for protocol in Protocol.ALL:
        part = table[table[MetricCol.PROTOCOL] == protocol].sort_values(MetricCol.NDCG, ascending=False)
        print(f"\n== {protocol} (NDCG@10; best baseline here {best_baseline[protocol]:.4f}) ==")
        print(part[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    sys.exit(main())
