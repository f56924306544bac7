"""Temporal evaluation of recommenders: one splitter, one set of metrics, one function that runs models.

- ``TimeSplit``: train on everything before the cutoff, test on the next days. Tuning uses
  ``split.validation(days)``, the window that *ends at* the cutoff, never the test window.
- ``make_task``: the training ``InteractionData`` and the truth of a split: distinct
  (consumer, product) pairs bought (paid) in the test window, kept for consumers who bought
  before the cutoff and products in the training catalogue.
- ``EvaluationTask.sample``: a seeded sample of the test consumers (deterministic for a seed,
  whatever the models); every model is measured on the same sample.
- Metrics at ``k``, averaged over the task's consumers (a consumer with no list scores 0):
  ``ndcg`` (binary gains; ideal = min(|truth|, k) hits at the top), ``recall`` (hits / |truth|),
  ``precision`` (hits / k), ``map`` (average precision, normalised by min(|truth|, k)),
  ``hit_rate`` (share with at least one hit), ``coverage`` (share of the catalogue recommended
  to someone) and ``novelty`` (mean −log2 of a recommended product's share of training
  consumers; higher = less obvious products).
- Each per-consumer metric comes with a 95% confidence interval, mean ± 1.96 · sd / √n over the
  consumers' values (``confidence_interval``; NaN below two consumers). Coverage and novelty
  are properties of the lists, not means over consumers, and have none.
- Protocols: ``all_items`` (repurchases count) and ``new_items`` (products the consumer
  bought before the cutoff are filtered from the list *and* from the truth; consumers left
  with no truth drop out).
- ``evaluate_models``: fits each model on the task's training data and measures it under
  each protocol; every number reported by ``siyu evaluate`` and the benchmarks comes from here.
  A model scores each consumer once for all protocols (one ``score_blocks`` pass; each
  protocol's lists come from the same block with its filters), so ``recommend_seconds`` is
  that shared pass, the same on each protocol's row.
- Rolling origin (``rolling_folds``): fold ``i`` (1 = the latest) tests the ``holdout_days``
  after the cutoff ``last − i·holdout_days`` and tunes on the ``validation_days`` before that
  cutoff; a ``RollingFold`` whose tuning window reaches into its test window cannot be built.
  ``summarise_folds`` turns the per-fold rows into one row per model and protocol: the mean
  over folds and, from two folds on, a 95% t-interval over the fold means
  (mean ± t₀.₉₇₅,ₙ₋₁ · sd / √n, n = folds): how much a metric moves from one time window to
  the next, which the per-consumer interval of one window does not show. One fold keeps the
  per-consumer interval.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

from features.columns import Col
from features.errors import SiyuError
from features.interactions import (
    Cutoff,
    InteractionConfig,
    build_interactions,
    buyer_ids,
    consumer_profiles,
    cutoff_before,
    interaction_ids,
    product_profiles,
    purchased_pairs,
    upper_bound,
)
from features.popularity import EngineRows, NightRows
from features.progress import CONSUMERS, progress
from features.vocabulary import MetricCol
from models.recommenders.base import (
    InteractionData,
    RecCol,
    Recommender,
    RecommendFilters,
    ScoreBlock,
    hashed_sample,
)
from models.recommenders.popularity import recent_popularity

logger = logging.getLogger(__name__)


class Protocol:
    """Evaluation protocols."""

    ALL_ITEMS = "all_items"
    NEW_ITEMS = "new_items"

    ALL: tuple[str, ...] = (ALL_ITEMS, NEW_ITEMS)


RANKING_METRICS: tuple[str, ...] = (
    MetricCol.NDCG,
    MetricCol.RECALL,
    MetricCol.PRECISION,
    MetricCol.MAP,
    MetricCol.HIT_RATE,
)
INTERVAL_COLUMNS: tuple[str, ...] = tuple(bound for _, *bounds in MetricCol.INTERVALS for bound in bounds)
EVALUATION_COLUMNS: tuple[str, ...] = (
    MetricCol.MODEL,
    MetricCol.PROTOCOL,
    MetricCol.CONSUMERS,
    *RANKING_METRICS,
    MetricCol.COVERAGE,
    MetricCol.NOVELTY,
    *INTERVAL_COLUMNS,
    MetricCol.FIT_SECONDS,
    MetricCol.RECOMMEND_SECONDS,
)
CONFIDENCE_Z = 1.96  # two-sided 95% interval of a mean (normal approximation)
CONFIDENCE_METHOD = "mean ± 1.96·sd/√n over per-consumer values"
FOLDS_CONFIDENCE_METHOD = "mean over folds ± t(0.975, folds−1)·sd/√folds over the fold means"
FOLD_COLUMNS: tuple[str, ...] = (MetricCol.FOLD, MetricCol.FOLD_CUTOFF, *EVALUATION_COLUMNS)
SUMMARY_COLUMNS: tuple[str, ...] = (*EVALUATION_COLUMNS, MetricCol.FOLDS)


# --- splitting -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeSplit:
    """Train before ``upper_bound(cutoff)``, test from there up to ``upper_bound(test_end)``.

    An ``AsOf`` means the end of its day; a ``datetime`` is an exact instant (see
    ``features.interactions.Cutoff``).
    """

    cutoff: Cutoff
    test_end: Cutoff

    @classmethod
    def holdout(cls, last: Cutoff, days: int) -> TimeSplit:
        """The last ``days`` (up to ``last``) as test window."""
        return cls(cutoff_before(last, days), last)

    def validation(self, days: int) -> TimeSplit:
        """The window of ``days`` ending at this split's cutoff: where tuning happens."""
        return TimeSplit(cutoff_before(self.cutoff, days), self.cutoff)


