"""ONE scoring pass over the production model's score blocks makes every published list.

``list_pass`` walks the known consumers (consumers table ∪ buyers) grouped by home
distributor (distributor id order; consumers without one last), then by consumer id, in
blocks of ``lists.batch_size`` consumers with history. Each block is scored once
(``Recommender.score_blocks``) and gives:

- the block's **consumer lists**: the model's top ``k`` (``Recommender.recommend_from_block``,
  the same filters as ``recommend``) topped up by the fallback chain, with reasons
  (``lists.finished_lists``); consumers without history get the fallback chain;
- the **distributor aggregation** of its members (``distributors.DistributorStream``): as the
  consumers come grouped by distributor, each distributor is complete once the pass moves past
  it; its list (top ``distributor_top_n``) and its **outreach** are made then and the dense
  distributor × product rows are dropped.

The next ``SCORING_THREADS`` blocks are scored on their own threads while the current block's
lists are made (``_scored_ahead``; the same scores, each block by the same code). The ranker's
scoring of a block costs more than its lists, so with one scoring thread the lists' thread
waited for it; with two, both cores stay busy. BLAS runs one thread each during the pass
(``threadpool_limits``): the pass's own threads already fill the cores, and BLAS's spare threads
only contended with them (a matrix product's values do not depend on its threads). Memory is
``SCORING_THREADS + 1`` blocks' scores plus the open distributors' rows
(``batch_size × products`` each), whatever the number of consumers or distributors. The lists
equal those of scoring every consumer separately for each list (the three passes this replaces;
``tests/pipelines/steps/test_recommend_one_pass.py`` holds them to a fixture); only the
consumer file's row order changed: by home distributor, then consumer id, then rank.

The pass is planned once (``PassPlan``: the order, who has history, the blocks) and run by
``plan_pass``; on Spark (``models.recommenders.spark_scoring``) the plan is cut into parts between
distributors (``PassPlan.parts``) and each part (``PassPlan.part``) is a pass of its own, run by
the same ``plan_pass``. ``write_chunks`` writes the pieces into the list files in row groups of
``ROW_GROUP_ROWS`` rows (``RowGroupWriter``), so a file's bytes depend on its rows only.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits

from features.catalog import StepFile, export_file
from features.files import atomic_path
from features.messages import Messages
from features.vocabulary import DistributorListCol
from models.recommenders.base import InteractionData, RecCol, Recommender, RecommendFilters, ScoreBlock
from models.recommenders.distributors import (
    DISTRIBUTOR_COLUMNS,
    OUTREACH_COLUMNS,
    DistributorStream,
    Trend,
    empty_distributor_lists,
    empty_outreach,
    member_weights,
)
from models.recommenders.fallback import FallbackLists
from models.recommenders.list_config import ListsConfig
from models.recommenders.lists import LIST_COLUMNS, category_codes, finished_lists

_COLD_FACTOR = 8
SCORING_THREADS = 2  # blocks scored ahead at once, each on its own thread
_NO_CONSUMERS = pd.DataFrame(columns=list(LIST_COLUMNS))


@dataclass(frozen=True)
class PassChunk:
    """A piece of the pass: a block's consumer rows, or the rows of distributors it finished."""

    consumer_rows: pd.DataFrame  # consumer_id, product_id, rank, score, reason
    distributor_rows: pd.DataFrame  # DISTRIBUTOR_COLUMNS of the distributors the block completed
    outreach_rows: pd.DataFrame  # OUTREACH_COLUMNS of the same distributors
    from_fallback: int  # consumers of the block whose first product came from the fallback chain
    consumers: int  # consumers in the block


