"""The ranker's features per (consumer, product) candidate, computed one block of consumers at a time.

``ProductStats.fit(data)`` learns what is global (per product, from all fitted data); then
``candidate_features(data, stats, rows, columns, ...)`` builds a float32 matrix, one row per
candidate, with NaN where a value does not exist (the trees route missing values on their
own; the logistic learner reads them as 0). Every feature is vectorised over the block: dense
``batch × products`` slices of purchases and ages, as the scoring pass already holds for the
scores, and lookups in the block's sparse rows for the rest, so the nightly computes them
inside its one scoring pass. The groups (``FEATURE_GROUPS``, also the ablation's unit):

- ``history``: purchases (log), owned flag, days since the last interaction (log; owned only),
  and the product's place in the consumer's own history: share of their purchases, rank by
  purchases and rank by recency (1 = most bought / most recent; logs; NaN when not owned).
- ``timing`` ("is it due?"): the pair's own repurchase interval (first to last paid order over
  purchases − 1), the consumer's typical interval (over all their repeated products) and the
  product's typical interval (over every consumer who bought it twice or more), and the days
  since the last purchase divided by each: about 1 means due now.
- ``copurchase``: summed and mean cosine co-purchase similarity of the candidate with the
  consumer's recent basket (products last bought within ``RECENT_BASKET_DAYS`` of the
  consumer's latest activity).
- ``popularity``: distinct buyers over the last 7 / 30 days and all history (scaled to the
  top product), and the trend: the 7-day rate over the 30-day rate.
- ``consumer``: distinct products, purchases, days since the last activity (logs).
- ``category_affinity``: the consumer's share of purchases in the candidate's category.
- ``price``: the candidate's price band (``p1``..``pN``, within its category) minus the
  consumer's usual band (purchase-weighted mean), and its absolute value.
- ``components``: each candidate generator's score (over the consumer's best) and rank (log,
  capped at depth + 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.columns import Col
from features.vocabulary import InteractionCol
from models.recommenders.base import InteractionData
from models.recommenders.popularity import recent_popularity

NO_AGE_DAYS = 3650.0
RECENT_BASKET_DAYS = 14.0
COPURCHASE_NEIGHBOURS = 100
COPURCHASE_SLICE_BYTES = 64 * 2**20

FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "history": (
        "purchases_log",
        "owned",
        "days_since_last_log",
        "purchase_share",
        "purchase_rank_log",
        "recency_rank_log",
    ),
    "timing": (
        "pair_interval_log",
        "consumer_interval_log",
        "product_interval_log",
        "due_pair",
        "due_consumer",
        "due_product",
    ),
    "copurchase": ("copurchase_recent_sum", "copurchase_recent_mean"),
    "popularity": ("popularity_7d", "popularity_30d", "popularity_all", "popularity_trend"),
    "consumer": ("consumer_products_log", "consumer_purchases_log", "consumer_days_since_log"),
    "category_affinity": ("category_share",),
    "price": ("price_band_gap", "price_band_gap_abs"),
}
COMPONENT_GROUP = "components"


def feature_names(components: list[str]) -> list[str]:
    """Column names of ``candidate_features``' matrix, in order."""
    fixed = [name for names in FEATURE_GROUPS.values() for name in names]
    return fixed + [f"{name}_{part}" for name in components for part in ("generator_score", "generator_rank")]


def group_columns(components: list[str]) -> dict[str, np.ndarray]:
    """Feature group → its column positions in ``candidate_features``' matrix."""
    names = feature_names(components)
    groups = {group: [names.index(name) for name in members] for group, members in FEATURE_GROUPS.items()}
    groups[COMPONENT_GROUP] = list(range(len(names) - 2 * len(components), len(names)))
    return {group: np.array(columns, dtype=np.int64) for group, columns in groups.items()}


