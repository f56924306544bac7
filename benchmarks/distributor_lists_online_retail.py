"""Distributor lists vs baselines on Online Retail II (country = community); planted tastes on the simulator.

Protocol (issue #4, section 5): cutoff = last order timestamp minus 30 days; train on every
order line up to the cutoff; truth per community (a consumer's home country) = for each product
seen before the cutoff, its number of distinct paying buyers from that community in the 30 days
after the cutoff; communities with at least 3 such buyers are scored; NDCG@20 with graded
relevance (the distinct-buyer count, the primary number) and binary relevance, averaged over
communities. Everything tunable (the ALS baseline's grid, the blend weights) is chosen on the
validation window: the same protocol with the cutoff 30 days earlier; the test window is
measured once with the chosen settings.

Baselines, same protocol: global popularity (distinct buyers, last 30 days), community
popularity (the community's distinct buyers, last 90 days), community-aggregated ALS (sum of
the members' ALS scores). Ours: ``models.recommenders.distributors`` over the member scores of
ALS, repeat purchase and the production model.

Rolling origin (``--folds N``): fold 1 is the protocol above; fold ``i`` moves both windows
``30·(i−1)`` days earlier (``models.evaluation.rolling_folds``), and the ALS grid and the blends
are tuned again on its own validation window. Printed: fold 1 (the single window), then the
mean test NDCG@20 over folds with a 95% t-interval over the fold values, and each fold's.

``--study`` (instead of the table): what limits the lists, per fold (``run_study``): the
production members with recency / uniform weights, an ensemble with repeat-purchase and ALS
members, and two bounds that read the test truth (members weighted by whether they buy next; the
members' own next buyers), each with the blend chosen on the fold's validation window, pooled
over every window ending by the fold's cutoff, and without a blend (docs/recommendation_lists.md).

    python benchmarks/distributor_lists_online_retail.py --data /tmp/data/online_retail \
        [--folds 3] [--study] [--sim /tmp/data/sim100k] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from features.asof import AsOf
from features.engine import connect
from models.evaluation import rolling_folds, t_interval
from models.recommenders import (
    ALSRecommender,
    InteractionData,
    Recommender,
    RecommendFilters,
    RepeatPurchaseRecommender,
)
from models.recommenders.distributors import (
    CommunityScores,
    aggregate_members,
    blend_scores,
    community_signals,
    member_weights,
)
from models.recommenders.list_config import ListsConfig
from models.recommenders.training import RecommendConfig, build_data, fit_production

logger = logging.getLogger("benchmark")
DEPTH = 20
ALS_GRID = [
    dict(factors=f, regularization=r, alpha=a)
    for f, r, a in itertools.product((64, 128), (0.05, 1.0), (1.0, 10.0))
]
BLEND_GRID = list(itertools.product((0.0, 0.5, 1.0), (0.0, 0.3, 0.6, 1.0), (7, 14, 30)))


def ndcg(ranked: list[str], relevance: dict[str, float], k: int = DEPTH) -> float:
    gains = np.array([relevance.get(product, 0.0) for product in ranked[:k]])
    dcg = (gains / np.log2(np.arange(2, len(gains) + 2))).sum()
    ideal = np.sort(np.fromiter(relevance.values(), float))[::-1][:k]
    return float(dcg / (ideal / np.log2(np.arange(2, len(ideal) + 2))).sum())


def mean_ndcg(lists: dict[str, list[str]], truth: dict[str, dict[str, float]], binary: bool) -> float:
    values = []
    for community, relevance in truth.items():
        relevance = {p: 1.0 for p in relevance} if binary else relevance
        values.append(ndcg(lists.get(community, []), relevance))
    return float(np.mean(values))


class Window:
    """Training data and truth of one cutoff."""

    def __init__(self, tables: dict[str, pd.DataFrame], cutoff: pd.Timestamp, interactions: object) -> None:
        orders = tables["orders"]
        train = orders[orders["ordered_at"] <= cutoff]
        home = tables["consumers"].set_index("consumer_id")["distributor_id"]
        test = orders[
            (orders["ordered_at"] > cutoff) & (orders["ordered_at"] <= cutoff + pd.Timedelta(days=30))
        ]
        test = test[(test["status"] == "paid") & test["product_id"].isin(set(train["product_id"]))]
        test = test.assign(community=test["consumer_id"].map(home))
        self.future = test  # the truth's order lines (the study's ceiling and oracle rows read them)
        buyers = test.groupby("community")["consumer_id"].nunique()
        self.truth = {
            community: test[test["community"] == community]
            .groupby("product_id")["consumer_id"]
            .nunique()
            .to_dict()
            for community in buyers[buyers >= 3].index
        }
        consumers = tables["consumers"][tables["consumers"]["registered_at"] <= cutoff]
        self.con = connect({"orders": train, "products": tables["products"], "consumers": consumers})
        self.as_of = AsOf.of(cutoff)
        self.cutoff = cutoff
        self.train = train.assign(community=train["consumer_id"].map(home))
        self.data: InteractionData = build_data(self.con, self.as_of, interactions)
        self.homes = (
            pd.Series(
                self.data.consumer_attribute(self.data.consumer_ids, "home_distributor_id"),
                index=self.data.consumer_ids,
            )
            .dropna()
            .astype(str)
        )
        self.distributors = pd.Index(sorted(self.homes.unique()))

    def popularity(self, days: int, by_community: bool) -> dict[str, list[str]]:
        recent = self.train[
            (self.train["status"] == "paid")
            & (self.train["ordered_at"] > self.cutoff - pd.Timedelta(days=days))
        ]
        overall = recent.groupby("product_id")["consumer_id"].nunique()
        ranked_global = list(overall.sort_values(ascending=False, kind="stable").index[:DEPTH])
        if not by_community:
            return {community: ranked_global for community in self.truth}
        lists = {}
        for community, rows in recent.groupby("community"):
            counts = rows.groupby("product_id")["consumer_id"].nunique().add(overall * 1e-6, fill_value=0)
            lists[community] = list(counts.sort_values(ascending=False, kind="stable").index[:DEPTH])
        return lists

    def lists_from(self, scores: np.ndarray) -> dict[str, list[str]]:
        order = np.argsort(-scores, axis=1, kind="stable")[:, :DEPTH]
        return {c: list(self.data.product_ids[order[i]]) for i, c in enumerate(self.distributors)}

    def aggregated(self, model: Recommender, config: ListsConfig) -> CommunityScores:
        weights = member_weights(self.data, config)
        return aggregate_members(model, self.homes, weights, self.distributors, RecommendFilters(), config)


def evaluate(window: Window, lists: dict[str, list[str]]) -> dict[str, float]:
    return {"graded": mean_ndcg(lists, window.truth, False), "binary": mean_ndcg(lists, window.truth, True)}


def tuned_als(validation: Window) -> dict:
    """The ALS grid point whose community-aggregated lists score best on validation (graded)."""
    best, best_score = ALS_GRID[0], -1.0
    uniform = ListsConfig(member_weighting="uniform")
    for params in ALS_GRID:
        model = ALSRecommender(**params).fit(validation.data)
        score = evaluate(validation, validation.lists_from(validation.aggregated(model, uniform).expected))[
            "graded"
        ]
        logger.info("ALS %s on validation: %.4f", params, score)
        if score > best_score:
            best, best_score = params, score
    return best


def run_online_retail(data_dir: Path, folds: int = 1) -> dict:
    """Fold 1's results (the single window) with, from two folds on, every fold's and the summary."""
    tables = {
        name: pd.read_parquet(data_dir / f"{name}.parquet") for name in ("orders", "products", "consumers")
    }
    interactions = RecommendConfig().interactions
    last = tables["orders"]["ordered_at"].max()
    cache: dict[pd.Timestamp, Window] = {}  # fold i's validation window is fold i+1's test window

    def window(cutoff: pd.Timestamp) -> Window:
        if cutoff not in cache:
            cache[cutoff] = Window(tables, cutoff, interactions)
        return cache[cutoff]

    results: dict[str, dict] = {}
    for fold in rolling_folds(last.to_pydatetime(), folds, 30, 30):
        windows = {
            "validation": window(pd.Timestamp(fold.tuning.cutoff)),
            "test": window(pd.Timestamp(fold.cutoff)),
        }
        results[f"fold {fold.number}"] = run_fold(windows)
        cache.pop(pd.Timestamp(fold.cutoff), None)  # the next fold tests at this fold's validation cutoff
        logger.info("fold %d of %d done", fold.number, folds)
    single = dict(results["fold 1"])
    if folds > 1:
        single["folds"] = results
        single["summary"] = summarise_folds(results)
    return single


def summarise_folds(results: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Per list: the mean test NDCG@20 (graded and binary) over folds and its 95% t-interval."""
    summary = {}
    for label in next(iter(results.values()))["rows"]:
        values = {
            kind: np.array([fold["rows"][label]["test"][kind] for fold in results.values()])
            for kind in ("graded", "binary")
        }
        low, high = t_interval(values["graded"])
        summary[label] = {
            "graded": float(values["graded"].mean()),
            "graded_ci_low": low,
            "graded_ci_high": high,
            "binary": float(values["binary"].mean()),
            "graded_by_fold": [round(float(v), 4) for v in values["graded"]],
        }
    return summary


