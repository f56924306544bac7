"""The fixed facts of the simulated market, shared by every part of the simulator.

Product categories (demand share, price level, repeat interval, complaint and return rates),
distributor occupations and the category tastes they bring, the demographics of consumers,
complaint reasons, the order statuses and event types a line or event can take, and the
time units the simulator counts in (seconds from the first simulated day).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.columns import EventType, OrderStatus

DAY = 86_400
HOUR = 3_600


@dataclass(frozen=True)
class Category:
    name: str
    share: float  # share of demand
    median_price: float
    price_sigma: float
    repeat_days: float  # typical days between repeat purchases; 0 = not a consumable
    complaint_rate: float  # baseline complaint probability of a line
    return_rate: float


CATEGORIES: tuple[Category, ...] = (
    Category("fresh_produce", 0.14, 39, 0.5, 10, 0.020, 0.033),
    Category("snacks", 0.12, 29, 0.5, 21, 0.008, 0.026),
    Category("beverages", 0.07, 45, 0.5, 18, 0.006, 0.026),
    Category("grain_oil", 0.06, 59, 0.4, 35, 0.005, 0.020),
    Category("personal_care", 0.10, 49, 0.6, 45, 0.008, 0.040),
    Category("household", 0.09, 39, 0.6, 40, 0.007, 0.040),
    Category("baby_maternal", 0.08, 89, 0.7, 25, 0.012, 0.040),
    Category("beauty", 0.10, 129, 0.8, 60, 0.010, 0.050),
    Category("health_supplements", 0.07, 159, 0.6, 30, 0.010, 0.026),
    Category("apparel", 0.08, 99, 0.6, 0, 0.015, 0.140),
    Category("home_kitchen", 0.06, 79, 0.8, 0, 0.010, 0.050),
    Category("small_appliances", 0.03, 199, 0.7, 0, 0.018, 0.065),
)
CATEGORY_INDEX = {c.name: i for i, c in enumerate(CATEGORIES)}

OCCUPATIONS: dict[str, tuple[float, dict[str, float]]] = {  # share of distributors, taste boosts
    "parent": (0.30, {"baby_maternal": 4.0, "snacks": 1.5}),
    "office_worker": (0.20, {"beauty": 2.0, "beverages": 1.5}),
    "retiree": (0.12, {"health_supplements": 3.0, "grain_oil": 2.0, "fresh_produce": 1.5}),
    "student": (0.08, {"snacks": 2.5, "apparel": 1.5}),
    "shop_owner": (0.12, {"household": 2.0, "home_kitchen": 1.5}),
    "fitness_coach": (0.08, {"health_supplements": 2.5, "fresh_produce": 1.5}),
    "beauty_advisor": (0.10, {"beauty": 4.0, "personal_care": 1.5}),
}
CITY_TIERS = ("tier1", "new_tier1", "tier2", "tier3", "tier4", "tier5")
CITY_TIER_SHARES = (0.12, 0.18, 0.22, 0.22, 0.16, 0.10)
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
AGE_SHARES = np.array([0.10, 0.32, 0.28, 0.17, 0.13])
AGE_BY_OCCUPATION = {
    "parent": (0.3, 2.0, 1.8, 0.5, 0.2),
    "retiree": (0.1, 0.3, 0.5, 1.2, 5.0),
    "student": (5.0, 1.0, 0.3, 0.2, 0.1),
}
AGE_TASTE = {
    "18-24": {"snacks": 1.8, "beauty": 1.3},
    "25-34": {"baby_maternal": 1.5},
    "35-44": {"baby_maternal": 1.5},
    "55+": {"health_supplements": 2.0, "grain_oil": 1.5},
}
GENDERS = ("female", "male")
FEMALE_SHARE = {"beauty_advisor": 0.85, "parent": 0.8, "fitness_coach": 0.5}
GENDER_TASTE = {
    "female": {"beauty": 1.8, "apparel": 1.3},
    "male": {"small_appliances": 2.0, "beverages": 1.3},
}
COMPLAINT_REASONS = (
    "quality_issue",
    "not_as_described",
    "damaged_in_transit",
    "wrong_item",
    "late_delivery",
    "expired",
    "size_mismatch",
)
REASON_SHARES_HEALTHY = (0.20, 0.15, 0.25, 0.10, 0.20, 0.05, 0.05)
REASON_SHARES_DEFECTIVE = (0.50, 0.25, 0.08, 0.03, 0.06, 0.05, 0.03)
STATUSES = (OrderStatus.PAID, OrderStatus.CANCELLED, OrderStatus.RETURNED)
EVENT_TYPES = (EventType.VIEW, EventType.CLICK, EventType.CART, EventType.FAVORITE, EventType.SHARE)
FAVOURITE_BRANDS, FAVOURITE_BOOST = 2, 4.0  # a consumer's favourite suppliers, choice weight boost