class FoldLeakError(SiyuError):
    """A fold whose tuning window would see its test window (or whose test window is empty)."""


@dataclass(frozen=True)
class RollingFold:
    """One fold of a rolling-origin evaluation: ``test`` measures, ``tuning`` is where models learn
    their settings. Refuses (``FoldLeakError``) a tuning window that ends after the test cutoff or
    a test window that ends before it starts: nothing is tuned on the data it is tested on."""

    number: int
    test: TimeSplit
    tuning: TimeSplit

    def __post_init__(self) -> None:
        tuning_end, cutoff = upper_bound(self.tuning.test_end), upper_bound(self.test.cutoff)
        if tuning_end > cutoff:
            raise FoldLeakError(
                f"fold {self.number}: its tuning window ends at {tuning_end}, after its test cutoff "
                f"{cutoff}; tuning would see the test window\n"
                "  fix: build folds with models.evaluation.rolling_folds (tuning ends at the cutoff)"
            )
        if upper_bound(self.test.test_end) <= cutoff:
            raise FoldLeakError(
                f"fold {self.number}: test window {cutoff} .. {upper_bound(self.test.test_end)} is empty"
                "\n  fix: give the test window at least one day"
            )

    @property
    def cutoff(self) -> Cutoff:
        """The end of the fold's training data (the start of its test window)."""
        return self.test.cutoff


def rolling_folds(last: Cutoff, folds: int, holdout_days: int, validation_days: int) -> list[RollingFold]:
    """``folds`` rolling-origin folds ending at ``last``, the latest first.

    Fold ``i`` (1-based) tests ``(last − i·holdout_days, last − (i−1)·holdout_days]`` and tunes on
    the ``validation_days`` before its cutoff; test windows tile the time before ``last`` without
    overlapping. Fold 1 is the single-window protocol (``TimeSplit.holdout(last, holdout_days)``).
    """
    if folds < 1:
        raise ValueError(f"folds must be at least 1, got {folds}")
    made = []
    for number in range(1, folds + 1):
        test_end = last if number == 1 else cutoff_before(last, (number - 1) * holdout_days)
        test = TimeSplit(cutoff_before(last, number * holdout_days), test_end)
        made.append(RollingFold(number, test, test.validation(validation_days)))
    return made


def cutoff_date(cutoff: Cutoff) -> str:
    """A cutoff as its exclusive end instant in ISO form (what the per-fold rows record)."""
    end: datetime = upper_bound(cutoff)
    return end.isoformat(sep=" ")