def run_fold(windows: dict[str, Window]) -> dict:
    """Tune on the fold's validation window, measure every list on both windows."""
    results: dict[str, dict] = {"communities": {name: len(w.truth) for name, w in windows.items()}}
    als_params = tuned_als(windows["validation"])
    results["als_params"] = als_params
    members: dict[str, Callable[[Window], Recommender]] = {
        "als": lambda w: ALSRecommender(**als_params).fit(w.data),
        "repeat": lambda w: RepeatPurchaseRecommender().fit(w.data),
        "production": lambda w: fit_production(w.con, w.as_of, RecommendConfig(), data=w.data),
    }
    rows: dict[str, dict[str, dict[str, float]]] = {}
    tuned: dict[str, dict] = {}
    for name, window in windows.items():
        rows.setdefault("global popularity 30d", {})[name] = evaluate(window, window.popularity(30, False))
        rows.setdefault("community popularity 90d", {})[name] = evaluate(window, window.popularity(90, True))
        als = members["als"](window)
        uniform = ListsConfig(member_weighting="uniform")
        rows.setdefault("community-aggregated ALS", {})[name] = evaluate(
            window, window.lists_from(window.aggregated(als, uniform).expected)
        )
        for member_name, factory in members.items():
            model = als if member_name == "als" else factory(window)
            for weighting in ("recency", "uniform"):
                config = ListsConfig(member_weighting=weighting)
                aggregated = window.aggregated(model, config)
                label = f"ours: {member_name} members, {weighting} weights"
                if name == "validation":
                    tuned[label] = _tune_blend(window, aggregated, config)
                chosen = config.model_copy(update=tuned[label])
                signals = community_signals(window.data, window.homes, window.distributors, chosen)
                scores = blend_scores(aggregated, signals, chosen)
                rows.setdefault(label + " (blend tuned on validation)", {})[name] = evaluate(
                    window, window.lists_from(scores)
                )
                signals = community_signals(window.data, window.homes, window.distributors, config)
                rows.setdefault(label + " (config defaults)", {})[name] = evaluate(
                    window, window.lists_from(blend_scores(aggregated, signals, config))
                )
            logger.info("%s window: %s members done", name, member_name)
    results["rows"] = rows
    results["tuned_blend"] = tuned
    return results


