"""The simulator writes contract-valid tables, deterministically, with its planted truth measurable."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features.columns import Col, EventType, OrderStatus, Table
from features.contract import CONTRACT, dtype_of
from features.reader import read_dataset
from features.store import write_validated
from sources import simulator
from sources.simulator import CATEGORIES, TRUTH_DIR, SimulationConfig, SimulationSummary, Truth, simulate

SMALL = SimulationConfig(consumers=3_000, distributors=60, products=500, days=365, seed=7)
TINY = SimulationConfig(consumers=400, distributors=12, products=120, days=60, seed=3)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> SimulationSummary:
    """The SMALL world, simulated in chunks of 1,000 consumers so that chunk seams are exercised."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(simulator, "CHUNK_CONSUMERS", 1_000)
        return simulate(tmp_path_factory.mktemp("small"), SMALL)


@pytest.fixture(scope="module")
def tables(simulated: SimulationSummary) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(simulated.path / f"{name}.parquet") for name in Table.ALL}


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# --- determinism and files -------------------------------------------------------------------


def test_same_seed_writes_byte_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    simulate(tmp_path / "a", TINY)
    simulate(tmp_path / "b", TINY)
    simulate(tmp_path / "c", TINY.model_copy(update={"seed": 4}))
    first, second, other = (_digests(tmp_path / name) for name in "abc")
    assert len(first) == 11
    assert first == second
    assert first["orders.parquet"] != other["orders.parquet"]
    assert first["events.parquet"] != other["events.parquet"]


def test_summary_matches_the_files(simulated: SimulationSummary, tables: dict[str, pd.DataFrame]) -> None:
    assert simulated.as_of == SMALL.start + timedelta(days=SMALL.days - 1)
    assert simulated.rows == {name: len(frame) for name, frame in tables.items()}
    assert simulated.order_lines == len(tables[Table.ORDERS])
    assert simulated.orders == tables[Table.ORDERS][Col.ORDER_ID].nunique()


def test_config_forbids_unknown_keys_and_bad_ranges() -> None:
    with pytest.raises(ValidationError, match="extra"):
        SimulationConfig(customers=10)
    with pytest.raises(ValidationError, match="defect_multiplier"):
        SimulationConfig(defect_multiplier=(5.0, 2.0))


# --- the contract ------------------------------------------------------------------------------


def test_every_table_has_the_contract_columns_and_dtypes(tables: dict[str, pd.DataFrame]) -> None:
    for name, frame in tables.items():
        spec = CONTRACT[name]
        assert list(frame.columns) == spec.column_names, name
        for column in spec.columns:
            assert frame[column.name].dtype == dtype_of(column.kind), (name, column.name)


def test_the_project_validator_quarantines_nothing(simulated: SimulationSummary, tmp_path: Path) -> None:
    result = write_validated(read_dataset(simulated.path), simulated.as_of, tmp_path / "validated")
    assert {r.table: r.rows_quarantined for r in result.reports} == dict.fromkeys(Table.ALL, 0)


def test_keys_are_unique_and_no_row_is_duplicated(tables: dict[str, pd.DataFrame]) -> None:
    for name, frame in tables.items():
        assert not frame.duplicated().any(), name
        for key in CONTRACT[name].key:
            assert frame[key].is_unique, (name, key)
    orders = tables[Table.ORDERS]
    assert not orders.duplicated([Col.ORDER_ID, Col.PRODUCT_ID]).any()


def test_values_and_references_follow_the_rules(tables: dict[str, pd.DataFrame]) -> None:
    orders, products, events = tables[Table.ORDERS], tables[Table.PRODUCTS], tables[Table.EVENTS]
    assert (orders[Col.QUANTITY] > 0).all()
    assert (orders[Col.UNIT_PRICE] > 0).all()
    assert (products[Col.LIST_PRICE] > 0).all()
    assert set(orders[Col.STATUS]) == set(OrderStatus.ALL)
    assert set(events[Col.EVENT_TYPE]) == set(EventType.ALL)
    known_products = set(products[Col.PRODUCT_ID])
    assert set(orders[Col.PRODUCT_ID]) <= known_products
    assert set(events[Col.PRODUCT_ID]) <= known_products
    consumers = set(tables[Table.CONSUMERS][Col.CONSUMER_ID])
    assert set(orders[Col.CONSUMER_ID]) <= consumers
    assert set(events[Col.CONSUMER_ID]) <= consumers
    distributors = set(tables[Table.DISTRIBUTORS][Col.DISTRIBUTOR_ID])
    assert set(orders[Col.DISTRIBUTOR_ID]) <= distributors
    assert set(events[Col.DISTRIBUTOR_ID].dropna()) <= distributors


