"""Business filters built from the products table and the quality gate's alerts really filter."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from features.asof import AsOf
from features.interactions import InteractionCol
from models.quality import QualityConfig
from models.recommenders import InteractionData, PopularityRecommender
from models.recommenders.filters import build_filters, product_categories, quality_filters, sellable_products
from models.recommenders.list_config import ListsConfig

AS_OF = AsOf(date(2025, 3, 31))


def products() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "product_id": ["P1", "P2", "P3", "P4", "P5", "P6"],
            "category": ["snacks", "snacks", "snacks", "beauty", "beauty", None],
            "sale_start": pd.to_datetime([None, "2025-04-02", "2025-04-20", "2025-01-01", None, None]),
            "sale_end": pd.to_datetime([None, None, None, "2025-03-31 23:00", "2025-04-01 08:00", None]),
        }
    )


def alerts() -> pd.DataFrame:
    return pd.DataFrame({"product_id": ["P1", "P2", "P3"], "level": ["pulled", "warning", "normal"]})


def test_sellable_window_overlap() -> None:
    # window = [2025-04-01, 2025-04-08): P3 starts after it, P4 ended before it
    assert sellable_products(products(), AS_OF, 7) == {"P1", "P2", "P5", "P6"}
    assert sellable_products(products(), AS_OF, 30) == {"P1", "P2", "P3", "P5", "P6"}


def test_products_without_window_columns_are_always_sellable() -> None:
    bare = products().drop(columns=["sale_start", "sale_end"])
    assert sellable_products(bare, AS_OF, 1) == set(bare["product_id"])


def test_quality_lists_and_zero_demotion_excludes() -> None:
    excluded, demote = quality_filters(alerts(), QualityConfig(warning_demotion=0.25))
    assert excluded == {"P1"} and demote == {"P2": 0.25}
    excluded, demote = quality_filters(alerts(), QualityConfig(warning_demotion=0.0))
    assert excluded == {"P1", "P2"} and demote == {}


def test_categories_fill_unknown() -> None:
    assert product_categories(products())["P6"] == "unknown"


def _data() -> InteractionData:
    # popularity: P1 (4 buyers) > P2 (3) > P5 (2) > P4 (1) = P3 (1)
    pairs = [("C1", "P1"), ("C2", "P1"), ("C3", "P1"), ("C4", "P1"), ("C1", "P2"), ("C2", "P2"), ("C3", "P2")]
    pairs += [("C1", "P5"), ("C2", "P5"), ("C4", "P4"), ("C4", "P3")]
    frame = pd.DataFrame(pairs, columns=["consumer_id", "product_id"]).assign(**{InteractionCol.WEIGHT: 1.0})
    return InteractionData.from_frames(frame)


def test_filters_really_filter_a_model() -> None:
    filters = build_filters(products(), AS_OF, ListsConfig(), alerts(), QualityConfig(warning_demotion=0.1))
    model = PopularityRecommender(window_days=None).fit(_data())
    lists = model.recommend(["C5"], 5, filters)
    # P1 pulled, P3/P4 not sellable; P2 (second most popular) demoted below P5
    assert list(lists["product_id"]) == ["P5", "P2"]


def test_exclude_purchased_and_category_cap() -> None:
    config = ListsConfig(sale_window_days=30, category_cap=1)
    filters = build_filters(products(), AS_OF, config, None, None, exclude_purchased=True)
    model = PopularityRecommender(window_days=None).fit(_data())
    lists = model.recommend(["C4", "C5"], 5, filters)
    c4 = lists[lists["consumer_id"] == "C4"]["product_id"].tolist()
    c5 = lists[lists["consumer_id"] == "C5"]["product_id"].tolist()
    assert c4 == ["P2", "P5"]  # P1, P3 and P4 bought by C4; one snack, one beauty
    assert c5 == ["P1", "P5"]  # one per category: P1 beats P2 and P3 among snacks
    cap = pd.Series(filters.categories).reindex(lists["product_id"]).to_numpy()
    assert np.all(pd.Series(cap).groupby(lists["consumer_id"].to_numpy()).value_counts() <= 1)


def test_filters_refuse_bad_config() -> None:
    with pytest.raises(ValueError):
        ListsConfig(category_cap=0)