@dataclass(frozen=True)
class EvaluationTask:
    """Training data of a split and its truth (consumer_id, product_id), see ``make_task``."""

    split: TimeSplit
    train: InteractionData
    truth: pd.DataFrame

    @property
    def consumer_ids(self) -> pd.Index:
        return pd.Index(self.truth[Col.CONSUMER_ID].unique())

    @property
    def consumers(self) -> int:
        """How many test consumers the truth holds."""
        return int(self.truth[Col.CONSUMER_ID].nunique())

    def sample(self, size: int | None, seed: int = 0) -> EvaluationTask:
        """The task restricted to ``sample_consumers(self.consumer_ids, size, seed)``."""
        kept = sample_consumers(self.consumer_ids, size, seed)
        if len(kept) == len(self.consumer_ids):
            return self
        truth = self.truth[self.truth[Col.CONSUMER_ID].isin(kept)].reset_index(drop=True)
        logger.info("evaluating on %d of %d test consumers (seed %d)", len(kept), self.consumers, seed)
        return EvaluationTask(self.split, self.train, truth)


def sample_consumers(consumer_ids: pd.Index, size: int | None, seed: int = 0) -> pd.Index:
    """A seeded sample of ``size`` distinct consumers, sorted; all of them when ``size`` is None or
    not smaller. Depends only on the set of ids and the seed (not on their order)."""
    population = pd.Index(consumer_ids).unique().sort_values()
    if size is None or len(population) <= size:
        return population
    picked = np.random.default_rng(seed).choice(len(population), size, replace=False)
    return population[np.sort(picked)]


def make_task(
    con: duckdb.DuckDBPyConnection,
    split: TimeSplit,
    interactions: InteractionConfig | None = None,
    with_profiles: bool = True,
    rows: PartialRows | None = None,
) -> EvaluationTask:
    """Build the training data up to the cutoff and the truth of the test window.

    ``rows``: the training data hold only the rows ``rows`` names (``InteractionData.partial``)
    and those of the test consumers ``EvaluationTask.sample`` will keep with ``rows.tested`` and
    ``rows.seed``: measure the task through that sample."""
    if rows is None:
        train = interaction_data(con, split.cutoff, interactions, with_profiles)
        truth = restrict_truth(purchased_pairs(con, split.cutoff, split.test_end), train)
    else:
        everyone, catalogue = interaction_ids(con, split.cutoff, interactions)
        pairs = purchased_pairs(con, split.cutoff, split.test_end)
        truth = restrict_truth_to(pairs, buyer_ids(con, split.cutoff, interactions), catalogue)
        tested = sample_consumers(pd.Index(truth[Col.CONSUMER_ID].unique()), rows.tested, rows.seed)
        also = tested.union(rows.also(everyone, pairs))
        train = interaction_data(
            con, split.cutoff, interactions, with_profiles, rows.sample, also, (everyone, catalogue)
        )
    logger.info(
        "split at %s: %d training consumers x %d products; %d test consumers, %d truth pairs",
        split.cutoff,
        *train.shape,
        truth[Col.CONSUMER_ID].nunique(),
        len(truth),
    )
    return EvaluationTask(split, train, truth)


@dataclass(frozen=True)
class PartialRows:
    """Which consumers' rows an evaluation's partial training data hold (``make_task``): the
    ``hashed_sample`` of ``sample`` consumers (the models' ``rows_to_fit``), the test consumers
    measured (``sample_consumers`` of ``tested`` with ``seed``) and those ``also`` picks from the
    consumers with history and the test window's pairs (the learner's consumers of a ranker that
    production tunes on these data, ``Recommender.tuning_consumers``)."""

    sample: int
    tested: int | None
    seed: int
    also: Callable[[pd.Index, pd.DataFrame], pd.Index]