@dataclass(frozen=True)
class PassOrder:
    """The known consumers in pass order and each one's home distributor code
    (``len(distributor_ids)``: none)."""

    consumer_ids: pd.Index
    codes: np.ndarray
    distributor_ids: pd.Index

    @classmethod
    def of(cls, homes: pd.Series, listed_distributors: set[str]) -> PassOrder:
        """``homes``: consumer id → home distributor id (missing: none); ``listed_distributors``:
        the distributors table's ids (they get a list even without members)."""
        member_homes = homes.dropna().astype(str)
        distributor_ids = pd.Index(sorted(set(member_homes) | set(listed_distributors)))
        consumer_ids = homes.index.astype(str).sort_values()
        codes = distributor_ids.get_indexer(member_homes.reindex(consumer_ids))
        codes = np.where(codes >= 0, codes, len(distributor_ids))
        order = np.argsort(codes, kind="stable")
        return cls(consumer_ids[order], codes[order], distributor_ids)


@dataclass(frozen=True)
class PassPlan:
    """The pass's consumers in order (``PassOrder``), which of them have history (``history``:
    they are scored) and its blocks (``bounds``: (start, stop) positions in ``order``, each
    ``batch_size`` scored consumers)."""

    order: PassOrder
    history: np.ndarray
    bounds: list[tuple[int, int]]
    batch_size: int

    @classmethod
    def of(cls, order: PassOrder, data: InteractionData, batch_size: int) -> PassPlan:
        return cls.of_order(order, data.rows_of(order.consumer_ids) >= 0, batch_size)

    def parts(self, n: int) -> list[tuple[int, int]]:
        """At most ``n`` runs of the pass, (start, stop) positions, of about equal numbers of
        scored consumers, cut only where no distributor has members on both sides: a part's
        distributors are finished by that part alone (``part``)."""
        codes, none, size = self.order.codes, len(self.order.distributor_ids), len(self.order.codes)
        if size == 0 or n <= 1:
            return [(0, size)]
        edges = np.flatnonzero((codes[1:] != codes[:-1]) | (codes[1:] == none)) + 1
        scored = np.concatenate([[0], np.cumsum(self.history)])  # scored consumers before each position
        wanted = scored[-1] * np.arange(1, n) / n
        at = np.searchsorted(scored[edges], wanted)
        cuts = np.unique(edges[at[at < len(edges)]])
        return list(itertools.pairwise([0, *cuts.tolist(), size]))

    def part(self, start: int, stop: int) -> PassPlan:
        """Positions ``start`` .. ``stop - 1`` (one of ``parts``) as a pass of their own, in blocks of
        their own: their consumers and the distributors from the first one's (from code 0 for the
        first part: the memberless distributors before it) to the next part's first one's (to the
        end for the last part)."""
        order, none, size = self.order, len(self.order.distributor_ids), len(self.order.codes)
        low = 0 if start == 0 else int(order.codes[start]) if start < size else none
        high = int(order.codes[stop]) if stop < size else none
        codes = order.codes[start:stop]
        local = np.where(codes < none, codes - low, high - low)
        sub = PassOrder(order.consumer_ids[start:stop], local, order.distributor_ids[low:high])
        return PassPlan.of_order(sub, self.history[start:stop], self.batch_size)

    @classmethod
    def of_order(cls, order: PassOrder, history: np.ndarray, batch_size: int) -> PassPlan:
        return cls(order, history, _blocks(np.flatnonzero(history), len(history), batch_size), batch_size)


def list_pass(
    model: Recommender,
    data: InteractionData,
    homes: pd.Series,
    k: int,
    fallback: FallbackLists,
    filters: RecommendFilters,
    lists: ListsConfig,
    listed_distributors: set[str],
    spend: pd.Series | None = None,
    messages: Messages | None = None,
    trend: Trend | None = None,
) -> Iterator[PassChunk]:
    """Every list from one pass (see the module docstring), as pieces in file order: each block's
    consumer rows, then the distributors it finished (at most ``batch_size`` at a time).
    ``spend``: ``decayed_spend`` for ``spend`` weighting. ``messages``: the locale of the
    reasons' sentences (default English). ``trend``: the platform-wide trend (the nightly's is
    counted by the engine, ``Trend.of_counts``; default: counted on ``data``)."""
    if data.partial:
        raise ValueError(
            "the driver's pass scores every consumer from its own rows, and the data hold a sample's "
            "only (InteractionData.partial): score them with the Spark pass (spark_scoring)"
        )
    plan = PassPlan.of(PassOrder.of(homes, listed_distributors), data, lists.batch_size)
    yield from plan_pass(model, data, plan, homes, k, fallback, filters, lists, spend, messages, trend=trend)


