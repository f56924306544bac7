"""The list thread's faster code (issue 18, session 9) gives exactly what it gave before.

The frozen computation at the end of this file is main 9c4d273's ``finished_lists`` (with its
``complete_lists``, fallback chain and top-up in pandas, ``consumer_reasons`` and
``reason_sentences`` factorizing object columns) and ``accumulate`` (likely-buyer counts
through a dense indicator). The new code must give the same rows, in the same order, with the
same dtypes, scores, reason codes and sentences (English and Chinese), and the same
accumulated sums bit for bit, on a fixture with full, short (topped-up) and cold consumers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from features.columns import Col
from features.errors import SiyuError
from features.messages import Messages
from features.vocabulary import ReasonCode
from models.recommenders import ALSRecommender, InteractionData, RecommendFilters
from models.recommenders.base import RecCol, top_k
from models.recommenders.distributors import _nan_as_minus_inf, accumulate
from models.recommenders.fallback import (
    COMPLETED_COLUMNS,
    SOURCE_COMMUNITY,
    SOURCE_GLOBAL,
    SOURCE_MODEL,
    FallbackCol,
    FallbackLists,
    build_fallback_lists,
)
from models.recommenders.list_config import ListsConfig
from models.recommenders.lists import LIST_COLUMNS, category_codes, finished_lists, home_distributors
from models.recommenders.reasons import coded_sentences, reason_sentences
from tests.models.recommenders.conftest import planted_with_blocked
from tests.popularity import counts_of

K = 6
FILTERS = {
    "plain": RecommendFilters(),
    # a small sellable window and a category cap: short model lists, topped up by the fallback
    "short": RecommendFilters(
        allowed_products=frozenset(f"P{i:02d}" for i in range(0, 24, 2)),
        exclude_purchased=True,
        category_cap=2,
    ),
    "excluding": RecommendFilters(exclude_purchased=True, exclude_products=frozenset({"P03", "P04"})),
}


@pytest.fixture(scope="module")
def model(planted_data: InteractionData) -> ALSRecommender:
    return ALSRecommender(factors=8, iterations=3, num_threads=1).fit(planted_data)


def _homes(data: InteractionData) -> pd.Series:
    homes = home_distributors(data)
    homes.iloc[::7] = None  # some consumers without a home distributor
    unknown = pd.Series([None, "D1", "D9"], index=["X001", "X002", "X003"], dtype=object)  # not in the data
    return pd.concat([homes, unknown])


@pytest.mark.parametrize("filters_name", sorted(FILTERS))
@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_finished_lists_equal_the_frozen_ones(
    model: ALSRecommender, planted_data: InteractionData, filters_name: str, locale: str
) -> None:
    data, filters = planted_data, FILTERS[filters_name]
    interactions, consumers, _ = planted_with_blocked()
    counts = counts_of(interactions, consumers, as_of=pd.Timestamp("2025-02-28").date())
    fallback = build_fallback_lists(counts, filters, depth=3 * K)
    categories = category_codes(data, filters)
    messages = Messages.load(locale)
    homes = _homes(data)
    ids = homes.index.astype(str).sort_values()
    sources = set()
    for start in range(0, len(ids), 17):  # blocks, as the pass makes them; each reuses the chains
        block_ids = ids[start : start + 17]
        block = next(model.score_blocks(block_ids[data.rows_of(block_ids) >= 0], 100))
        recommended = model.recommend_from_block(block, K, filters)
        args = (recommended, block_ids, homes, K, fallback, data, filters, categories, messages)
        new, new_fallback = finished_lists(*args)
        old, old_fallback = old_finished_lists(
            recommended, block_ids, homes, K, FallbackLists(fallback.community, fallback.global_), *args[5:]
        )
        pd.testing.assert_frame_equal(new, old, check_exact=True)
        assert new_fallback == old_fallback
        sources |= set(old[RecCol.REASON_CODE])
    assert {ReasonCode.COMMUNITY, ReasonCode.GLOBAL} <= sources  # the fixture reaches the fallback's reasons
    assert sources & {ReasonCode.TASTE, ReasonCode.SIMILAR, ReasonCode.BOUGHT_BEFORE, ReasonCode.BOUGHT_TIMES}


def test_short_lists_are_exercised(model: ALSRecommender, planted_data: InteractionData) -> None:
    """The 'short' filters leave scored consumers with fewer than K model rows (the top-up path)."""
    filters = FILTERS["short"]
    ids = planted_data.consumer_ids
    recommended = model.recommend_from_block(next(model.score_blocks(ids, len(ids))), K, filters)
    counts = recommended[RecCol.CONSUMER_ID].value_counts()
    assert (counts < K).any()


def test_reason_sentences_equal_the_frozen_ones() -> None:
    rng = np.random.default_rng(3)
    messages = Messages.load("en")
    keys = rng.choice(
        np.array(["outreach_bought", "outreach_bought_once", "buys_category"], dtype=object), 500
    )
    n = rng.integers(0, 9, 500)
    category = rng.choice(np.array(["snacks", "beauty", "household"], dtype=object), 500)
    new = reason_sentences(keys, messages, times=n, n=n, category=category)
    old = old_reason_sentences(keys, messages, times=n, n=n, category=category)
    assert new.dtype == object and new.tolist() == old.tolist()
    coded = coded_sentences(
        pd.factorize(keys),
        messages,
        times=pd.factorize(n),
        n=pd.factorize(n),
        category=pd.factorize(category),
    )
    assert coded.tolist() == old.tolist()
    assert len(reason_sentences(keys[:0], messages, n=n[:0])) == 0


@pytest.mark.parametrize("scale", ["raw", "share"])
@pytest.mark.parametrize("gaps", [False, True])
def test_accumulate_equals_the_frozen_sums(scale: str, gaps: bool) -> None:
    rng = np.random.default_rng(5)
    scores = rng.normal(size=(40, 30)).astype(np.float32)
    if gaps:  # non-finite scores count as 0 (and never as likely)
        scores[3, 4], scores[7, :] = np.nan, -np.inf
        scores[9, 2] = np.inf
    rows = np.sort(rng.integers(0, 5, 40))
    weight = rng.uniform(0.1, 2.0, 40)
    mask = rng.uniform(size=30) > 0.2
    config = ListsConfig(member_scale=scale, likely_top_k=4)
    new = [rng.uniform(size=(5, 30)), rng.integers(0, 3, (5, 30)).astype(np.float64)]
    old = [array.copy() for array in new]
    before = new[1].copy()
    accumulate(scores, rows, weight, mask, config, *new)
    old_accumulate(scores.copy(), rows, weight, mask, config, *old)
    np.testing.assert_array_equal(new[0], old[0])  # bit for bit
    np.testing.assert_array_equal(new[1], old[1])
    assert (new[1] - before).max() >= 2  # several members of a distributor liked the same product


# --- frozen: main 9c4d273 ---------------------------------------------------------------------------


def old_reason_sentences(keys: np.ndarray, messages: Messages, **params: np.ndarray) -> np.ndarray:
    """The sentence of each row's key (``text.reason.<key>`` of ``messages``; a key is a reason
    code or a variant of one), its placeholders filled from the row's ``params``. Each distinct
    (key, params) is formatted once: lists repeat a few sentences over millions of rows."""
    key_index, key_values = pd.factorize(keys)
    factorized = {name: pd.factorize(column) for name, column in params.items()}
    sentences = np.empty(len(keys), dtype=object)
    for position, key in enumerate(key_values):
        rows = np.flatnonzero(key_index == position)
        combination = np.zeros(len(rows), dtype=np.int64)
        for codes, uniques in factorized.values():
            combination = combination * (len(uniques) + 1) + codes[rows] + 1
        _, first, inverse = np.unique(combination, return_index=True, return_inverse=True)
        distinct = messages.texts(
            f"reason.{key}",
            **{name: uniques[codes[rows[first]]] for name, (codes, uniques) in factorized.items()},
        )
        sentences[rows] = np.asarray(distinct, dtype=object)[inverse]
    return sentences


def old_finished_lists(
    recommended: pd.DataFrame,
    consumer_ids: pd.Index,
    homes: pd.Series,
    k: int,
    fallback: FallbackLists,
    data: InteractionData,
    filters: RecommendFilters,
    categories: tuple[np.ndarray, pd.Index],
    messages: Messages | None = None,
) -> tuple[pd.DataFrame, int]:
    """The lists of ``consumer_ids`` (in that order): the model's rows (``recommended``) topped up by
    the fallback chain, each row with its reason; and how many consumers' first product came from
    the fallback chain. Never empty: a consumer left without a row raises."""
    completed = old_complete_lists(recommended, consumer_ids, homes, k, fallback, data, filters)
    first = completed[RecCol.RANK].to_numpy() == 1  # each listed consumer's rows: ranks 1, 2, ...
    missing = len(consumer_ids) - int(first.sum())
    if missing:
        raise SiyuError(f"{missing} consumers got an empty list\n  fix: widen lists.sale_window_days")
    from_fallback = int((completed[FallbackCol.SOURCE].to_numpy()[first] != SOURCE_MODEL).sum())
    # every consumer listed, in the order of consumer_ids: its data row repeated over its rows
    sizes = np.diff(np.append(np.flatnonzero(first), len(completed)))
    rows = np.repeat(data.rows_of(consumer_ids), sizes)
    reason_codes, reasons = old_consumer_reasons(completed, data, categories, messages, rows)
    frame = completed.assign(**{RecCol.REASON_CODE: reason_codes, RecCol.REASON: reasons})
    return frame[list(LIST_COLUMNS)], from_fallback


def old_consumer_reasons(
    completed: pd.DataFrame,
    data: InteractionData,
    categories: tuple[np.ndarray, pd.Index],
    messages: Messages | None = None,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A short reason per row, from the consumer's own history and the row's source: its code
    (``ReasonCode``) and its sentence in the locale of ``messages`` (default English).
    ``rows``: each row's consumer's data row, when the caller knows them (else looked up)."""
    messages = messages or Messages.load()
    codes, names = categories
    rows = data.rows_of(completed[RecCol.CONSUMER_ID]) if rows is None else rows
    columns = data.columns_of(completed[RecCol.PRODUCT_ID])
    known = (rows >= 0) & (columns >= 0)
    counts = data.purchases if data.purchases is not None else data.matrix
    bought = np.zeros(len(completed))
    in_category = np.zeros(len(completed))
    if known.any():
        bought[known] = np.asarray(counts[rows[known], columns[known]]).ravel()
        one_hot = sp.csr_matrix(
            (np.ones(len(codes)), (np.arange(len(codes)), codes)), shape=(len(codes), len(names))
        )
        unique_rows, inverse = np.unique(rows[known], return_inverse=True)
        history = data.matrix[unique_rows].copy()
        history.data = np.ones_like(history.data)
        per_category = (history @ one_hot).tocsr()
        in_category[known] = np.asarray(per_category[inverse, codes[columns[known]]]).ravel()
    source = completed[FallbackCol.SOURCE].to_numpy()
    category_names = np.where(columns >= 0, names.to_numpy(dtype=object)[codes[np.maximum(columns, 0)]], "")
    reason_codes = np.where(
        source == SOURCE_COMMUNITY,
        ReasonCode.COMMUNITY,
        np.where(source == SOURCE_GLOBAL, ReasonCode.GLOBAL, ReasonCode.SIMILAR),
    ).astype(object)
    model_rows = source == SOURCE_MODEL
    reason_codes[model_rows & (in_category > 0) & (bought == 0)] = ReasonCode.TASTE
    again = model_rows & (bought > 0)
    reason_codes[again & (bought == 1)] = ReasonCode.BOUGHT_BEFORE
    reason_codes[again & (bought > 1)] = ReasonCode.BOUGHT_TIMES
    return reason_codes, old_reason_sentences(
        reason_codes, messages, times=bought.astype(np.int64), category=category_names
    )