def interaction_data(
    con: duckdb.DuckDBPyConnection,
    cutoff: Cutoff,
    interactions: InteractionConfig | None = None,
    with_profiles: bool = True,
    sample: int | None = None,
    also: pd.Index | None = None,
    ids: tuple[pd.Index, pd.Index] | None = None,
) -> InteractionData:
    """The interaction data as of ``cutoff`` (``build_interactions``) with consumer and product
    profiles: the one assembly of the evaluation's split, the tuning windows and production.

    ``sample``: only the rows of the ``sample`` consumers ``hashed_sample`` picks among every
    consumer with rows (a model's ``fitting_consumers``; 0: none) and of the consumers ``also``
    (any order; those without history are none of the data's), the data ``partial``: every
    consumer's id, every product, those rows, and where the engine holds every row
    (``InteractionData.engine``: its counts, valid while ``con`` is open). With no more consumers than
    ``sample``, all rows. ``ids``: ``interaction_ids`` of this cutoff, when the caller has them.

    Each part is logged with its time: at 10M order lines each takes seconds (the pairs, the
    profiles, the matrices), and the night builds three of them."""
    started = time.perf_counter()
    consumer_ids = product_ids = chosen = engine = None
    if sample is not None:
        everyone, catalogue = ids if ids is not None else interaction_ids(con, cutoff, interactions)
        rows = hashed_sample(everyone, sample)
        if rows is not None:
            consumer_ids, product_ids, chosen = everyone, catalogue, everyone[rows]
            if also is not None:
                chosen = chosen.union(pd.Index(also).astype(str).intersection(everyone))
            engine = EngineRows(con, NightRows.of(con, cutoff, interactions or InteractionConfig()))
            logger.info(
                "interaction data as of %s: the rows of %d of %d consumers (a fixed sample of %d "
                "and %d others), %s",
                cutoff,
                len(chosen),
                len(everyone),
                sample,
                len(chosen) - len(rows),
                _since(started),
            )
    frame = build_interactions(con, cutoff, interactions, ordered=False, consumers=chosen)
    logger.info("interaction data as of %s: %d pairs read, %s", cutoff, len(frame), _since(started))
    consumers = products = None
    if with_profiles:
        started = time.perf_counter()
        consumers, products = consumer_profiles(con, cutoff), product_profiles(con)
        logger.info(
            "interaction data as of %s: profiles of %d consumers and %d products, %s",
            cutoff,
            len(consumers),
            len(products),
            _since(started),
        )
    started = time.perf_counter()
    data = InteractionData.from_frames(
        frame,
        consumers,
        products,
        as_of=cutoff,
        product_ids=product_ids,
        consumer_ids=consumer_ids,
        engine=engine,
    )
    logger.info(
        "interaction data as of %s: %d consumers x %d products, %s", cutoff, *data.shape, _since(started)
    )
    return data


def _since(started: float) -> str:
    return f"{time.perf_counter() - started:.1f}s"


def restrict_truth(truth: pd.DataFrame, train: InteractionData) -> pd.DataFrame:
    """Truth pairs of consumers who bought before the cutoff, for products in the training catalogue."""
    bought_rows = np.flatnonzero(np.diff(train.bought.indptr) > 0)
    return restrict_truth_to(truth, train.consumer_ids[bought_rows], train.product_ids)


def restrict_truth_to(truth: pd.DataFrame, buyers: pd.Index, catalogue: pd.Index) -> pd.DataFrame:
    """``restrict_truth`` given the consumers who bought before the cutoff and the catalogue."""
    keep = truth[Col.CONSUMER_ID].astype(str).isin(buyers) & truth[Col.PRODUCT_ID].astype(str).isin(catalogue)
    kept = truth.loc[keep, [Col.CONSUMER_ID, Col.PRODUCT_ID]].astype(str)
    return kept.sort_values([Col.CONSUMER_ID, Col.PRODUCT_ID]).reset_index(drop=True)


def new_items_truth(truth: pd.DataFrame, train: InteractionData) -> pd.DataFrame:
    """Truth without the pairs the consumer bought before the cutoff."""
    rows = train.rows_of(truth[Col.CONSUMER_ID])
    columns = train.columns_of(truth[Col.PRODUCT_ID])
    valid = (rows >= 0) & (columns >= 0)
    before = np.zeros(len(truth), dtype=bool)
    before[valid] = np.asarray(train.bought[rows[valid], columns[valid]]).ravel() > 0
    return truth.loc[~before].reset_index(drop=True)