def test_nothing_happens_after_the_last_simulated_day(
    simulated: SimulationSummary, tables: dict[str, pd.DataFrame]
) -> None:
    end = pd.Timestamp(simulated.as_of + timedelta(days=1))
    for name, frame in tables.items():
        for column in CONTRACT[name].columns:
            if column.kind == "timestamp":
                assert (frame[column.name].dropna() < end).all(), (name, column.name)
    assert tables[Table.ORDERS][Col.ORDERED_AT].max() >= pd.Timestamp(simulated.as_of)


def test_an_order_is_one_consumer_at_one_time_through_one_distributor(
    tables: dict[str, pd.DataFrame],
) -> None:
    orders = tables[Table.ORDERS]
    per_order = orders.groupby(Col.ORDER_ID)[[Col.CONSUMER_ID, Col.DISTRIBUTOR_ID, Col.ORDERED_AT]].nunique()
    assert (per_order == 1).all().all()
    assert orders.groupby(Col.ORDER_ID).size().max() > 1
    home = tables[Table.CONSUMERS].set_index(Col.CONSUMER_ID)[Col.DISTRIBUTOR_ID]
    through_home = (orders[Col.DISTRIBUTOR_ID] == orders[Col.CONSUMER_ID].map(home)).mean()
    assert 0.85 < through_home < 0.99


def test_complaints_are_about_lines_the_consumer_bought_days_before(tables: dict[str, pd.DataFrame]) -> None:
    complaints, orders = tables[Table.COMPLAINTS], tables[Table.ORDERS]
    assert len(complaints) > 50
    lines = complaints.merge(orders, on=[Col.ORDER_ID, Col.PRODUCT_ID, Col.CONSUMER_ID], how="left")
    assert lines[Col.ORDERED_AT].notna().all()
    delay = lines[Col.COMPLAINED_AT] - lines[Col.ORDERED_AT]
    assert (delay > pd.Timedelta(0)).all()
    assert pd.Timedelta(days=1) < delay.median() < pd.Timedelta(days=7)
    assert (lines[Col.STATUS] != OrderStatus.CANCELLED).all()


def test_orders_and_events_follow_registration(tables: dict[str, pd.DataFrame]) -> None:
    registered = tables[Table.CONSUMERS].set_index(Col.CONSUMER_ID)[Col.REGISTERED_AT]
    for name, column in ((Table.ORDERS, Col.ORDERED_AT), (Table.EVENTS, Col.EVENT_AT)):
        frame = tables[name]
        assert (frame[column] >= frame[Col.CONSUMER_ID].map(registered)).all(), name
    joined = tables[Table.DISTRIBUTORS].set_index(Col.DISTRIBUTOR_ID)[Col.JOINED_AT]
    consumers = tables[Table.CONSUMERS]
    assert (consumers[Col.REGISTERED_AT] >= consumers[Col.DISTRIBUTOR_ID].map(joined)).all()


def test_optional_columns_are_filled_mostly(tables: dict[str, pd.DataFrame]) -> None:
    consumers, distributors = tables[Table.CONSUMERS], tables[Table.DISTRIBUTORS]
    for column in (Col.AGE_BAND, Col.GENDER, Col.CITY_TIER):
        assert 0.8 < consumers[column].notna().mean() < 1.0, column
    assert distributors[[Col.OCCUPATION, Col.CITY_TIER]].notna().all().all()


# --- planted properties, measured from the data ------------------------------------------------