def plan_pass(
    model: Recommender,
    data: InteractionData,
    plan: PassPlan,
    homes: pd.Series,
    k: int,
    fallback: FallbackLists,
    filters: RecommendFilters,
    lists: ListsConfig,
    spend: pd.Series | None = None,
    messages: Messages | None = None,
    threads: int = SCORING_THREADS,
    trend: Trend | None = None,
) -> Iterator[PassChunk]:
    """``list_pass`` over the blocks of ``plan``: the whole pass, or one part of it
    (``PassPlan.part``, the Spark tasks' share, in blocks of its own: the same lists up to float
    summation order, ``spark_scoring``'s docstring). ``trend``: the whole pass's platform-wide
    trend, for a part whose model holds only its own consumers (default: counted on ``data``)."""
    order, history, bounds = plan.order, plan.history, plan.bounds
    n_distributors = len(order.distributor_ids)
    codes, names = category_codes(data, filters)
    categories = (codes, names)
    stream = DistributorStream(
        model,
        order.distributor_ids,
        member_weights(data, lists, spend),
        filters,
        lists,
        names.to_numpy(dtype=object)[codes],
        messages,
        trend,
    )
    history_at = np.flatnonzero(history)
    scorable = [order.consumer_ids[start:stop][history[start:stop]] for start, stop in bounds]
    no_distributors = _no_distributors()  # the consumer chunks' empty distributor and outreach rows
    blocks = _scored_ahead(model, scorable, data, threads)
    for (start, stop), block in zip(bounds, blocks, strict=True):
        ids = order.consumer_ids[start:stop]
        recommended = model.recommend_from_block(block, k, filters)
        rows, from_fallback = finished_lists(
            recommended, ids, homes, k, fallback, data, filters, categories, messages
        )
        member_codes = order.codes[start:stop][history[start:stop]]
        members = member_codes < n_distributors
        later = np.searchsorted(history_at, stop)
        complete_before = int(order.codes[history_at[later]]) if later < len(history_at) else n_distributors
        finished = stream.add(
            block.consumer_ids[members], member_codes[members], block.scores[members], complete_before
        )
        yield PassChunk(rows, *no_distributors, from_fallback, len(ids))
        yield from _distributor_chunks(finished)
    yield from _distributor_chunks(stream.finish())


def _distributor_chunks(finished: Iterator[tuple[pd.DataFrame, pd.DataFrame]]) -> Iterator[PassChunk]:
    for pushed, outreach in finished:
        yield PassChunk(_NO_CONSUMERS, pushed, outreach, 0, 0)


def _no_distributors() -> tuple[pd.DataFrame, pd.DataFrame]:
    return empty_distributor_lists(), empty_outreach()


def _blocks(history_at: np.ndarray, n_consumers: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each block: ``batch_size`` consumers with history, at most
    ``_COLD_FACTOR × batch_size`` consumers in all (those without history are not scored)."""
    cuts = set(history_at[batch_size::batch_size].tolist())
    cuts |= set(range(0, n_consumers, _COLD_FACTOR * batch_size))
    bounds = sorted(cuts | {0, n_consumers})
    return list(itertools.pairwise(bounds))


def _scored_ahead(
    model: Recommender, blocks: list[pd.Index], data: InteractionData, threads: int
) -> Iterator[ScoreBlock]:
    """Each block's scores in order; blocks i + 1 .. i + ``threads`` are scored on ``threads``
    threads while the caller makes block i's lists (the scoring's large numpy, scipy and BLAS
    operations release the GIL), with BLAS on one thread each. The scores are the same as
    scoring in line: one block at a time, by the same code."""
    with (
        threadpool_limits(1, "blas"),
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="siyu-scoring") as ahead,
    ):
        pending: deque[Future[ScoreBlock]] = deque()
        for ids in blocks:
            pending.append(ahead.submit(_score, model, ids, data))
            if len(pending) > threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _score(model: Recommender, ids: pd.Index, data: InteractionData) -> ScoreBlock:
    """One block's raw scores (NaN rows: consumers the model cannot score)."""
    if not len(ids):
        return ScoreBlock(ids, data.product_ids, np.zeros((0, len(data.product_ids)), dtype=np.float32))
    return next(model.score_blocks(ids, len(ids)))


