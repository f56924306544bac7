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

What a task needs travels as a folder of files (``ScoringInputs.parts``, saved one part at a
time): the production model restricted to the part's consumers (``Recommender.restricted_to``: their
rows of the interaction data and of the per-consumer state; product-level state whole) in its saved
form (``Recommender.save``: Parquet, ``.npz`` and ``.npy`` files, no pickle), the part's plan, the
fallback lists, the filters, the lists' settings, the locale and the whole pass's platform-wide
trend (``distributors.Trend``: the one figure the pass counts over every consumer). Spark ships
the parts' folders to each executor's disk (``SparkContext.addFile``) and a task loads its own
part from there, so a Python worker holds one part's consumers, not every consumer (about 4 GiB a
worker at 31M lines before, docs/spark.md). A part holds at most ``PART_CONSUMERS`` scored
consumers. A task writes its part of each
list file as ``<scratch>/<list file>/part-NNNNN.parquet`` (with the list files' schemas, one row
group per piece of the pass, atomically: a retried task rewrites its own files) and returns one
row of counts. The driver then streams the parts, in part order, into the single list files the
artifact writer and the publish step read: the same rows in the same order as the driver's pass.
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.columns import Col
from features.files import atomic_path, write_text_atomically
from features.messages import Messages
from features.progress import progress
from features.vocabulary import InteractionCol
from models.recommenders.base import Recommender, RecommendFilters
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
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

PARTS_PER_CORE = 2  # parts per core of the session (defaultParallelism): slow parts even out
# scored consumers a part holds at most (a Python worker's memory, docs/spark.md), unless one
# distributor has more members: a part is cut only between distributors
PART_CONSUMERS = 250_000
_MODEL = "model"  # vocabulary: a value, not a column
_PLAN = "plan.parquet"
_DISTRIBUTORS = "distributors.parquet"
_COMMUNITY = "fallback_community.parquet"
_GLOBAL = "fallback_global.parquet"
_SPEND = "spend.parquet"
_SETTINGS = "settings.json"
_TREND = "trend.npz"
_CODE, _HISTORY, _SPEND_COLUMN = "code", "history", "spend"  # vocabulary: the bundle's own columns
_PART_SCHEMA = (
    "part int, consumers long, from_fallback long, distributors long, outreach_rows long, "
    "load_seconds double, seconds double"
)