def test_sales_happen_only_inside_sale_windows_and_the_catalogue_rotates(
    tables: dict[str, pd.DataFrame],
) -> None:
    products = tables[Table.PRODUCTS]
    lines = tables[Table.ORDERS].merge(products, on=Col.PRODUCT_ID)
    assert (lines[Col.ORDERED_AT] >= lines[Col.SALE_START]).all()
    assert (lines[Col.SALE_END].isna() | (lines[Col.ORDERED_AT] <= lines[Col.SALE_END])).all()
    events = tables[Table.EVENTS].merge(products, on=Col.PRODUCT_ID)
    assert (events[Col.EVENT_AT] >= events[Col.SALE_START]).all()
    start = pd.Timestamp(SMALL.start)
    launched = products[Col.SALE_START] >= start
    assert 0.6 < launched.mean() < 0.95  # launches all through the period
    assert (products.loc[launched, Col.SALE_START].dt.month.nunique()) == 12
    assert (products[Col.SALE_START] < start).mean() > 0.05  # evergreen and earlier products


def test_community_sizes_are_heavy_tailed(tables: dict[str, pd.DataFrame]) -> None:
    sizes = tables[Table.CONSUMERS][Col.DISTRIBUTOR_ID].value_counts()
    assert sizes.max() >= 10 * sizes.median()
    assert sizes.head(3).sum() >= 0.3 * sizes.sum()


def test_community_homophily_is_measurable(tables: dict[str, pd.DataFrame]) -> None:
    ratio = _homophily_ratio(tables)
    assert ratio > 1.2, ratio  # about 1.0 without homophily (see below)


def test_turning_homophily_off_removes_it(tmp_path: Path) -> None:
    config = SMALL.model_copy(update={"homophily": 0.0, "consumers": 2_000})
    simulate(tmp_path, config)
    tables = {
        name: pd.read_parquet(tmp_path / f"{name}.parquet")
        for name in (Table.ORDERS, Table.PRODUCTS, Table.CONSUMERS)
    }
    assert _homophily_ratio(tables) < 1.15


def _homophily_ratio(tables: dict[str, pd.DataFrame]) -> float:
    """Mean cosine of category-purchase vectors: same-community pairs over cross-community pairs."""
    category = tables[Table.PRODUCTS].set_index(Col.PRODUCT_ID)[Col.CATEGORY]
    orders = tables[Table.ORDERS]
    counts = pd.crosstab(orders[Col.CONSUMER_ID], orders[Col.PRODUCT_ID].map(category))
    counts = counts[counts.sum(axis=1) >= 3]
    vectors = counts.to_numpy(dtype=float)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    home = counts.index.map(tables[Table.CONSUMERS].set_index(Col.CONSUMER_ID)[Col.DISTRIBUTOR_ID]).to_numpy()
    rng = np.random.default_rng(0)
    left, right = rng.integers(0, len(vectors), (2, 200_000))
    same = (home[left] == home[right]) & (left != right)
    across = home[left] != home[right]
    cosine = (vectors[left] * vectors[right]).sum(axis=1)
    assert same.sum() > 1_000
    return float(cosine[same].mean() / cosine[across].mean())


def test_defective_products_draw_many_more_complaints(
    simulated: SimulationSummary, tables: dict[str, pd.DataFrame]
) -> None:
    defective = pd.read_csv(simulated.path / TRUTH_DIR / f"{Truth.DEFECTIVE_PRODUCTS}.csv")
    assert len(defective) == round(0.02 * SMALL.products)
    orders = tables[Table.ORDERS]
    lines = orders[orders[Col.STATUS] != OrderStatus.CANCELLED]
    complained = tables[Table.COMPLAINTS].groupby(Col.PRODUCT_ID).size()
    sold = lines.groupby(Col.PRODUCT_ID).size()
    planted = sold.index.isin(defective[Col.PRODUCT_ID])
    complaints = complained.reindex(sold.index, fill_value=0)
    defective_rate = complaints[planted].sum() / sold[planted].sum()
    healthy_rate = complaints[~planted].sum() / sold[~planted].sum()
    assert 0.005 < healthy_rate < 0.02
    assert defective_rate > 3 * healthy_rate, (defective_rate, healthy_rate)


