"""The fallback chain: community list, then global popularity — never an error, never an empty list.

A consumer the model cannot (or should not) score — no interaction in the fitted data, or not
scorable by the model — gets the list of its **community** (the home distributor's members'
recent favourites: products at least one member interacted with in the window), topped up
with **global popularity**. A consumer the model did score but
who has fewer than ``k`` products after the filters (a small sellable window, pulled products,
``exclude_purchased``, a category cap) is topped up the same way, after its own rows.

Both lists are popularity over the trailing ``window_days``: the number of distinct consumers
whose latest interaction with the product lies in the window (all history when the window is
empty). They pass the same ``RecommendFilters`` as the model's lists (sellable window, pulled,
demoted, category cap); the consumer's blocked pairs (returned / complained) and, with
``exclude_purchased``, the products it bought are skipped while topping up. "Bought" has one
definition for the model's rows and the top-up: ``InteractionData.bought``, the pairs with a
paid purchase (``purchases`` > 0), so a product only viewed can still be recommended. Only when no product at
all survives the filters is the sale window dropped for the fallback (with a warning); when
even that leaves nothing (every product pulled) a ``SiyuError`` says so.

Every row carries ``source``: ``model``, ``community`` or ``global``. Scores of fallback rows
are popularity shares in [0, 1] (community: members' recent buyers / the community's top
product's), not comparable with model scores; ``rank`` is the order to show.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.columns import Col
from features.errors import SiyuError
from features.popularity import NightRows, community_buyers, product_buyers
from features.vocabulary import FallbackCol, ListSource
from models.recommenders.base import InteractionData, RecCol, RecommendFilters, demote_scores, top_k
from models.recommenders.filters import without_sale_window
from models.recommenders.popularity import BASELINE_DAYS

logger = logging.getLogger(__name__)


SOURCE_MODEL, SOURCE_COMMUNITY, SOURCE_GLOBAL = ListSource.ALL
SOURCES: tuple[str, ...] = (SOURCE_MODEL, SOURCE_COMMUNITY, SOURCE_GLOBAL)
COMMUNITY_COLUMNS: tuple[str, ...] = (
    FallbackCol.DISTRIBUTOR_ID,
    RecCol.PRODUCT_ID,
    RecCol.RANK,
    RecCol.SCORE,
    FallbackCol.BUYERS,
)
GLOBAL_COLUMNS: tuple[str, ...] = (RecCol.PRODUCT_ID, RecCol.RANK, RecCol.SCORE, FallbackCol.BUYERS)
COMPLETED_COLUMNS: tuple[str, ...] = (
    RecCol.CONSUMER_ID,
    RecCol.PRODUCT_ID,
    RecCol.SCORE,
    RecCol.RANK,
    FallbackCol.SOURCE,
)


@dataclass(frozen=True)
class FallbackLists:
    """Per-community and global popularity lists, already filtered, best first.

    ``community``: ``COMMUNITY_COLUMNS`` (``recent_buyers`` = distinct members who interacted
    with the product in the window); ``global_``: ``GLOBAL_COLUMNS``.
    """

    community: pd.DataFrame
    global_: pd.DataFrame


@dataclass(frozen=True)
class PopularityCounts:
    """The night's popularity over every consumer's rows, counted by the engine
    (``features.popularity``): what the fallback lists and the distributor lists' trend rank by.

    ``product_ids``: the products of the night's rows, sorted (``InteractionData.product_ids``
    of the same rows); ``window``: the fallback window in days, or None (all history: also when
    nobody interacted within the window); ``buyers``: distinct consumers per product in
    ``window``; ``communities`` × ``product_ids`` ``community_buyers``: distinct members per home
    distributor in ``window``; ``trend_buyers`` / ``baseline_buyers``: in the trend's window and
    in the 90 days the trend compares it with (``distributors.Trend``)."""

    product_ids: pd.Index
    window: float | None
    buyers: np.ndarray
    communities: pd.Index
    community_buyers: sp.csr_matrix
    trend_buyers: np.ndarray
    baseline_buyers: np.ndarray

    @classmethod
    def of(
        cls,
        con: duckdb.DuckDBPyConnection,
        rows: NightRows,
        window_days: float | None,
        trend_days: float | None,
    ) -> PopularityCounts:
        """Counted by ``con``'s engine over ``rows`` (two queries: per product, per community)."""
        windows = [window_days, None, trend_days, BASELINE_DAYS]
        products = product_buyers(con, rows, windows)
        product_ids = pd.Index(products[Col.PRODUCT_ID].to_numpy(dtype=object), name=Col.PRODUCT_ID)
        counted = [products[f"buyers{i}"].to_numpy(dtype=np.float64) for i in range(len(windows))]
        window = window_days if counted[0].sum() > 0 else None
        members = community_buyers(con, rows, window)
        codes, communities = pd.factorize(members[Col.DISTRIBUTOR_ID].astype(str), sort=True)
        matrix = sp.csr_matrix(
            (
                members["buyers"].to_numpy(dtype=np.float64),
                (codes, product_ids.get_indexer(members[Col.PRODUCT_ID].astype(str))),
            ),
            shape=(len(communities), len(product_ids)),
        )
        return cls(
            product_ids,
            window,
            counted[0] if window is not None else counted[1],
            pd.Index(communities, name=Col.DISTRIBUTOR_ID),
            matrix,
            counted[2],
            counted[3],
        )


