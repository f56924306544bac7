"""Per-distributor lists: what each distributor should push to its community, and whom to message.

**Distributor list** (``distributor_lists``). For distributor ``d`` and product ``p``::

    score(d, p) = norm_d(Σ_members w_m · s_m(p))                       # the model, aggregated
                + community_weight · norm_d(Σ_members 0.5 ** (age_mp / community_half_life))
                + trend_weight · norm(platform-wide distinct buyers in the last trend_days)

``s_m`` are the production model's scores of member ``m``, from the one scoring pass
(``DistributorStream``, fed by ``models.recommenders.scoring_pass``: members come grouped by
distributor, so a distributor's dense row lives only while its members are scored; memory is
``batch_size × products`` floats, whatever the number of consumers or distributors;
``aggregate_members`` is the dense all-at-once form for studies); with ``member_scale = share``
each member's scores are first divided by its best score. ``w_m`` is the member's value: ``recency`` =
``0.5 ** (days since its last interaction / member_half_life_days)`` (how likely it still
buys), ``spend`` = its spend decayed with the same half-life, or ``uniform``. ``norm_d``
divides a distributor's row by its largest value. ``age_mp`` is the days since the member's
latest interaction with the product. Members are the consumers whose home distributor is
``d``. The same filters as the consumer lists apply (sellable window, pulled excluded, warned
demoted, category cap); ``exclude_purchased`` does not (a community list is not a person's).

Each row has a reason computed from the data, the first that holds of:
``"12 of your customers are likely to buy"`` (members with the product in their own top
``likely_top_k``, at least ``reason_min_customers``), ``"repeat favourite in your group (5
customers bought it more than once)"``, ``"trending in <category>"`` (recent platform-wide
buyers per day at least ``trend_min_ratio`` × the 90-day rate, and ``trend_min_buyers``),
``"3 of your customers bought it in the last 30 days"``, ``"popular on the platform (41 buyers
in the last 7 days)"``.

**Outreach list** (``outreach_lists``): every member is matched with its best product among
its distributor's pushed list (highest model score; blocked pairs skipped), so that nobody gets
more than one message; the distributor's ``outreach_size`` members with the highest
``model score × member weight`` are kept (in the one pass: ``DistributorStream``, see its
docstring for members whose distributor is still open when their block ends). Reasons:
``"bought it 3 times before"``, ``"buys snacks (4 products)"``, ``"customers like them buy it"``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.asof import AsOf
from features.columns import Col
from features.messages import Messages
from features.sql import render
from features.vocabulary import DistributorListCol, ReasonCode
from models.recommenders.base import (
    InteractionData,
    Recommender,
    RecommendFilters,
    demote_scores,
    top_k,
)
from models.recommenders.fallback import PopularityCounts
from models.recommenders.list_config import ListsConfig
from models.recommenders.popularity import BASELINE_DAYS, recent_indicator, recent_popularity
from models.recommenders.reasons import reason_sentences

logger = logging.getLogger(__name__)


DISTRIBUTOR_COLUMNS: tuple[str, ...] = (
    DistributorListCol.DISTRIBUTOR_ID,
    DistributorListCol.PRODUCT_ID,
    DistributorListCol.RANK,
    DistributorListCol.SCORE,
    DistributorListCol.REASON_CODE,
    DistributorListCol.REASON,
)
OUTREACH_COLUMNS: tuple[str, ...] = (
    DistributorListCol.DISTRIBUTOR_ID,
    DistributorListCol.CONSUMER_ID,
    DistributorListCol.PRODUCT_ID,
    DistributorListCol.RANK,
    DistributorListCol.SCORE,
    DistributorListCol.REASON_CODE,
    DistributorListCol.REASON,
)


# --- member weights ------------------------------------------------------------------------------


def member_weights(data: InteractionData, config: ListsConfig, spend: pd.Series | None = None) -> pd.Series:
    """Consumer id → weight of the member in its community's list (see the module docstring).

    ``spend`` (consumer id → decayed spend, ``decayed_spend``) is needed for ``spend`` weighting.
    """
    if config.member_weighting == "uniform":
        return pd.Series(1.0, index=data.consumer_ids)
    if config.member_weighting == "spend":
        if spend is None:
            raise ValueError("spend weighting needs the decayed spend of every consumer")
        return spend.reindex(data.consumer_ids).fillna(0.0).astype(np.float64)
    age = data.age_days if data.age_days is not None else None
    if age is None:
        return pd.Series(1.0, index=data.consumer_ids)
    latest = _row_min(age.tocsr())
    return pd.Series(0.5 ** (latest / config.member_half_life_days), index=data.consumer_ids)


def _row_min(matrix: sp.csr_matrix) -> np.ndarray:
    result = np.full(matrix.shape[0], np.inf)
    filled = np.diff(matrix.indptr) > 0
    result[filled] = np.minimum.reduceat(matrix.data, matrix.indptr[:-1][filled]) if matrix.nnz else np.inf
    return result


_SPEND_SQL = """
SELECT {consumer_id},
       sum({quantity} * {unit_price} * pow(0.5, epoch($end - {ordered_at}) / 86400.0 / $half_life)) AS spend
