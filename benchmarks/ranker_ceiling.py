"""Ceiling of the ranker's lists on the test window: its learner fitted on that window's own labels (#16).

    python -m benchmarks.ranker_ceiling --data /tmp/data/online_retail [--folds 1] [--parts 5]
        [--seeds 3] [--learners logistic hgb] [--distributors] [--json FILE]

Issue #16's targets are judged on Online Retail II's last 30 days (fold 1 of
``recommenders_online_retail.py``; ``--folds N`` adds the earlier folds). The production ranker
learns its weights on the 30 days *before* the window it is judged on. This script asks what
the same candidates and features could reach if that were no obstacle: the components are
fitted exactly as the benchmark fits them (tuned on the fold's validation window, refitted up
to the cutoff), and then the learner is fitted on the **test window's own labels**, split by
consumer into ``--parts`` parts: each consumer is scored by the learner fitted on the other
parts' consumers (out of fold), so no list is scored by weights that saw its own labels.
Such a learner sees four fifths of the labels of the very window it is judged on, with its
season and its mix of buyers, so no learner of the same family over the same candidates and
features, trained before the cutoff, is expected to beat it. It is a bound for these learners
on these inputs, not for every model imaginable, and an estimate (the mean and spread over
``--seeds`` partitions). ``in-sample`` (the learner fitted on every test consumer's labels and
scored on them) shows the slack: for the logistic regression, what more data of the window
would add; for the trees, mostly memorised labels, which is why it is no bound.

Consumer lists: NDCG@10 under both protocols of ``recommenders_online_retail.py``, through
``models.evaluation.evaluate_models``, as the benchmark measures the production ranker (the
row ``before the window`` is that ranker: it reproduces the benchmark's number).

``--distributors``: the per-distributor lists of ``distributor_lists_online_retail.py``
(production members, the config's defaults, graded and binary NDCG@20 against each
community's next-30-day buyers), with every member scored by the out-of-fold learners of the
consumer ceiling, fitted on the test window's paid purchases of the members with history.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.distributor_lists_online_retail import Window, evaluate
from benchmarks.recommenders_online_retail import PROTOCOL_INTERACTIONS
from features.columns import Col
from features.engine import connect
from features.interactions import latest_activity, purchased_pairs
from models.evaluation import (
    EvaluationTask,
    MetricCol,
    Protocol,
    RollingFold,
    evaluate_models,
    make_task,
    rolling_folds,
)
from models.recommenders import RecommendFilters
from models.recommenders.boosting import BoostedTrees
from models.recommenders.distributors import (
    aggregate_members,
    blend_scores,
    community_signals,
    member_weights,
)
from models.recommenders.list_config import ListsConfig
from models.recommenders.ranker import RankerRecommender
from models.recommenders.training import RecommendConfig, fit_production

logger = logging.getLogger("benchmark")
LEARNERS: dict[str, dict[str, Any]] = {
    "logistic": {"learner": "logistic"},  # production's learner
    "hgb": {"learner": "hgb"},  # the ranker's gradient-boosted trees, its defaults
}
BEFORE, IN_SAMPLE, OUT_OF_FOLD = "before the window", "in-sample", "out of fold"


@dataclass(frozen=True)
class CandidateRows:
    """The learner's rows of one window: features, labels and the consumer of each row."""

    x: np.ndarray
    y: np.ndarray
    owner: np.ndarray

    def groups(self, rows: np.ndarray) -> np.ndarray:
        """Candidates per consumer of ``rows`` (a mask), in row order, as the learners take them."""
        owners = self.owner[rows]
        starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        return np.diff(np.r_[starts, len(owners)])


def candidate_rows(ranker: RankerRecommender, truth: pd.DataFrame) -> CandidateRows:
    """Every candidate of the ``truth``'s consumers with history (the ranker's learner consumers,
    ``max_training_consumers`` at most) over ``ranker``'s fitted components, labelled by ``truth``."""
    consumers = ranker.tuning_consumers(ranker.data_.consumer_ids, truth)
    x, y, owner = [], [], []
    for batch, rows, block, labels in ranker.labelled_batches(ranker.data_, consumers, truth):
        x.append(block)
        y.append(labels)
        owner.append(np.asarray(batch, dtype=object)[rows])
    return CandidateRows(np.vstack(x), np.concatenate(y), np.concatenate(owner))


