"""The ranker's features per (consumer, product) candidate, computed one block of consumers at a time.

``ProductStats.fit(data)`` learns what is global (per product, from all fitted data); then
``candidate_features(data, stats, rows, columns, ...)`` builds a float32 matrix, one row per
candidate, with NaN where a value does not exist (the trees route missing values on their
own; the logistic learner reads them as 0). Every feature is vectorised over the block and
read from the block's sparse rows, never from dense ``batch × products`` copies of them: values
at the candidates through one placement of the stored entries among the candidates per sparsity
structure (``CandidateLookup``), per-consumer sums over the owned pairs (``OwnedPairs``; whole
purchase counts, so the same in any order). The nightly computes them inside its one scoring
pass. The groups (``FEATURE_GROUPS``, also the ablation's unit):

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

from collections.abc import Iterator
from dataclasses import dataclass, fields
from functools import cached_property

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
OWNED_FEATURE = "owned"  # 1 where the consumer bought the candidate (the logistic learner splits on it)

FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "history": (
        "purchases_log",
        OWNED_FEATURE,
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
        return {field.name: getattr(self, field.name) for field in fields(self)}

    def copurchase_slices(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """``copurchase`` as dense column slices (start, stop, array) of at most
        ``COPURCHASE_SLICE_BYTES`` each. A catalogue that fits in one slice is made dense once
        and kept (every block of the scoring pass reads it); larger ones are sliced again for
        each block, so the memory stays one slice."""
        if self._dense_copurchase is not None:
            yield 0, self.copurchase.shape[1], self._dense_copurchase
            return
        n_products = self.copurchase.shape[1]
        width = max(1, COPURCHASE_SLICE_BYTES // (4 * max(self.copurchase.shape[0], 1)))
        for start in range(0, n_products, width):
            stop = min(start + width, n_products)
            yield start, stop, self.copurchase[:, start:stop].toarray()

    @cached_property
    def _dense_copurchase(self) -> np.ndarray | None:
        fits = 4 * self.copurchase.shape[0] * self.copurchase.shape[1] <= COPURCHASE_SLICE_BYTES
        return self.copurchase.toarray() if fits else None

    @cached_property
    def catalogue_similarity(self) -> np.ndarray:
        """The similarity of each product with the whole catalogue as a basket (column sums, summed
        in product order as the sparse product ``ones @ copurchase`` sums them)."""
        catalogue = sp.csr_matrix(np.ones((1, self.copurchase.shape[0]), dtype=np.float32))
        return (catalogue @ self.copurchase).toarray()[0]

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


@dataclass(frozen=True)
class OwnedPairs:
    """A block's owned pairs (purchases > 0; every positive pair without purchase counts), row by
    row in column order: block row, column, purchases and days since the last interaction (0
    where unknown; None without ages). The per-consumer features sum over these instead of over
    dense ``batch × products`` rows; the sums are of whole purchase counts, so they are the same
    in any order."""

    n_rows: int
    rows: np.ndarray
    columns: np.ndarray
    purchases: np.ndarray
    ages: np.ndarray | None

    @classmethod
    def of(cls, data: InteractionData, rows: np.ndarray) -> OwnedPairs:
        block = (data.purchases if data.purchases is not None else data.bought)[rows].tocsr()
        block.sum_duplicates()  # canonical: each row's columns in order
        block_rows = np.repeat(np.arange(len(rows)), np.diff(block.indptr))
        owned = block.data > 0
        block_rows, columns = block_rows[owned], block.indices[owned].astype(np.int64)
        ages = None
        if data.age_days is not None:
            ages = _at(data.age_days[rows], block_rows, columns, missing=0.0)
        return cls(len(rows), block_rows, columns, block.data[owned], ages)

    def per_row(self, values: np.ndarray) -> np.ndarray:
        """Each row's sum of ``values`` (one per owned pair), float32."""
        return np.bincount(self.rows, weights=values, minlength=self.n_rows).astype(np.float32)

    def latest(self) -> np.ndarray:
        """Each row's fewest days since the last interaction with an owned product (inf: none)."""
        latest = np.full(self.n_rows, np.inf, dtype=np.float32)
        if self.ages is not None:
            np.minimum.at(latest, self.rows, self.ages)
        return latest


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
    features × candidates float32 array (writing strided columns of a candidates × features
    array directly cost four times as much), which is returned transposed, as a view: a
    candidates × features array in Fortran order. The logistic learner multiplies it as it is
    (BLAS reads either order, with the same sums); copying it into row order cost about a fifth
    of the ranker's scoring (issue 18, session 9).
    """
    lookup = CandidateLookup(batch_rows, columns, data.shape[1])
    own = lookup.at((data.purchases if data.purchases is not None else data.bought)[rows], 0.0)
    ages = lookup.at(data.age_days[rows], 0.0) if data.age_days is not None else None
    owned = OwnedPairs.of(data, rows)
    by_feature = np.empty((len(feature_names([""] * len(component_scores))), len(columns)), dtype=np.float32)
    parts = (
        ("history", 3, lambda: _history(own, ages)),
        ("history", 3, lambda: _own_ranks(data, rows, lookup)),
        ("timing", 6, lambda: _timing(data, stats, own, ages, rows, lookup)),
        ("copurchase", 2, lambda: _copurchase(stats, owned, batch_rows, columns)),
        ("popularity", 4, lambda: _popularity(stats, columns)),
        ("consumer", 3, lambda: _consumer(owned, batch_rows)),
        ("category_affinity", 1, lambda: [_category(owned, category_codes, batch_rows, columns)]),
        ("price", 2, lambda: _price(data, owned, batch_rows, columns)),
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
    return by_feature.T


def _history(own: np.ndarray, ages: np.ndarray | None) -> list[np.ndarray]:
    """``own`` and ``ages``: the candidates' purchases and days since the last interaction."""
    owned = own > 0
    return [np.log1p(own), owned, np.where(owned, np.log1p(_pair_age(ages, len(own))), np.nan)]