@dataclass(frozen=True)
class ScoringInputs:
    """Everything a pass needs, saved without pickle (``save`` / ``load``): the whole pass on the
    driver, or one part of it (``parts``), which is what a Spark task loads.

    ``model``'s interaction data is the pass's data (``model.data_``); ``homes``: consumer id →
    home distributor (``lists.home_distributors``); ``plan``: the pass; ``trend``: the whole
    pass's platform-wide trend when ``model`` holds only a part's consumers (None: counted on
    ``model.data_``)."""

    model: Recommender
    plan: PassPlan
    homes: pd.Series
    k: int
    fallback: FallbackLists
    filters: RecommendFilters
    lists: ListsConfig
    spend: pd.Series | None
    locale: str
    trend: Trend | None = None

    def parts(self, bounds: list[tuple[int, int]]) -> Iterator[ScoringInputs]:
        """The inputs of each part (``PassPlan.parts``'s (start, stop) positions), one at a time:
        the part's plan (``PassPlan.part``), the model restricted to the part's consumers
        (``Recommender.restricted_to``), their homes and spend, their distributors' community
        fallback lists, and this pass's trend. A part's inputs give the rows this pass gives for
        its consumers and distributors (``test_spark_scoring``)."""
        trend = self.trend if self.trend is not None else Trend.of(self.model.data_, self.lists)
        community = self.fallback.community
        for start, stop in bounds:
            plan = self.plan.part(start, stop)
            ids = plan.order.consumer_ids
            yield ScoringInputs(
                self.model.restricted_to(ids),
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
                trend,
            )

    def save(self, folder: Path) -> Path:
        """Write the inputs under ``folder``: the model's own files, Parquet, ``.npy`` and JSON."""
        self.model.save(folder / _MODEL)
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
        if self.trend is not None:
            np.savez(folder / _TREND, buyers=self.trend.buyers, trending=self.trend.trending)
        settings = {
            "k": self.k,  # vocabulary: a value, not a column
            "batch_size": self.plan.batch_size,
            "lists": self.lists.model_dump(mode="json"),
            "filters": _filters_json(self.filters),
            "locale": self.locale,
        }
        write_text_atomically(folder / _SETTINGS, json.dumps(settings, sort_keys=True))
        return folder

    @classmethod
    def load(cls, folder: Path) -> ScoringInputs:
        """Read what ``save`` wrote."""
        model = Recommender.load(folder / _MODEL)
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
        fallback = FallbackLists(pd.read_parquet(folder / _COMMUNITY), pd.read_parquet(folder / _GLOBAL))
        trend = None
        if (folder / _TREND).is_file():
            with np.load(folder / _TREND, allow_pickle=False) as arrays:
                trend = Trend(arrays["buyers"], arrays["trending"])
        return cls(
            model,
            plan,
            homes,
            int(settings["k"]),  # vocabulary: a value, not a column
            fallback,
            _filters_of(settings["filters"]),
            ListsConfig.model_validate(settings["lists"]),
            spend,
            settings["locale"],
            trend,
        )

    def chunks(self, threads: int = 1) -> Iterator[PassChunk]:
        """The pass's chunks (``plan_pass``: the driver's code)."""
        return plan_pass(
            self.model,
            self.model.data_,
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


def _score_parts(batches: Iterator[pd.DataFrame], inputs_name: str, root: str) -> Iterator[pd.DataFrame]:
    """``mapInPandas``: each row (part) loaded from the executor's copy of the folder ``inputs_name``
    (``SparkContext.addFile``), scored and written; a row of counts."""
    from pyspark import SparkFiles

    for batch in batches:
        for part in batch["part"].tolist():
            started = time.perf_counter()
            inputs = ScoringInputs.load(part_folder(Path(SparkFiles.get(inputs_name)), int(part)))
            loaded = time.perf_counter()
            written = write_chunks(inputs.chunks(), part_targets(Path(root), int(part)))
            del inputs  # the part's model and data, before the next part loads its own
            yield pd.DataFrame(
                {
                    "part": [int(part)],
                    "consumers": [written.consumers],  # vocabulary: a value, not a column
                    "from_fallback": [written.from_fallback],
                    "distributors": [written.distributors],  # vocabulary: a value, not a column
                    "outreach_rows": [written.outreach_rows],
                    "load_seconds": [loaded - started],  # the part's inputs loaded
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
    stages: dict[str, float]  # seconds: inputs saved and shipped, the tasks, the merge


def spark_list_pass(
    spark: SparkSession,
    inputs: ScoringInputs,
    targets: Mapping[str, Path],
    scratch: Path,
    partitions: int | None = None,
) -> SparkPass:
    """Every list of ``inputs``' pass, computed by Spark tasks, written to ``targets`` (``LIST_SCHEMAS``
    name → file) with the rows and row order of the driver's pass (``write_chunks(list_pass(...))``).

    ``partitions`` (default: ``PARTS_PER_CORE`` × the session's cores, more where a part would
    score over ``PART_CONSUMERS`` consumers): at most so many parts. ``scratch``: a folder for
    the inputs' files and the parts (removed at the end; Spark's copies of the inputs go with
    the session)."""
    sc = spark.sparkContext
    scored = int(inputs.plan.history.sum())
    n = partitions or max(PARTS_PER_CORE * max(sc.defaultParallelism, 1), math.ceil(scored / PART_CONSUMERS))
    parts = inputs.plan.parts(n)
    work = Path(tempfile.mkdtemp(prefix="scoring-", dir=scratch))
    clock = [time.perf_counter()]
    try:
        # a name of its own: Spark refuses a second folder of the same name in one session
        folder = work / f"inputs-{uuid.uuid4().hex}"
        with progress("saving each scoring part's inputs", total=len(parts), unit="parts") as bar:
            for index, part in enumerate(inputs.parts(parts)):
                part.save(part_folder(folder, index))
                del part  # one part's copy of its consumers' rows at a time
                bar.advance()
        logger.info(
            "scoring on Spark: %d consumers in %d parts, %.1f MB of inputs shipped (each part: "
            "the model and data of its own consumers, and its plan)",
            len(inputs.plan.order.consumer_ids),
            len(parts),
            sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 1e6,
        )
        sc.addFile(str(folder), recursive=True)
        clock.append(time.perf_counter())
        rows = sc.parallelize([(index,) for index in range(len(parts))], len(parts))
        frame = spark.createDataFrame(rows, "part int")
        score = functools.partial(_score_parts, inputs_name=folder.name, root=str(work / "parts"))
        counts = _collect_with_progress(spark, frame.mapInPandas(score, _PART_SCHEMA), len(parts))
        counts = counts.sort_values("part", ignore_index=True)
        clock.append(time.perf_counter())
        _merge_parts(work / "parts", len(parts), targets)
        clock.append(time.perf_counter())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stages = dict(zip(("inputs shipped", "tasks", "merge"), np.diff(clock).tolist(), strict=True))
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