def part_of(consumer_ids: Iterable[str], parts: int, seed: int) -> np.ndarray:
    """Each consumer's part, 0 .. parts − 1: a seeded hash of the id, so any consumer (also one
    without labels) has one, the same wherever it is asked."""
    key = f"siyu-ceiling{seed:04d}"  # 16 characters, as pandas wants the hash key (seed < 10,000)
    hashed = pd.util.hash_pandas_object(
        pd.Index(list(consumer_ids), dtype=object).astype(str), index=False, hash_key=key
    )
    return (hashed.to_numpy() % np.uint64(parts)).astype(np.int64)


class PartScored(RankerRecommender):
    """A fitted ranker whose consumers are each scored by the learner of their part."""

    def use_learners(self, learners: list[BoostedTrees], parts: int, seed: int) -> PartScored:
        self.learners, self.parts, self.seed = learners, parts, seed
        return self

    def _score_rows(self, consumer_ids: pd.Index, rows: np.ndarray) -> np.ndarray:
        scores = np.empty((len(rows), self._data.shape[1]), dtype=np.float32)
        part = part_of(consumer_ids, self.parts, self.seed)
        for index, learner in enumerate(self.learners):
            chosen = np.flatnonzero(part == index)
            if len(chosen):
                self.trees_ = learner
                scores[chosen] = super()._score_rows(consumer_ids[chosen], rows[chosen])
        return scores


def with_learners(
    ranker: RankerRecommender, rows: CandidateRows, params: dict[str, Any], parts: int, seed: int
) -> tuple[PartScored, list[set[str]]]:
    """``ranker``'s components, each consumer scored by a learner fitted on the rows of every
    other part's consumers; also the consumers each learner was fitted on (for the leak test)."""
    owners_part = part_of(rows.owner, parts, seed)
    learners, seen = [], []
    model = PartScored(**{**ranker.get_params(), **params})
    for index in range(parts):
        train = owners_part != index
        learners.append(
            model._fit_learner(rows.x[train].copy(), rows.y[train], *_groups_and_count(rows, train))
        )
        seen.append(set(rows.owner[train]))
    model.data_, model.models_, model.stats_ = ranker.data_, ranker.models_, ranker.stats_
    return model.use_learners(learners, parts, seed), seen


def in_sample(ranker: RankerRecommender, rows: CandidateRows, params: dict[str, Any]) -> RankerRecommender:
    """``ranker``'s components with a learner fitted on every row (and scored on the same consumers)."""
    model = RankerRecommender(**{**ranker.get_params(), **params})
    everything = np.ones(len(rows.y), dtype=bool)
    model.trees_ = model._fit_learner(rows.x.copy(), rows.y, *_groups_and_count(rows, everything))
    model.data_, model.models_, model.stats_ = ranker.data_, ranker.models_, ranker.stats_
    return model


def _groups_and_count(rows: CandidateRows, chosen: np.ndarray) -> tuple[np.ndarray, int]:
    groups = rows.groups(chosen)
    return groups, len(groups)


def ndcg_row(model: RankerRecommender, task: EvaluationTask) -> dict[str, float]:
    table = evaluate_models({"ranker": model}, task, 10, Protocol.ALL, fit=False).set_index(
        MetricCol.PROTOCOL
    )
    row = {f"ndcg@10 {protocol}": float(table.loc[protocol, MetricCol.NDCG]) for protocol in Protocol.ALL}
    row.update(
        {f"consumers {protocol}": int(table.loc[protocol, MetricCol.CONSUMERS]) for protocol in Protocol.ALL}
    )
    return row


def consumer_ceiling(
    con: Any, fold: RollingFold, learners: dict[str, dict[str, Any]], parts: int, seeds: int
) -> list[dict[str, Any]]:
    """The fold's consumer-list rows: per learner, the production recipe (learned on the window
    before), in-sample and out of fold (one row per seed) on the test window's labels."""
    test_task = make_task(con, fold.test, PROTOCOL_INTERACTIONS)
    validation_task = make_task(con, fold.tuning, PROTOCOL_INTERACTIONS)
    labels = purchased_pairs(con, fold.cutoff, fold.test.test_end)
    out = []
    for name, params in learners.items():
        ranker = RankerRecommender(**params)
        ranker.tune(validation_task.train, purchased_pairs(con, fold.tuning.cutoff, fold.tuning.test_end))
        ranker.fit(test_task.train)
        rows = candidate_rows(ranker, labels)
        base = {"fold": fold.number, "learner": name, "label_consumers": len(np.unique(rows.owner))}
        out.append({**base, "fitted": BEFORE, "seed": None, **ndcg_row(ranker, test_task)})
        out.append(
            {
                **base,
                "fitted": IN_SAMPLE,
                "seed": None,
                **ndcg_row(in_sample(ranker, rows, params), test_task),
            }
        )
        for seed in range(seeds):
            model, _ = with_learners(ranker, rows, params, parts, seed)
            out.append({**base, "fitted": OUT_OF_FOLD, "seed": seed, **ndcg_row(model, test_task)})
            logger.info("fold %d %s seed %d: %s", fold.number, name, seed, out[-1])
    return out