def _own_ranks(data: InteractionData, rows: np.ndarray, lookup: CandidateLookup) -> np.ndarray:
    """Share of the consumer's purchases, rank by purchases and rank by recency among the products
    the consumer owns (computed over the sparse history only)."""
    bought = data.bought[rows].tocsr()
    bought.sort_indices()
    totals = np.asarray(bought.sum(axis=1)).ravel()
    share = bought.multiply(1.0 / np.where(totals > 0, totals, 1.0)[:, None]).tocsr()
    out = np.full((3, len(lookup.keys)), np.nan, dtype=np.float32)
    out[0] = lookup.at(share)
    out[1] = lookup.at(_row_ranks(bought, bought.data, descending=True))
    if data.age_days is not None:
        ages = data.age_days[rows].multiply(bought > 0).tocsr()
        ages.sort_indices()
        out[2] = lookup.at(_row_ranks(ages, ages.data, descending=False))
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


class CandidateLookup:
    """Values of a block's sparse rows at the candidates (``batch_rows[i]``, ``columns[i]``),
    ``missing`` where nothing is stored, as ``_at`` reads them.

    The candidates come in row then column order (``np.nonzero`` of the candidate mask), so
    each stored entry of a block is placed among them (one search per entry, not per
    candidate), once per sparsity structure: the block's purchases, ages, spans and repeat
    counts share one structure, its owned pairs another. Candidates in another order are read
    with ``_at``.
    """

    def __init__(self, batch_rows: np.ndarray, columns: np.ndarray, n_columns: int) -> None:
        self.batch_rows, self.columns, self.n_columns = batch_rows, columns, n_columns
        self.keys = batch_rows.astype(np.int64) * n_columns + columns
        self.ordered = bool((self.keys[1:] > self.keys[:-1]).all())
        self._placed: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def at(self, matrix: sp.csr_matrix, missing: float = np.nan) -> np.ndarray:
        """The float32 values of ``matrix`` (one row per block row) at the candidates."""
        matrix = matrix.tocsr()
        if not self.ordered or not len(self.keys):
            return _at(matrix, self.batch_rows, self.columns, missing)
        if not matrix.has_canonical_format:
            matrix = matrix.copy()
            matrix.sum_duplicates()
        entries, candidates = self._place(matrix)
        values = np.full(len(self.keys), missing, dtype=np.float32)
        values[candidates] = matrix.data[entries]
        return values

    def _place(self, matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """(stored entries that are candidates, the candidate each one is)."""
        for indptr, indices, entries, candidates in self._placed:
            if np.array_equal(indptr, matrix.indptr) and np.array_equal(indices, matrix.indices):
                return entries, candidates
        row_of = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
        keys = row_of * self.n_columns + matrix.indices
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        entries = np.flatnonzero(self.keys[at] == keys)
        self._placed.append((matrix.indptr, matrix.indices, entries, at[entries]))
        return entries, at[entries]


def _timing(
    data: InteractionData,
    stats: ProductStats,
    own: np.ndarray,
    ages: np.ndarray | None,
    rows: np.ndarray,
    lookup: CandidateLookup,
) -> np.ndarray:
    """Repurchase intervals of the pair, the consumer and the product, and age over each."""
    out = np.full((6, len(own)), np.nan, dtype=np.float32)
    if data.purchase_span_days is None or data.purchases is None or ages is None:
        return out
    span_block, repeats_block = data.purchase_span_days[rows], data.purchases[rows].copy()
    repeats_block.data = np.maximum(repeats_block.data - 1, 0)  # the block's rows only
    pair = _ratio(lookup.at(span_block, 0.0), lookup.at(repeats_block, 0.0))
    consumer = _ratio(span_block.sum(axis=1), repeats_block.sum(axis=1))[lookup.batch_rows]
    product = stats.repurchase_interval[lookup.columns]
    owned = own > 0
    age = np.where(owned, _pair_age(ages, len(own)), np.nan)
    out[0], out[1], out[2] = np.log1p(pair), np.log1p(consumer), np.log1p(product)
    with np.errstate(divide="ignore", invalid="ignore"):
        for position, interval in enumerate((pair, consumer, product), start=3):
            out[position] = np.where(interval > 0, age / interval, np.nan)
    return out


def due_ratio(days_since_last: float, interval_days: float) -> float:
    """Days since the last purchase over the typical interval: ≥ about 1 means the product is due."""
    return days_since_last / interval_days if interval_days > 0 else float("nan")


def _copurchase(
    stats: ProductStats, owned: OwnedPairs, batch_rows: np.ndarray, columns: np.ndarray
) -> list[np.ndarray]:
    """Similarity of each candidate with the consumer's recent basket (summed and mean).

    A consumer without purchases (events only) has no latest purchase, so every product counts
    as recent: their basket is the whole catalogue.
    """
    n_products = stats.copurchase.shape[1]
    if owned.ages is None:
        recent = np.ones(len(owned.rows), dtype=bool)
        everything = np.zeros(owned.n_rows, dtype=bool)
    else:
        latest = owned.latest()
        recent = owned.ages <= (latest + np.float32(RECENT_BASKET_DAYS))[owned.rows]
        everything = np.isinf(latest)
    baskets = _csr(owned.rows[recent], owned.columns[recent], owned.n_rows, n_products)
    strength = basket_similarity(baskets, everything, stats)[batch_rows, columns]
    size = np.where(everything, n_products, np.diff(baskets.indptr))[batch_rows]
    return [strength, strength / np.maximum(size, 1)]


def basket_similarity(baskets: sp.csr_matrix, everything: np.ndarray, stats: ProductStats) -> np.ndarray:
    """``baskets @ stats.copurchase`` (0/1 baskets × product similarity) as a dense float32 block;
    rows where ``everything`` is true have the whole catalogue as their basket.

    Equal, bit for bit, to the sparse product ``csr(recent) @ similarity``: the same float32
    sums in the same order. Whole-catalogue baskets share one row (the similarity's column
    sums, ``ProductStats.catalogue_similarity``); the other rows are a sparse × dense product,
    one dense column slice of the similarity at a time (``ProductStats.copurchase_slices``),
    without building and searching the sparse product's structure, which cost most of the
    scoring pass.
    """
    out = np.empty((baskets.shape[0], stats.copurchase.shape[1]), dtype=np.float32)
    for start, stop, dense in stats.copurchase_slices():
        out[:, start:stop] = baskets @ dense
    if everything.any():
        out[everything] = stats.catalogue_similarity
    return out


def _csr(rows: np.ndarray, columns: np.ndarray, n_rows: int, n_columns: int) -> sp.csr_matrix:
    """A 0/1 float32 CSR matrix with ones at (rows, columns), given in row then column order."""
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))])
    return sp.csr_matrix(
        (np.ones(len(columns), dtype=np.float32), columns, indptr), shape=(n_rows, n_columns)
    )