# --- metrics -------------------------------------------------------------------------------------


def ranking_metrics(recommendations: pd.DataFrame, truth: pd.DataFrame, k: int) -> dict[str, float]:
    """NDCG, recall, precision, MAP and hit rate at ``k``, averaged over the consumers in ``truth``.

    ``recommendations``: consumer_id, product_id, rank (1 = best); ranks above ``k`` are ignored.
    ``truth``: consumer_id, product_id (relevant pairs; duplicates ignored).
    """
    return metric_means(consumer_metrics(recommendations, truth, k))


def metric_means(values: pd.DataFrame) -> dict[str, float]:
    """The ``RANKING_METRICS`` averaged over the consumers of ``consumer_metrics`` output (NaN if none)."""
    if values.empty:
        return {metric: float("nan") for metric in RANKING_METRICS}
    return {metric: float(values[metric].mean()) for metric in RANKING_METRICS}


def metric_intervals(values: pd.DataFrame) -> dict[str, float]:
    """The 95% confidence interval columns (``MetricCol.INTERVALS``) of ``consumer_metrics`` output."""
    bounds: dict[str, float] = {}
    for metric, low, high in MetricCol.INTERVALS:
        bounds[low], bounds[high] = confidence_interval(values[metric].to_numpy(dtype=np.float64))
    return bounds


def interval_of(metric: str) -> tuple[str, str]:
    """The (low, high) columns of ``metric``'s confidence interval."""
    for name, low, high in MetricCol.INTERVALS:
        if name == metric:
            return low, high
    raise ValueError(f"{metric!r} has no confidence interval; one of {RANKING_METRICS} has")


def confidence_interval(values: np.ndarray, z: float = CONFIDENCE_Z) -> tuple[float, float]:
    """mean ± z · sd / √n (sample sd); NaN for fewer than two values."""
    if len(values) < 2:
        return float("nan"), float("nan")
    mean = float(np.mean(values))
    half = z * float(np.std(values, ddof=1)) / np.sqrt(len(values))
    return mean - half, mean + half


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """mean ± t(1 − (1 − level)/2, n − 1) · sd / √n (sample sd); NaN for fewer than two values."""
    if len(values) < 2:
        return float("nan"), float("nan")
    mean = float(np.mean(values))
    t = float(stats.t.ppf(1 - (1 - level) / 2, len(values) - 1))
    half = t * float(np.std(values, ddof=1)) / np.sqrt(len(values))
    return mean - half, mean + half


def consumer_metrics(recommendations: pd.DataFrame, truth: pd.DataFrame, k: int) -> pd.DataFrame:
    """One row per consumer in ``truth`` (index consumer_id, sorted): ``RANKING_METRICS`` at ``k``."""
    truth = truth[[Col.CONSUMER_ID, Col.PRODUCT_ID]].drop_duplicates()
    sizes = truth.groupby(Col.CONSUMER_ID).size()
    if sizes.empty:
        return pd.DataFrame(columns=list(RANKING_METRICS), dtype=np.float64)
    top = recommendations.loc[
        recommendations[RecCol.RANK] <= k, [Col.CONSUMER_ID, Col.PRODUCT_ID, RecCol.RANK]
    ]
    hits = top.merge(truth, on=[Col.CONSUMER_ID, Col.PRODUCT_ID], how="inner").sort_values(
        [Col.CONSUMER_ID, RecCol.RANK]
    )
    ranks = hits[RecCol.RANK].to_numpy(dtype=np.float64)
    hits = hits.assign(
        gain=1.0 / np.log2(ranks + 1.0),
        precision_at=(hits.groupby(Col.CONSUMER_ID).cumcount().to_numpy() + 1) / ranks,
    )
    per_consumer = hits.groupby(Col.CONSUMER_ID).agg(
        hits=(RecCol.RANK, "size"), dcg=("gain", "sum"), ap=("precision_at", "sum")
    )
    per_consumer = per_consumer.reindex(sizes.index, fill_value=0.0)
    ideal_hits = np.minimum(sizes.to_numpy(), k)
    ideal_dcg = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))[ideal_hits - 1]
    n_hits = per_consumer["hits"].to_numpy(dtype=np.float64)
    values = {
        MetricCol.NDCG: per_consumer["dcg"].to_numpy(dtype=np.float64) / ideal_dcg,
        MetricCol.RECALL: n_hits / sizes.to_numpy(),
        MetricCol.PRECISION: n_hits / k,
        MetricCol.MAP: per_consumer["ap"].to_numpy(dtype=np.float64) / ideal_hits,
        MetricCol.HIT_RATE: (n_hits > 0).astype(np.float64),
    }
    return pd.DataFrame(values, index=sizes.index)


