"""Small interaction data sets shared by the recommender tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.interactions import INTERACTION_COLUMNS, InteractionCol
from models.recommenders import InteractionData

CATEGORIES = ("snacks", "beauty", "household")


def planted_frames(seed: int = 7, consumers: int = 60, products: int = 24) -> tuple[pd.DataFrame, ...]:
    """Consumers who each buy mostly from one category (by consumer number mod 3)."""
    rng = np.random.default_rng(seed)
    product_ids = [f"P{i:02d}" for i in range(products)]
    category_of = {p: CATEGORIES[i % 3] for i, p in enumerate(product_ids)}
    rows = []
    for c in range(consumers):
        favourite = CATEGORIES[c % 3]
        pool = [p for p in product_ids if category_of[p] == favourite]
        bought = rng.choice(pool, size=4, replace=False).tolist() + rng.choice(product_ids, size=1).tolist()
        for p in dict.fromkeys(bought):
            purchases = int(rng.integers(1, 4))
            rows.append((f"C{c:03d}", p, float(purchases), purchases, float(rng.integers(1, 60))))
    frame = pd.DataFrame(rows, columns=["consumer_id", "product_id", "weight", "purchases", "age"])
    end = pd.Timestamp("2025-03-01")
    frame[InteractionCol.LAST_PURCHASE_AT] = end - pd.to_timedelta(frame.pop("age"), unit="D")
    frame[InteractionCol.LAST_INTERACTION_AT] = frame[InteractionCol.LAST_PURCHASE_AT]
    repeats = pd.to_timedelta(14 * (frame[InteractionCol.PURCHASES] - 1), unit="D")  # one order every 14 days
    frame[InteractionCol.FIRST_PURCHASE_AT] = frame[InteractionCol.LAST_PURCHASE_AT] - repeats
    products_frame = pd.DataFrame(
        {
            "product_id": product_ids,
            "category": [category_of[p] for p in product_ids],
            "supplier_id": [f"S{i % 4}" for i in range(products)],
            "price_band": [f"p{i % 3 + 1}" for i in range(products)],
        }
    )
    consumers_frame = pd.DataFrame(
        {
            "consumer_id": [f"C{c:03d}" for c in range(consumers + 5)],  # five registered, never bought
            "home_distributor_id": [f"D{c % 3}" for c in range(consumers + 5)],
            "age_band": ["25-34", "35-44"] * ((consumers + 5) // 2) + ["25-34"] * ((consumers + 5) % 2),
            "city_tier": None,
        }
    )
    return frame[list(INTERACTION_COLUMNS)], consumers_frame, products_frame


def planted_with_blocked() -> tuple[pd.DataFrame, ...]:
    """``planted_frames()`` with one complained-about pair: C000 must never get P01 back."""
    interactions, consumers, products = planted_frames()
    blocked = pd.DataFrame(
        [
            {
                "consumer_id": "C000",
                "product_id": "P01",
                "weight": -1.0,
                "purchases": 0,
                "last_purchase_at": pd.NaT,
                "last_interaction_at": pd.Timestamp("2025-02-20"),
            }
        ]
    )
    interactions = pd.concat(
        [interactions[~((interactions.consumer_id == "C000") & (interactions.product_id == "P01"))], blocked]
    )
    return interactions, consumers, products


@pytest.fixture(scope="session")
def planted_data() -> InteractionData:
    interactions, consumers, products = planted_with_blocked()
    return InteractionData.from_frames(
        interactions, consumers, products, as_of=pd.Timestamp("2025-02-28").date()
    )


@pytest.fixture(scope="session")
def other_data() -> InteractionData:
    """Data unlike ``planted_data``: another seed, consumers C030..C094, products P06..P29."""
    interactions, consumers, products = planted_frames(seed=99)

    def shifted(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        if "consumer_id" in frame:
            frame["consumer_id"] = "C" + (frame["consumer_id"].str[1:].astype(int) + 30).map("{:03d}".format)
        if "product_id" in frame:
            frame["product_id"] = "P" + (frame["product_id"].str[1:].astype(int) + 6).map("{:02d}".format)
        return frame

    return InteractionData.from_frames(
        shifted(interactions), shifted(consumers), shifted(products), as_of=pd.Timestamp("2025-02-20").date()
    )