def old_complete_lists(
    recommendations: pd.DataFrame,
    consumer_ids: pd.Index,
    homes: pd.Series,
    k: int,
    fallback: FallbackLists,
    data: InteractionData,
    filters: RecommendFilters,
) -> pd.DataFrame:
    """Every consumer of ``consumer_ids`` with ``k`` rows (fewer only if the filters leave fewer products).

    ``recommendations`` is a model's frame (``consumer_id, product_id, score, rank``);
    ``homes`` maps consumer id → home distributor id (missing: no community). Consumers the
    frame lacks get their community list, then the global list; consumers with fewer than ``k``
    rows keep theirs first. Returns ``COMPLETED_COLUMNS`` in the order of ``consumer_ids``.
    """
    ids = pd.Index(consumer_ids).astype(str)
    model_rows = recommendations.assign(**{FallbackCol.SOURCE: SOURCE_MODEL})
    counts = model_rows[RecCol.CONSUMER_ID].value_counts().reindex(ids, fill_value=0)
    full = counts.index[counts.to_numpy() >= k]
    partial = counts.index[(counts.to_numpy() > 0) & (counts.to_numpy() < k)]
    empty = counts.index[counts.to_numpy() == 0]
    empty_with_history = empty[data.rows_of(empty) >= 0]
    empty_cold = empty[data.rows_of(empty) < 0]
    parts = [model_rows[model_rows[RecCol.CONSUMER_ID].isin(full)]]
    parts.append(_old_cold_lists(empty_cold, homes, k, fallback, filters))
    topped = partial.append(empty_with_history)
    if len(topped):
        parts.append(
            _old_top_up(
                model_rows[model_rows[RecCol.CONSUMER_ID].isin(topped)],
                topped,
                homes,
                k,
                fallback,
                data,
                filters,
            )
        )
    completed = pd.concat([part for part in parts if len(part)], ignore_index=True)
    if completed.empty:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in COMPLETED_COLUMNS})
    order = ids.get_indexer(completed[RecCol.CONSUMER_ID])
    completed = completed.iloc[np.lexsort((completed[RecCol.RANK].to_numpy(), order))]
    return completed[list(COMPLETED_COLUMNS)].reset_index(drop=True)


