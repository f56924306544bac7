"""The consumer lists: every known consumer's top k, topped up by the fallback chain, with reasons.

``finished_lists`` completes one block's lists (the one scoring pass,
``models.recommenders.scoring_pass``, calls it per block of consumers). ``consumer_reasons`` gives each row a
short reason from the row's source (model, community, global fallback) and what the consumer
bought before: "you bought it 3 times", "matches your taste in <category>", "customers like
you buy it", "popular in your group", "popular on the platform now".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.catalog import StepFile, export_file
from features.columns import Col
from features.errors import SiyuError
from features.interactions import InteractionCol
from features.messages import Messages
from features.vocabulary import ReasonCode
from models.recommenders.base import InteractionData, RecCol, RecommendFilters
from models.recommenders.fallback import (
    SOURCE_COMMUNITY,
    SOURCE_GLOBAL,
    SOURCE_MODEL,
    FallbackCol,
    FallbackLists,
    complete_lists,
)
from models.recommenders.reasons import coded_sentences

LIST_COLUMNS: tuple[str, ...] = export_file(StepFile.CONSUMER_LISTS).column_names()
# the consumer lists' reason codes, each one's position its code in ``consumer_reasons``
_REASONS: tuple[str, ...] = (
    ReasonCode.COMMUNITY,
    ReasonCode.GLOBAL,
    ReasonCode.SIMILAR,
    ReasonCode.TASTE,
    ReasonCode.BOUGHT_BEFORE,
    ReasonCode.BOUGHT_TIMES,
)
_COMMUNITY, _GLOBAL, _SIMILAR, _TASTE, _BOUGHT_BEFORE, _BOUGHT_TIMES = range(len(_REASONS))


def home_distributors(data: InteractionData) -> pd.Series:
    """Consumer id → home distributor of every known consumer (consumers table ∪ buyers)."""
    profiles = data.consumer_profiles
    known = data.consumer_ids if profiles is None else profiles.index.union(data.consumer_ids)
    if profiles is None or InteractionCol.HOME_DISTRIBUTOR_ID not in profiles:
        return pd.Series(None, index=known, dtype=object)
    return profiles[InteractionCol.HOME_DISTRIBUTOR_ID].reindex(known).astype(object)


def finished_lists(
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
    completed = complete_lists(recommended, consumer_ids, homes, k, fallback, data, filters)
    first = completed[RecCol.RANK].to_numpy() == 1  # each listed consumer's rows: ranks 1, 2, ...
    missing = len(consumer_ids) - int(first.sum())
    if missing:
        raise SiyuError(f"{missing} consumers got an empty list\n  fix: widen lists.sale_window_days")
    from_fallback = int((completed[FallbackCol.SOURCE].to_numpy()[first] != SOURCE_MODEL).sum())
    # every consumer listed, in the order of consumer_ids: its data row repeated over its rows
    sizes = np.diff(np.append(np.flatnonzero(first), len(completed)))
    rows = np.repeat(data.rows_of(consumer_ids), sizes)
    reason_codes, reasons = consumer_reasons(completed, data, categories, messages, rows)
    frame = completed.assign(**{RecCol.REASON_CODE: reason_codes, RecCol.REASON: reasons})
    return frame[list(LIST_COLUMNS)], from_fallback


def category_codes(data: InteractionData, filters: RecommendFilters) -> tuple[np.ndarray, pd.Index]:
    """Each product's category as a code (in ``data.product_ids`` order) and the category names."""
    if filters.categories is not None:
        names = pd.Series(filters.categories).reindex(data.product_ids).fillna("unknown").astype(str)
    else:
        names = pd.Series(
            data.product_attribute(Col.CATEGORY)
            if data.product_attribute(Col.CATEGORY) is not None
            else "unknown",
            index=data.product_ids,
        )
    codes, uniques = pd.factorize(names.to_numpy())
    return codes, pd.Index(uniques)


def consumer_reasons(
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
        inverse, unique_rows = pd.factorize(rows[known])  # a hash: rows come grouped, no sort needed
        history = data.matrix[unique_rows].copy()
        history.data = np.ones_like(history.data)
        per_category = (history @ one_hot).tocsr()
        in_category[known] = np.asarray(per_category[inverse, codes[columns[known]]]).ravel()
    source = completed[FallbackCol.SOURCE].to_numpy()
    # reasons and categories as codes: the sentences are formatted per distinct combination
    reason = np.where(source == SOURCE_GLOBAL, _GLOBAL, _SIMILAR)
    reason[source == SOURCE_COMMUNITY] = _COMMUNITY
    model_rows = source == SOURCE_MODEL
    reason[model_rows & (in_category > 0) & (bought == 0)] = _TASTE
    again = model_rows & (bought > 0)
    reason[again & (bought == 1)] = _BOUGHT_BEFORE
    reason[again & (bought > 1)] = _BOUGHT_TIMES
    category = np.where(columns >= 0, codes[np.maximum(columns, 0)], len(names))
    category_names = np.append(names.to_numpy(dtype=object), np.array([""], dtype=object))
    reason_codes = np.asarray(_REASONS, dtype=object)[reason]
    return reason_codes, coded_sentences(
        (reason, _REASONS),
        messages,
        times=pd.factorize(bought.astype(np.int64)),
        category=(category, category_names),
    )