@dataclass(frozen=True)
class ProductStats:
    """Per-product values the features need, learned from all fitted data."""

    popularity_7d: np.ndarray
    popularity_30d: np.ndarray
    popularity_all: np.ndarray
    trend: np.ndarray
    repurchase_interval: np.ndarray
    copurchase: sp.csr_matrix

    @classmethod
    def fit(cls, data: InteractionData, neighbours: int = COPURCHASE_NEIGHBOURS) -> ProductStats:
        """Popularity, trend, typical repurchase interval and co-purchase similarity of every product."""
        raw = {window: recent_popularity(data, window) for window in (7.0, 30.0, None)}
        return cls(
            _scaled(raw[7.0]),
            _scaled(raw[30.0]),
            _scaled(raw[None]),
            popularity_trend(raw[7.0], raw[30.0]),
            product_repurchase_interval(data),
            copurchase_similarity(data.bought, neighbours),
        )

    def arrays(self) -> dict[str, np.ndarray | sp.csr_matrix]:
        """The fields by name, for saving."""
        return dict(vars(self))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray | sp.csr_matrix]) -> ProductStats:
        return cls(**arrays)  # type: ignore[arg-type]


def popularity_trend(buyers_7d: np.ndarray, buyers_30d: np.ndarray) -> np.ndarray:
    """The last 7 days' buyers per day over the last 30 days' (1 = steady, > 1 rising); NaN without buyers."""
    with np.errstate(divide="ignore", invalid="ignore"):
        trend = (buyers_7d / 7.0) / (buyers_30d / 30.0)
    return np.where(buyers_30d > 0, trend, np.nan).astype(np.float32)


def product_repurchase_interval(data: InteractionData) -> np.ndarray:
    """Days between two purchases of each product by the same consumer, over every consumer who
    bought it twice or more (Σ span / Σ (purchases − 1)); NaN for products nobody re-bought."""
    span, repeats = _spans_and_repeats(data)
    if span is None:
        return np.full(data.shape[1], np.nan, dtype=np.float32)
    total_span = np.asarray(span.sum(axis=0)).ravel()
    total_repeats = np.asarray(repeats.sum(axis=0)).ravel()
    return _ratio(total_span, total_repeats)