def build_fallback_lists(counts: PopularityCounts, filters: RecommendFilters, depth: int) -> FallbackLists:
    """Community and global popularity lists of ``depth`` products each, filtered.

    The global list holds every product that passes the filters when ``depth`` exceeds them.
    """
    global_ = _global_list(counts, filters, depth)
    if global_.empty and filters.allowed_products is not None:
        logger.warning("no product passes the sale window: fallback lists ignore the window")
        filters = without_sale_window(filters)
        global_ = _global_list(counts, filters, depth)
    if global_.empty:
        raise SiyuError(
            "every product is excluded (pulled by the quality gate or outside the catalogue): "
            "no list can be made\n  fix: check quality_alerts.csv and the products table"
        )
    community = _community_lists(counts, filters, depth)
    logger.info(
        "fallback lists: %d communities, global list of %d products",
        community[Col.DISTRIBUTOR_ID].nunique(),
        len(global_),
    )
    return FallbackLists(community=community, global_=global_)


def _ranked(
    product_ids: pd.Index, filters: RecommendFilters, scores: np.ndarray, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    scores = np.where(filters.column_mask(product_ids)[None, :], scores, -np.inf).astype(np.float32)
    demotion = filters.demotion(product_ids)
    if demotion is not None:
        scores = demote_scores(scores, demotion[None, :])
    categories = _categories(product_ids, filters)
    return top_k(scores, min(depth, scores.shape[1]), categories, filters.category_cap)


def _categories(product_ids: pd.Index, filters: RecommendFilters) -> np.ndarray | None:
    if filters.category_cap is None:
        return None
    return pd.Series(filters.categories or {}).reindex(product_ids).fillna("unknown").astype(str).to_numpy()


def _global_list(counts: PopularityCounts, filters: RecommendFilters, depth: int) -> pd.DataFrame:
    buyers = counts.buyers
    top = buyers.max() if len(buyers) else 0.0
    share = (buyers / top if top > 0 else buyers).astype(np.float32)
    columns, ranked = _ranked(counts.product_ids, filters, share[None, :], depth)
    valid = columns[0] >= 0
    return pd.DataFrame(
        {
            RecCol.PRODUCT_ID: counts.product_ids.to_numpy(dtype=object)[columns[0][valid]],
            RecCol.RANK: np.arange(1, valid.sum() + 1, dtype=np.int32),
            RecCol.SCORE: ranked[0][valid].astype(np.float32),
            FallbackCol.BUYERS: buyers[columns[0][valid]].astype(np.int64),
        }
    )


def _community_lists(counts: PopularityCounts, filters: RecommendFilters, depth: int) -> pd.DataFrame:
    communities, buyers, product_ids = counts.communities, counts.buyers, counts.product_ids
    frames = []
    for start in range(0, len(communities), 256):
        block = np.asarray(counts.community_buyers[start : start + 256].todense(), dtype=np.float64)
        top = block.max(axis=1, keepdims=True)
        share = block / np.where(top > 0, top, 1.0) + 1e-6 * buyers[None, :] / max(buyers.max(), 1.0)
        columns, ranked = _ranked(product_ids, filters, share.astype(np.float32), depth)
        bought = np.take_along_axis(block, np.maximum(columns, 0), axis=1) > 0
        valid = (columns >= 0) & bought  # only products the community's members bought
        frames.append(
            pd.DataFrame(
                {
                    Col.DISTRIBUTOR_ID: np.repeat(
                        communities[start : start + 256].to_numpy(dtype=object), columns.shape[1]
                    )[valid.ravel()],
                    RecCol.PRODUCT_ID: product_ids.to_numpy(dtype=object)[columns[valid]],
                    RecCol.RANK: np.tile(np.arange(1, columns.shape[1] + 1, dtype=np.int32), len(columns))[
                        valid.ravel()
                    ],
                    RecCol.SCORE: np.minimum(ranked[valid], 1.0).astype(np.float32),
                    FallbackCol.BUYERS: np.take_along_axis(block, np.where(valid, columns, 0), axis=1)[
                        valid
                    ].astype(np.int64),
                }
            )
        )
    if not frames:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in COMMUNITY_COLUMNS})
    return pd.concat(frames, ignore_index=True)[list(COMMUNITY_COLUMNS)]


# --- completing lists ----------------------------------------------------------------------------


