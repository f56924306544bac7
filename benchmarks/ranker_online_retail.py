"""The ranker's learner choice and feature-group ablation on Online Retail II, on the TUNING window only.

Run from the repository root on the data imported with ``siyu import online-retail``::

    python benchmarks/ranker_online_retail.py --data /tmp/data/online_retail [--learners hgb lambdarank]

Windows (the benchmark protocol of ``recommenders_online_retail.py``, one step earlier, so the
test window of that benchmark is never looked at): the learner learns on the 30 days before the
validation cutoff (data before cutoff − 60 days, labels cutoff − 60 → cutoff − 30), the
components are refitted on the data before cutoff − 30 days and NDCG@10 (all items, new items)
is measured on cutoff − 30 → cutoff, the window the benchmark tunes on. Components are fitted
once per window and shared by every variant; each variant fits its own learner.

``--windows N`` stacks the learner's rows of N consecutive 30-day windows (the one above, then
cutoff − 90 → cutoff − 60, ...; each window's candidates from components fitted on the data
before it): does more training data help a learner?

``--blend W [W ...]`` adds one variant per weight: the logistic and the ``hgb`` learner fitted on
the same rows, a candidate scored by ``W`` × the logistic's log-odds + (1 − ``W``) × the trees'
(does an ensemble of the two beat either?).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from features.engine import connect
from features.interactions import InteractionConfig, latest_activity, purchased_pairs
from models.evaluation import MetricCol, Protocol, TimeSplit, evaluate_models, make_task
from models.recommenders.boosting import BoostedTrees
from models.recommenders.ranker import RankerRecommender
from models.recommenders.ranker_features import COMPONENT_GROUP, FEATURE_GROUPS

# the protocol of recommenders_online_retail.py: distinct invoices, no decay, returns or events
PROTOCOL_INTERACTIONS = InteractionConfig(
    half_life_days=None, return_weight=0, complaint_weight=0, use_events=False
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Online Retail II imported to the contract.")
    parser.add_argument(
        "--learners", nargs="*", default=["logistic", "hgb", "lambdarank"], help="Learners to compare."
    )
    parser.add_argument("--ablation", action="store_true", help="Leave each feature group out in turn.")
    parser.add_argument(
        "--windows", type=int, default=1, help="Stack the learner's rows of this many 30-day windows."
    )
    parser.add_argument(
        "--blend", nargs="*", type=float, default=[], help="Logistic weights of logistic + hgb blends."
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tables = {t: args.data / f"{t}.parquet" for t in ("orders", "products", "consumers")}
    con = connect({t: p for t, p in tables.items() if p.exists()})
    last = latest_activity(con)
    validation = TimeSplit(last - timedelta(days=30), last).validation(30)
    nested = validation.validation(30)
    began = time.perf_counter()
    measured = make_task(con, validation, PROTOCOL_INTERACTIONS)
    windows = []
    for _ in range(args.windows):
        windows.append(
            (
                make_task(con, nested, PROTOCOL_INTERACTIONS).train,
                purchased_pairs(con, nested.cutoff, nested.test_end),
            )
        )
        print(f"learners learn on {nested.cutoff} -> {nested.test_end}")
        nested = nested.validation(30)
    print(f"measured on {validation.cutoff} -> {validation.test_end}")
    variants: dict[str, dict[str, Any]] = {learner: {"learner": learner} for learner in args.learners}
    if args.ablation:
        for group in [*FEATURE_GROUPS, COMPONENT_GROUP]:
            variants[f"{args.learners[0]} without {group}"] = {
                "learner": args.learners[0],
                "exclude_features": [group],
            }
    for weight in args.blend:
        variants[f"blend {weight:g} logistic + {1 - weight:g} hgb"] = {"learner": "logistic", "blend": weight}
    table = _measure_variants(variants, windows, measured)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"total {time.perf_counter() - began:.0f}s; load {os.getloadavg()[0]:.2f} (1-min average)")
    return 0


def _measure_variants(
    variants: dict[str, dict[str, Any]], windows: list[tuple[Any, pd.DataFrame]], measured: Any
) -> pd.DataFrame:
    """NDCG@10 per variant; components fitted once on each window and shared."""
    fitted = []
    for train, _ in windows:
        ranker = RankerRecommender()
        ranker._fit_components(train)
        fitted.append((ranker.data_, ranker.models_, ranker.stats_))
    scored = RankerRecommender()
    scored._fit_components(measured.train)
    rows = []
    for label, given in variants.items():
        params = dict(given)
        blend = params.pop("blend", None)
        ranker = RankerRecommender(**params)
        parts = []
        for (_, labels), (ranker.data_, ranker.models_, ranker.stats_) in zip(windows, fitted, strict=True):
            parts.append(ranker._window_rows(ranker.data_, labels))
        xs, ys, groups, consumers = zip(*parts, strict=True)
        learned = (np.vstack(xs), np.concatenate(ys), np.concatenate(groups), sum(consumers))
        ranker.trees_ = ranker._fit_learner(*learned)
        if blend is not None:
            trees = RankerRecommender(**{**params, "learner": "hgb"})._fit_learner(*learned)
            ranker.trees_ = _Blend(ranker.trees_, trees, blend)
        ranker.data_, ranker.models_, ranker.stats_ = scored.data_, scored.models_, scored.stats_
        table = evaluate_models({label: ranker}, measured, 10, Protocol.ALL, fit=False)
        ndcg = table.set_index(MetricCol.PROTOCOL)[MetricCol.NDCG]
        rows.append({"variant": label, **{f"ndcg@10 {p}": ndcg[p] for p in Protocol.ALL}})
        print(rows[-1], flush=True)
    return pd.DataFrame(rows)


class _Blend:
    """Two fitted learners as one: ``weight`` × the first's log-odds + (1 − ``weight``) × the second's."""

    def __init__(self, first: BoostedTrees, second: BoostedTrees, weight: float) -> None:
        self.first, self.second, self.weight = first, second, weight

    def predict(self, x: np.ndarray, threads: int = 2) -> np.ndarray:
        second = self.second.model.raw(x.copy(), threads)  # first: the logistic zeroes NaN in place
        raw = self.weight * self.first.model.raw(x, threads) + (1 - self.weight) * second
        return expit(raw).astype(np.float32)


if __name__ == "__main__":
    sys.exit(main())