def _old_chain(fallback: FallbackLists, communities: pd.Index) -> pd.DataFrame:
    """Per community id (plus '' = none): its list then the global list, deduplicated, in order."""
    community = fallback.community[fallback.community[Col.DISTRIBUTOR_ID].isin(communities)]
    community = community.assign(**{FallbackCol.SOURCE: SOURCE_COMMUNITY})
    keys = pd.Index(communities).append(pd.Index([""])).unique()
    global_ = fallback.global_.assign(**{FallbackCol.SOURCE: SOURCE_GLOBAL})
    repeated = pd.DataFrame({Col.DISTRIBUTOR_ID: np.repeat(keys.to_numpy(dtype=object), len(global_))})
    tiled = pd.concat([global_] * len(keys), ignore_index=True) if len(keys) else global_.iloc[:0]
    tiled = pd.concat([repeated, tiled], axis=1)
    tiled[RecCol.RANK] = tiled[RecCol.RANK] + 1_000_000
    chain = pd.concat([community, tiled], ignore_index=True)
    chain = chain.sort_values([Col.DISTRIBUTOR_ID, RecCol.RANK], kind="stable")
    return chain.drop_duplicates([Col.DISTRIBUTOR_ID, RecCol.PRODUCT_ID]).drop(columns=[FallbackCol.BUYERS])