def _tune_blend(window: Window, aggregated: CommunityScores, config: ListsConfig) -> dict:
    best, best_score = {}, -1.0
    for community_weight, trend_weight, trend_days in BLEND_GRID:
        update = dict(community_weight=community_weight, trend_weight=trend_weight, trend_days=trend_days)
        chosen = config.model_copy(update=update)
        signals = community_signals(window.data, window.homes, window.distributors, chosen)
        score = evaluate(window, window.lists_from(blend_scores(aggregated, signals, chosen)))["graded"]
        if score > best_score:
            best, best_score = update, score
    return best


def run_simulator(sim_dir: Path) -> dict:
    """Category shares of each distributor's top-20 list vs its planted category tastes."""
    tables = {
        name: pd.read_parquet(sim_dir / f"{name}.parquet") for name in ("orders", "products", "consumers")
    }
    tastes = pd.read_parquet(sim_dir / "truth" / "community_tastes.parquet")
    as_of = AsOf.of(tables["orders"]["ordered_at"].max())
    con = connect(tables)
    config = RecommendConfig()
    data = build_data(con, as_of, config.interactions)
    started = time.perf_counter()
    model = ALSRecommender().fit(data)
    lists_config = ListsConfig()
    homes = (
        pd.Series(data.consumer_attribute(data.consumer_ids, "home_distributor_id"), index=data.consumer_ids)
        .dropna()
        .astype(str)
    )
    distributors = pd.Index(sorted(homes.unique()))
    aggregated = aggregate_members(
        model, homes, member_weights(data, lists_config), distributors, RecommendFilters(), lists_config
    )
    signals = community_signals(data, homes, distributors, lists_config)
    ours = blend_scores(aggregated, signals, lists_config)
    seconds = time.perf_counter() - started
    categories = (
        tables["products"]
        .set_index("product_id")["category"]
        .reindex(data.product_ids)
        .astype(str)
        .to_numpy()
    )
    planted = tastes.pivot_table(index="distributor_id", columns="category", values="weight", fill_value=0.0)
    global_scores = np.broadcast_to(_global(data)[None, :], ours.shape)
    out = {"distributors": len(distributors), "seconds_als_fit_and_aggregate": round(seconds, 1)}
    for label, scores in (("ours", ours), ("global popularity 30d", global_scores)):
        out[label] = _taste_match(scores, distributors, categories, planted)
    return out