# --- the list files --------------------------------------------------------------------------------


def _list_schema(columns: tuple[str, ...]) -> pa.Schema:
    """Text ids and reasons, int32 ranks, float32 scores: the list files' Parquet types."""
    types = {RecCol.RANK: pa.int32(), RecCol.SCORE: pa.float32()}
    return pa.schema([(column, types.get(column, pa.string())) for column in columns])


LIST_SCHEMAS: dict[str, pa.Schema] = {
    StepFile.CONSUMER_LISTS: _list_schema(export_file(StepFile.CONSUMER_LISTS).column_names()),
    StepFile.DISTRIBUTOR_LISTS: _list_schema(DISTRIBUTOR_COLUMNS),
    StepFile.OUTREACH: _list_schema(OUTREACH_COLUMNS),
}
"""The pass's three files (``StepFile`` name) and their Parquet schemas."""


@dataclass
class WrittenLists:
    """What the written chunks held (small numbers only)."""

    from_fallback: int = 0
    outreach_rows: int = 0
    consumers: int = 0
    distributors: int = 0  # each distributor's rows come in one chunk


ROW_GROUP_ROWS = 1 << 17
"""Rows per row group of the list files (the last one fewer), however the pass cut its pieces."""


class RowGroupWriter:
    """A Parquet file whose row groups hold ``ROW_GROUP_ROWS`` rows each, whatever pieces it is
    given: its bytes depend on its rows alone, so the driver's pass and the Spark pass's parts
    (cut elsewhere) write the same file. Holds at most two row groups' rows."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.writer = pq.ParquetWriter(path, schema)
        self.pending: list[pa.Table] = []
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.rows += table.num_rows
        if self.rows >= ROW_GROUP_ROWS:
            whole = pa.concat_tables(self.pending)
            cut = self.rows - self.rows % ROW_GROUP_ROWS
            self._flush(whole.slice(0, cut))
            rest = whole.slice(cut)
            self.pending, self.rows = [rest], rest.num_rows

    def close(self) -> None:
        if self.rows:
            self._flush(pa.concat_tables(self.pending))
        self.writer.close()

    def _flush(self, table: pa.Table) -> None:
        # one chunk per column: the encoder sees the same batches however the rows arrived
        self.writer.write_table(table.combine_chunks(), row_group_size=ROW_GROUP_ROWS)


def write_chunks(
    chunks: Iterable[PassChunk],
    targets: Mapping[str, Path],
    advance: Callable[[int], object] | None = None,
) -> WrittenLists:
    """Stream the pass's chunks into ``targets`` (``LIST_SCHEMAS`` name → file, each written
    atomically, ``RowGroupWriter``); ``advance(consumers)`` after each chunk."""
    written = WrittenLists()
    with ExitStack() as stack:
        writers = {
            name: RowGroupWriter(stack.enter_context(atomic_path(target)), LIST_SCHEMAS[name])
            for name, target in targets.items()
        }
        for writer in writers.values():
            stack.callback(writer.close)
        for chunk in chunks:
            for name, rows in (
                (StepFile.CONSUMER_LISTS, chunk.consumer_rows),
                (StepFile.DISTRIBUTOR_LISTS, chunk.distributor_rows),
                (StepFile.OUTREACH, chunk.outreach_rows),
            ):
                if len(rows):
                    writers[name].write(
                        pa.Table.from_pandas(rows, preserve_index=False, schema=LIST_SCHEMAS[name])
                    )
            written.from_fallback += chunk.from_fallback
            written.outreach_rows += len(chunk.outreach_rows)
            written.consumers += chunk.consumers
            written.distributors += chunk.distributor_rows[DistributorListCol.DISTRIBUTOR_ID].nunique()
            if advance is not None:
                advance(chunk.consumers)
    return written