def complete_lists(
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
    position = ids.get_indexer(model_rows[RecCol.CONSUMER_ID])  # each model row's consumer in ids
    listed = position >= 0
    counts = np.bincount(position[listed], minlength=len(ids))
    history = data.rows_of(ids) >= 0
    full = counts >= k
    topped = ((counts > 0) & ~full) | ((counts == 0) & history)  # the partial, then the empty ones
    cold = (counts == 0) & ~history
    kept = listed & full[np.maximum(position, 0)]
    parts = [model_rows if kept.all() else model_rows[kept]]
    positions = [position[kept]]
    cold_rows = _cold_lists(ids[cold], homes, k, fallback, filters)
    parts.append(cold_rows)
    positions.append(ids.get_indexer(cold_rows[RecCol.CONSUMER_ID]))
    if topped.any():
        partial = ids[(counts > 0) & ~full].append(ids[(counts == 0) & history])
        own = model_rows[listed & topped[np.maximum(position, 0)]]
        topped_rows = _top_up(own, partial, homes, k, fallback, data, filters)
        parts.append(topped_rows)
        positions.append(ids.get_indexer(topped_rows[RecCol.CONSUMER_ID]))
    nonempty = [index for index, part in enumerate(parts) if len(part)]
    if not nonempty:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in COMPLETED_COLUMNS})
    completed = pd.concat([parts[index] for index in nonempty], ignore_index=True)
    order = np.concatenate([positions[index] for index in nonempty])
    order = np.lexsort((completed[RecCol.RANK].to_numpy(), order))
    return pd.DataFrame({column: completed[column].to_numpy()[order] for column in COMPLETED_COLUMNS})


def _chain(fallback: FallbackLists, communities: pd.Index) -> pd.DataFrame:
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


def _capped(frame: pd.DataFrame, key: str, filters: RecommendFilters) -> pd.DataFrame:
    if filters.category_cap is None:
        return frame
    categories = frame[RecCol.PRODUCT_ID].map(filters.categories or {}).fillna("unknown")
    seen = frame.assign(_category=categories).groupby([key, "_category"], sort=False).cumcount()
    return frame[seen.to_numpy() < filters.category_cap]


def _cold_lists(
    consumer_ids: pd.Index, homes: pd.Series, k: int, fallback: FallbackLists, filters: RecommendFilters
) -> pd.DataFrame:
    if not len(consumer_ids):
        return pd.DataFrame(columns=list(COMPLETED_COLUMNS))
    home = homes.reindex(consumer_ids).astype(object).where(lambda s: s.notna(), "").astype(str)
    chain = _capped(_chain(fallback, pd.Index(home.unique())), Col.DISTRIBUTOR_ID, filters)
    chain = chain.assign(**{RecCol.RANK: chain.groupby(Col.DISTRIBUTOR_ID).cumcount() + 1})
    chain = chain[chain[RecCol.RANK] <= k]
    cold = pd.DataFrame(
        {RecCol.CONSUMER_ID: consumer_ids.to_numpy(dtype=object), Col.DISTRIBUTOR_ID: home.to_numpy()}
    )
    return cold.merge(chain, on=Col.DISTRIBUTOR_ID, how="inner")[list(COMPLETED_COLUMNS)]


def _top_up(
    own: pd.DataFrame,
    consumer_ids: pd.Index,
    homes: pd.Series,
    k: int,
    fallback: FallbackLists,
    data: InteractionData,
    filters: RecommendFilters,
) -> pd.DataFrame:
    home = homes.reindex(consumer_ids).astype(object).where(lambda s: s.notna(), "").astype(str)
    chain = _chain(fallback, pd.Index(home.unique()))
    pairs = pd.DataFrame(
        {RecCol.CONSUMER_ID: consumer_ids.to_numpy(dtype=object), Col.DISTRIBUTOR_ID: home.to_numpy()}
    )
    candidates = pairs.merge(chain, on=Col.DISTRIBUTOR_ID, how="inner").drop(columns=[Col.DISTRIBUTOR_ID])
    candidates = candidates[~_excluded(candidates, data, filters)]
    ordered = pd.concat(
        [
            own.assign(_order=own[RecCol.RANK].astype(np.int64)),
            candidates.assign(_order=candidates[RecCol.RANK].astype(np.int64) + k),
        ],
        ignore_index=True,
    )
    ordered = ordered.sort_values([RecCol.CONSUMER_ID, "_order"], kind="stable")
    ordered = ordered.drop_duplicates([RecCol.CONSUMER_ID, RecCol.PRODUCT_ID])
    ordered = _capped(ordered, RecCol.CONSUMER_ID, filters)
    ordered = ordered.assign(**{RecCol.RANK: ordered.groupby(RecCol.CONSUMER_ID).cumcount() + 1})
    return ordered[ordered[RecCol.RANK] <= k][list(COMPLETED_COLUMNS)]


def _excluded(candidates: pd.DataFrame, data: InteractionData, filters: RecommendFilters) -> np.ndarray:
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