def _global(data: InteractionData) -> np.ndarray:
    from models.recommenders.popularity import recent_popularity

    return recent_popularity(data, 30.0)


def _taste_match(
    scores: np.ndarray, distributors: pd.Index, categories: np.ndarray, planted: pd.DataFrame
) -> dict:
    order = np.argsort(-scores, axis=1, kind="stable")[:, :DEPTH]
    cosines, top3 = [], []
    for i, distributor in enumerate(distributors):
        if distributor not in planted.index:
            continue
        share = (
            pd.Series(categories[order[i]])
            .value_counts(normalize=True)
            .reindex(planted.columns, fill_value=0.0)
        )
        taste = planted.loc[distributor]
        cosines.append(float(share @ taste / (np.linalg.norm(share) * np.linalg.norm(taste))))
        top3.append(len(set(share.nlargest(3).index) & set(taste.nlargest(3).index)) / 3)
    return {
        "mean_cosine_category_share_vs_taste": round(float(np.mean(cosines)), 4),
        "top3_category_overlap": round(float(np.mean(top3)), 4),
    }


# --- the study (--study): what limits the lists, over the same folds ----------------------------

STUDY_GRID = [(0.0, 0.0, 7), *BLEND_GRID]


def study_signals(window: Window) -> dict[str, np.ndarray]:
    """Distributor × product arrays of one window: the production model's members aggregated with
    each member weighting, the ensemble's other members, the community and trend signals, and two
    rows that read the window's truth (labelled so: they are bounds, not lists)."""
    model = fit_production(window.con, window.as_of, RecommendConfig(), data=window.data)
    recency = ListsConfig()
    buyers_next = set(window.future["consumer_id"])
    oracle = pd.Series(
        window.data.consumer_ids.isin(buyers_next).astype(float), index=window.data.consumer_ids
    )
    arrays = {
        "recency": window.aggregated(model, recency).expected,
        "uniform": window.aggregated(model, ListsConfig(member_weighting="uniform")).expected,
        "oracle": aggregate_members(
            model, window.homes, oracle, window.distributors, RecommendFilters(), recency
        ).expected,
        "repeat": window.aggregated(RepeatPurchaseRecommender().fit(window.data), recency).expected,
        "ceiling": _known_members_future(window),
    }
    arrays["als"] = np.clip(
        window.aggregated(
            ALSRecommender(factors=128, regularization=1.0, alpha=10.0).fit(window.data), recency
        ).expected,
        0.0,
        None,
    )
    for community_weight, trend_weight, trend_days in BLEND_GRID:
        config = recency.model_copy(
            update=dict(community_weight=community_weight, trend_weight=trend_weight, trend_days=trend_days)
        )
        signals = community_signals(window.data, window.homes, window.distributors, config)
        arrays[f"blend-part {community_weight} {trend_weight} {trend_days}"] = (
            config.community_weight * _normalised(signals.decayed_members)
            + config.trend_weight * _normalised(signals.trend_buyers[None, :])
        )
    return arrays