def catalogue_coverage(recommendations: pd.DataFrame, catalogue_size: int, k: int) -> float:
    """Share of the catalogue that appears in at least one top-``k`` list."""
    top = recommendations.loc[recommendations[RecCol.RANK] <= k, Col.PRODUCT_ID]
    return float(top.nunique() / catalogue_size) if catalogue_size else float("nan")


def novelty(recommendations: pd.DataFrame, popularity: pd.Series, k: int) -> float:
    """Mean −log2(share of consumers who interacted with the product) over top-``k`` recommendations.

    ``popularity``: share of training consumers per product id (in (0, 1]).
    """
    top = recommendations.loc[recommendations[RecCol.RANK] <= k, Col.PRODUCT_ID]
    if top.empty:
        return float("nan")
    shares = popularity.reindex(top.to_numpy()).fillna(popularity.min()).to_numpy(dtype=np.float64)
    return float(np.mean(-np.log2(np.clip(shares, 1e-12, 1.0))))


def consumer_share(data: InteractionData) -> pd.Series:
    """Share of training consumers with a positive interaction, per product id (on ``partial``
    data, of every consumer's rows: ``recent_popularity``)."""
    counts = recent_popularity(data, None)
    return pd.Series(counts / max(data.shape[0], 1), index=data.product_ids)


# --- running models ------------------------------------------------------------------------------


def evaluate_models(
    models: Mapping[str, Recommender],
    task: EvaluationTask,
    k: int = 10,
    protocols: Sequence[str] = Protocol.ALL,
    fit: bool = True,
) -> pd.DataFrame:
    """Fit (unless ``fit=False``) and measure every model under every protocol; ``EVALUATION_COLUMNS``.

    Progress (models done of all) goes through ``features.progress``.
    """
    rows: list[dict[str, object]] = []
    popularity = consumer_share(task.train)
    fitted: list[Recommender] = []
    with progress(f"evaluating {len(models)} recommenders", total=len(models), unit="models") as bar:
        for position, (name, model) in enumerate(models.items(), start=1):
            logger.info("evaluating %s (%d of %d)", name, position, len(models))
            twin = _fitted_twin(model, fitted, task.train) if fit else None
            if twin is not None:
                logger.info("%s: the same model as a component fitted on this data, not fitted again", name)
            chosen = twin if twin is not None else model
            rows.extend(_evaluate_one(name, chosen, task, k, protocols, fit and twin is None, popularity))
            fitted.append(chosen)
            bar.advance()
    return pd.DataFrame(rows, columns=list(EVALUATION_COLUMNS))


def _fitted_twin(
    model: Recommender, fitted: Sequence[Recommender], train: InteractionData
) -> Recommender | None:
    """A component of an already fitted model (the ranker's item-kNN, EASE, ...) of ``model``'s
    class and parameters, fitted on ``train``: fits are deterministic, so it is what fitting
    ``model`` would give (the nightly's itemknn_bm25 and ease are the ranker's own components)."""
    for done in fitted:
        for component in getattr(done, "models_", {}).values():
            if (
                type(component) is type(model)
                and getattr(component, "data_", None) is train
                and component.get_params() == model.get_params()
            ):
                return component
    return None