def _old_capped(frame: pd.DataFrame, key: str, filters: RecommendFilters) -> pd.DataFrame:
    if filters.category_cap is None:
        return frame
    categories = frame[RecCol.PRODUCT_ID].map(filters.categories or {}).fillna("unknown")
    seen = frame.assign(_category=categories).groupby([key, "_category"], sort=False).cumcount()
    return frame[seen.to_numpy() < filters.category_cap]


def _old_cold_lists(
    consumer_ids: pd.Index, homes: pd.Series, k: int, fallback: FallbackLists, filters: RecommendFilters
) -> pd.DataFrame:
    if not len(consumer_ids):
        return pd.DataFrame(columns=list(COMPLETED_COLUMNS))
    home = homes.reindex(consumer_ids).astype(object).where(lambda s: s.notna(), "").astype(str)
    chain = _old_capped(_old_chain(fallback, pd.Index(home.unique())), Col.DISTRIBUTOR_ID, filters)
    chain = chain.assign(**{RecCol.RANK: chain.groupby(Col.DISTRIBUTOR_ID).cumcount() + 1})
    chain = chain[chain[RecCol.RANK] <= k]
    cold = pd.DataFrame(
        {RecCol.CONSUMER_ID: consumer_ids.to_numpy(dtype=object), Col.DISTRIBUTOR_ID: home.to_numpy()}
    )
    return cold.merge(chain, on=Col.DISTRIBUTOR_ID, how="inner")[list(COMPLETED_COLUMNS)]