FROM {orders}
WHERE {ordered_at} < $end AND {status} = {paid}
GROUP BY {consumer_id}
"""


def decayed_spend(con: duckdb.DuckDBPyConnection, as_of: AsOf, half_life_days: float) -> pd.Series:
    """Consumer id → paid spend up to the end of ``as_of``, each order weighted 0.5 ** (age / half-life)."""
    frame = con.execute(render(_SPEND_SQL), {"end": as_of.end, "half_life": float(half_life_days)}).df()
    return frame.set_index(Col.CONSUMER_ID)["spend"].astype(np.float64)


# --- aggregation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommunityScores:
    """Per distributor × product: the members' weighted model scores and 'likely buyer' counts.

    Dense over the distributors it is made for: the one pass (``DistributorStream``) makes one
    for each window of distributors whose members are all scored, never for all of them at once.
    """

    distributor_ids: pd.Index
    product_ids: pd.Index
    expected: np.ndarray
    likely_buyers: np.ndarray
    members: np.ndarray


def aggregate_members(
    model: Recommender,
    homes: pd.Series,
    weights: pd.Series,
    distributor_ids: pd.Index,
    filters: RecommendFilters,
    config: ListsConfig,
) -> CommunityScores:
    """All of ``distributor_ids`` at once, dense (for studies of the blend; the nightly streams).

    ``homes``: consumer id → home distributor id; ``weights``: consumer id → member weight.
    """
    data = model.data_
    mask = filters.column_mask(data.product_ids)
    expected = np.zeros((len(distributor_ids), len(data.product_ids)), dtype=np.float64)
    likely = np.zeros_like(expected)
    members = homes[homes.index.isin(data.consumer_ids) & homes.isin(distributor_ids)]
    for block in model.score_blocks(members.index, config.batch_size):
        known = ~np.isnan(block.scores).all(axis=1)
        ids = block.consumer_ids[known]
        rows = distributor_ids.get_indexer(members.reindex(ids))
        weight = weights.reindex(ids).fillna(0.0).to_numpy(dtype=np.float64)
        accumulate(block.scores[known], rows, weight, mask, config, expected, likely)
    counts = np.bincount(distributor_ids.get_indexer(members), minlength=len(distributor_ids))
    return CommunityScores(distributor_ids, data.product_ids, expected, likely, counts)


def accumulate(
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
    expected += to_community @ _scaled(scores, config.member_scale).astype(np.float64)
    _add_likely_counts(likely, scores, mask, rows, config.likely_top_k)


def _scaled(scores: np.ndarray, scale: str) -> np.ndarray:
    """Scores with NaN and ±inf as 0 (``raw``), or each member's positive scores over its best
    (``share``); ``scores`` itself when ``raw`` and all finite (the caller only reads it)."""
    if not np.isfinite(scores).all():
        scores = np.where(np.isfinite(scores), scores, 0.0)  # = nan_to_num(nan=0, ±inf=0)
    if scale == "raw":
        return scores
    positive = np.clip(scores, 0.0, None)
    best = positive.max(axis=1, keepdims=True)
    return np.divide(positive, np.where(best > 0, best, 1.0), out=positive)  # in place: one copy


def _add_likely_counts(
    likely: np.ndarray, scores: np.ndarray, mask: np.ndarray, rows: np.ndarray, depth: int
) -> None:
    """Add 1 to ``likely[row, product]`` for each member's top ``depth`` sellable products
    (counts are whole numbers: the sum's order does not change them)."""
    masked = _nan_as_minus_inf(scores)  # a copy
    np.copyto(masked, -np.inf, where=~mask[None, :])  # in place: no second and third block-wide copy
    columns, _ = top_k(masked, depth)
    valid = columns >= 0
    member_rows = np.broadcast_to(rows[:, None], columns.shape)[valid]
    np.add.at(likely, (member_rows, columns[valid]), 1.0)


def _nan_as_minus_inf(scores: np.ndarray) -> np.ndarray:
    """A float32 copy of ``scores`` as ``np.nan_to_num(scores, nan=-np.inf)`` gives it; one pass to
    see that every score is finite (members' scores always are) instead of its three."""
    if np.isfinite(scores).all():
        return scores.astype(np.float32, copy=True)
    return np.nan_to_num(scores, nan=-np.inf).astype(np.float32, copy=False)


# --- the lists -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommunitySignals:
    """Data behind the blend and the reasons, per distributor × product (dense) and per product."""

    recent_members: np.ndarray
    decayed_members: np.ndarray
    repeat_members: np.ndarray
    trend_buyers: np.ndarray
    trending: np.ndarray


@dataclass(frozen=True)
class MemberSignals:
    """Per consumer × product (sparse, the fitted data's rows): what ``CommunitySignals`` sums per
    distributor; and the platform-wide trend per product. Computed once per run."""

    recent: sp.csr_matrix
    decayed: sp.csr_matrix
    repeat: sp.csr_matrix
    trend_buyers: np.ndarray
    trending: np.ndarray

    def of_members(
        self, member_rows: np.ndarray, member_of: np.ndarray, n_communities: int
    ) -> CommunitySignals:
        """The signals of ``n_communities`` distributors from their members' data rows and community rows."""
        membership = sp.csr_matrix(
            (np.ones(len(member_rows)), (member_of, np.arange(len(member_rows)))),
            shape=(n_communities, len(member_rows)),
        )
        return CommunitySignals(
            recent_members=(membership @ self.recent[member_rows]).toarray(),
            decayed_members=(membership @ self.decayed[member_rows]).toarray(),
            repeat_members=(membership @ self.repeat[member_rows]).toarray(),
            trend_buyers=self.trend_buyers,
            trending=self.trending,
        )


@dataclass(frozen=True)
class Trend:
    """The platform-wide trend per product: the buyers in the trend window and whether the
    product is trending. Counted on every consumer's rows: by the engine in the nightly
    (``of_counts``), or on data that hold every consumer (``of``); a part of the scoring pass,
    which holds only its own consumers' rows (``spark_scoring``), is handed the whole pass's."""

    buyers: np.ndarray
    trending: np.ndarray

    @classmethod
    def of(cls, data: InteractionData, config: ListsConfig) -> Trend:
        return cls._of(
            recent_popularity(data, config.trend_days), recent_popularity(data, BASELINE_DAYS), config
        )

    @classmethod
    def of_counts(cls, counts: PopularityCounts, product_ids: pd.Index, config: ListsConfig) -> Trend:
        """From the engine's counts, on the columns ``product_ids`` (a model's catalogue)."""
        at = counts.product_ids.get_indexer(product_ids)

        def aligned(values: np.ndarray) -> np.ndarray:
            return np.where(at >= 0, values[np.maximum(at, 0)], 0.0) if len(values) else np.zeros(len(at))

        return cls._of(aligned(counts.trend_buyers), aligned(counts.baseline_buyers), config)

    @classmethod
    def _of(cls, buyers: np.ndarray, baseline_buyers: np.ndarray, config: ListsConfig) -> Trend:
        baseline = baseline_buyers / BASELINE_DAYS * config.trend_days
        trending = (buyers >= config.trend_min_buyers) & (
            buyers >= config.trend_min_ratio * np.maximum(baseline, 1e-9)
        )
        return cls(buyers, trending)


def member_signals(data: InteractionData, config: ListsConfig, trend: Trend | None = None) -> MemberSignals:
    """Each consumer's recent, decayed and repeat products, and the platform-wide trend
    (``trend``; default: counted on ``data``)."""
    decayed = recent_indicator(data, None).astype(np.float64)
    if config.community_half_life_days is not None and data.age_days is not None:
        decayed = data.age_days.astype(np.float64).copy()
        decayed.data = 0.5 ** (decayed.data / config.community_half_life_days)
    repeat = (data.purchases if data.purchases is not None else data.matrix).copy()
    repeat.data = (repeat.data >= 2).astype(np.float64)
    trend = trend if trend is not None else Trend.of(data, config)
    return MemberSignals(
        recent_indicator(data, config.fallback_window_days).tocsr(),
        decayed.tocsr(),
        repeat.tocsr(),
        trend.buyers,
        trend.trending,
    )


def community_signals(
    data: InteractionData, homes: pd.Series, distributor_ids: pd.Index, config: ListsConfig
) -> CommunitySignals:
    """Members' recent and repeat buyers per distributor × product, and the platform-wide trend."""
    member_of = distributor_ids.get_indexer(homes.reindex(data.consumer_ids).astype(object))
    known = np.flatnonzero(member_of >= 0)
    return member_signals(data, config).of_members(known, member_of[known], len(distributor_ids))


def blend_scores(aggregated: CommunityScores, signals: CommunitySignals, config: ListsConfig) -> np.ndarray:
    """The distributor × product score of the module docstring (before filters)."""
    trend = _row_normalised(signals.trend_buyers[None, :])
    return (
        _row_normalised(aggregated.expected)
        + config.community_weight * _row_normalised(signals.decayed_members)
        + config.trend_weight * trend
    )


def _row_normalised(values: np.ndarray) -> np.ndarray:
    top = values.max(axis=1, keepdims=True) if values.size else values
    return values / np.where(top > 0, top, 1.0)


def distributor_lists(
    aggregated: CommunityScores,
    signals: CommunitySignals,
    filters: RecommendFilters,
    config: ListsConfig,
    categories: np.ndarray,
    messages: Messages | None = None,
) -> pd.DataFrame:
    """Top ``distributor_top_n`` products per distributor with a reason; ``DISTRIBUTOR_COLUMNS``.

    ``categories``: each product's category in ``aggregated.product_ids`` order. The reason is
    a ``ReasonCode`` and its sentence in the locale of ``messages`` (default English).
    """
    scores = blend_scores(aggregated, signals, config)
    scores = np.where(filters.column_mask(aggregated.product_ids)[None, :], scores, -np.inf)
    demotion = filters.demotion(aggregated.product_ids)
    if demotion is not None:
        scores = demote_scores(scores, demotion[None, :])
    columns, ranked = top_k(
        scores.astype(np.float32), config.distributor_top_n, categories, filters.category_cap
    )
    valid = columns >= 0
    rows = np.broadcast_to(np.arange(len(columns))[:, None], columns.shape)[valid]
    picked = columns[valid]
    frame = pd.DataFrame(
        {
            DistributorListCol.DISTRIBUTOR_ID: aggregated.distributor_ids.to_numpy(dtype=object)[rows],
            DistributorListCol.PRODUCT_ID: aggregated.product_ids.to_numpy(dtype=object)[picked],
            DistributorListCol.RANK: np.broadcast_to(
                np.arange(1, columns.shape[1] + 1, dtype=np.int32), columns.shape
            )[valid],
            DistributorListCol.SCORE: ranked[valid].astype(np.float32),
        }
    )
    codes, reasons = _reasons(
        aggregated, signals, config, categories, rows, picked, messages or Messages.load()
    )
    frame[DistributorListCol.REASON_CODE], frame[DistributorListCol.REASON] = codes, reasons
    return frame[list(DISTRIBUTOR_COLUMNS)]


def _reasons(
    aggregated: CommunityScores,
    signals: CommunitySignals,
    config: ListsConfig,
    categories: np.ndarray,
    rows: np.ndarray,
    columns: np.ndarray,
    messages: Messages,
) -> tuple[np.ndarray, np.ndarray]:
    likely = aggregated.likely_buyers[rows, columns].astype(np.int64)
    repeat = signals.repeat_members[rows, columns].astype(np.int64)
    recent = signals.recent_members[rows, columns].astype(np.int64)
    trending = signals.trending[columns]
    buyers = signals.trend_buyers[columns].astype(np.int64)
    codes = np.select(
        [
            likely >= config.reason_min_customers,
            repeat >= config.reason_min_repeat_buyers,
            trending,
            recent >= 1,
        ],
        [
            ReasonCode.LIKELY_BUYERS,
            ReasonCode.REPEAT_FAVOURITE,
            ReasonCode.TRENDING,
            ReasonCode.RECENT_BUYERS,
        ],
        default=ReasonCode.PLATFORM_POPULAR,
    ).astype(object)
    # the number each sentence quotes, and its window in days
    n = np.select(
        [
            codes == ReasonCode.LIKELY_BUYERS,
            codes == ReasonCode.REPEAT_FAVOURITE,
            codes == ReasonCode.RECENT_BUYERS,
        ],
        [likely, repeat, recent],
        default=buyers,
    )
    days = np.where(
        codes == ReasonCode.RECENT_BUYERS, f"{config.fallback_window_days:g}", f"{config.trend_days}"
    ).astype(object)
    category = np.asarray(categories, dtype=object)[columns]
    return codes, reason_sentences(codes, messages, n=n, days=days, category=category)


# --- outreach ------------------------------------------------------------------------------------


def outreach_lists(
    model: Recommender,
    homes: pd.Series,
    weights: pd.Series,
    pushed: pd.DataFrame,
    config: ListsConfig,
    categories: np.ndarray,
    messages: Messages | None = None,
) -> pd.DataFrame:
    """Per distributor, its ``outreach_size`` best customers to message, each about one pushed product.

    ``pushed`` is ``distributor_lists``' frame; returns ``OUTREACH_COLUMNS`` sorted by
    distributor, then rank.
    """
    data = model.data_
    distributor_ids = pd.Index(pushed[DistributorListCol.DISTRIBUTOR_ID].unique())
    product_columns = _pushed_columns(pushed, distributor_ids, data.product_ids)
    members = homes[homes.index.isin(data.consumer_ids) & homes.isin(distributor_ids)]
    frames = []
    for block in model.score_blocks(members.index, config.batch_size):
        known = ~np.isnan(block.scores).all(axis=1)
        ids = block.consumer_ids[known]
        community = distributor_ids.get_indexer(members.reindex(ids))
        frame = _best_pushed(block.scores[known], ids, community, distributor_ids, product_columns, data)
        if frame is not None:
            frames.append(frame)
    if not frames:
        return empty_outreach()
    return ranked_outreach(pd.concat(frames, ignore_index=True), weights, config, data, categories, messages)


def ranked_outreach(
    best: pd.DataFrame,
    weights: pd.Series,
    config: ListsConfig,
    data: InteractionData,
    categories: np.ndarray,
    messages: Messages | None = None,
) -> pd.DataFrame:
    """Members matched with their best pushed product (``_best_pushed``'s frames) → the outreach rows:
    ``model score × member weight`` > 0, the best ``outreach_size`` per distributor, with reasons."""
    if best.empty:
        return empty_outreach()
    best[DistributorListCol.SCORE] = (
        best["_raw"] * weights.reindex(best[Col.CONSUMER_ID]).fillna(0.0).to_numpy()
    ).astype(np.float32)
    best = best[best[DistributorListCol.SCORE] > 0]
    if best.empty:  # every member weighs 0 (e.g. no spend): nobody to message
        return empty_outreach()
    best = best.sort_values(
        [DistributorListCol.DISTRIBUTOR_ID, DistributorListCol.SCORE, DistributorListCol.CONSUMER_ID],
        ascending=[True, False, True],
        kind="stable",
    )
    best = best.groupby(DistributorListCol.DISTRIBUTOR_ID, sort=False).head(config.outreach_size)
    best[DistributorListCol.RANK] = (
        best.groupby(DistributorListCol.DISTRIBUTOR_ID, sort=False).cumcount().astype(np.int32) + 1
    )
    codes, reasons = _outreach_reasons(best, data, categories, messages or Messages.load())
    best[DistributorListCol.REASON_CODE], best[DistributorListCol.REASON] = codes, reasons
    return best[list(OUTREACH_COLUMNS)].reset_index(drop=True)


def empty_outreach() -> pd.DataFrame:
    """An outreach frame without rows (``OUTREACH_COLUMNS``)."""
    return pd.DataFrame({column: pd.Series(dtype=object) for column in OUTREACH_COLUMNS})


def _pushed_columns(pushed: pd.DataFrame, distributor_ids: pd.Index, product_ids: pd.Index) -> np.ndarray:
    depth = int(pushed.groupby(DistributorListCol.DISTRIBUTOR_ID).size().max()) if len(pushed) else 1
    columns = np.full((len(distributor_ids), depth), -1, dtype=np.int64)
    rows = distributor_ids.get_indexer(pushed[DistributorListCol.DISTRIBUTOR_ID])
    columns[rows, pushed[DistributorListCol.RANK].to_numpy() - 1] = product_ids.get_indexer(
        pushed[DistributorListCol.PRODUCT_ID]
    )
    return columns


def _best_pushed(
    scores: np.ndarray,
    ids: pd.Index,
    community: np.ndarray,
    distributor_ids: pd.Index,
    product_columns: np.ndarray,
    data: InteractionData,
) -> pd.DataFrame | None:
    """Each member's best product of its distributor's pushed list, from its full score rows.

    ``community``: each member's row in ``distributor_ids`` and ``product_columns``.
    """
    if not len(ids):
        return None
    candidates = product_columns[community]
    gathered = np.take_along_axis(scores, np.maximum(candidates, 0), axis=1)
    gathered[candidates < 0] = -np.inf
    rows = data.rows_of(ids)
    blocked = data.blocked[rows]
    if blocked.nnz:
        is_blocked = np.asarray(
            blocked[np.repeat(np.arange(len(ids)), candidates.shape[1]), np.maximum(candidates, 0).ravel()]
        ).reshape(candidates.shape)
        gathered[is_blocked != 0] = -np.inf
    return _best_frame(gathered, candidates, ids, community, distributor_ids, data)


def _best_frame(
    gathered: np.ndarray,
    candidates: np.ndarray,
    ids: pd.Index,
    community: np.ndarray,
    distributor_ids: pd.Index,
    data: InteractionData,
) -> pd.DataFrame:
    """The first best candidate of each member (pushed order breaks ties); members without one left out."""
    best = np.argmax(gathered, axis=1)
    best_score = gathered[np.arange(len(ids)), best]
    keep = np.isfinite(best_score)
    column = candidates[np.arange(len(ids)), best][keep]
    return pd.DataFrame(
        {
            DistributorListCol.DISTRIBUTOR_ID: distributor_ids.to_numpy(dtype=object)[community[keep]],
            Col.CONSUMER_ID: ids.to_numpy(dtype=object)[keep],
            "_column": column,
            "_raw": np.clip(best_score[keep], 0.0, None),
            DistributorListCol.PRODUCT_ID: data.product_ids.to_numpy(dtype=object)[column],
        }
    )


@dataclass(frozen=True)
class TopProducts:
    """Members' best ``depth`` products by raw model score (blocked pairs excluded), best first.

    What the one pass keeps of a member whose distributor is still open, to find its best
    pushed product once the distributor's list is known (``settle``).
    """

    ids: pd.Index
    community: np.ndarray  # distributor code of each member
    columns: np.ndarray  # (members, depth), -1 where fewer candidates
    scores: np.ndarray  # (members, depth), -inf where fewer candidates

    @classmethod
    def of(
        cls, scores: np.ndarray, ids: pd.Index, community: np.ndarray, data: InteractionData, depth: int
    ) -> TopProducts:
        """Keep the top ``depth`` of each member's raw score row (blocked pairs excluded)."""
        raw = _nan_as_minus_inf(scores)
        blocked = data.blocked[data.rows_of(ids)].tocoo()
        raw[blocked.row, blocked.col] = -np.inf
        columns, ranked = top_k(raw, min(depth, raw.shape[1]))
        return cls(ids, community, columns, ranked)

    @classmethod
    def concat(cls, parts: list[TopProducts]) -> TopProducts:
        """One set of members from several."""
        return cls(
            pd.Index(np.concatenate([part.ids.to_numpy(dtype=object) for part in parts])),
            np.concatenate([part.community for part in parts]),
            np.concatenate([part.columns for part in parts]),
            np.concatenate([part.scores for part in parts]),
        )

    def take(self, keep: np.ndarray) -> TopProducts:
        """The members where ``keep`` is true."""
        return TopProducts(self.ids[keep], self.community[keep], self.columns[keep], self.scores[keep])

    def settle(self, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(kept scores of each member's pushed ``candidates``, -inf where not kept; settled mask).

        A member is settled when its best kept candidate beats the lowest kept score (every
        candidate tied with it is then kept, so the pushed order breaks ties as on the full
        row), or when fewer scores than slots are finite (every score is kept).
        """
        # one candidate slot at a time: members × depth, not a members × depth × candidates array
        # (725,000 members of one distributor, 40 kept and 20 pushed products: 2.9 GB, bool and float32)
        gathered = np.full(candidates.shape, -np.inf, dtype=self.scores.dtype)
        for slot in range(candidates.shape[1]):
            candidate = candidates[:, slot, None]
            hits = (self.columns == candidate) & (candidate >= 0)
            gathered[:, slot] = np.where(hits, self.scores, -np.inf).max(axis=1)
        floor = self.scores[:, -1]
        settled = (gathered.max(axis=1) > floor) | ~np.isfinite(floor)
        return gathered, settled


def empty_distributor_lists() -> pd.DataFrame:
    """A distributor-list frame without rows (``DISTRIBUTOR_COLUMNS``)."""
    return pd.DataFrame({column: pd.Series(dtype=object) for column in DISTRIBUTOR_COLUMNS})


def _outreach_reasons(
    best: pd.DataFrame, data: InteractionData, categories: np.ndarray, messages: Messages
) -> tuple[np.ndarray, np.ndarray]:
    rows = data.rows_of(best[Col.CONSUMER_ID])
    columns = best["_column"].to_numpy()
    counts = data.purchases if data.purchases is not None else data.matrix
    bought = np.asarray(counts[rows, columns]).ravel()
    category_codes, names = pd.factorize(categories)
    one_hot = sp.csr_matrix(
        (np.ones(len(category_codes)), (np.arange(len(category_codes)), category_codes)),
        shape=(len(category_codes), len(names)),
    )
    own = data.matrix[rows].copy()
    own.data = np.ones_like(own.data)
    per_category = own @ one_hot
    in_category = np.asarray(per_category[np.arange(len(rows)), category_codes[columns]]).ravel()
    codes_of_columns = category_codes[columns]
    codes = np.select(
        [bought >= 1, in_category >= 1],
        [ReasonCode.OUTREACH_BOUGHT, ReasonCode.BUYS_CATEGORY],
        default=ReasonCode.SIMILAR_MEMBERS,
    ).astype(object)
    # "bought it once before" has its own sentence (no number to fill)
    keys = np.where(bought == 1, "outreach_bought_once", codes).astype(object)
    n = np.where(codes == ReasonCode.BUYS_CATEGORY, in_category, bought).astype(np.int64)
    category = np.asarray(names, dtype=object)[codes_of_columns]
    return codes, reason_sentences(keys, messages, times=n, n=n, category=category)


class DistributorStream:
    """Distributor and outreach lists from ONE pass over the members' scores, grouped by distributor.

    Feed ``add`` the scored members of each block in distributor-code order (then consumer
    id); each call returns the lists of the distributors the block completed (in code order)
    and ``finish`` the rest. Dense ``products``-wide rows exist only for the open distributors
    that have members in the pass (at most one block's worth); distributors without a scored
    member all get the same trend-only list, made once. So memory grows with ``batch_size ×
    products``, not with distributors × products. A member whose distributor stays open after
    its block keeps its best ``2 × distributor_top_n`` products (``TopProducts``); when its
    distributor's list is known, those settle its outreach product, and the few they cannot
    are scored again. ``trend``: the platform-wide trend (default: counted on the model's data).
    """

    def __init__(
        self,
        model: Recommender,
        distributor_ids: pd.Index,
        weights: pd.Series,
        filters: RecommendFilters,
        config: ListsConfig,
        categories: np.ndarray,
        messages: Messages | None = None,
        trend: Trend | None = None,
    ) -> None:
        self.model = model
        self.messages = messages or Messages.load()
        self.data = model.data_
        self.distributor_ids = distributor_ids
        self.weights = weights
        self.filters = filters
        self.config = config
        self.categories = categories
        self.signals = member_signals(self.data, config, trend)
        self.mask = filters.column_mask(self.data.product_ids)
        self.first = 0  # first distributor code not finished
        n_products = len(self.data.product_ids)
        self.open_codes = np.zeros(0, dtype=np.int64)  # codes with accumulator rows, ascending
        self.expected = np.zeros((0, n_products), dtype=np.float64)
        self.likely = np.zeros((0, n_products), dtype=np.float64)
        self.member_rows = np.zeros(0, dtype=np.int64)  # data rows of the open distributors' members
        self.member_codes = np.zeros(0, dtype=np.int64)
        self.carried: list[TopProducts] = []
        self.rescored = 0
        self._memberless: pd.DataFrame | None = None

    def add(
        self, ids: pd.Index, codes: np.ndarray, scores: np.ndarray, complete_before: int
    ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
        """Aggregate one block's members (``codes``: their distributor codes, non-decreasing);
        distributors with a code below ``complete_before`` have no member left to come.

        Yields (distributor rows, outreach rows) of the completed distributors, at most
        ``batch_size`` distributors at a time; consume it whole before the next ``add``.
        """
        self.member_rows = np.concatenate([self.member_rows, self.data.rows_of(ids)])
        self.member_codes = np.concatenate([self.member_codes, codes])
        known = ~np.isnan(scores).all(axis=1)
        if not known.all():  # (a block-wide copy only when needed)
            ids, codes, scores = ids[known], codes[known], scores[known]
        if len(ids):
            self._open(np.setdiff1d(codes, self.open_codes))
            weight = self.weights.reindex(ids).fillna(0.0).to_numpy(dtype=np.float64)
            local = np.searchsorted(self.open_codes, codes)
            accumulate(scores, local, weight, self.mask, self.config, self.expected, self.likely)
        staying = codes >= complete_before
        if staying.any():
            depth = 2 * self.config.distributor_top_n
            self.carried.append(
                TopProducts.of(scores[staying], ids[staying], codes[staying], self.data, depth)
            )
            done = ~staying
            ids, codes, scores = ids[done], codes[done], scores[done]
        return self._finish_until(complete_before, ids, codes, scores)

    def finish(self) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
        """The lists of every distributor not finished yet (those without members included)."""
        empty = np.zeros(0, dtype=np.int64)
        scores = np.zeros((0, len(self.data.product_ids)), dtype=np.float32)
        yield from self._finish_until(len(self.distributor_ids), pd.Index([], dtype=object), empty, scores)
        if self.rescored:
            logger.info(
                "outreach: %d members scored again (their kept products held no pushed one)", self.rescored
            )

    def _open(self, codes: np.ndarray) -> None:
        if len(codes):
            self.open_codes = np.concatenate([self.open_codes, codes])
            self.expected = np.pad(self.expected, ((0, len(codes)), (0, 0)))
            self.likely = np.pad(self.likely, ((0, len(codes)), (0, 0)))

    def _finish_until(
        self, upto: int, ids: pd.Index, codes: np.ndarray, scores: np.ndarray
    ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
        """Finish the distributors below ``upto`` in code order, ``batch_size`` codes at a time."""
        present = np.union1d(
            self.open_codes[self.open_codes < upto], self.member_codes[self.member_codes < upto]
        )
        window = max(self.config.batch_size, 1)
        for start in range(self.first, upto, window):
            codes_here = np.arange(start, min(start + window, upto))
            done = np.intersect1d(present, codes_here)
            pushed, outreach = [], empty_outreach()
            if len(done):
                in_window = np.isin(codes, done)
                lists = self._window(done, ids[in_window], codes[in_window], scores[in_window])
                pushed.append(lists[0])
                outreach = lists[1]
            memberless = np.setdiff1d(codes_here, done)
            if len(memberless):
                pushed.append(self._memberless_lists(memberless))
            yield _in_code_order(_concat(pushed, empty_distributor_lists()), self.distributor_ids), outreach
        self._forget(upto)

    def _window(
        self, done: np.ndarray, ids: pd.Index, codes: np.ndarray, scores: np.ndarray
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The lists of the distributors ``done`` (codes, ascending), all of whose members are aggregated."""
        data, n = self.data, len(done)
        expected = np.zeros((n, len(data.product_ids)), dtype=np.float64)
        likely = np.zeros_like(expected)
        rows = np.minimum(np.searchsorted(self.open_codes, done), max(len(self.open_codes) - 1, 0))
        has = (
            (rows < len(self.open_codes)) & (self.open_codes[rows] == done)
            if len(self.open_codes)
            else rows < 0
        )
        expected[has], likely[has] = self.expected[rows[has]], self.likely[rows[has]]
        members = np.isin(self.member_codes, done)
        member_of = np.searchsorted(done, self.member_codes[members])
        signals = self.signals.of_members(self.member_rows[members], member_of, n)
        window_ids = self.distributor_ids[done]
        aggregated = CommunityScores(
            window_ids, data.product_ids, expected, likely, np.bincount(member_of, minlength=n)
        )
        pushed = distributor_lists(
            aggregated, signals, self.filters, self.config, self.categories, self.messages
        )
        product_columns = _pushed_columns(pushed, window_ids, data.product_ids)
        community = np.searchsorted(done, codes)
        best = [_best_pushed(scores, ids, community, window_ids, product_columns, data)]
        best += self._carried_best(done, window_ids, product_columns)
        frames = [frame for frame in best if frame is not None and len(frame)]
        if not frames:
            return pushed, empty_outreach()
        best_frame = pd.concat(frames, ignore_index=True)
        return pushed, ranked_outreach(
            best_frame, self.weights, self.config, data, self.categories, self.messages
        )

    def _memberless_lists(self, codes: np.ndarray) -> pd.DataFrame:
        """The list of distributors without a member in the data: the same trend-only list for each."""
        if self._memberless is None:
            data = self.data
            zeros = np.zeros((1, len(data.product_ids)), dtype=np.float64)
            aggregated = CommunityScores(
                pd.Index([""]), data.product_ids, zeros, zeros, np.zeros(1, np.int64)
            )
            signals = self.signals.of_members(np.zeros(0, np.int64), np.zeros(0, np.int64), 1)
            self._memberless = distributor_lists(
                aggregated, signals, self.filters, self.config, self.categories, self.messages
            )
        template = self._memberless
        frame = pd.concat([template] * len(codes), ignore_index=True) if len(template) else template
        frame[DistributorListCol.DISTRIBUTOR_ID] = np.repeat(
            self.distributor_ids.to_numpy(dtype=object)[codes], len(template)
        )
        return frame

    def _carried_best(
        self, done: np.ndarray, window_ids: pd.Index, product_columns: np.ndarray
    ) -> list[pd.DataFrame | None]:
        parts = [part.take(np.isin(part.community, done)) for part in self.carried]
        parts = [part for part in parts if len(part.ids)]
        if not parts:
            return []
        kept = TopProducts.concat(parts)
        community = np.searchsorted(done, kept.community)
        candidates = product_columns[community]
        gathered, settled = kept.settle(candidates)
        frames = [
            _best_frame(
                gathered[settled],
                candidates[settled],
                kept.ids[settled],
                community[settled],
                window_ids,
                self.data,
            )
        ]
        again = kept.take(~settled)
        self.rescored += len(again.ids)
        for block in self.model.score_blocks(again.ids, self.config.batch_size):
            local = np.searchsorted(done, again.community[again.ids.get_indexer(block.consumer_ids)])
            frames.append(
                _best_pushed(block.scores, block.consumer_ids, local, window_ids, product_columns, self.data)
            )
        return frames

    def _forget(self, upto: int) -> None:
        """Drop what the distributors below ``upto`` held."""
        self.first = max(self.first, upto)
        staying = self.open_codes >= upto
        self.open_codes = self.open_codes[staying]
        self.expected, self.likely = self.expected[staying], self.likely[staying]
        staying = self.member_codes >= upto
        self.member_rows, self.member_codes = self.member_rows[staying], self.member_codes[staying]
        self.carried = [part.take(part.community >= upto) for part in self.carried]
        self.carried = [part for part in self.carried if len(part.ids)]


def _in_code_order(pushed: pd.DataFrame, distributor_ids: pd.Index) -> pd.DataFrame:
    """Rows by distributor (code order), each list kept in rank order."""
    if pushed.empty:
        return pushed
    order = np.argsort(distributor_ids.get_indexer(pushed[DistributorListCol.DISTRIBUTOR_ID]), kind="stable")
    return pushed.iloc[order].reset_index(drop=True)


def _concat(frames: list[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    frames = [frame for frame in frames if len(frame)]
    return pd.concat(frames, ignore_index=True) if frames else empty