def _popularity(stats: ProductStats, columns: np.ndarray) -> list[np.ndarray]:
    return [
        np.log1p(100 * stats.popularity_7d[columns]),
        np.log1p(100 * stats.popularity_30d[columns]),
        np.log1p(100 * stats.popularity_all[columns]),
        stats.trend[columns],
    ]


def _consumer(owned: OwnedPairs, batch_rows: np.ndarray) -> list[np.ndarray]:
    """Distinct products, purchases and days since the last activity (with an owned product;
    ``NO_AGE_DAYS`` at most) of each candidate's consumer, as logs."""
    products = owned.per_row(np.ones(len(owned.rows)))
    if owned.ages is None:
        last_activity = np.full(owned.n_rows, NO_AGE_DAYS, dtype=np.float32)
    else:
        last_activity = np.minimum(owned.latest(), np.float32(NO_AGE_DAYS))
    return [
        np.log1p(products)[batch_rows],
        np.log1p(owned.per_row(owned.purchases))[batch_rows],
        np.log1p(last_activity)[batch_rows],
    ]


def _category(
    owned: OwnedPairs, codes: np.ndarray | None, batch_rows: np.ndarray, columns: np.ndarray
) -> np.ndarray:
    """The consumer's share of purchases in the candidate's category (0 without categories)."""
    if codes is None:
        return np.zeros(len(columns), dtype=np.float32)
    n_categories = int(codes.max()) + 1
    cells = owned.rows * n_categories + codes[owned.columns]
    per_category = np.bincount(cells, weights=owned.purchases, minlength=owned.n_rows * n_categories)
    per_category = per_category.astype(np.float32).reshape(owned.n_rows, n_categories)
    totals = per_category.sum(axis=1)
    return per_category[batch_rows, codes[columns]] / np.where(totals > 0, totals, 1.0)[batch_rows]


def _price(
    data: InteractionData, owned: OwnedPairs, batch_rows: np.ndarray, columns: np.ndarray
) -> np.ndarray | list[np.ndarray]:
    """Candidate price band minus the consumer's purchase-weighted usual band, and its size."""
    band = price_band_numbers(data)
    if band is None:
        return np.full((2, len(columns)), np.nan, dtype=np.float32)
    weights = owned.purchases * ~np.isnan(band)[owned.columns]
    totals = owned.per_row(weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        usual = np.where(
            totals > 0, owned.per_row(weights * np.nan_to_num(band)[owned.columns]) / totals, np.nan
        )
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


def _pair_age(ages: np.ndarray | None, n_candidates: int) -> np.ndarray:
    """The candidates' days since the last interaction, ``NO_AGE_DAYS`` where unknown."""
    if ages is None:
        return np.full(n_candidates, NO_AGE_DAYS, dtype=np.float32)
    return np.where(ages > 0, ages, NO_AGE_DAYS)


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