def _known_members_future(window: Window) -> np.ndarray:
    """Distinct next-30-day buyers per community × product among consumers with history: the
    best any list built from the members' histories could rank (the truth's part they can know)."""
    future = window.future[window.future["consumer_id"].isin(set(window.data.consumer_ids))]
    counts = future.groupby(["community", "product_id"])["consumer_id"].nunique()
    ceiling = np.zeros((len(window.distributors), len(window.data.product_ids)))
    rows = window.distributors.get_indexer(counts.index.get_level_values(0))
    columns = window.data.product_ids.get_indexer(counts.index.get_level_values(1))
    known = (rows >= 0) & (columns >= 0)
    ceiling[rows[known], columns[known]] = counts.to_numpy()[known]
    return ceiling


def _normalised(values: np.ndarray) -> np.ndarray:
    top = values.max(axis=1, keepdims=True)
    return values / np.where(top > 0, top, 1.0)


def study_variants(arrays: dict[str, np.ndarray], blend: tuple[float, float, int]) -> dict[str, np.ndarray]:
    """The scored lists of one window for one blend setting (community weight, trend weight, days)."""
    part = arrays[f"blend-part {blend[0]} {blend[1]} {blend[2]}"] if blend[:2] != (0.0, 0.0) else 0.0
    ensemble = (
        _normalised(arrays["recency"])
        + 0.25 * _normalised(arrays["repeat"])
        + 0.25 * _normalised(arrays["als"])
    )
    return {
        "production members, recency weights": _normalised(arrays["recency"]) + part,
        "production members, uniform weights": _normalised(arrays["uniform"]) + part,
        "production + 0.25 repeat + 0.25 ALS members": ensemble + part,
        "bound: members weighted by who buys next (oracle)": _normalised(arrays["oracle"]) + part,
        "bound: known members' own next buyers (ceiling)": arrays["ceiling"]
        + 1e-9 * _normalised(arrays["uniform"]),
    }


def pooled_choice(scores_by_blend: dict[tuple[float, float, int], list[float]]) -> tuple[float, float, int]:
    """The blend with the best mean over the tuning windows (the first listed wins a tie)."""
    return max(scores_by_blend, key=lambda blend: float(np.mean(scores_by_blend[blend])))


