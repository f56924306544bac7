"""The one scoring pass on Spark (issue #11 point 4): its blocks scored and listed by the executors.

The driver plans the pass as ``scoring_pass.list_pass`` does (``PassPlan``: consumers grouped by
home distributor) and cuts it into parts, each cut where no distributor has members on both sides
(``PassPlan.parts``); a part is blocked afresh from its start (``PassPlan.part``), so after the
first cut a consumer is scored in a block of another shape than in the driver's pass. The
factor models' scores, whose order the ranker reads, do not depend on the block
(``base.factor_scores``), so the lists are the same up to float summation order in the ranker's
last bits (``tests/ranked_lists.py``). Each part is one Spark task
(``mapInPandas`` over a frame of one row per part) that runs ``scoring_pass.plan_pass`` on its
blocks, the driver's code, so a part's consumer lists, distributor lists and outreach are the
driver's rows for those consumers and distributors. Grouping members by distributor rather than
aggregating per-consumer contributions with a Spark group-by keeps the lists equal and the memory
bounded: a member's contribution is a ``products``-wide row of float scores, so a group-by would
shuffle ``members × products`` numbers, where a part holds ``batch_size × products`` at a time.

What a task needs travels in two ways. The interaction rows go from Spark to Spark: the driver
sends each consumer's part number (the plan's order, ids only), Spark joins it to the night's
interaction rows (``features.interactions.interactions_query``: on the night's connection, the
Parquet ``keep_interactions`` wrote when the driver's interaction data was built; not collected)
and writes them by part (``<scratch>/rows/part=N/``), and a task reads only its own part's rows
(``part_rows``). The rest is a folder of files saved without pickle: the production model's
product-level state once (``ScoringInputs.product_model``: ``Recommender.restricted_to([])``,
item factors, similarities, the ranker's statistics and trees, the catalogue; Parquet, ``.npz``
and ``.npy``), and per part its ``PartInputs`` (plan, homes, spend, consumer profiles, community
fallback lists, the filters, the lists' settings, the locale, the as-of date and the whole pass's
platform-wide trend, ``distributors.Trend``: the one figure the pass counts over every consumer).
Spark ships the folder to each executor's disk (``SparkContext.addFile``). A task extends the
product-level model onto its rows (``PartInputs.model`` → ``Recommender.over``): the per-consumer
state is computed from each consumer's own rows where the model's is a function of them (a
carried ALS: each consumer's factors solved against the item factors, as the carry solved them;
the sampled ranker's and a model between refits are carried); a model that learned its
consumers' state (BPR, LightFM, a fitted ALS, whose last iteration solved the consumers against
the previous item factors) has it shipped in the part's folder. Either way the part's model is
the driver's restricted to those consumers. So a Python worker holds one part's consumers,
and the driver ships no consumer's rows. A part holds at most ``PART_CONSUMERS`` scored
consumers. A task writes its part of each list file as
``<scratch>/<list file>/part-NNNNN.parquet`` (with the list files' schemas, one row group per
piece of the pass, atomically: a retried task rewrites its own files) and returns one row of
counts. The driver then streams the parts, in part order, into the single list files the
artifact writer and the publish step read: the same rows in the same order as the driver's pass.
The scratch folder must be one the executors see (a shared file system on a cluster).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.columns import Col
from features.files import atomic_path, write_text_atomically
from features.interactions import INTERACTION_COLUMNS
from features.messages import Messages
from features.progress import progress
from features.vocabulary import InteractionCol
from models.recommenders.base import InteractionData, Recommender, RecommendFilters
from models.recommenders.distributors import Trend
from models.recommenders.fallback import FallbackLists
from models.recommenders.list_config import ListsConfig
from models.recommenders.scoring_pass import (
    LIST_SCHEMAS,
    PassChunk,
    PassOrder,
    PassPlan,
    RowGroupWriter,
    plan_pass,
    write_chunks,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

PARTS_PER_CORE = 2  # parts per core of the session (defaultParallelism): slow parts even out
# scored consumers a part holds at most (a Python worker's memory, docs/spark.md), unless one
# distributor has more members: a part is cut only between distributors
PART_CONSUMERS = 250_000
_PLAN = "plan.parquet"
_DISTRIBUTORS = "distributors.parquet"
_COMMUNITY = "fallback_community.parquet"
_GLOBAL = "fallback_global.parquet"
_SPEND = "spend.parquet"
_SETTINGS = "settings.json"
_TREND = "trend.npz"
_PROFILES = "profiles.parquet"
_CONSUMER_STATE = "consumer_state.npz"
_PRODUCT_MODEL = "product_model"  # the shipped folder's product-level model (every part's)
_ROWS = "rows"  # the interactions' rows, one Parquet folder per part (``part=N``, Spark's layout)
_PART = "part"  # vocabulary: the rows' part column, Spark's partition folder name
_EMPTY_TYPES = {  # an empty part's rows (``part_rows``): the interaction frame's types
    InteractionCol.WEIGHT: np.float64,
    InteractionCol.PURCHASES: np.int64,
    InteractionCol.FIRST_PURCHASE_AT: "datetime64[ns]",
    InteractionCol.LAST_PURCHASE_AT: "datetime64[ns]",
    InteractionCol.LAST_INTERACTION_AT: "datetime64[ns]",
}
_CODE, _HISTORY, _SPEND_COLUMN = "code", "history", "spend"  # vocabulary: the bundle's own columns
_PART_SCHEMA = (
    "part int, consumers long, from_fallback long, distributors long, outreach_rows long, "
    "load_seconds double, seconds double"
)


@dataclass(frozen=True)
class ScoringInputs:
    """The whole pass on the driver: the production model fitted (or carried) on the pass's
    interaction data (``model.data_``), the pass's plan and what its lists need. ``homes``:
    consumer id → home distributor (``lists.home_distributors``); ``as_of``: the date the
    interaction data is as of (its ``age_days``); ``trend``: the whole pass's platform-wide
    trend, counted by the engine over every consumer's rows (``Trend.of_counts``: the driver's
    data may hold a sample's rows only, ``InteractionData.partial``).

    A Spark task does not get the model: it gets the product-level model once
    (``product_model``) and its part's ``PartInputs`` (``parts``), and it reads its own
    consumers' rows of the interactions itself."""

    model: Recommender
    plan: PassPlan
    homes: pd.Series
    k: int
    fallback: FallbackLists
    filters: RecommendFilters
    lists: ListsConfig
    spend: pd.Series | None
    locale: str
    as_of: date
    trend: Trend

    def product_model(self) -> Recommender:
        """The model without consumers (``restricted_to([])``): its product-level state (item
        factors, similarities, the ranker's statistics and trees) and the catalogue, which every
        part shares."""
        return self.model.restricted_to([])

    def parts(self, bounds: list[tuple[int, int]]) -> Iterator[PartInputs]:
        """The inputs of each part (``PassPlan.parts``'s (start, stop) positions), one at a time:
        the part's plan (``PassPlan.part``), its consumers' homes, spend and profiles, their
        distributors' community fallback lists, and this pass's trend. A model whose per-consumer
        arrays are learned (``Recommender.consumer_state`` None: BPR, LightFM) ships them too;
        every other part computes them from its rows. With the part's rows, a part's inputs give
        the rows this pass gives for its consumers and distributors (``test_spark_scoring``)."""
        data = self.model.data_
        community = self.fallback.community
        product = self.product_model()
        learned = product.consumer_state(product.data_) is None
        # a model that fits on partial data (rows_to_fit) learns every consumer's state from the engine
        if learned and data.partial and self.model.rows_to_fit() is None:
            raise ValueError(
                f"{self.model.name} learned its per-consumer state and the data hold a sample's rows "
                "only (InteractionData.partial): it has no state for the other consumers"
            )
        profiles = data.consumer_profiles
        for start, stop in bounds:
            plan = self.plan.part(start, stop)
            ids = plan.order.consumer_ids
            rows = data.rows_of(ids)
            yield PartInputs(
                plan,
                self.homes.reindex(ids),
                self.k,
                FallbackLists(
                    community[community[Col.DISTRIBUTOR_ID].isin(plan.order.distributor_ids)],
                    self.fallback.global_,
                ),
                self.filters,
                self.lists,
                self.spend[self.spend.index.isin(ids)] if self.spend is not None else None,
                self.locale,
                self.as_of,
                self.trend,
                None if profiles is None else profiles[profiles.index.isin(ids)],
                self.model.consumer_state_of_rows(np.sort(rows[rows >= 0])) if learned else None,
            )


