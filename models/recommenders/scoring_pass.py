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
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from features.messages import Messages
from models.recommenders.base import InteractionData, Recommender, RecommendFilters, ScoreBlock
from models.recommenders.distributors import (
    DistributorStream,
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
) -> Iterator[PassChunk]:
    """Every list from one pass (see the module docstring), as pieces in file order: each block's
    consumer rows, then the distributors it finished (at most ``batch_size`` at a time).
    ``spend``: ``decayed_spend`` for ``spend`` weighting. ``messages``: the locale of the
    reasons' sentences (default English)."""
    order = PassOrder.of(homes, listed_distributors)
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
    )
    history = data.rows_of(order.consumer_ids) >= 0
    history_at = np.flatnonzero(history)
    bounds = _blocks(history_at, len(history), lists.batch_size)
    scorable = [order.consumer_ids[start:stop][history[start:stop]] for start, stop in bounds]
    no_distributors = _no_distributors()  # the consumer chunks' empty distributor and outreach rows
    for (start, stop), block in zip(bounds, _scored_ahead(model, scorable, data), strict=True):
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
    model: Recommender, blocks: list[pd.Index], data: InteractionData, threads: int = SCORING_THREADS
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