def _evaluate_one(
    name: str,
    model: Recommender,
    task: EvaluationTask,
    k: int,
    protocols: Sequence[str],
    fit: bool,
    popularity: pd.Series,
) -> list[dict[str, object]]:
    fit_seconds = 0.0
    if fit:
        began = time.perf_counter()
        model.fit(task.train)
        fit_seconds = time.perf_counter() - began
    began = time.perf_counter()
    truths = {protocol: protocol_truth(task, protocol) for protocol in protocols}
    lists = _protocol_lists(name, model, truths, k)
    recommend_seconds = time.perf_counter() - began
    rows = []
    for protocol, truth in truths.items():
        rows.append(_measure(name, lists[protocol], truth, task, protocol, k, popularity))
        rows[-1].update({MetricCol.FIT_SECONDS: fit_seconds, MetricCol.RECOMMEND_SECONDS: recommend_seconds})
        logger.info("%s / %s: ndcg@%d %.4f", name, protocol, k, rows[-1][MetricCol.NDCG])
    return rows


def metrics_by_name(table: pd.DataFrame) -> dict[str, float]:
    """``<protocol>.<model>.<metric>`` for every number of an ``evaluate_models`` table (for MLflow)."""
    metrics: dict[str, float] = {}
    for row in table.to_dict("records"):
        for name, value in row.items():
            if name not in (MetricCol.MODEL, MetricCol.PROTOCOL) and isinstance(value, int | float):
                metrics[metric_name(row[MetricCol.PROTOCOL], row[MetricCol.MODEL], name)] = float(value)
    return metrics


def metric_name(protocol: str, model: str, metric: str) -> str:
    """The name ``metrics_by_name`` gives one number: ``<protocol>.<model>.<metric>``."""
    return f"{protocol}.{model}.{metric}"


def protocol_truth(task: EvaluationTask, protocol: str) -> pd.DataFrame:
    """The truth a protocol measures against."""
    if protocol == Protocol.NEW_ITEMS:
        return new_items_truth(task.truth, task.train)
    if protocol == Protocol.ALL_ITEMS:
        return task.truth
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {Protocol.ALL}")


def protocol_filters(protocol: str) -> RecommendFilters:
    """The filters a protocol recommends with."""
    return RecommendFilters(exclude_purchased=protocol == Protocol.NEW_ITEMS)


_SCORING_SLICE = 10_000  # consumers scored per progress step (lists do not depend on it)


def _protocol_lists(
    name: str, model: Recommender, truths: Mapping[str, pd.DataFrame], k: int
) -> dict[str, pd.DataFrame]:
    """Each protocol's top-``k`` lists for its truth's consumers, from ONE scoring pass over them
    all (``score_blocks``; a consumer measured under both protocols is scored once): each
    protocol's lists are what ``model.recommend`` with its filters gives."""
    wanted = {protocol: pd.Index(truth[Col.CONSUMER_ID].unique()) for protocol, truth in truths.items()}
    consumers = pd.Index(pd.unique(np.concatenate([ids.to_numpy() for ids in wanted.values()])))
    members = {protocol: consumers.isin(ids) for protocol, ids in wanted.items()}
    filters = {protocol: protocol_filters(protocol) for protocol in truths}
    lists: dict[str, list[pd.DataFrame]] = {protocol: [] for protocol in truths}
    done = 0
    with progress(f"{name}: scoring", total=len(consumers), unit=CONSUMERS) as bar:
        for start in range(0, len(consumers), _SCORING_SLICE):
            part = consumers[start : start + _SCORING_SLICE]
            for block in model.score_blocks(part):
                size = len(block.consumer_ids)
                for protocol, member in members.items():
                    inside = member[done : done + size]
                    mine = ScoreBlock(block.consumer_ids[inside], block.product_ids, block.scores[inside])
                    lists[protocol].append(model.recommend_from_block(mine, k, filters[protocol]))
                done += size
            bar.advance(len(part))
    return {
        protocol: pd.concat(frames, ignore_index=True)
        if frames
        else model.recommend(wanted[protocol], k, filters[protocol])
        for protocol, frames in lists.items()
    }


def _measure(
    name: str,
    recommendations: pd.DataFrame,
    truth: pd.DataFrame,
    task: EvaluationTask,
    protocol: str,
    k: int,
    popularity: pd.Series,
) -> dict[str, object]:
    values = consumer_metrics(recommendations, truth, k)
    return {
        MetricCol.MODEL: name,
        MetricCol.PROTOCOL: protocol,
        MetricCol.CONSUMERS: truth[Col.CONSUMER_ID].nunique(),
        **metric_means(values),
        MetricCol.COVERAGE: catalogue_coverage(recommendations, task.train.shape[1], k),
        MetricCol.NOVELTY: novelty(recommendations, popularity, k),
        **metric_intervals(values),
    }