def copurchase_similarity(bought: sp.csr_matrix, neighbours: int) -> sp.csr_matrix:
    """Cosine similarity of products over their buyers (0/1), the top ``neighbours`` per product."""
    binary = bought.copy().astype(np.float32)
    binary.data = np.ones_like(binary.data)
    norms = np.sqrt(np.asarray(binary.sum(axis=0)).ravel())
    scaled = binary @ sp.diags(1.0 / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    similarity = (scaled.T @ scaled).tocsr()
    similarity.setdiag(0.0)
    similarity.eliminate_zeros()
    return _top_per_row(similarity, neighbours)


def candidate_features(
    data: InteractionData,
    stats: ProductStats,
    category_codes: np.ndarray | None,
    rows: np.ndarray,
    batch_rows: np.ndarray,
    columns: np.ndarray,
    component_scores: list[np.ndarray],
    component_ranks: list[np.ndarray],
    skip: frozenset[str] = frozenset(),
) -> np.ndarray:
    """One float32 row per candidate (``batch_rows[i]``, ``columns[i]``); columns ``feature_names``.

    ``component_scores`` and ``component_ranks``: each component's score (over the consumer's
    best) and rank at the candidates (float32, one value per candidate).

    Groups in ``skip`` are not computed (their columns hold NaN). Each part gives its features as
    columns (a sequence of 1-D arrays); they are written feature by feature into a contiguous
    features × candidates float32 array, transposed once at the end (writing strided columns of
    a candidates × features array directly cost four times as much).
    """
    own = _dense(data.purchases if data.purchases is not None else data.bought, rows)
    ages = _dense(data.age_days, rows) if data.age_days is not None else None
    by_feature = np.empty((len(feature_names([""] * len(component_scores))), len(columns)), dtype=np.float32)
    parts = (
        ("history", 3, lambda: _history(own, ages, batch_rows, columns)),
        ("history", 3, lambda: _own_ranks(data, rows, batch_rows, columns)),
        ("timing", 6, lambda: _timing(data, stats, own, ages, rows, batch_rows, columns)),
        ("copurchase", 2, lambda: _copurchase(stats, own, ages, batch_rows, columns)),
        ("popularity", 4, lambda: _popularity(stats, columns)),
        ("consumer", 3, lambda: _consumer(own, ages, batch_rows)),
        ("category_affinity", 1, lambda: [_category(own, category_codes, batch_rows, columns)]),
        ("price", 2, lambda: _price(data, own, batch_rows, columns)),
    )
    position = 0
    for group, width, part in parts:  # one feature at a time into the float32 array, no float64 copy
        if group in skip:
            by_feature[position : position + width] = np.nan
        else:
            for offset, values in enumerate(part()):
                by_feature[position + offset] = values
        position += width
    for score, rank in zip(component_scores, component_ranks, strict=True):
        by_feature[position] = score
        by_feature[position + 1] = np.log1p(rank)
        position += 2
    return np.ascontiguousarray(by_feature.T)


def _history(
    own: np.ndarray, ages: np.ndarray | None, batch_rows: np.ndarray, columns: np.ndarray
) -> list[np.ndarray]:
    purchases = own[batch_rows, columns]
    owned = purchases > 0
    age = _pair_age(ages, batch_rows, columns)
    return [np.log1p(purchases), owned, np.where(owned, np.log1p(age), np.nan)]


def _own_ranks(
    data: InteractionData, rows: np.ndarray, batch_rows: np.ndarray, columns: np.ndarray
) -> np.ndarray:
    """Share of the consumer's purchases, rank by purchases and rank by recency among the products
    the consumer owns (computed over the sparse history only)."""
    bought = data.bought[rows].tocsr()
    bought.sort_indices()
    totals = np.asarray(bought.sum(axis=1)).ravel()
    share = bought.multiply(1.0 / np.where(totals > 0, totals, 1.0)[:, None]).tocsr()
    out = np.full((3, len(columns)), np.nan, dtype=np.float32)
    out[0] = _at(share, batch_rows, columns)
    out[1] = _at(_row_ranks(bought, bought.data, descending=True), batch_rows, columns)
    if data.age_days is not None:
        ages = data.age_days[rows].multiply(bought > 0).tocsr()
        ages.sort_indices()
        out[2] = _at(_row_ranks(ages, ages.data, descending=False), batch_rows, columns)
    with np.errstate(invalid="ignore"):
        out[1:] = np.log(out[1:])
    return out


def _row_ranks(matrix: sp.csr_matrix, values: np.ndarray, descending: bool) -> sp.csr_matrix:
    """Per row, the 1-based rank of each stored value (ties by column order)."""
    lengths = np.diff(matrix.indptr)
    row_of = np.repeat(np.arange(matrix.shape[0]), lengths)
    order = np.lexsort((matrix.indices, -values if descending else values, row_of))
    ranks = np.empty(len(order), dtype=np.float32)
    ranks[order] = np.arange(len(order)) - np.repeat(matrix.indptr[:-1], lengths) + 1
    return sp.csr_matrix((ranks, matrix.indices, matrix.indptr), shape=matrix.shape)


def _at(
    matrix: sp.csr_matrix, batch_rows: np.ndarray, columns: np.ndarray, missing: float = np.nan
) -> np.ndarray:
    """Stored values at (batch_rows, columns), ``missing`` where nothing is stored (no dense copy)."""
    matrix = matrix.tocsr()
    matrix.sum_duplicates()  # canonical: sorted indices, so the keys below are sorted
    n_columns = matrix.shape[1]
    row_of = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    keys = row_of * n_columns + matrix.indices
    wanted = batch_rows.astype(np.int64) * n_columns + columns
    position = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
    found = (keys[position] == wanted) if len(keys) else np.zeros(len(wanted), dtype=bool)
    values = np.full(len(wanted), missing, dtype=np.float32)
    values[found] = matrix.data[position[found]]
    return values


def _timing(
    data: InteractionData,
    stats: ProductStats,
    own: np.ndarray,
    ages: np.ndarray | None,
    rows: np.ndarray,
    batch_rows: np.ndarray,
    columns: np.ndarray,
) -> np.ndarray:
    """Repurchase intervals of the pair, the consumer and the product, and age over each."""
    out = np.full((6, len(columns)), np.nan, dtype=np.float32)
    span, repeats = _spans_and_repeats(data)
    if span is None or ages is None:
        return out
    span_block, repeats_block = span[rows], repeats[rows]
    pair = _ratio(_at(span_block, batch_rows, columns, 0.0), _at(repeats_block, batch_rows, columns, 0.0))
    consumer = _ratio(span_block.sum(axis=1), repeats_block.sum(axis=1))[batch_rows]
    product = stats.repurchase_interval[columns]
    owned = own[batch_rows, columns] > 0
    age = np.where(owned, _pair_age(ages, batch_rows, columns), np.nan)
    out[0], out[1], out[2] = np.log1p(pair), np.log1p(consumer), np.log1p(product)
    with np.errstate(divide="ignore", invalid="ignore"):
        for position, interval in enumerate((pair, consumer, product), start=3):
            out[position] = np.where(interval > 0, age / interval, np.nan)
    return out


def due_ratio(days_since_last: float, interval_days: float) -> float:
    """Days since the last purchase over the typical interval: ≥ about 1 means the product is due."""
    return days_since_last / interval_days if interval_days > 0 else float("nan")


def _copurchase(
    stats: ProductStats,
    own: np.ndarray,
    ages: np.ndarray | None,
    batch_rows: np.ndarray,
    columns: np.ndarray,
) -> list[np.ndarray]:
    """Similarity of each candidate with the consumer's recent basket (summed and mean).

    A consumer without purchases (events only) has no latest purchase, so every product counts
    as recent: their basket is the whole catalogue.
    """
    if ages is None:
        recent = own > 0
    else:
        aged = np.where(own > 0, ages, np.inf)
        latest = aged.min(axis=1, keepdims=True)
        recent = aged <= latest + RECENT_BASKET_DAYS
    strength = basket_similarity(recent, stats.copurchase)[batch_rows, columns]
    size = np.count_nonzero(recent, axis=1)[batch_rows]
    return [strength, strength / np.maximum(size, 1)]


def basket_similarity(recent: np.ndarray, similarity: sp.csr_matrix) -> np.ndarray:
    """``recent @ similarity`` (0/1 baskets × product similarity) as a dense float32 block.

    Equal, bit for bit, to the sparse product ``csr(recent) @ similarity``: the same float32
    sums in the same order. Whole-catalogue baskets share one row (the similarity's column
    sums); the other rows are a sparse × dense product, one column slice of ``similarity``
    (at most ``COPURCHASE_SLICE_BYTES`` dense) at a time, without building and searching the
    sparse product's structure, which cost most of the scoring pass.
    """
    n_rows, n_products = recent.shape[0], similarity.shape[1]
    everything = recent.all(axis=1)
    at_rows, at_columns = np.nonzero(recent & ~everything[:, None])
    indptr = np.concatenate([[0], np.cumsum(np.bincount(at_rows, minlength=n_rows))])
    baskets = sp.csr_matrix(
        (np.ones(len(at_columns), dtype=np.float32), at_columns, indptr), shape=recent.shape
    )
    out = np.empty((n_rows, n_products), dtype=np.float32)
    width = max(1, COPURCHASE_SLICE_BYTES // (4 * max(similarity.shape[0], 1)))
    for start in range(0, n_products, width):
        stop = min(start + width, n_products)
        out[:, start:stop] = baskets @ similarity[:, start:stop].toarray()
    if everything.any():
        catalogue = sp.csr_matrix(np.ones((1, recent.shape[1]), dtype=np.float32))
        out[everything] = (catalogue @ similarity).toarray()
    return out


def _popularity(stats: ProductStats, columns: np.ndarray) -> list[np.ndarray]:
    return [
        np.log1p(100 * stats.popularity_7d[columns]),
        np.log1p(100 * stats.popularity_30d[columns]),
        np.log1p(100 * stats.popularity_all[columns]),
        stats.trend[columns],
    ]


def _consumer(own: np.ndarray, ages: np.ndarray | None, batch_rows: np.ndarray) -> list[np.ndarray]:
    if ages is None:
        last_activity = np.full(own.shape[0], NO_AGE_DAYS, dtype=np.float32)
    else:
        last_activity = np.where(own > 0, ages, NO_AGE_DAYS).min(axis=1)
    return [
        np.log1p((own > 0).sum(axis=1, dtype=np.float32))[batch_rows],
        np.log1p(own.sum(axis=1, dtype=np.float32))[batch_rows],
        np.log1p(last_activity)[batch_rows],
    ]


def _category(
    own: np.ndarray, codes: np.ndarray | None, batch_rows: np.ndarray, columns: np.ndarray
) -> np.ndarray:
    """The consumer's share of purchases in the candidate's category (0 without categories)."""
    if codes is None:
        return np.zeros(len(columns), dtype=np.float32)
    per_category = own @ sp.csr_matrix(
        (np.ones(len(codes), dtype=np.float32), (np.arange(len(codes)), codes)),
        shape=(len(codes), codes.max() + 1),
    )
    per_category = np.asarray(per_category)
    totals = per_category.sum(axis=1)
    return per_category[batch_rows, codes[columns]] / np.where(totals > 0, totals, 1.0)[batch_rows]


def _price(
    data: InteractionData, own: np.ndarray, batch_rows: np.ndarray, columns: np.ndarray
) -> np.ndarray | list[np.ndarray]:
    """Candidate price band minus the consumer's purchase-weighted usual band, and its size."""
    band = price_band_numbers(data)
    if band is None:
        return np.full((2, len(columns)), np.nan, dtype=np.float32)
    known = ~np.isnan(band)
    weights = own * known[None, :]
    totals = weights.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        usual = np.where(totals > 0, weights @ np.nan_to_num(band) / totals, np.nan)
    gap = band[columns] - usual[batch_rows]
    return [gap, np.abs(gap)]


def price_band_numbers(data: InteractionData) -> np.ndarray | None:
    """The product profiles' price band ``pN`` as the number N per catalogue column (NaN unknown)."""
    bands = data.product_attribute(InteractionCol.PRICE_BAND)
    if bands is None:
        return None
    return pd.to_numeric(pd.Series(bands).str.removeprefix("p"), errors="coerce").to_numpy(np.float32)


def category_codes(data: InteractionData) -> np.ndarray | None:
    """Integer category code per catalogue column, or None without product categories."""
    categories = data.product_attribute(Col.CATEGORY)
    return None if categories is None else pd.factorize(categories)[0]


def _spans_and_repeats(data: InteractionData) -> tuple[sp.csr_matrix | None, sp.csr_matrix | None]:
    """Purchase span (days) and purchases − 1 per pair, or (None, None) when the data lack them."""
    if data.purchase_span_days is None or data.purchases is None:
        return None, None
    repeats = data.purchases.copy()
    repeats.data = np.maximum(repeats.data - 1, 0)
    return data.purchase_span_days, repeats


def _pair_age(ages: np.ndarray | None, batch_rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    if ages is None:
        return np.full(len(columns), NO_AGE_DAYS, dtype=np.float32)
    age = ages[batch_rows, columns]
    return np.where(age > 0, age, NO_AGE_DAYS)


def _dense(matrix: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    return matrix[rows].toarray()


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator, denominator = np.asarray(numerator).ravel(), np.asarray(denominator).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan).astype(np.float32)


def _scaled(values: np.ndarray) -> np.ndarray:
    top = values.max() if len(values) else 0.0
    return (values / top if top > 0 else values).astype(np.float32)


def _top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep each row's ``k`` largest entries."""
    matrix = matrix.tocsr()
    lengths = np.diff(matrix.indptr)
    if lengths.max(initial=0) <= k:
        return matrix.astype(np.float32)
    row_of = np.repeat(np.arange(matrix.shape[0]), lengths)
    order = np.lexsort((-matrix.data, row_of))
    position = np.arange(len(order)) - np.repeat(matrix.indptr[:-1], lengths)
    keep = np.zeros(len(order), dtype=bool)
    keep[order[position < k]] = True
    kept = sp.csr_matrix((matrix.data[keep], (row_of[keep], matrix.indices[keep])), shape=matrix.shape)
    return kept.astype(np.float32)