@dataclass(frozen=True)
class PartInputs:
    """What one Spark task loads besides the product-level model and its rows, saved without
    pickle (``save`` / ``load``): its plan, its consumers' homes, spend and profiles (indexed by
    consumer id), its distributors' fallback lists, the lists' settings, the pass's trend and the
    as-of date; ``consumer_state``: the model's per-consumer arrays for the part's consumers in
    id order when the model learned them (None: computed from the rows, ``Recommender.over``)."""

    plan: PassPlan
    homes: pd.Series
    k: int
    fallback: FallbackLists
    filters: RecommendFilters
    lists: ListsConfig
    spend: pd.Series | None
    locale: str
    as_of: date
    trend: Trend
    profiles: pd.DataFrame | None
    consumer_state: dict[str, np.ndarray] | None

    def model(self, product: Recommender, rows: pd.DataFrame) -> Recommender:
        """The production model over this part's consumers: ``rows`` (``build_interactions``'
        columns: the part's consumers' rows, in any order) as interaction data over ``product``'s
        catalogue, and ``product`` (``ScoringInputs.product_model``) extended onto it
        (``Recommender.over``): the driver's model restricted to these consumers."""
        return product.over(part_data(product.data_, rows, self.profiles, self.as_of), self.consumer_state)

    def chunks(self, model: Recommender, threads: int = 1) -> Iterator[PassChunk]:
        """The part's chunks (``plan_pass``: the driver's code) with ``model`` (``model()``'s)."""
        return plan_pass(
            model,
            model.data_,
            self.plan,
            self.homes,
            self.k,
            self.fallback,
            self.filters,
            self.lists,
            self.spend,
            Messages.load(self.locale),
            threads,
            self.trend,
        )

    def save(self, folder: Path) -> Path:
        """Write the inputs under ``folder``: Parquet, ``.npz`` and JSON."""
        folder.mkdir(parents=True, exist_ok=True)
        order = self.plan.order
        pd.DataFrame(
            {
                Col.CONSUMER_ID: order.consumer_ids.astype(str),
                _CODE: order.codes,
                _HISTORY: self.plan.history,
                InteractionCol.HOME_DISTRIBUTOR_ID: self.homes.reindex(order.consumer_ids).to_numpy(object),
            }
        ).to_parquet(folder / _PLAN)
        pd.DataFrame({Col.DISTRIBUTOR_ID: order.distributor_ids.astype(str)}).to_parquet(
            folder / _DISTRIBUTORS
        )
        self.fallback.community.to_parquet(folder / _COMMUNITY)
        self.fallback.global_.to_parquet(folder / _GLOBAL)
        if self.spend is not None:
            self.spend.rename(_SPEND_COLUMN).rename_axis(Col.CONSUMER_ID).reset_index().to_parquet(
                folder / _SPEND
            )
        if self.profiles is not None:
            self.profiles.reset_index().to_parquet(folder / _PROFILES)
        if self.consumer_state is not None:
            np.savez(folder / _CONSUMER_STATE, **self.consumer_state)
        np.savez(folder / _TREND, buyers=self.trend.buyers, trending=self.trend.trending)
        settings = {
            "k": self.k,  # vocabulary: a value, not a column
            "batch_size": self.plan.batch_size,
            "lists": self.lists.model_dump(mode="json"),
            "filters": _filters_json(self.filters),
            "locale": self.locale,
            "as_of": self.as_of.isoformat(),
        }
        write_text_atomically(folder / _SETTINGS, json.dumps(settings, sort_keys=True))
        return folder

    @classmethod
    def load(cls, folder: Path) -> PartInputs:
        """Read what ``save`` wrote."""
        settings = json.loads((folder / _SETTINGS).read_text(encoding="utf-8"))
        plan_frame = pd.read_parquet(folder / _PLAN)
        consumer_ids = pd.Index(plan_frame[Col.CONSUMER_ID].astype(str).to_numpy(object))
        distributors = pd.read_parquet(folder / _DISTRIBUTORS)[Col.DISTRIBUTOR_ID].astype(str)
        order = PassOrder(
            consumer_ids,
            plan_frame[_CODE].to_numpy(np.int64),
            pd.Index(distributors.to_numpy(object)),
        )
        plan = PassPlan.of_order(order, plan_frame[_HISTORY].to_numpy(bool), int(settings["batch_size"]))
        homes = pd.Series(
            plan_frame[InteractionCol.HOME_DISTRIBUTOR_ID].to_numpy(object), index=consumer_ids, dtype=object
        )
        spend = None
        if (folder / _SPEND).is_file():
            frame = pd.read_parquet(folder / _SPEND)
            spend = frame.set_index(Col.CONSUMER_ID)[_SPEND_COLUMN].astype(np.float64)
        profiles = None
        if (folder / _PROFILES).is_file():
            profiles = pd.read_parquet(folder / _PROFILES).set_index(Col.CONSUMER_ID)
        consumer_state = None
        if (folder / _CONSUMER_STATE).is_file():
            with np.load(folder / _CONSUMER_STATE, allow_pickle=False) as arrays:
                consumer_state = {key: arrays[key] for key in arrays.files}
        fallback = FallbackLists(pd.read_parquet(folder / _COMMUNITY), pd.read_parquet(folder / _GLOBAL))
        with np.load(folder / _TREND, allow_pickle=False) as arrays:
            trend = Trend(arrays["buyers"], arrays["trending"])
        return cls(
            plan,
            homes,
            int(settings["k"]),  # vocabulary: a value, not a column
            fallback,
            _filters_of(settings["filters"]),
            ListsConfig.model_validate(settings["lists"]),
            spend,
            settings["locale"],
            date.fromisoformat(settings["as_of"]),
            trend,
            profiles,
            consumer_state,
        )


