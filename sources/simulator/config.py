"""What a user sets and what the simulator promises: the config, the summary and the truth files.

``SimulationConfig`` holds the size and realism knobs (the CLI's ``simulate`` options and the
``simulation`` section of a config file); ``SimulationSummary`` is what ``simulate`` reports;
``Truth`` names the ground-truth files written under ``TRUTH_DIR`` beside the contract tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.columns import Col, Table
from sources.simulator.market import CATEGORIES

TRUTH_DIR = "truth"
PARTITION_KEY = "dt"
# The tables a partitioned layout splits by day, and the column whose (local) date is the day.
DAY_COLUMNS: dict[str, str] = {
    Table.ORDERS: Col.ORDERED_AT,
    Table.EVENTS: Col.EVENT_AT,
    Table.COMPLAINTS: Col.COMPLAINED_AT,
}


class Layout(StrEnum):
    """How the contract tables land in the output folder.

    ``single``: one file per table, ``<table>.parquet``. ``partitioned``: as a data lake lands
    them, the tables of ``DAY_COLUMNS`` as Hive-style day partitions
    ``<table>/dt=YYYY-MM-DD/part-0.parquet`` (the day of the row's timestamp; the partition key
    is in the folder name only), the others one file each as in ``single``.
    """

    SINGLE = "single"
    PARTITIONED = "partitioned"


class Truth:
    """File stems and column names of the ground-truth files (not part of the data contract)."""

    DEFECTIVE_PRODUCTS = "defective_products"
    CONSUMER_TASTES = "consumer_tastes"
    CONSUMER_BRAND_TASTES = "consumer_brand_tastes"
    COMMUNITY_TASTES = "community_tastes"
    CONSUMER_TRAITS = "consumer_traits"

    WEIGHT = "weight"
    COMPLAINT_PROBABILITY = "complaint_probability"
    DEFECT_ONSET = "defect_onset"
    CATEGORY_BASELINE = "category_baseline"
    PURCHASE_RATE = "purchase_rate"
    PRICE_SENSITIVITY = "price_sensitivity"
    CHURNED_AT = "churned_at"


class SimulationConfig(BaseModel):
    """Size and realism knobs of the simulated platform.

    Order lines come to about ``lines_per_consumer_year * consumers * days / 365``: with the
    defaults 10 lines per consumer and year, so 1M consumers over 365 days give ~10M lines.
    """

    model_config = ConfigDict(extra="forbid")

    consumers: int = Field(10_000, ge=1, description="Consumers; ~10 order lines each per 365 days.")
    distributors: int = Field(300, ge=1, description="Distributors, one community each.")
    products: int = Field(2_000, ge=2 * len(CATEGORIES), description="Products listed over the period.")
    days: int = Field(365, ge=7, le=3_660, description="Days simulated; the last one is the as-of date.")
    seed: int = Field(42, ge=0, description="The same seed (and config) writes byte-identical files.")
    start: date = Field(date(2025, 1, 1), description="First day simulated.")
    suppliers: int | None = Field(None, ge=1, description="Suppliers (brands); default products / 20.")
    lines_per_consumer_year: float = Field(
        10.0,
        gt=0,
        le=200,
        description="Calibration: order lines per consumer per 365 days (10 -> 1M consumers ~ 10M lines).",
    )
    homophily: float = Field(0.6, ge=0, le=1, description="Share of a consumer's taste from the community.")
    home_share: float = Field(0.92, ge=0, le=1, description="Share of orders through the home distributor.")
    evergreen_share: float = Field(0.12, ge=0, le=1, description="Share of products on sale all period.")
    defective_share: float = Field(0.02, ge=0, le=0.5, description="Share of products planted defective.")
    defect_multiplier: tuple[float, float] = Field(
        (6.0, 10.0), description="Range of a defective product's complaint probability / category baseline."
    )
    onset_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of defective products that turn defective on a day of their sale "
        "(truth: defect_onset); the rest are defective from launch.",
    )
    cancel_rate: float = Field(0.015, ge=0, le=1, description="Probability an order is cancelled.")
    return_scale: float = Field(1.0, ge=0, le=5, description="Multiplier on category return rates (~4%).")
    mean_lifetime_days: float = Field(
        700.0,
        gt=0,
        description="Mean days from registration to churn, "
        "unless the consumer goes dormant after a basket earlier.",
    )
    events: bool = Field(True, description="Write browse/share events (about 2.5 per order line).")
    layout: Layout = Field(
        Layout.SINGLE,
        description="single: one file per table; partitioned: orders, events and complaints "
        "in day partitions <table>/dt=YYYY-MM-DD/part-0.parquet.",
    )

    @model_validator(mode="after")
    def _check_ranges(self) -> SimulationConfig:
        low, high = self.defect_multiplier
        if not 1.0 <= low <= high:
            raise ValueError(f"defect_multiplier must be (low, high) with 1 <= low <= high, got {low, high}")
        return self

    @property
    def last_day(self) -> date:
        return self.start + timedelta(days=self.days - 1)


@dataclass(frozen=True)
class SimulationSummary:
    """What ``simulate`` wrote: rows per table, sizes, the last day simulated and where."""

    path: Path
    rows: dict[str, int]
    order_lines: int
    orders: int
    as_of: date
    seconds: float