def grid_search(
    kind: str,
    grid: Mapping[str, Sequence[object]],
    task: EvaluationTask,
    k: int = 10,
    protocol: str = Protocol.ALL_ITEMS,
    fixed: Mapping[str, object] | None = None,
) -> tuple[dict[str, object], pd.DataFrame]:
    """Try every combination of ``grid`` for a model ``kind`` on ``task`` (a *validation* task).

    Returns the parameters with the best NDCG@k under ``protocol`` and the table of all tries
    (one row per combination, its parameters as columns).
    """
    from itertools import product

    from models.recommenders.ranker import build_component

    keys = list(grid)
    tried, scores = [], []
    popularity = consumer_share(task.train)
    for values in product(*(grid[key] for key in keys)):
        params = {**(fixed or {}), **dict(zip(keys, values, strict=True))}
        model = build_component({"kind": kind, **params})
        rows = _evaluate_one(kind, model, task, k, (protocol,), True, popularity)
        tried.append(params)
        scores.append(float(rows[0][MetricCol.NDCG]))  # type: ignore[arg-type]
    tries = pd.DataFrame(tried).assign(**{MetricCol.NDCG: scores})
    return dict(tried[int(np.argmax(scores))]), tries


# --- rolling folds -------------------------------------------------------------------------------


def fold_rows(table: pd.DataFrame, fold: RollingFold) -> pd.DataFrame:
    """An ``evaluate_models`` table of ``fold`` as per-fold rows (``FOLD_COLUMNS``)."""
    marked = table.assign(**{MetricCol.FOLD: fold.number, MetricCol.FOLD_CUTOFF: cutoff_date(fold.cutoff)})
    return marked[list(FOLD_COLUMNS)]


def summarise_folds(per_fold: pd.DataFrame) -> pd.DataFrame:
    """One row per model and protocol (``SUMMARY_COLUMNS``, first-seen order) from per-fold rows.

    Metrics, coverage, novelty and timings are means over folds; ``consumers`` is the sum (the
    consumer-windows measured); ``folds`` how many folds. Intervals: one fold keeps its
    per-consumer interval; two or more get ``t_interval`` over the fold means.
    """
    rows = []
    for (model, protocol), part in per_fold.groupby([MetricCol.MODEL, MetricCol.PROTOCOL], sort=False):
        row: dict[str, object] = {
            MetricCol.MODEL: model,
            MetricCol.PROTOCOL: protocol,
            MetricCol.CONSUMERS: int(part[MetricCol.CONSUMERS].sum()),
            MetricCol.FOLDS: len(part),
        }
        for column in (*RANKING_METRICS, MetricCol.COVERAGE, MetricCol.NOVELTY, *MetricCol.TIMINGS):
            row[column] = float(part[column].mean())
        for metric, low, high in MetricCol.INTERVALS:
            if len(part) == 1:
                row[low], row[high] = float(part[low].iloc[0]), float(part[high].iloc[0])
            else:
                row[low], row[high] = t_interval(part[metric].to_numpy(dtype=np.float64))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def confidence_method(folds: int) -> str:
    """What the intervals of a ``summarise_folds`` table over ``folds`` folds are."""
    return CONFIDENCE_METHOD if folds == 1 else FOLDS_CONFIDENCE_METHOD


def fold_metrics_by_name(per_fold: pd.DataFrame) -> dict[str, float]:
    """``fold<i>.<protocol>.<model>.<metric>`` for every number of the per-fold rows (for MLflow)."""
    metrics: dict[str, float] = {}
    for number, part in per_fold.groupby(MetricCol.FOLD):
        named = metrics_by_name(part.drop(columns=[MetricCol.FOLD, MetricCol.FOLD_CUTOFF]))
        metrics.update({f"fold{number}.{name}": value for name, value in named.items()})
    return metrics