def run_study(data_dir: Path, folds: int) -> dict:
    """Each list variant's test NDCG@20 per fold, with the blend chosen (a) on the fold's validation
    window and (b) pooled over every window before the fold's cutoff; (c) without any blend."""
    tables = {
        name: pd.read_parquet(data_dir / f"{name}.parquet") for name in ("orders", "products", "consumers")
    }
    last = tables["orders"]["ordered_at"].max()
    made = rolling_folds(last.to_pydatetime(), folds, 30, 30)
    cutoffs = sorted({pd.Timestamp(f.cutoff) for f in made} | {pd.Timestamp(f.tuning.cutoff) for f in made})
    graded: dict[pd.Timestamp, dict[tuple[float, float, int], dict[str, float]]] = {}
    for cutoff in cutoffs:
        window = Window(tables, cutoff, RecommendConfig().interactions)
        arrays = study_signals(window)
        graded[cutoff] = {
            blend: {
                label: evaluate(window, window.lists_from(scores))["graded"]
                for label, scores in study_variants(arrays, blend).items()
            }
            for blend in STUDY_GRID
        }
        logger.info("study: window %s done", cutoff)
    rows: dict[str, dict[str, list[float]]] = {}
    for fold in made:
        test, tuning = pd.Timestamp(fold.cutoff), pd.Timestamp(fold.tuning.cutoff)
        earlier = [cutoff for cutoff in cutoffs if cutoff < test]
        for label in graded[test][STUDY_GRID[0]]:
            single = pooled_choice({b: [graded[tuning][b][label]] for b in STUDY_GRID})
            pooled = pooled_choice({b: [graded[c][b][label] for c in earlier] for b in STUDY_GRID})
            for how, blend in (
                ("blend on validation", single),
                ("blend pooled", pooled),
                ("no blend", STUDY_GRID[0]),
            ):
                rows.setdefault(f"{label} ({how})", {}).setdefault("by_fold", []).append(
                    round(graded[test][blend][label], 4)
                )
                rows[f"{label} ({how})"].setdefault("blends", []).append(list(blend))
    for row in rows.values():
        row["mean"] = round(float(np.mean(row["by_fold"])), 4)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--sim", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--folds", type=int, default=1, help="Rolling folds (1: the single window).")
    parser.add_argument("--study", action="store_true", help="Only the study of what limits the lists.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    began = time.perf_counter()
    if args.study:
        study = run_study(args.data, args.folds)
        print(f"{'study: test graded NDCG@20 by fold':<95}{'mean':>7}  by fold / blends chosen")
        for label, row in study.items():
            print(f"{label:<95}{row['mean']:>7.4f}  {row['by_fold']} {row['blends']}")
        print(f"study: {time.perf_counter() - began:.0f}s")
        if args.json is not None:
            args.json.write_text(json.dumps({"study": study}, indent=2) + "\n", encoding="utf-8")
        return
    results = {"online_retail": run_online_retail(args.data, args.folds)}
    print("fold 1 (the single window)")
    print(f"{'lists':<75}{'val graded':>11}{'test graded':>12}{'test binary':>12}")
    for label, by_window in results["online_retail"]["rows"].items():
        v, t = by_window["validation"], by_window["test"]
        print(f"{label:<75}{v['graded']:>11.4f}{t['graded']:>12.4f}{t['binary']:>12.4f}")
    if args.folds > 1:
        print(f"\nmean test NDCG@20 over {args.folds} folds (95% t-interval over the fold values)")
        print(f"{'lists':<75}{'graded':>8}{'ci low':>8}{'ci high':>8}{'binary':>8}  graded by fold")
        for label, row in results["online_retail"]["summary"].items():
            print(
                f"{label:<75}{row['graded']:>8.4f}{row['graded_ci_low']:>8.4f}{row['graded_ci_high']:>8.4f}"
                f"{row['binary']:>8.4f}  {row['graded_by_fold']}"
            )
    print(f"online retail: {time.perf_counter() - began:.0f}s")
    if args.sim is not None:
        results["simulator"] = run_simulator(args.sim)
        print(json.dumps(results["simulator"], indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