def test_most_buyers_order_a_few_times_and_a_few_very_often(tables: dict[str, pd.DataFrame]) -> None:
    per_buyer = tables[Table.ORDERS].groupby(Col.CONSUMER_ID)[Col.ORDER_ID].nunique()
    assert per_buyer.median() <= 3
    assert per_buyer.quantile(0.99) >= 10 * per_buyer.median()
    assert 0.4 < len(per_buyer) / SMALL.consumers < 0.95


def test_about_ten_lines_per_consumer_and_year(tables: dict[str, pd.DataFrame]) -> None:
    per_consumer = len(tables[Table.ORDERS]) / SMALL.consumers
    assert 7 < per_consumer < 14, per_consumer


def test_popularity_has_a_long_tail(tables: dict[str, pd.DataFrame]) -> None:
    sold = tables[Table.ORDERS][Col.PRODUCT_ID].value_counts()
    top = sold.head(len(tables[Table.PRODUCTS]) // 20).sum()
    assert top > 0.3 * sold.sum()


def test_consumables_are_bought_again_at_their_category_interval(tables: dict[str, pd.DataFrame]) -> None:
    category = tables[Table.PRODUCTS].set_index(Col.PRODUCT_ID)[Col.CATEGORY]
    orders = tables[Table.ORDERS].sort_values(Col.ORDERED_AT)
    gap = orders.groupby([Col.CONSUMER_ID, Col.PRODUCT_ID])[Col.ORDERED_AT].diff().dt.total_seconds() / 86_400
    median_gap = gap.groupby(orders[Col.PRODUCT_ID].map(category)).median()
    interval = pd.Series({c.name: c.repeat_days for c in CATEGORIES})
    consumable = interval[interval > 0].index
    assert median_gap.reindex(interval[interval == 0].index).isna().all()  # durables are bought once
    ratio = median_gap[consumable] / interval[consumable]
    assert 0.6 < ratio.median() < 1.2, ratio


def test_weekends_sell_more_than_early_weekdays(tables: dict[str, pd.DataFrame]) -> None:
    weekday = tables[Table.ORDERS][Col.ORDERED_AT].dt.dayofweek.value_counts()
    assert weekday[[5, 6]].mean() > 1.08 * weekday[[0, 1, 2, 3]].mean()


def test_price_sensitive_consumers_pay_less_for_the_same_category(
    simulated: SimulationSummary, tables: dict[str, pd.DataFrame]
) -> None:
    traits = pd.read_parquet(simulated.path / TRUTH_DIR / f"{Truth.CONSUMER_TRAITS}.parquet")
    category = tables[Table.PRODUCTS].set_index(Col.PRODUCT_ID)[Col.CATEGORY]
    orders = tables[Table.ORDERS].assign(**{Col.CATEGORY: lambda f: f[Col.PRODUCT_ID].map(category)})
    relative = np.log(orders[Col.UNIT_PRICE]) - np.log(
        orders.groupby(Col.CATEGORY)[Col.UNIT_PRICE].transform("median")
    )
    paid = relative.groupby(orders[Col.CONSUMER_ID]).mean()
    sensitivity = traits.set_index(Col.CONSUMER_ID)[Truth.PRICE_SENSITIVITY].reindex(paid.index)
    sensitive = sensitivity > sensitivity.quantile(0.75)
    tolerant = sensitivity < sensitivity.quantile(0.25)
    assert paid[sensitive].mean() < paid[tolerant].mean() - 0.1


def test_consumers_arrive_and_go_dormant(tables: dict[str, pd.DataFrame]) -> None:
    start, end = pd.Timestamp(SMALL.start), pd.Timestamp(SMALL.start + timedelta(days=SMALL.days))
    registered = tables[Table.CONSUMERS][Col.REGISTERED_AT]
    assert 0.3 < (registered >= start).mean() < 0.8
    assert (registered[registered >= start].dt.quarter.value_counts() > 0.1 * len(registered)).all()
    orders = tables[Table.ORDERS]
    quarter = pd.Timedelta(days=90)
    early = set(orders.loc[orders[Col.ORDERED_AT] < start + quarter, Col.CONSUMER_ID])
    late = set(orders.loc[orders[Col.ORDERED_AT] >= end - quarter, Col.CONSUMER_ID])
    assert len(early - late) > 0.7 * len(early)  # most early buyers have gone dormant by the end
    per_buyer = orders.groupby(Col.CONSUMER_ID)[Col.ORDER_ID].nunique()
    assert (per_buyer == 1).mean() > 0.4  # many try the platform once


def test_events_are_a_few_per_line_and_precede_orders(tables: dict[str, pd.DataFrame]) -> None:
    events, orders = tables[Table.EVENTS], tables[Table.ORDERS]
    assert 1.5 < len(events) / len(orders) <= 3.0
    carts = events[events[Col.EVENT_TYPE] == EventType.CART].sort_values(Col.EVENT_AT)
    lines = orders[[Col.CONSUMER_ID, Col.PRODUCT_ID, Col.ORDERED_AT]].sort_values(Col.ORDERED_AT)
    followed = _next_order_within(carts, lines, hours=3)
    assert followed.notna().all()  # every cart leads to the order shortly after
    views = events[events[Col.EVENT_TYPE] == EventType.VIEW].sort_values(Col.EVENT_AT)
    converted = _next_order_within(views, lines, hours=3).notna()
    assert 0.3 < 1 - converted.mean() < 0.8  # browsing that does not convert


def _next_order_within(events: pd.DataFrame, lines: pd.DataFrame, hours: int) -> pd.Series:
    """For each event, the time of the same consumer's next order of the product within ``hours``."""
    matched = pd.merge_asof(
        events,
        lines,
        left_on=Col.EVENT_AT,
        right_on=Col.ORDERED_AT,
        by=[Col.CONSUMER_ID, Col.PRODUCT_ID],
        direction="forward",
        tolerance=pd.Timedelta(hours=hours),
    )
    return matched[Col.ORDERED_AT]


def test_returns_and_cancellations_are_a_few_percent(tables: dict[str, pd.DataFrame]) -> None:
    status = tables[Table.ORDERS][Col.STATUS].value_counts(normalize=True)
    assert 0.03 <= status[OrderStatus.RETURNED] <= 0.055
    assert 0.007 <= status[OrderStatus.CANCELLED] <= 0.025


def test_truth_tastes_are_distributions_over_categories(simulated: SimulationSummary) -> None:
    truth = simulated.path / TRUTH_DIR
    consumer = pd.read_parquet(truth / f"{Truth.CONSUMER_TASTES}.parquet")
    community = pd.read_parquet(truth / f"{Truth.COMMUNITY_TASTES}.parquet")
    assert consumer[Col.CONSUMER_ID].nunique() == SMALL.consumers
    assert community[Col.DISTRIBUTOR_ID].nunique() == SMALL.distributors
    for frame, key in ((consumer, Col.CONSUMER_ID), (community, Col.DISTRIBUTOR_ID)):
        assert np.allclose(frame.groupby(key)[Truth.WEIGHT].sum(), 1.0)
        assert set(frame[Col.CATEGORY]) == {c.name for c in CATEGORIES}
    brands = pd.read_parquet(truth / f"{Truth.CONSUMER_BRAND_TASTES}.parquet")
    assert brands[Col.CONSUMER_ID].nunique() == SMALL.consumers


def test_start_date_moves_every_timestamp(tmp_path: Path) -> None:
    config = TINY.model_copy(update={"start": date(2024, 3, 1)})
    summary = simulate(tmp_path, config)
    orders = pd.read_parquet(tmp_path / f"{Table.ORDERS}.parquet")
    assert summary.as_of == date(2024, 4, 29)
    assert orders[Col.ORDERED_AT].min() >= pd.Timestamp(2024, 3, 1)
    assert orders[Col.ORDERED_AT].max() < pd.Timestamp(2024, 4, 30)