def distributor_ceiling(
    tables: dict[str, pd.DataFrame],
    fold: RollingFold,
    learners: dict[str, dict[str, Any]],
    parts: int,
    seeds: int,
) -> list[dict[str, Any]]:
    """The fold's distributor-list rows: production members as ``siyu recommend`` scores them,
    then the same members scored out of fold by learners fitted on the test window's labels."""
    window = Window(tables, pd.Timestamp(fold.cutoff), RecommendConfig().interactions)
    config = ListsConfig()
    production = fit_production(window.con, window.as_of, RecommendConfig(), data=window.data)
    truth = window.future[[Col.CONSUMER_ID, Col.PRODUCT_ID]].astype(str).drop_duplicates()
    rows = candidate_rows(production, truth)

    def lists_row(model: RankerRecommender) -> dict[str, float]:
        weights = member_weights(window.data, config)
        aggregated = aggregate_members(
            model, window.homes, weights, window.distributors, RecommendFilters(), config
        )
        signals = community_signals(window.data, window.homes, window.distributors, config)
        return evaluate(window, window.lists_from(blend_scores(aggregated, signals, config)))

    base = {
        "fold": fold.number,
        "communities": len(window.truth),
        "label_consumers": len(np.unique(rows.owner)),
    }
    out = [{**base, "learner": "logistic", "fitted": BEFORE, "seed": None, **lists_row(production)}]
    for name, params in learners.items():
        for seed in range(seeds):
            model, _ = with_learners(production, rows, params, parts, seed)
            out.append({**base, "learner": name, "fitted": OUT_OF_FOLD, "seed": seed, **lists_row(model)})
            logger.info("fold %d distributors %s seed %d: %s", fold.number, name, seed, out[-1])
    return out


def summary(rows: list[dict[str, Any]], metrics: list[str]) -> pd.DataFrame:
    """Mean (and standard deviation over seeds) per fold, learner and fitting."""
    frame = pd.DataFrame(rows)
    grouped = frame.groupby(["fold", "learner", "fitted"], sort=False)[metrics]
    table = grouped.mean()
    spread = grouped.std().add_suffix(" sd")
    return table.join(spread).reset_index()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Online Retail II imported to the contract.")
    parser.add_argument("--folds", type=int, default=1, help="Rolling folds (1: the single window).")
    parser.add_argument("--parts", type=int, default=5, help="Consumer parts of the out-of-fold learners.")
    parser.add_argument("--seeds", type=int, default=3, help="Partitions (seeds) of the consumers.")
    parser.add_argument("--learners", nargs="*", default=list(LEARNERS), choices=list(LEARNERS))
    parser.add_argument("--distributors", action="store_true", help="Also the per-distributor lists.")
    parser.add_argument("--json", type=Path, default=None, help="Also write every row as JSON.")
    args = parser.parse_args(argv)
    if args.parts < 2:
        parser.error("--parts must be at least 2: each consumer's learner is fitted on the other parts")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    names = ("orders", "products", "consumers")
    con = connect({name: args.data / f"{name}.parquet" for name in names})
    learners = {name: LEARNERS[name] for name in args.learners}
    folds = list(rolling_folds(latest_activity(con), args.folds, 30, 30))
    began = time.perf_counter()
    consumer_rows, distributor_rows = [], []
    for fold in folds:
        consumer_rows += consumer_ceiling(con, fold, learners, args.parts, args.seeds)
        print(f"fold {fold.number} consumer lists done after {time.perf_counter() - began:.0f}s", flush=True)
    metrics = [f"ndcg@10 {protocol}" for protocol in Protocol.ALL]
    print(summary(consumer_rows, metrics).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.distributors:
        tables = {name: pd.read_parquet(args.data / f"{name}.parquet") for name in names}
        for fold in folds:
            distributor_rows += distributor_ceiling(tables, fold, learners, args.parts, args.seeds)
            print(
                f"fold {fold.number} distributor lists done after {time.perf_counter() - began:.0f}s",
                flush=True,
            )
        print(
            summary(distributor_rows, ["graded", "binary"]).to_string(
                index=False, float_format=lambda v: f"{v:.4f}"
            )
        )
    if args.json:
        document = {"consumers": consumer_rows, "distributors": distributor_rows, "parts": args.parts}
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"total {time.perf_counter() - began:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
