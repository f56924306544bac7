"""Business filters at recommend time: ``RecommendFilters`` built from config and data as of a date.

- **Sellable window.** A product may be recommended when its sale window
  ``[sale_start, sale_end]`` overlaps the coming window ``[AsOf.end, AsOf.end +
  sale_window_days)``. An empty ``sale_start`` means "on sale since
  always", an empty ``sale_end`` "on sale until further notice"; a product with neither (or a
  products table without the columns) is always sellable.
- **Quality gate.** Products at level ``pulled`` (``models.quality.pulled_products``) are
  excluded from every list; products at ``warning`` (``models.quality.demoted_products``) keep
  their place in the candidate set but their score is multiplied by
  ``QualityConfig.warning_demotion`` (a factor of 0 excludes them, as pulled).
- **Already bought** is excluded when asked (``exclude_purchased``), and **per-category
  caps** limit how many products of one category a list holds (categories from the products
  table).

The functions are pure: frames in, ``RecommendFilters`` out.
"""

from __future__ import annotations

import logging

import pandas as pd

from features.asof import AsOf
from features.columns import Col
from features.contract import UNKNOWN_CATEGORY
from features.errors import SiyuError
from models.quality import QualityConfig, demoted_products, pulled_products
from models.recommenders.base import RecommendFilters
from models.recommenders.list_config import ListsConfig

logger = logging.getLogger(__name__)


def coming_window(as_of: AsOf, window_days: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The half-open window ``[start, end)`` the lists are for: the ``window_days`` after ``as_of``."""
    start = as_of.end_timestamp
    return start, start + pd.Timedelta(days=window_days)


def sellable_products(products: pd.DataFrame, as_of: AsOf, window_days: int) -> frozenset[str]:
    """Ids of the products whose sale window overlaps the coming ``window_days`` after ``as_of``.

    Missing ``sale_start`` / ``sale_end`` (values or whole columns) leave that side open.
    """
    if Col.PRODUCT_ID not in products:
        raise SiyuError(
            "products table: missing column 'product_id'\n  fix: add it (see docs/data_contract.md)"
        )
    start, end = coming_window(as_of, window_days)
    sellable = pd.Series(True, index=products.index)
    if Col.SALE_START in products:
        sale_start = pd.to_datetime(products[Col.SALE_START])
        sellable &= sale_start.isna() | (sale_start < end)
    if Col.SALE_END in products:
        sale_end = pd.to_datetime(products[Col.SALE_END])
        sellable &= sale_end.isna() | (sale_end >= start)
    return frozenset(products.loc[sellable, Col.PRODUCT_ID].astype(str))


def product_categories(products: pd.DataFrame) -> dict[str, str]:
    """Product id → category (``unknown`` where empty or when the column is missing)."""
    ids = products[Col.PRODUCT_ID].astype(str)
    if Col.CATEGORY not in products:
        return dict.fromkeys(ids, UNKNOWN_CATEGORY)
    categories = products[Col.CATEGORY].astype(object).where(products[Col.CATEGORY].notna(), UNKNOWN_CATEGORY)
    return dict(zip(ids, categories.astype(str), strict=True))


def quality_filters(
    alerts: pd.DataFrame | None, quality: QualityConfig
) -> tuple[frozenset[str], dict[str, float]]:
    """(pulled products to exclude, warned product → demotion factor) from the quality gate's alerts.

    ``alerts`` is ``QualityReport.alerts`` or ``quality_alerts.csv`` read back; None = no gate.
    """
    if alerts is None:
        return frozenset(), {}
    excluded = set(pulled_products(alerts))
    warned = demoted_products(alerts)
    if quality.warning_demotion <= 0:
        excluded.update(warned)
        return frozenset(excluded), {}
    return frozenset(excluded), dict.fromkeys(warned, float(quality.warning_demotion))


def build_filters(
    products: pd.DataFrame,
    as_of: AsOf,
    config: ListsConfig,
    alerts: pd.DataFrame | None = None,
    quality: QualityConfig | None = None,
    exclude_purchased: bool | None = None,
) -> RecommendFilters:
    """The filters of one run: sellable window, pulled / warned products, already bought, category cap.

    ``exclude_purchased`` None takes ``config.exclude_purchased``.
    """
    allowed = sellable_products(products, as_of, config.sale_window_days)
    excluded, demote = quality_filters(alerts, quality or QualityConfig())
    logger.info(
        "filters as of %s: %d of %d products sellable in the next %d days, %d pulled, %d demoted",
        as_of,
        len(allowed),
        len(products),
        config.sale_window_days,
        len(excluded),
        len(demote),
    )
    return RecommendFilters(
        allowed_products=allowed,
        exclude_products=excluded,
        demote=demote,
        exclude_purchased=config.exclude_purchased if exclude_purchased is None else exclude_purchased,
        category_cap=config.category_cap,
        categories=product_categories(products),
    )


def without_sale_window(filters: RecommendFilters) -> RecommendFilters:
    """The same filters with every product sellable (used when the window leaves nothing at all)."""
    return RecommendFilters(
        allowed_products=None,
        exclude_products=filters.exclude_products,
        demote=dict(filters.demote),
        exclude_purchased=filters.exclude_purchased,
        category_cap=filters.category_cap,
        categories=filters.categories,
    )