def part_data(
    catalogue: InteractionData, rows: pd.DataFrame, profiles: pd.DataFrame | None, as_of: date
) -> InteractionData:
    """``rows`` (``build_interactions``' columns, any order) as interaction data over ``catalogue``'s
    products and product profiles (a model's, ``restricted_to([])``'s), with ``profiles`` (consumer
    profiles indexed by consumer id): what ``InteractionData.of_rows`` gives for these consumers."""
    data = InteractionData.from_frames(
        _naive_times(rows),
        None if profiles is None else profiles.reset_index(),
        None,
        as_of,
        product_ids=catalogue.product_ids,
    )
    return replace(data, product_profiles=catalogue.product_profiles)


def _naive_times(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with time columns as naive UTC times (the Spark session's time zone, as the
    driver's interaction frame has them)."""
    aware = [column for column in rows.columns if isinstance(rows[column].dtype, pd.DatetimeTZDtype)]
    if not aware:
        return rows
    return rows.assign(**{column: rows[column].dt.tz_convert("UTC").dt.tz_localize(None) for column in aware})


def _filters_json(filters: RecommendFilters) -> dict[str, Any]:
    allowed = filters.allowed_products
    return {
        "allowed_products": sorted(allowed) if allowed is not None else None,
        "exclude_products": sorted(filters.exclude_products),
        "demote": dict(filters.demote),
        "exclude_purchased": filters.exclude_purchased,
        "category_cap": filters.category_cap,
        "categories": dict(filters.categories) if filters.categories is not None else None,
    }


def _filters_of(values: Mapping[str, Any]) -> RecommendFilters:
    allowed = values["allowed_products"]
    return RecommendFilters(
        allowed_products=frozenset(allowed) if allowed is not None else None,
        exclude_products=frozenset(values["exclude_products"]),
        demote={product: float(factor) for product, factor in values["demote"].items()},
        exclude_purchased=bool(values["exclude_purchased"]),
        category_cap=values["category_cap"],
        categories=values["categories"],
    )


# --- the executors' side --------------------------------------------------------------------------


def part_folder(root: Path, part: int) -> Path:
    """Where part ``part``'s inputs are saved under the shipped folder ``root``."""
    return root / f"part-{part:05d}"


def part_targets(root: Path, part: int) -> dict[str, Path]:
    """Where part ``part`` writes each list file: ``root/<list file>/part-NNNNN.parquet``."""
    return {name: root / name / f"part-{part:05d}.parquet" for name in LIST_SCHEMAS}


def part_rows(root: Path, part: int) -> pd.DataFrame:
    """Part ``part``'s interaction rows from the folder ``root`` Spark wrote (``part=N/`` folders,
    none for a part without rows: an empty frame of ``INTERACTION_COLUMNS``)."""
    folder = root / f"{_PART}={part}"
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        return pd.DataFrame(
            {column: pd.Series(dtype=_EMPTY_TYPES.get(column, object)) for column in INTERACTION_COLUMNS}
        )
    return pq.ParquetDataset(files).read(columns=list(INTERACTION_COLUMNS)).to_pandas()


def _score_parts(
    batches: Iterator[pd.DataFrame], inputs_name: str, rows: str, root: str
) -> Iterator[pd.DataFrame]:
    """``mapInPandas``: each row (part) scored and written. The task loads the product-level model
    and the part's inputs from the executor's copy of the folder ``inputs_name``
    (``SparkContext.addFile``), reads its own consumers' rows from ``rows`` (``part_rows``) and
    extends the model onto them (``PartInputs.model``); a row of counts."""
    from pyspark import SparkFiles

    for batch in batches:
        for part in batch["part"].tolist():
            started = time.perf_counter()
            shipped = Path(SparkFiles.get(inputs_name))
            inputs = PartInputs.load(part_folder(shipped, int(part)))
            model = inputs.model(Recommender.load(shipped / _PRODUCT_MODEL), part_rows(Path(rows), int(part)))
            loaded = time.perf_counter()
            written = write_chunks(inputs.chunks(model), part_targets(Path(root), int(part)))
            del inputs, model  # the part's model and rows, before the next part loads its own
            yield pd.DataFrame(
                {
                    "part": [int(part)],
                    "consumers": [written.consumers],  # vocabulary: a value, not a column
                    "from_fallback": [written.from_fallback],
                    "distributors": [written.distributors],  # vocabulary: a value, not a column
                    "outreach_rows": [written.outreach_rows],
                    "load_seconds": [loaded - started],  # inputs and rows read, the model extended
                    "seconds": [time.perf_counter() - loaded],  # the part's pass and files
                }
            )


# --- the driver's side ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SparkPass:
    """The Spark pass's counts (as ``write_chunks``'s) and each part's (one row per part)."""

    from_fallback: int
    outreach_rows: int
    distributors: int
    parts: pd.DataFrame
    stages: dict[str, float]  # seconds: inputs saved and shipped, rows by part, the tasks, the merge


def spark_list_pass(
    spark: SparkSession,
    inputs: ScoringInputs,
    rows: DataFrame,
    targets: Mapping[str, Path],
    scratch: Path,
    partitions: int | None = None,
) -> SparkPass:
    """Every list of ``inputs``' pass, computed by Spark tasks, written to ``targets`` (``LIST_SCHEMAS``
    name → file) with the rows and row order of the driver's pass (``write_chunks(list_pass(...))``).

    ``rows``: the Spark frame of the interactions ``inputs.model`` was fitted or carried on
    (``build_interactions``' rows as the engine computes them; ``features.interactions.interactions_query``).
    Spark writes them by part (each consumer's part from the plan, joined on the executors), and
    each task reads its own part's. ``partitions`` (default: ``PARTS_PER_CORE`` × the session's
    cores, more where a part would score over ``PART_CONSUMERS`` consumers): at most so many
    parts. ``scratch``: a folder for the inputs' files, the rows and the parts, which the
    executors must see (a shared file system on a cluster), removed at the end (Spark's copies of
    the inputs go with the session)."""
    sc = spark.sparkContext
    scored = int(inputs.plan.history.sum())
    n = partitions or max(PARTS_PER_CORE * max(sc.defaultParallelism, 1), math.ceil(scored / PART_CONSUMERS))
    parts = inputs.plan.parts(n)
    work = Path(tempfile.mkdtemp(prefix="scoring-", dir=scratch))
    clock = [time.perf_counter()]
    try:
        # a name of its own: Spark refuses a second folder of the same name in one session
        folder = work / f"inputs-{uuid.uuid4().hex}"
        inputs.product_model().save(folder / _PRODUCT_MODEL)
        with progress("saving each scoring part's inputs", total=len(parts), unit="parts") as bar:
            for index, part in enumerate(inputs.parts(parts)):
                part.save(part_folder(folder, index))
                del part
                bar.advance()
        logger.info(
            "scoring on Spark: %d consumers in %d parts, %.1f MB of inputs shipped (the model's "
            "product-level state once; each part: its plan, homes, spend and profiles)",
            len(inputs.plan.order.consumer_ids),
            len(parts),
            sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 1e6,
        )
        sc.addFile(str(folder), recursive=True)
        clock.append(time.perf_counter())
        _write_rows_by_part(spark, rows, inputs.plan, parts, work / _ROWS)
        clock.append(time.perf_counter())
        tasks = sc.parallelize([(index,) for index in range(len(parts))], len(parts))
        frame = spark.createDataFrame(tasks, "part int")
        score = functools.partial(
            _score_parts, inputs_name=folder.name, rows=str(work / _ROWS), root=str(work / "parts")
        )
        counts = _collect_with_progress(spark, frame.mapInPandas(score, _PART_SCHEMA), len(parts))
        counts = counts.sort_values("part", ignore_index=True)
        clock.append(time.perf_counter())
        _merge_parts(work / "parts", len(parts), targets)
        clock.append(time.perf_counter())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stages = dict(
        zip(("inputs shipped", "rows by part", "tasks", "merge"), np.diff(clock).tolist(), strict=True)
    )
    logger.info("scoring on Spark: %s", ", ".join(f"{stage} {sec:.1f}s" for stage, sec in stages.items()))
    done = counts["consumers"]  # vocabulary: a value, not a column
    counts["consumers_per_second"] = done / counts["seconds"].clip(lower=1e-9)
    return SparkPass(
        int(counts["from_fallback"].sum()),
        int(counts["outreach_rows"].sum()),
        int(counts["distributors"].sum()),  # vocabulary: a value, not a column
        counts,
        stages,
    )


def _write_rows_by_part(
    spark: SparkSession, rows: DataFrame, plan: PassPlan, parts: list[tuple[int, int]], folder: Path
) -> None:
    """``rows`` written under ``folder`` by part (``part=N/``, one file per part): each consumer's
    part is its place in the plan; the driver sends the ids and part numbers, not the rows."""
    from pyspark.sql import functions as F

    ids = plan.order.consumer_ids
    sizes = [stop - start for start, stop in parts]
    assignment = pd.DataFrame(
        {
            Col.CONSUMER_ID: ids.astype(str).to_numpy(object),
            _PART: np.repeat(np.arange(len(parts), dtype=np.int32), sizes),
        }
    )
    with progress("interaction rows written by scoring part", total=1, unit="jobs") as bar:
        (
            rows.select(*INTERACTION_COLUMNS)
            .join(F.broadcast(spark.createDataFrame(assignment)), on=Col.CONSUMER_ID)
            .repartition(len(parts), _PART)
            .write.mode("overwrite")
            .partitionBy(_PART)
            .parquet(str(folder))
        )
        bar.advance()


def _collect_with_progress(spark: SparkSession, frame: Any, parts: int) -> pd.DataFrame:
    """``frame.toPandas()``, reporting the parts done while the Spark job runs (``features.progress``)."""
    sc = spark.sparkContext
    group = f"siyu-scoring-{uuid.uuid4().hex}"
    result: dict[str, Any] = {}

    def collect() -> None:
        sc.setJobGroup(group, "siyu scoring pass")
        try:
            result["frame"] = frame.toPandas()
        except BaseException as error:  # handed to the caller's thread
            result["error"] = error

    worker = threading.Thread(target=collect, name="siyu-spark-scoring", daemon=True)
    with progress("scoring and writing lists on Spark", total=parts, unit="parts") as bar:
        worker.start()
        done = 0
        while worker.is_alive():
            worker.join(2.0)
            now = _completed_tasks(sc, group)
            if now > done:
                bar.advance(now - done)
                done = now
        bar.advance(max(parts - done, 0) if "frame" in result else 0)
    if "error" in result:
        raise result["error"]
    return result["frame"]


def _completed_tasks(sc: Any, group: str) -> int:
    tracker = sc.statusTracker()
    done = 0
    for job in tracker.getJobIdsForGroup(group):
        info = tracker.getJobInfo(job)
        for stage in info.stageIds if info is not None else ():
            stage_info = tracker.getStageInfo(stage)
            done += stage_info.numCompletedTasks if stage_info is not None else 0
    return done


def _merge_parts(root: Path, parts: int, targets: Mapping[str, Path]) -> None:
    """Each list file from its parts, in part order (``RowGroupWriter``: the driver pass's file)."""
    for name, target in targets.items():
        with atomic_path(target) as partial:
            writer = RowGroupWriter(partial, LIST_SCHEMAS[name])
            try:
                for part in range(parts):
                    source = pq.ParquetFile(part_targets(root, part)[name])
                    for group in range(source.num_row_groups):
                        writer.write(source.read_row_group(group))
            finally:
                writer.close()


def consumers_per_second(result: SparkPass) -> float:
    """The parts' mean throughput: consumers per second per part (a task on one core)."""
    return float(result.parts["consumers_per_second"].mean()) if len(result.parts) else math.nan
