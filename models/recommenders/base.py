"""The one recommender interface: ``InteractionData`` in, ``fit`` → ``recommend`` / ``score`` out.

Contract (every model in this package keeps it; ``tests/models/recommenders/test_contract.py``
checks it for each):

- **Data.** ``InteractionData.from_frames(interactions, consumers=None, products=None)`` takes
  the frame of ``features.interactions.build_interactions`` (consumer_id, product_id, weight,
  ...) and optional profile frames (``consumer_profiles`` / ``product_profiles``). It owns
  the id maps and the consumer × product CSR matrix of positive weights; pairs whose weight
  is ≤ 0 (returned, complained about) are kept apart as *blocked* and are **never
  recommended** to that consumer. The catalogue is the products with an interaction.
- **Fit.** ``model.fit(data) -> model``; learned state ends in ``_``; hyper-parameters are
  constructor arguments (a seed where the model is random: the same seed gives the same
  lists). Every ``fit`` starts from scratch: it drops the learned state of an earlier fit,
  so ``Model(**p).fit(a).fit(b)`` scores exactly like ``Model(**p).fit(b)`` (the ranker's
  explicit ``tune`` is handed to the one ``fit`` after it). ``fit`` never mutates ``data``.
- **Recommend.** ``model.recommend(consumer_ids, k, filters=None)`` returns a frame with
  columns ``consumer_id, product_id, score, rank`` (rank 1 = best; sorted by consumer in the
  order asked, then rank). Ids are the contract's string ids: no library matrix or internal
  integer index leaves the wrapper. ``score`` is only comparable within one model.
- **Unknown consumers never raise.** A consumer the model cannot score (no interaction and,
  for feature models, no profile) is simply *absent* from the frame. ``model.can_score(ids)``
  says which ids it can score; ``unknown = ids[~model.can_score(ids)]`` is what a fallback
  chain (``models.recommenders.fallback``: community list, then global popularity) fills.
  Popularity models can score every consumer. A consumer may also get fewer than ``k`` rows
  when filters leave fewer candidates; the fallback tops those up.
- **Filters** (``RecommendFilters``): ``allowed_products`` (e.g. the sellable window; None =
  all), ``exclude_products`` (pulled), ``demote`` {product_id: factor in (0, 1]} (warned; the
  score is moved towards "worse" by the factor), ``exclude_purchased`` (products the consumer
  bought: ``purchases`` > 0; every positive pair when the frame has no purchase counts),
  ``category_cap`` (at most this many products of one category in a list; categories from
  the fitted data's product profiles or ``filters.categories``).
  Blocked pairs are always excluded.
- **Batch scores.** ``model.score_blocks(consumer_ids, batch_size)`` yields ``ScoreBlock``
  (consumer ids, product ids, dense float32 score matrix, NaN rows for unknown consumers)
  for aggregations such as per-distributor lists; ``model.score(consumer_ids, product_ids)``
  gives a long frame of selected pairs; ``recommend_from_block(block, k, filters)`` turns a
  block into the same lists as ``recommend``, so consumer lists and distributor aggregates
  share ONE scoring pass (``models.recommenders.scoring_pass.list_pass``, what the recommend
  step runs). ``similar_items(product_ids, k)`` returns
  ``product_id, similar_product_id, score, rank``.
- **Production training.** ``models.recommenders.training.fit_production(con, as_of,
  config.recommend, data=data)`` builds the configured production model, tunes it on the
  ``validation_days`` before ``as_of`` when it learns from a window (the ranker) and fits it
  on ``data``. A bare ``RankerRecommender().fit(data)`` only approximates that window inside
  ``data`` and ranks clearly worse (see docs/recommenders.md).
- **Carry to newer data** (the nightly's refit cadence, ``models.recommenders.store``):
  ``model.portable_state()`` is the learned state that does not depend on the consumers
  (product-side arrays: similarities, item factors, the ranker's weights), keyed to
  ``model.product_ids``; ``Model(**params).carried_onto(data, state, product_ids)`` puts it onto a
  newer ``data``: products map by id (a product new since then gets zeros), the consumer side
  is recomputed from ``data`` without learning (ALS solves each consumer's factors against the
  kept item factors), and counting models (popularity, repeat) count ``data`` again.
- **Save/load.** ``model.save(dir)`` writes ``model.json`` (class and hyper-parameters),
  the fitted data (id lists and matrices as Parquet / ``.npz``) and the learned arrays as
  ``.npy``; ``load_recommender(dir)`` (or ``Class.load(dir)``) restores an object whose
  recommendations are identical. No pickle anywhere.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.lib.stride_tricks import as_strided

from features.columns import Col
from features.errors import SiyuError
from features.files import write_text_atomically
from features.interactions import InteractionCol, upper_bound
from features.progress import progress
from features.vocabulary import ModelFileKey, RecCol

if TYPE_CHECKING:
    from features.popularity import EngineRows

logger = logging.getLogger(__name__)


RECOMMENDATION_COLUMNS: tuple[str, ...] = (RecCol.CONSUMER_ID, RecCol.PRODUCT_ID, RecCol.SCORE, RecCol.RANK)
SIMILAR_COLUMNS: tuple[str, ...] = (RecCol.PRODUCT_ID, RecCol.SIMILAR_PRODUCT_ID, RecCol.SCORE, RecCol.RANK)

MODEL_FILE = "model.json"
FORMAT_VERSION = 1


# --- data ----------------------------------------------------------------------------------------


# An empty file beside a saved ``InteractionData`` whose rows are a sample's only (``partial``).
_PARTIAL_MARKER = "partial"

# The parts ``InteractionData.from_frames`` counts: the two id codings, the pairs' layout (with
# the blocked pairs) and the four value matrices.
FROM_FRAMES_PARTS = 7


@dataclass(frozen=True)
class InteractionData:
    """Interactions as a consumer × product matrix with its id maps and side features.

    ``matrix`` (CSR, float32) holds the positive weights; ``blocked`` (CSR, bool) the pairs
    with weight ≤ 0. When the interaction frame has them, ``purchases`` (distinct paid
    orders), ``age_days`` (days from the last interaction to the end of the as-of date,
    at least 1/24) and ``purchase_span_days`` (days from the first to the last paid order,
    0 for one order) are CSR matrices with exactly ``matrix``'s sparsity. ``consumer_profiles``
    is indexed by consumer id and may include consumers without interactions (cold start);
    ``product_profiles`` is indexed by the catalogue's product ids in matrix column order.

    ``partial``: only a sample of the consumers' rows are here; ``consumer_ids`` is still every
    consumer with history, the others' rows are empty. On Spark the night's data are partial
    when the production model learns its product-level state from a consumer sample anyway
    (``Recommender.fitting_consumers``; ``pipelines.steps.recommend.night_data``): the scoring
    parts read every consumer's own rows (``spark_scoring``). Nothing that scores or counts a
    consumer from these rows may run on them; the driver's scoring pass refuses them. ``engine``:
    where the engine holds every consumer's rows, for what partial data are asked to count
    (``models.recommenders.popularity.recent_popularity``) or to fit on (``spark_als``); not saved.
    """

    consumer_ids: pd.Index
    product_ids: pd.Index
    matrix: sp.csr_matrix
    blocked: sp.csr_matrix
    consumer_profiles: pd.DataFrame | None = None
    product_profiles: pd.DataFrame | None = None
    purchases: sp.csr_matrix | None = field(default=None, repr=False)
    age_days: sp.csr_matrix | None = field(default=None, repr=False)
    purchase_span_days: sp.csr_matrix | None = field(default=None, repr=False)
    partial: bool = False
    engine: EngineRows | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_frames(
        cls,
        interactions: pd.DataFrame,
        consumers: pd.DataFrame | None = None,
        products: pd.DataFrame | None = None,
        as_of: date | None = None,
        product_ids: pd.Index | None = None,
        consumer_ids: pd.Index | None = None,
        engine: EngineRows | None = None,
    ) -> InteractionData:
        """Build from ``build_interactions`` output and optional profile frames (not mutated).

        ``as_of`` dates ``age_days`` (default: the day of the latest interaction).
        ``product_ids``: the matrix columns (a fitted model's catalogue, which a Spark scoring
        part's rows are a share of); default: the interactions' products, sorted.
        ``consumer_ids``: the matrix rows, sorted, when the frame holds only some of their rows
        (the data are then ``partial``, and ``engine`` holds every row); default: the
        interactions' consumers, sorted.
        """
        _require(interactions, (Col.CONSUMER_ID, Col.PRODUCT_ID, InteractionCol.WEIGHT), "interactions")
        # seconds per part at 10M lines: counted, so the assembly is not one silent stretch
        with progress("interaction data: ids and matrices", total=FROM_FRAMES_PARTS, unit="parts") as bar:
            partial = consumer_ids is not None
            if consumer_ids is None:
                rows, consumer_ids = _codes(interactions[Col.CONSUMER_ID], Col.CONSUMER_ID)
            else:
                rows = _codes_in(interactions[Col.CONSUMER_ID], consumer_ids, Col.CONSUMER_ID)
            bar.advance()
            if product_ids is None:
                cols, product_ids = _codes(interactions[Col.PRODUCT_ID], Col.PRODUCT_ID)
            else:
                cols = _codes_in(interactions[Col.PRODUCT_ID], product_ids, Col.PRODUCT_ID)
            bar.advance()
            shape = (len(consumer_ids), len(product_ids))
            weight = interactions[InteractionCol.WEIGHT].to_numpy(dtype=np.float64)
            positive = weight > 0
            # one sort of the positive pairs lays out every value matrix (same sparsity)
            pairs = rows.astype(np.int64) * max(shape[1], 1) + cols
            del rows, cols
            layout = _CsrLayout.of(pairs[positive], shape)
            blocked = _CsrLayout.of(pairs[~positive], shape).matrix(np.ones((~positive).sum(), bool))
            del pairs
            bar.advance()

            def aligned(values: np.ndarray) -> sp.csr_matrix:
                return layout.matrix(values[positive].astype(np.float32))

            matrix = aligned(weight)
            bar.advance()
            purchases = age_days = None
            if InteractionCol.PURCHASES in interactions:
                purchases = aligned(interactions[InteractionCol.PURCHASES].to_numpy(dtype=np.float64))
            bar.advance()
            if InteractionCol.LAST_INTERACTION_AT in interactions:
                age_days = aligned(_age_days(interactions[InteractionCol.LAST_INTERACTION_AT], as_of))
            bar.advance()
            span = _purchase_span(interactions, aligned)
            bar.advance()
        return cls(
            consumer_ids,
            product_ids,
            matrix,
            blocked,
            _profiles(consumers, Col.CONSUMER_ID, None),
            _profiles(products, Col.PRODUCT_ID, product_ids),
            purchases,
            age_days,
            span,
            partial,
            engine if partial else None,
        )

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @cached_property
    def bought(self) -> sp.csr_matrix:
        """Pairs the consumer bought (``purchases`` > 0), or every positive pair without purchase counts."""
        if self.purchases is None:
            return self.matrix
        bought = self.purchases.copy()
        bought.eliminate_zeros()
        return bought

    def rows_of(self, consumer_ids: Sequence[str] | pd.Index) -> np.ndarray:
        """Matrix row of each consumer id, -1 for consumers without interactions."""
        return self.consumer_ids.get_indexer(pd.Index(consumer_ids).astype(str))

    def columns_of(self, product_ids: Sequence[str] | pd.Index) -> np.ndarray:
        """Matrix column of each product id, -1 for products outside the catalogue."""
        return self.product_ids.get_indexer(pd.Index(product_ids).astype(str))

    def product_attribute(self, column: str) -> np.ndarray | None:
        """A product profile column in matrix column order, or None when it is not known."""
        if self.product_profiles is None or column not in self.product_profiles:
            return None
        return self.product_profiles[column].astype(str).to_numpy()

    def consumer_attribute(self, consumer_ids: Sequence[str] | pd.Index, column: str) -> np.ndarray | None:
        """A consumer profile column for ``consumer_ids`` (None where unknown), or None if absent."""
        if self.consumer_profiles is None or column not in self.consumer_profiles:
            return None
        values = self.consumer_profiles[column].reindex(pd.Index(consumer_ids).astype(str))
        return values.astype(object).where(values.notna(), None).to_numpy()

    def of_rows(self, rows: np.ndarray, consumer_ids: pd.Index) -> InteractionData:
        """The matrix rows ``rows`` (ascending) of ``consumer_ids`` and those consumers' profiles
        (those without interactions included); the products and their profiles whole. What a part
        of the scoring pass needs of the data (``Recommender.restricted_to``)."""

        def kept(matrix: sp.csr_matrix | None) -> sp.csr_matrix | None:
            return None if matrix is None else matrix[rows]

        profiles = self.consumer_profiles
        return InteractionData(
            self.consumer_ids[rows],
            self.product_ids,
            self.matrix[rows],
            self.blocked[rows],
            None if profiles is None else profiles[profiles.index.isin(consumer_ids)],
            self.product_profiles,
            kept(self.purchases),
            kept(self.age_days),
            kept(self.purchase_span_days),
        )

    def save(self, directory: Path) -> None:
        """Write ids, matrices and profiles under ``directory`` (Parquet and ``.npz``)."""
        directory.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({Col.CONSUMER_ID: self.consumer_ids}).to_parquet(directory / "consumers.parquet")
        pd.DataFrame({Col.PRODUCT_ID: self.product_ids}).to_parquet(directory / "products.parquet")
        sp.save_npz(directory / "matrix.npz", self.matrix)
        sp.save_npz(directory / "blocked.npz", self.blocked)
        for name, extra in (
            ("purchases", self.purchases),
            ("age_days", self.age_days),
            ("purchase_span_days", self.purchase_span_days),
        ):
            if extra is not None:
                sp.save_npz(directory / f"{name}.npz", extra)
        for name, profile in (
            ("consumer_profiles", self.consumer_profiles),
            ("product_profiles", self.product_profiles),
        ):
            if profile is not None:
                profile.reset_index().to_parquet(directory / f"{name}.parquet")
        marker = directory / _PARTIAL_MARKER
        if self.partial:
            marker.touch()
        else:
            marker.unlink(missing_ok=True)

    @classmethod
    def load(cls, directory: Path) -> InteractionData:
        """Read what ``save`` wrote."""

        def profile(name: str, key: str) -> pd.DataFrame | None:
            path = directory / f"{name}.parquet"
            return pd.read_parquet(path).set_index(key) if path.exists() else None

        def extra(name: str) -> sp.csr_matrix | None:
            path = directory / f"{name}.npz"
            return sp.load_npz(path).tocsr() if path.exists() else None

        return cls(
            pd.Index(
                pd.read_parquet(directory / "consumers.parquet")[Col.CONSUMER_ID].astype(str),
                name=Col.CONSUMER_ID,
            ),
            pd.Index(
                pd.read_parquet(directory / "products.parquet")[Col.PRODUCT_ID].astype(str),
                name=Col.PRODUCT_ID,
            ),
            sp.load_npz(directory / "matrix.npz").tocsr(),
            sp.load_npz(directory / "blocked.npz").tocsr(),
            profile("consumer_profiles", Col.CONSUMER_ID),
            profile("product_profiles", Col.PRODUCT_ID),
            extra("purchases"),
            extra("age_days"),
            extra("purchase_span_days"),
            (directory / _PARTIAL_MARKER).exists(),
        )


@dataclass(frozen=True)
class _CsrLayout:
    """The CSR structure of (row, column) pairs, computed once and filled with each value array.

    ``InteractionData`` holds up to four matrices with exactly the same sparsity; building each
    from coordinates would sort the pairs four times (about a second each at 10M lines) and hold
    four sets of coordinate copies. Pairs that occur more than once are summed, as SciPy sums
    duplicate coordinates.
    """

    shape: tuple[int, int]
    order: np.ndarray  # pair positions in row-major order
    starts: np.ndarray | None  # first position of each distinct pair in ``order``; None: no repeats
    indptr: np.ndarray
    indices: np.ndarray

    @classmethod
    def of(cls, pairs: np.ndarray, shape: tuple[int, int]) -> _CsrLayout:
        """The layout of ``pairs``, each ``row * columns + column`` (int64) of a ``shape`` matrix."""
        order = np.argsort(pairs, kind="stable")
        pairs = pairs[order]
        distinct = np.ones(len(pairs), dtype=bool)
        distinct[1:] = pairs[1:] != pairs[:-1]
        starts = None if distinct.all() else np.flatnonzero(distinct)
        del distinct
        if starts is not None:
            pairs = pairs[starts]
        rows, indices = np.divmod(pairs, max(shape[1], 1))
        del pairs
        indptr = np.zeros(shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
        index_type = np.int32 if max(shape[1], len(indices)) < np.iinfo(np.int32).max else np.int64
        return cls(shape, order, starts, indptr.astype(index_type), indices.astype(index_type))

    def matrix(self, values: np.ndarray) -> sp.csr_matrix:
        """The CSR matrix with ``values`` (one per pair, in the pairs' order) at the pairs."""
        ordered = values[self.order]
        if self.starts is not None:
            ordered = np.add.reduceat(ordered, self.starts, dtype=ordered.dtype) if len(ordered) else ordered
        return sp.csr_matrix((ordered, self.indices.copy(), self.indptr.copy()), shape=self.shape)


def engine_rows(data: InteractionData) -> EngineRows:
    """Where the engine holds every consumer's rows of ``partial`` data; a ``ValueError`` when the
    data do not say (saved and loaded, or built without ``models.evaluation.interaction_data``)."""
    if data.engine is None:
        raise ValueError(
            "these interaction data hold a sample's rows only (partial) and no engine to read every "
            "row from: build them with models.evaluation.interaction_data, which attaches it"
        )
    return data.engine


def hashed_sample(consumer_ids: pd.Index, size: int | None) -> np.ndarray | None:
    """Positions (ascending) of the ``size`` ids with the smallest fixed hash (pandas'
    ``hash_pandas_object``), or None when ``size`` is None or not smaller than the ids: all of
    them. The pick depends on each id alone, so an id stays in the sample from night to night
    unless ids of smaller hash arrive, and it is the same whatever the ids' order."""
    if size is None or len(consumer_ids) <= size:
        return None
    hashes = pd.util.hash_pandas_object(pd.Series(consumer_ids, dtype=str), index=False).to_numpy()
    return np.sort(np.argpartition(hashes, size - 1)[:size])


def _codes(ids: pd.Series, name: str) -> tuple[np.ndarray, pd.Index]:
    """Position of each id in the sorted unique ids (as plain strings), and those ids."""
    codes, uniques = pd.factorize(
        ids if isinstance(ids.dtype, pd.StringDtype) else ids.astype(str), sort=True
    )
    if (codes < 0).any():
        raise SiyuError(f"interactions frame: empty {name}\n  fix: drop rows without a {name}")
    return codes, pd.Index(np.asarray(uniques, dtype=object).astype(str), name=name)


def _codes_in(ids: pd.Series, known: pd.Index, name: str) -> np.ndarray:
    """Position of each id in ``known``; an id outside it is an error."""
    codes = known.get_indexer(ids if isinstance(ids.dtype, pd.StringDtype) else ids.astype(str))
    if (codes < 0).any():
        raise SiyuError(f"interactions frame: a {name} outside the given ones\n  fix: pass every {name}")
    return codes


def _purchase_span(interactions: pd.DataFrame, aligned: Any) -> sp.csr_matrix | None:
    """Days from the first to the last paid order per pair (0 when bought once or never), or None."""
    if not {InteractionCol.FIRST_PURCHASE_AT, InteractionCol.LAST_PURCHASE_AT} <= set(interactions.columns):
        return None
    first = _datetimes(interactions[InteractionCol.FIRST_PURCHASE_AT])
    last = _datetimes(interactions[InteractionCol.LAST_PURCHASE_AT])
    span = (last - first).dt.total_seconds().to_numpy(dtype=np.float64) / 86400.0
    return aligned(np.clip(np.nan_to_num(span, nan=0.0), 0.0, None))


def _age_days(last_at: pd.Series, as_of: date | None) -> np.ndarray:
    stamps = _datetimes(last_at)
    end = pd.Timestamp(upper_bound(as_of if as_of is not None else stamps.max().date()))
    age = (end - stamps).dt.total_seconds().to_numpy(dtype=np.float64) / 86400.0
    return np.clip(np.nan_to_num(age, nan=365.0), 1.0 / 24, None)


def _datetimes(values: pd.Series) -> pd.Series:
    """``values`` as datetimes; a datetime column as it is (``pd.to_datetime`` spends seconds at
    10M lines building a cache of a column that needs no conversion)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values
    return pd.to_datetime(values)


def _require(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise SiyuError(
            f"{name} frame: missing column(s) {missing}\n"
            "  fix: build it with features.interactions.build_interactions / *_profiles"
        )


def _profiles(frame: pd.DataFrame | None, key: str, order: pd.Index | None) -> pd.DataFrame | None:
    if frame is None:
        return None
    _require(frame, (key,), f"{key.removesuffix('_id')} profile")
    indexed = frame.assign(**{key: frame[key].astype(str)}).drop_duplicates(key).set_index(key)
    indexed = indexed.reindex(order) if order is not None else indexed.sort_index()
    return indexed.rename_axis(key)


# --- filters -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecommendFilters:
    """Business rules applied at recommend time (see the module docstring)."""

    allowed_products: frozenset[str] | None = None
    exclude_products: frozenset[str] = frozenset()
    demote: Mapping[str, float] = field(default_factory=dict)
    exclude_purchased: bool = False
    category_cap: int | None = None
    categories: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        bad = {product: factor for product, factor in self.demote.items() if not 0 < factor <= 1}
        if bad:
            raise SiyuError(
                f"demotion factors must be in (0, 1], got {bad}\n  fix: e.g. 0.5 halves the score"
            )
        if self.category_cap is not None and self.category_cap < 1:
            raise SiyuError(
                f"category_cap must be ≥ 1, got {self.category_cap}\n  fix: leave it empty for no cap"
            )

    def column_mask(self, product_ids: pd.Index) -> np.ndarray:
        """True for the catalogue products that may be recommended at all."""
        mask = np.ones(len(product_ids), dtype=bool)
        if self.allowed_products is not None:
            mask &= product_ids.isin(list(self.allowed_products))
        if self.exclude_products:
            mask &= ~product_ids.isin(list(self.exclude_products))
        return mask

    def demotion(self, product_ids: pd.Index) -> np.ndarray | None:
        """Per-product demotion factor (1 = none), or None when nothing is demoted."""
        if not self.demote:
            return None
        factors = pd.Series(self.demote, dtype="float64").reindex(product_ids).fillna(1.0)
        return factors.to_numpy(dtype=np.float32)


def demote_scores(scores: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Scores moved towards worse by ``factors``: positive ones multiplied, negative ones divided."""
    return np.where(scores >= 0, scores * factors, scores / factors).astype(scores.dtype, copy=False)


def top_k(
    scores: np.ndarray, k: int, categories: np.ndarray | None = None, category_cap: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and scores of each row's best ``k`` finite scores (−inf = not allowed).

    Returns two ``(rows, k)`` arrays; slots without a candidate hold column -1 and score −inf.
    With a ``category_cap``, a category contributes at most that many products to a row.
    """
    n_rows, n_cols = scores.shape
    depth = min(n_cols, k * 10 if category_cap is not None else k)
    if depth < n_cols:
        part = top_columns(scores, depth)
    else:
        part = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    columns = np.take_along_axis(part, order, axis=1)
    ranked = np.take_along_axis(part_scores, order, axis=1)
    if category_cap is not None and categories is not None:
        columns, ranked = _cap_categories(columns, ranked, categories, category_cap, k)
    columns, ranked = columns[:, :k], ranked[:, :k]
    if columns.shape[1] < k:
        pad = k - columns.shape[1]
        columns = np.pad(columns, ((0, 0), (0, pad)), constant_values=-1)
        ranked = np.pad(ranked, ((0, 0), (0, pad)), constant_values=-np.inf)
    columns = np.where(np.isfinite(ranked), columns, -1)
    return columns, ranked


def top_columns(scores: np.ndarray, depth: int) -> np.ndarray:
    """Each row's ``depth`` best columns, best first: exactly ``argpartition`` of ``-scores`` (robust
    to many tied zeros), its top ``depth`` then sorted by score (stable).

    Where a row's top ``depth`` scores are distinct and above the rest, that list is unique and is
    found without ``argpartition`` (about three times slower): on a **shortlist** of the row
    (``_shortlist``: every column at or above a bound that at least ``depth`` columns reach), or
    on the whole row where no shortlist is short. The other rows (ties, NaN) take the
    ``argpartition`` path itself, so the order among tied scores is the one it gives.
    """
    n_rows, n_cols = scores.shape
    if depth >= n_cols:
        return _argpartition_top(-scores, depth)
    ranked = np.empty((n_rows, depth), dtype=np.int64)
    settled = np.zeros(n_rows, dtype=bool)
    listed, values, columns = _shortlist(scores, depth)
    settled[listed] = True
    others = np.flatnonzero(~settled)
    settled[listed] = False
    for rows, row_values, row_columns in (
        (listed, values, columns),
        (others, scores if len(others) == n_rows else scores[others], None),
    ):
        if len(rows):
            unique, tops = _unique_tops(row_values, row_columns, depth)
            ranked[rows[unique]] = tops
            settled[rows[unique]] = True
    tied = ~settled
    if tied.any():
        ranked[tied] = _argpartition_top(-scores[tied], depth)
    return ranked


_SHORTLIST_WIDTH = 4  # a row's shortlist holds at most this many times ``depth`` columns


def _shortlist(scores: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, their shortlisted scores, the columns of those scores) for the rows that have a short
    shortlist: every column whose score is at least a bound that ``depth`` columns reach (so it
    holds the row's top ``depth``), in column order, padded with −inf (column 0).

    The bound is the ``depth``-th largest maximum of ``2 × depth`` groups of columns (column j in
    group j mod 2·depth): ``depth`` groups reach it, each with at least one column. A row is left
    out (``top_columns`` takes the whole row) when fewer than ``depth`` or more than
    ``_SHORTLIST_WIDTH × depth`` columns reach its bound (NaN, many ties) or the bound is −inf.
    """
    n_rows, n_cols = scores.shape
    groups = 2 * depth
    size = n_cols // groups
    none = (np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=scores.dtype), np.zeros((0, 0), np.int64))
    floating = np.issubdtype(scores.dtype, np.floating)
    if size < 2 or not n_rows or not floating or not scores.flags.c_contiguous:
        return none
    step = scores.itemsize
    grouped = as_strided(
        scores, (n_rows, size, groups), (scores.strides[0], groups * step, step), writeable=False
    )  # interleaved groups: the maxima reduce across contiguous rows of ``groups`` columns
    bound = np.partition(grouped.max(axis=1), groups - depth, axis=1)[:, groups - depth]
    bound[~(bound > -np.inf)] = np.nan  # no column reaches NaN: such rows add nothing below
    at_rows, flat = nonzero_flat(scores >= bound[:, None])
    counts = np.bincount(at_rows, minlength=n_rows)
    listed = (counts >= depth) & (counts <= _SHORTLIST_WIDTH * depth)
    if not listed.any():
        return none
    keep = listed[at_rows]
    at_rows, flat = at_rows[keep], flat[keep]
    position = np.cumsum(listed) - 1  # a listed row's position among the listed rows
    lengths = counts[listed]
    width = int(lengths.max())
    slots = np.arange(len(at_rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    values = np.full((int(listed.sum()), width), -np.inf, dtype=scores.dtype)
    columns = np.zeros(values.shape, dtype=np.int64)
    into = position[at_rows] * width + slots  # each entry's place in the flattened shortlist
    values.ravel()[into] = scores.ravel()[flat]
    columns.ravel()[into] = flat - at_rows * n_cols
    return np.flatnonzero(listed), values, columns


def nonzero_flat(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a 2-D ``mask``'s true entries and their positions in the flattened mask
    (row-major), in row then column order: ``np.nonzero``'s rows, in about a third of its time;
    the columns are ``flat - rows * mask.shape[1]``."""
    flat = np.flatnonzero(mask)
    return flat // max(mask.shape[1], 1), flat


def _unique_tops(values: np.ndarray, columns: np.ndarray | None, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions of the rows of ``values`` whose top ``depth`` is distinct and above the rest,
    those tops best first as ``columns`` entries, or positions in the row when ``columns`` is None)."""
    negated = -values
    width = values.shape[1]
    threshold = np.partition(negated, depth - 1, axis=1)[:, depth - 1 : depth]
    inside = negated <= threshold  # a NaN threshold leaves no column inside
    clear = np.count_nonzero(inside, axis=1) == depth
    at_rows, flat = nonzero_flat(inside)
    clear_rows = np.flatnonzero(clear)
    flat = flat[clear[at_rows]].reshape(-1, depth)  # the clear rows' tops, flat positions
    picked = negated.ravel()[flat]
    order = np.argsort(picked, axis=1, kind="stable")
    ordered = np.take_along_axis(picked, order, axis=1)
    distinct = ~(ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
    rows, flat = clear_rows[distinct], np.take_along_axis(flat, order, axis=1)[distinct]
    if columns is None:
        return rows, flat - rows[:, None] * width
    return rows, columns.ravel()[flat]


def _argpartition_top(negated: np.ndarray, depth: int) -> np.ndarray:
    top = np.argpartition(negated, depth - 1, axis=1)[:, :depth]
    order = np.argsort(np.take_along_axis(negated, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def _cap_categories(
    columns: np.ndarray, ranked: np.ndarray, categories: np.ndarray, cap: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    codes = pd.factorize(categories)[0]
    row_codes = codes[columns]
    n_rows, depth = columns.shape
    offsets = (np.arange(n_rows)[:, None] * (codes.max() + 1) + row_codes).ravel()
    seen = pd.Series(offsets).groupby(offsets).cumcount().to_numpy().reshape(n_rows, depth)
    keep = (seen < cap) & np.isfinite(ranked)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    kept_columns = np.take_along_axis(columns, order, axis=1)
    kept_scores = np.where(
        np.take_along_axis(keep, order, axis=1), np.take_along_axis(ranked, order, axis=1), -np.inf
    )
    return kept_columns, kept_scores


# --- the interface -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreBlock:
    """Dense scores of a batch of consumers over the model's catalogue (NaN rows: unknown)."""

    consumer_ids: pd.Index
    product_ids: pd.Index
    scores: np.ndarray


_REGISTRY: dict[str, type[Recommender]] = {}


class Recommender(ABC):
    """Base class: subclasses implement ``_fit``, ``_score_rows`` and the persistence hooks.

    ``_score_rows(consumer_ids, rows)`` returns a dense ``(len(rows), n_products)`` float32
    block for consumers the model can score (``rows`` are matrix rows, -1 for consumers
    without interactions that ``_can_score_cold`` accepted).
    """

    name: ClassVar[str] = "base"
    batch_size: ClassVar[int] = 4096

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            _REGISTRY[cls.name] = cls

    # -- public API --------------------------------------------------------------------------

    def fit(self, data: InteractionData) -> Recommender:
        """Learn from ``data`` from scratch (earlier learned state is dropped); returns ``self``."""
        if data.matrix.nnz == 0:
            raise SiyuError(
                "no positive interactions to fit on\n  fix: check the as-of date and the data window"
            )
        self.forget()
        self.data_ = data
        logger.debug("fitting %s on %d consumers x %d products", self.name, *data.shape)
        self._fit(data)
        return self

    def forget(self) -> Recommender:
        """Drop the learned state (the attributes ending in ``_``), keeping the hyper-parameters
        and what ``tune`` left for the next ``fit``; returns ``self``. Production tuning calls it
        so that the evaluated model's data and components are freed before tonight's are built."""
        for learned in [key for key in vars(self) if key.endswith("_") and not key.startswith("_")]:
            delattr(self, learned)
        return self

    def can_score(self, consumer_ids: Sequence[str] | pd.Index) -> np.ndarray:
        """Boolean mask: which of ``consumer_ids`` this model can recommend to."""
        ids = pd.Index(consumer_ids).astype(str)
        known = self._data.rows_of(ids) >= 0
        if (~known).any():
            known[~known] = self._can_score_cold(ids[~known])
        return known

    def recommend(
        self, consumer_ids: Sequence[str] | pd.Index, k: int, filters: RecommendFilters | None = None
    ) -> pd.DataFrame:
        """Top ``k`` products per scorable consumer; columns ``RECOMMENDATION_COLUMNS``.

        Consumers the model cannot score are left out (see ``can_score``); never raises on them.
        """
        filters = filters or RecommendFilters()
        data = self._data
        mask = filters.column_mask(data.product_ids)
        demotion = filters.demotion(data.product_ids)
        categories = self._categories(filters)
        frames = []
        for ids, rows, scores in self._scored_batches(consumer_ids):
            scores = self._filtered(scores, rows, mask, demotion, filters.exclude_purchased)
            columns, ranked = top_k(scores, k, categories, filters.category_cap)
            frames.append(_long_frame(ids, data.product_ids, columns, ranked))
        if not frames:
            return _empty_recommendations()
        return pd.concat(frames, ignore_index=True)

    def recommend_from_block(
        self, block: ScoreBlock, k: int, filters: RecommendFilters | None = None
    ) -> pd.DataFrame:
        """The lists ``recommend`` would give for the consumers of a ``score_blocks`` block.

        Lets a caller make consumer lists and per-distributor aggregates from ONE scoring pass
        (the expensive part for the ranker): for each block, call this and aggregate the block.
        """
        filters = filters or RecommendFilters()
        data = self._data
        known = ~np.isnan(block.scores).all(axis=1)
        ids = block.consumer_ids[known]
        scores = self._filtered(
            block.scores[known],
            data.rows_of(ids),
            filters.column_mask(data.product_ids),
            filters.demotion(data.product_ids),
            filters.exclude_purchased,
        )
        columns, ranked = top_k(scores, k, self._categories(filters), filters.category_cap)
        return _long_frame(ids, data.product_ids, columns, ranked)

    def score_blocks(
        self, consumer_ids: Sequence[str] | pd.Index, batch_size: int | None = None
    ) -> Iterator[ScoreBlock]:
        """Dense raw scores (no filters) per batch of consumers; unknown consumers are NaN rows."""
        ids = pd.Index(consumer_ids).astype(str)
        size = batch_size or self.batch_size
        for start in range(0, len(ids), size):
            batch = ids[start : start + size]
            block = np.full((len(batch), len(self._data.product_ids)), np.nan, dtype=np.float32)
            scorable = self.can_score(batch)
            if scorable.any():
                block[scorable] = self._score_rows(batch[scorable], self._data.rows_of(batch[scorable]))
            yield ScoreBlock(batch, self._data.product_ids, block)

    def score(
        self, consumer_ids: Sequence[str] | pd.Index, product_ids: Sequence[str] | pd.Index | None = None
    ) -> pd.DataFrame:
        """Long frame ``consumer_id, product_id, score`` of scorable consumers × ``product_ids``.

        Products outside the catalogue are left out; ``product_ids=None`` means all of it.
        """
        data = self._data
        wanted = data.product_ids if product_ids is None else pd.Index(product_ids).astype(str)
        columns = data.columns_of(wanted)
        wanted, columns = wanted[columns >= 0], columns[columns >= 0]
        frames = []
        for ids, _, scores in self._scored_batches(consumer_ids):
            frames.append(
                pd.DataFrame(
                    {
                        RecCol.CONSUMER_ID: np.repeat(ids.to_numpy(), len(columns)),
                        RecCol.PRODUCT_ID: np.tile(wanted.to_numpy(), len(ids)),
                        RecCol.SCORE: scores[:, columns].ravel(),
                    }
                )
            )
        if not frames:
            return pd.DataFrame(
                {
                    c: pd.Series(dtype=t)
                    for c, t in (
                        (RecCol.CONSUMER_ID, str),
                        (RecCol.PRODUCT_ID, str),
                        (RecCol.SCORE, "float32"),
                    )
                }
            )
        return pd.concat(frames, ignore_index=True)

    def similar_items(self, product_ids: Sequence[str] | pd.Index, k: int) -> pd.DataFrame:
        """The ``k`` products most similar to each known product; columns ``SIMILAR_COLUMNS``.

        Default: cosine similarity of the products' consumer vectors (item-item co-purchase);
        factor models override it with their item factors. Unknown products are left out.
        """
        data = self._data
        ids = pd.Index(product_ids).astype(str)
        columns = data.columns_of(ids)
        ids, columns = ids[columns >= 0], columns[columns >= 0]
        vectors = self._item_vectors()
        frames = []
        for start in range(0, len(columns), self.batch_size):
            chunk = columns[start : start + self.batch_size]
            similarity = _cosine_block(vectors, chunk)
            similarity[np.arange(len(chunk)), chunk] = -np.inf
            top, ranked = top_k(similarity, k)
            frame = _long_frame(ids[start : start + len(chunk)], data.product_ids, top, ranked)
            frames.append(
                frame.rename(
                    columns={
                        RecCol.PRODUCT_ID: RecCol.SIMILAR_PRODUCT_ID,
                        RecCol.CONSUMER_ID: RecCol.PRODUCT_ID,
                    }
                )
            )
        if not frames:
            return pd.DataFrame(columns=list(SIMILAR_COLUMNS))
        return pd.concat(frames, ignore_index=True)[list(SIMILAR_COLUMNS)]

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable), as in scikit-learn."""
        return {key: getattr(self, key) for key in self._param_names()}

    def save(self, directory: Path | str) -> Path:
        """Write the fitted model under ``directory`` (no pickle); returns the directory."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._data.save(directory / "data")
        arrays = self._state()
        for key, value in arrays.items():
            if sp.issparse(value):
                sp.save_npz(directory / f"{key}.npz", value.tocsr())
            else:
                np.save(directory / f"{key}.npy", np.asarray(value), allow_pickle=False)
        meta = {
            ModelFileKey.FORMAT: FORMAT_VERSION,
            ModelFileKey.MODEL: self.name,
            ModelFileKey.PARAMS: self.get_params(),
            ModelFileKey.ARRAYS: sorted(arrays),
        }
        write_text_atomically(directory / MODEL_FILE, json.dumps(meta, indent=2, default=str) + "\n")
        return directory

    @classmethod
    def load(cls, directory: Path | str) -> Recommender:
        """Restore a model written by ``save`` (of this class or, from the base class, any)."""
        directory = Path(directory)
        meta = _read_meta(directory)
        name = meta[ModelFileKey.MODEL]
        model_cls = _REGISTRY.get(name)
        if model_cls is None or (cls is not Recommender and not issubclass(model_cls, cls)):
            raise SiyuError(f"{directory / MODEL_FILE}: model {name!r} is not a {cls.name} model")
        model = model_cls(**meta[ModelFileKey.PARAMS])
        model.data_ = InteractionData.load(directory / "data")
        arrays: dict[str, Any] = {}
        for key in meta[ModelFileKey.ARRAYS]:
            npz = directory / f"{key}.npz"
            arrays[key] = (
                sp.load_npz(npz).tocsr()
                if npz.exists()
                else np.load(directory / f"{key}.npy", allow_pickle=False)
            )
        model._set_state(arrays)
        return model

    def restricted_to(self, consumer_ids: Sequence[str] | pd.Index) -> Recommender:
        """A copy of this fitted model that holds only ``consumer_ids``' rows of the interaction
        data (``InteractionData.of_rows``) and of its per-consumer state
        (``_state_of_rows``); it scores those consumers as this model does. The state is not
        refitted: product-level arrays (item factors, similarities, the ranker's statistics) are
        shared, not copied. ``restricted_to([])`` is the product-level model a Spark scoring part
        extends to its own consumers' rows (``over``; ``spark_scoring``)."""
        data = self._data
        ids = pd.Index(consumer_ids).astype(str)
        rows = data.rows_of(ids)
        rows = np.sort(rows[rows >= 0])
        return self.over(data.of_rows(rows, ids), self.consumer_state_of_rows(rows))

    def consumer_state_of_rows(self, rows: np.ndarray) -> dict[str, Any]:
        """The per-consumer arrays (``_consumer_keys``) of the data rows ``rows``, as fitted."""
        state = self._state_of_rows(self._state(), rows)
        return {key: state[key] for key in self._consumer_keys() if key in state}

    def consumer_state(self, data: InteractionData) -> dict[str, Any] | None:
        """The per-consumer arrays (``_consumer_keys``) for ``data``'s consumers, computed from this
        fitted model's product-level state and each consumer's own rows, when this model's own
        arrays are that function of the rows (a carried ALS); None when they were learned (a
        fitted ALS, BPR, LightFM, ALS over BM25 weights): they exist only for the consumers the
        model was fitted on. ``{}``: the model keeps no per-consumer arrays."""
        return self._consumer_state(data) if self._consumer_keys() else {}

    def over(self, data: InteractionData, consumer_state: Mapping[str, Any] | None = None) -> Recommender:
        """A copy of this fitted model over ``data``: the same products in the same columns, other
        consumers' rows. The product-level state is shared; the per-consumer arrays are
        ``consumer_state`` (in ``data``'s row order) or, when None, computed (``consumer_state``).
        A Spark scoring part builds its model this way from the product-level model and the rows
        it read (``spark_scoring``)."""
        if not data.product_ids.equals(self._data.product_ids):
            raise ValueError(f"{self.name}: over() needs the fitted model's products in its column order")
        keys = set(self._consumer_keys())
        per = dict(consumer_state) if consumer_state is not None else self.consumer_state(data)
        if per is None:
            raise ValueError(
                f"{self.name} learned its per-consumer state ({sorted(keys)}): pass it (restricted_to's)"
            )
        model = type(self)(**self.get_params())
        model.data_ = data
        model._set_state({**{k: v for k, v in self._state().items() if k not in keys}, **per})
        return model

    def fitting_consumers(self) -> int | None:
        """At most how many consumers' rows this model learns its product-level state from, the
        ``hashed_sample`` of that many (None: every consumer's). Such a model, fitted or carried on
        ``partial`` data that hold the sample's rows, keeps the state it would learn on all rows."""
        return None

    def rows_to_fit(self) -> int | None:
        """How many consumers' rows ``fit`` reads besides the rows of the consumers it then scores,
        when the data hold only some consumers' rows (``InteractionData.partial``): the
        ``hashed_sample`` of that many (``fitting_consumers``); 0 for a model whose product-level
        state is counted over every consumer's rows, which partial data take from the engine
        (``InteractionData.engine``); None: every consumer's (it cannot fit on partial data)."""
        return self.fitting_consumers()

    def tuning_consumers(self, consumer_ids: pd.Index, truth: pd.DataFrame) -> pd.Index:
        """The consumers among ``consumer_ids`` (a window's consumers with history) whose rows
        ``tune`` learns from besides its ``rows_to_fit``, given the window's ``truth``: none here."""
        return pd.Index([], dtype=object, name=Col.CONSUMER_ID)

    def portable_state(self) -> dict[str, Any]:
        """Learned arrays that hold without the consumers they were fitted on (see ``carried_onto``)."""
        return self._portable_state()

    def carried_onto(
        self, data: InteractionData, state: Mapping[str, Any], product_ids: pd.Index
    ) -> Recommender:
        """This (unfitted) model with ``portable_state`` output of a model fitted on the catalogue
        ``product_ids``, carried onto ``data`` without learning; returns ``self``."""
        if data.matrix.nnz == 0:
            raise SiyuError("no positive interactions to score\n  fix: check the as-of date and the data")
        self.data_ = data
        self._carry(data, dict(state), pd.Index(product_ids).astype(str).get_indexer(data.product_ids))
        return self

    # -- hooks -------------------------------------------------------------------------------

    def _portable_state(self) -> dict[str, Any]:
        """Default: nothing learned beyond counts of the data (``_carry`` counts again)."""
        return {}

    def _carry(self, data: InteractionData, state: dict[str, Any], columns: np.ndarray) -> None:
        """Restore ``state`` onto ``data``; ``columns``: each product's column in the fitted
        catalogue (-1: new). Default: fit on ``data`` (models whose state is counted from it)."""
        self._fit(data)

    @abstractmethod
    def _fit(self, data: InteractionData) -> None: ...

    @abstractmethod
    def _score_rows(self, consumer_ids: pd.Index, rows: np.ndarray) -> np.ndarray: ...

    def _can_score_cold(self, consumer_ids: pd.Index) -> np.ndarray:
        """Which consumers without interactions the model can still score (default: none)."""
        return np.zeros(len(consumer_ids), dtype=bool)

    def _param_names(self) -> list[str]:
        import inspect

        return [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]

    def _state(self) -> dict[str, Any]:
        """Learned arrays to persist (numpy or scipy sparse), by name."""
        return {}

    def _set_state(self, arrays: dict[str, Any]) -> None:  # noqa: B027 - stateless models need nothing
        """Restore what ``_state`` returned."""

    # ``_state`` arrays whose rows are the data's consumer rows (``restricted_to`` keeps only the
    # kept consumers' rows); every other array must not depend on the consumers it was fitted on
    _consumer_arrays: tuple[str, ...] = ()

    def _consumer_keys(self) -> tuple[str, ...]:
        """The ``_state`` keys of the per-consumer arrays (default: ``_consumer_arrays``)."""
        return self._consumer_arrays

    def _consumer_state(self, data: InteractionData) -> dict[str, Any] | None:
        """``consumer_state`` of a model with per-consumer arrays; default None: learned ones."""
        return None

    def _state_of_rows(self, state: dict[str, Any], rows: np.ndarray) -> dict[str, Any]:
        """``state`` (``_state``'s) for the data rows ``rows`` only (``restricted_to``)."""
        keys = set(self._consumer_keys())
        return {key: value[rows] if key in keys else value for key, value in state.items()}

    def _item_vectors(self) -> sp.csr_matrix | np.ndarray:
        """Product vectors for ``similar_items`` (rows = products)."""
        return self._data.matrix.T.tocsr()

    # -- helpers -----------------------------------------------------------------------------

    @property
    def _data(self) -> InteractionData:
        data = getattr(self, "data_", None)
        if data is None:
            raise SiyuError(f"{self.name} is not fitted\n  fix: call fit(data) or load a saved model first")
        return data

    def _scored_batches(
        self, consumer_ids: Sequence[str] | pd.Index
    ) -> Iterator[tuple[pd.Index, np.ndarray, np.ndarray]]:
        ids = pd.Index(consumer_ids).astype(str)
        ids = ids[self.can_score(ids)]
        for start in range(0, len(ids), self.batch_size):
            batch = ids[start : start + self.batch_size]
            rows = self._data.rows_of(batch)
            yield batch, rows, np.asarray(self._score_rows(batch, rows), dtype=np.float32)

    def _filtered(
        self,
        scores: np.ndarray,
        rows: np.ndarray,
        mask: np.ndarray,
        demotion: np.ndarray | None,
        exclude_purchased: bool,
    ) -> np.ndarray:
        # Only the allowed columns are copied and cleaned, and only the demoted ones demoted (a
        # factor of 1 leaves a score as it is): the values of the whole-block version, at a
        # fraction of its passes (a night's sale window allows about a sixth of the catalogue).
        allowed = np.flatnonzero(mask)
        kept = scores[:, allowed].astype(np.float32, copy=False)
        kept[~np.isfinite(kept)] = -np.inf
        if demotion is not None:
            demoted = np.flatnonzero(demotion[allowed] != 1)
            kept[:, demoted] = demote_scores(kept[:, demoted], demotion[allowed][demoted][None, :])
        scores = np.full(scores.shape, -np.inf, dtype=np.float32)
        scores[:, allowed] = kept
        known = rows >= 0
        for matrix, wanted in ((self._data.blocked, True), (self._data.bought, exclude_purchased)):
            if wanted and known.any():
                sub = matrix[rows[known]].tocoo()
                scores[np.flatnonzero(known)[sub.row], sub.col] = -np.inf
        return scores

    def _categories(self, filters: RecommendFilters) -> np.ndarray | None:
        if filters.category_cap is None:
            return None
        if filters.categories is not None:
            mapped = pd.Series(filters.categories).reindex(self._data.product_ids)
            return mapped.fillna("unknown").astype(str).to_numpy()
        categories = self._data.product_attribute(Col.CATEGORY)
        if categories is None:
            raise SiyuError(
                "category_cap needs product categories\n"
                "  fix: fit on InteractionData with product profiles, or pass filters.categories"
            )
        return categories


def load_recommender(directory: Path | str) -> Recommender:
    """Load any model saved with ``Recommender.save``."""
    return Recommender.load(directory)


def registered_models() -> dict[str, type[Recommender]]:
    """Model name → class, for every model class imported so far."""
    return dict(_REGISTRY)


def _read_meta(directory: Path) -> dict[str, Any]:
    path = directory / MODEL_FILE
    if not path.is_file():
        raise SiyuError(
            f"{path}: no saved recommender here\n  fix: point at a directory written by model.save()"
        )
    meta = json.loads(path.read_text(encoding="utf-8"))
    saved_format = meta.get(ModelFileKey.FORMAT)
    if saved_format != FORMAT_VERSION:
        raise SiyuError(f"{path}: saved with format {saved_format}, this code reads {FORMAT_VERSION}")
    return meta


def factor_scores(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``users @ items.T`` as float32, summed in float64: a consumer's scores are the same bits in
    whatever block of consumers they are scored.

    A float32 matrix product's last bits depend on the block's shape and on the row's place in it
    (OpenBLAS picks its kernels and tiles by shape), and the scoring pass's blocks differ between
    the driver's pass and the Spark parts (``PassPlan.part`` blocks each part afresh). The ranker
    turns the ORDER of a component's scores into features (``<component>_generator_rank``, and
    the top ``candidates_per_model`` cut), so two near-tied ALS scores that swapped in their last
    bits moved list scores by up to 4% (10M nightly, DuckDB against Spark: ranks 4 and 5 traded).
    Summed in float64, two blocks' products differ in float64's last bits at most, which change
    the float32 result only where it lies on a rounding boundary. The float64 product is made
    ``_FACTOR_ROWS`` users at a time, so it costs at most that many float64 rows beside the result.
    """
    items64 = items.astype(np.float64).T
    scores = np.empty((len(users), items.shape[0]), dtype=np.float32)
    for start in range(0, len(users), _FACTOR_ROWS):
        stop = start + _FACTOR_ROWS
        scores[start:stop] = users[start:stop].astype(np.float64) @ items64  # rounds to float32
    return scores


_FACTOR_ROWS = 512


def carried_rows(values: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``values``' rows (one per fitted product) in the order of ``columns``; zeros where -1."""
    carried = np.zeros((len(columns), *values.shape[1:]), dtype=values.dtype)
    known = columns >= 0
    carried[known] = values[columns[known]]
    return carried


DENSE_SLICE_BYTES = 64 * 2**20


class DenseSlices:
    """A sparse matrix's dense float32 column slices of at most ``DENSE_SLICE_BYTES`` each, for
    sparse × dense products (``times``). A matrix that fits in one slice is made dense once and
    kept; larger ones are sliced again for each product, so the memory stays one slice."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        self.matrix = matrix
        n_rows, n_columns = matrix.shape
        fits = 4 * n_rows * n_columns <= DENSE_SLICE_BYTES
        self._whole = matrix.toarray().astype(np.float32, copy=False) if fits else None

    def slices(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """(start, stop, dense columns start:stop) covering every column, in order."""
        if self._whole is not None:
            yield 0, self.matrix.shape[1], self._whole
            return
        n_rows, n_columns = self.matrix.shape
        width = max(1, DENSE_SLICE_BYTES // (4 * max(n_rows, 1)))
        for start in range(0, n_columns, width):
            stop = min(start + width, n_columns)
            yield start, stop, self.matrix[:, start:stop].toarray().astype(np.float32, copy=False)

    def times(self, left: sp.csr_matrix) -> np.ndarray:
        """``(left @ matrix).toarray()`` as float32, bit for bit: scipy's sparse × dense product
        adds each row's terms in the same order, in float32, as its sparse × sparse product does
        (a zero term adds nothing), without building and searching the sparse result."""
        out = np.empty((left.shape[0], self.matrix.shape[1]), dtype=np.float32)
        for start, stop, dense in self.slices():
            out[:, start:stop] = left @ dense
        return out


def carried_square(values: np.ndarray | sp.spmatrix, columns: np.ndarray) -> np.ndarray | sp.csr_matrix:
    """A product × product array re-indexed on both axes by ``columns`` (zeros where -1)."""
    if not sp.issparse(values):
        return carried_rows(carried_rows(values, columns).T, columns).T.copy()
    known = np.flatnonzero(columns >= 0)
    pick = sp.csr_matrix(
        (np.ones(len(known), values.dtype), (known, columns[known])), shape=(len(columns), values.shape[0])
    )
    return (pick @ values @ pick.T).tocsr().astype(values.dtype)


def _long_frame(
    ids: pd.Index, product_ids: pd.Index, columns: np.ndarray, ranked: np.ndarray
) -> pd.DataFrame:
    k = columns.shape[1]
    valid = (columns >= 0).ravel()
    return pd.DataFrame(
        {
            RecCol.CONSUMER_ID: np.repeat(ids.to_numpy(dtype=object), k)[valid],
            RecCol.PRODUCT_ID: product_ids.to_numpy(dtype=object)[columns.ravel()[valid]],
            RecCol.SCORE: ranked.ravel()[valid].astype(np.float32),
            RecCol.RANK: np.tile(np.arange(1, k + 1, dtype=np.int32), len(ids))[valid],
        }
    )


def _empty_recommendations() -> pd.DataFrame:
    return pd.DataFrame(
        {
            RecCol.CONSUMER_ID: pd.Series(dtype=object),
            RecCol.PRODUCT_ID: pd.Series(dtype=object),
            RecCol.SCORE: pd.Series(dtype=np.float32),
            RecCol.RANK: pd.Series(dtype=np.int32),
        }
    )


def _cosine_block(vectors: sp.csr_matrix | np.ndarray, rows: np.ndarray) -> np.ndarray:
    if sp.issparse(vectors):
        norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
        block = (vectors[rows] @ vectors.T).toarray()
    else:
        norms = np.linalg.norm(vectors, axis=1)
        block = vectors[rows] @ vectors.T
    norms = np.where(norms > 0, norms, 1.0)
    return (block / norms[rows][:, None] / norms[None, :]).astype(np.float32)