def _old_top_up(
    own: pd.DataFrame,
    consumer_ids: pd.Index,
    homes: pd.Series,
    k: int,
    fallback: FallbackLists,
    data: InteractionData,
    filters: RecommendFilters,
) -> pd.DataFrame:
    home = homes.reindex(consumer_ids).astype(object).where(lambda s: s.notna(), "").astype(str)
    chain = _old_chain(fallback, pd.Index(home.unique()))
    pairs = pd.DataFrame(
        {RecCol.CONSUMER_ID: consumer_ids.to_numpy(dtype=object), Col.DISTRIBUTOR_ID: home.to_numpy()}
    )
    candidates = pairs.merge(chain, on=Col.DISTRIBUTOR_ID, how="inner").drop(columns=[Col.DISTRIBUTOR_ID])
    candidates = candidates[~_old_excluded(candidates, data, filters)]
    ordered = pd.concat(
        [
            own.assign(_order=own[RecCol.RANK].astype(np.int64)),
            candidates.assign(_order=candidates[RecCol.RANK].astype(np.int64) + k),
        ],
        ignore_index=True,
    )
    ordered = ordered.sort_values([RecCol.CONSUMER_ID, "_order"], kind="stable")
    ordered = ordered.drop_duplicates([RecCol.CONSUMER_ID, RecCol.PRODUCT_ID])
    ordered = _old_capped(ordered, RecCol.CONSUMER_ID, filters)
    ordered = ordered.assign(**{RecCol.RANK: ordered.groupby(RecCol.CONSUMER_ID).cumcount() + 1})
    return ordered[ordered[RecCol.RANK] <= k][list(COMPLETED_COLUMNS)]


def _old_excluded(candidates: pd.DataFrame, data: InteractionData, filters: RecommendFilters) -> np.ndarray:
    """Blocked pairs always; with ``exclude_purchased`` the products the consumer bought
    (``InteractionData.bought``: paid purchases, the model's lists' definition too)."""
    rows = data.rows_of(candidates[RecCol.CONSUMER_ID])
    columns = data.columns_of(candidates[RecCol.PRODUCT_ID])
    excluded = np.zeros(len(candidates), dtype=bool)
    known = (rows >= 0) & (columns >= 0)
    if not known.any():
        return excluded
    matrices = [data.blocked] + ([data.bought] if filters.exclude_purchased else [])
    for matrix in matrices:
        excluded[known] |= np.asarray(matrix[rows[known], columns[known]]).ravel() != 0
    return excluded


def old_accumulate(
    scores: np.ndarray,
    rows: np.ndarray,
    weight: np.ndarray,
    mask: np.ndarray,
    config: ListsConfig,
    expected: np.ndarray,
    likely: np.ndarray,
) -> None:
    """Add members' scores (``rows``: their distributor's row in ``expected``) in place."""
    if not len(rows):
        return
    to_community = sp.csr_matrix((weight, (rows, np.arange(len(rows)))), shape=(len(expected), len(rows)))
    expected += to_community @ _old_scaled(scores, config.member_scale).astype(np.float64)
    likely += _old_likely_counts(scores, mask, rows, len(expected), config.likely_top_k)


def _old_scaled(scores: np.ndarray, scale: str) -> np.ndarray:
    scores = np.where(np.isfinite(scores), scores, 0.0)  # = nan_to_num(nan=0, ±inf=0), in two passes
    if scale == "raw":
        return scores
    positive = np.clip(scores, 0.0, None)
    best = positive.max(axis=1, keepdims=True)
    return positive / np.where(best > 0, best, 1.0)


def _old_likely_counts(
    scores: np.ndarray, mask: np.ndarray, rows: np.ndarray, n_communities: int, depth: int
) -> np.ndarray:
    masked = _nan_as_minus_inf(scores)  # a copy
    np.copyto(masked, -np.inf, where=~mask[None, :])  # in place: no second and third block-wide copy
    columns, _ = top_k(masked, depth)
    valid = columns >= 0
    member_rows = np.broadcast_to(rows[:, None], columns.shape)[valid]
    indicator = sp.csr_matrix(
        (np.ones(valid.sum()), (member_rows, columns[valid])), shape=(n_communities, scores.shape[1])
    )
    return indicator.toarray()
