"""Every feature builder on both engines, same fixture, same frames (issue #11).

One ``local[2]`` Spark session serves the module; the fixture is a small simulated data set
written as Parquet, read by DuckDB (``features.engine.connect``) and by Spark
(``features.spark_engine.SparkConnection``). Frames are compared after sorting on their key
columns and normalising dtypes (ids as text, times at nanoseconds, counts as int64); floats with
a relative tolerance of 1e-9. Without Java the session fixture fails with the fix in its message:
nothing here is skipped.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from features import clv, interactions, popularity, quality_counts
from features.asof import AsOf
from features.columns import Col, Table
from features.consumer_features import consumer_features
from features.distributor_features import distributor_features, distributor_monthly
from features.engine import connect
from features.spark_engine import (
    SparkConnection,
    SparkFailed,
    SparkRun,
    session_settings,
)
from sources.simulator import SimulationConfig, simulate

ALL_TABLES = (
    Table.ORDERS,
    Table.PRODUCTS,
    Table.CONSUMERS,
    Table.DISTRIBUTORS,
    Table.EVENTS,
    Table.COMPLAINTS,
)
BARE_TABLES = (Table.ORDERS, Table.PRODUCTS)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spark_parity_data")
    simulate(root, SimulationConfig(consumers=200, distributors=4, products=40, days=120, seed=11))
    return root


def _tables(root: Path, names: tuple[str, ...]) -> dict[str, Path]:
    return {name: root / f"{name}.parquet" for name in names}


def _orders_in_parts(root: Path) -> Path:
    """The orders as a folder of two Parquet parts, the layout of the nightly's clean tables."""
    folder = root / "parts" / "orders.parquet"
    folder.mkdir(parents=True)
    orders = pd.read_parquet(root / "orders.parquet")
    half = len(orders) // 2
    orders.iloc[:half].to_parquet(folder / "part-0.parquet", index=False)
    orders.iloc[half:].to_parquet(folder / "part-1.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def engines(data_dir: Path, spark: object) -> Iterator[dict[str, tuple[object, object]]]:
    pairs = {}
    layouts = {
        "all": _tables(data_dir, ALL_TABLES),
        "bare": _tables(data_dir, BARE_TABLES),
        "parts": {**_tables(data_dir, BARE_TABLES), Table.ORDERS: _orders_in_parts(data_dir)},
        "frames": {name: pd.read_parquet(path) for name, path in _tables(data_dir, ALL_TABLES).items()},
    }
    for label, tables in layouts.items():
        pairs[label] = (connect(tables), SparkConnection(spark, tables))
    yield pairs
    for duck, on_spark in pairs.values():
        duck.close()
        on_spark.close()


@pytest.fixture(scope="module")
def as_of(engines: dict[str, tuple[object, object]]) -> AsOf:
    duck = engines["all"][0]
    return AsOf(interactions.latest_activity(duck).date())


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if pd.api.types.is_datetime64_any_dtype(series):
            out[column] = series.astype("datetime64[ns]")
        elif pd.api.types.is_bool_dtype(series):
            out[column] = series.astype("boolean")
        elif pd.api.types.is_integer_dtype(series):
            out[column] = series.astype("Int64")
        elif pd.api.types.is_float_dtype(series):
            out[column] = series.astype("float64")
        else:
            out[column] = series.astype(pd.StringDtype("python"))
    keys = [column for column in out.columns if not pd.api.types.is_float_dtype(out[column])]
    return out.sort_values(keys).reset_index(drop=True)


def assert_same(duckdb_frame: pd.DataFrame, spark_frame: pd.DataFrame) -> None:
    """Same columns in the same order, same rows, values equal (floats to 1e-9 relative)."""
    assert list(spark_frame.columns) == list(duckdb_frame.columns)
    assert len(duckdb_frame) > 0, "the fixture must give the builder something to compute"
    pd.testing.assert_frame_equal(
        _normalised(spark_frame), _normalised(duckdb_frame), check_exact=False, rtol=1e-9, atol=1e-12
    )


Builder = Callable[[object, AsOf], object]

BUILDERS: dict[str, Builder] = {
    "consumer_features": lambda con, day: consumer_features(con, day),
    "consumer_features_short_windows": lambda con, day: consumer_features(con, day, 60, 7),
    "distributor_monthly": lambda con, day: distributor_monthly(con, day, months=3),
    "distributor_features": lambda con, day: distributor_features(con, day),
    "btyd_summary": lambda con, day: clv.btyd_summary(con, day),
    "btyd_summary_returns_subtracted": lambda con, day: clv.btyd_summary(con, day, returns="subtracted"),
    "clv_model_frames": lambda con, day: pd.concat(
        clv.model_frames(con, day, 30), keys=["train", "validation", "current"], names=["frame"]
    ).reset_index(level=0),
    "quality_counts": lambda con, day: quality_counts.quality_counts(con, day, 30, 7),
    "quality_daily_counts": lambda con, day: quality_counts.daily_counts(con, day, 90, 7),
    "interactions": lambda con, day: interactions.build_interactions(con, day),
    "interactions_plain_counts_window": lambda con, day: interactions.build_interactions(
        con, day, interactions.InteractionConfig(half_life_days=None, window_days=60), ordered=False
    ),
    "consumer_profiles": lambda con, day: interactions.consumer_profiles(con, day),
    "product_profiles": lambda con, day: interactions.product_profiles(con),
    "purchased_pairs": lambda con, day: interactions.purchased_pairs(con, day.days_before(30), day),
    "product_buyers": lambda con, day: popularity.product_buyers(
        con, popularity.NightRows.of(con, day, interactions.InteractionConfig()), [30.0, None, 7.0, 90.0]
    ),
    "community_buyers": lambda con, day: popularity.community_buyers(
        con, popularity.NightRows.of(con, day, interactions.InteractionConfig()), 30.0
    ),
}

BARE_BUILDERS = (
    "consumer_features",
    "quality_counts",
    "interactions",
    "consumer_profiles",
    "community_buyers",
)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_builder_gives_the_same_frame_on_both_engines(name, engines, as_of) -> None:
    duck, on_spark = engines["all"]
    assert_same(BUILDERS[name](duck, as_of), BUILDERS[name](on_spark, as_of))


def test_each_connection_sees_only_its_own_tables(engines) -> None:
    _, with_all = engines["all"]
    _, bare = engines["bare"]
    assert Table.EVENTS in _views(with_all) and Table.EVENTS not in _views(bare)


@pytest.mark.parametrize("name", BARE_BUILDERS)
def test_builder_without_the_optional_tables_gives_the_same_frame(name, engines, as_of) -> None:
    duck, on_spark = engines["bare"]
    assert not on_spark.has_table(Table.EVENTS) and on_spark.has_table(Table.ORDERS)
    assert_same(BUILDERS[name](duck, as_of), BUILDERS[name](on_spark, as_of))


def _views(on_spark: SparkConnection) -> set[str]:
    return {row.viewName for row in on_spark.spark.sql("SHOW VIEWS").collect()}


def test_orders_in_parts_read_as_one_table(engines, as_of) -> None:
    duck, on_spark = engines["parts"]
    assert_same(BUILDERS["interactions"](duck, as_of), BUILDERS["interactions"](on_spark, as_of))


def test_tables_given_as_frames_give_the_same_features(engines, as_of) -> None:
    """In-memory frames (what unit tests and notebooks pass) instead of Parquet files."""
    duck, on_spark = engines["frames"]
    assert_same(BUILDERS["consumer_features"](duck, as_of), BUILDERS["consumer_features"](on_spark, as_of))


def test_the_session_records_what_mlflow_needs(spark) -> None:
    settings = session_settings(spark)
    assert settings["spark.master"] == "local[2]"
    assert settings["spark.sql.session.timeZone"] == "UTC"
    assert settings["spark.ui.enabled"] == "false"


def test_a_spark_error_is_read_while_its_jvm_is_up(spark, tmp_path) -> None:
    """Py4J's and PySpark's errors (here a Java call's and a query's) become SparkFailed holding
    Spark's message without the Java frames, readable after the JVM is gone (the night stops it
    before the error is reported); what else fails is left as it is."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors.exceptions.captured import CapturedException

    run = SparkRun(spark, tmp_path, own_spill=False, driver_memory="1g")
    with pytest.raises(Py4JJavaError) as java:
        spark._jvm.java.io.FileInputStream(str(tmp_path / "no such file"))
    with pytest.raises(CapturedException) as query:
        spark.sql("SELECT raise_error('a planted failure')").collect()
    java_error, query_error = run.readable(java.value), run.readable(query.value)
    assert isinstance(java_error, SparkFailed) and isinstance(query_error, SparkFailed)
    assert f"java.io.FileNotFoundException: {tmp_path / 'no such file'}" in str(java_error)
    assert "a planted failure" in str(query_error)
    assert all("\tat " not in str(e) and "JVM stacktrace" not in str(e) for e in (java_error, query_error))
    assert "fix: the Spark log above holds the failed task's whole trace" in str(java_error)
    assert run.readable(ValueError("not Spark's")) is None


def test_scalar_answers_are_the_same(engines, as_of, monkeypatch) -> None:
    duck, on_spark = engines["all"]
    monkeypatch.setattr(quality_counts, "MIN_DELAY_COMPLAINTS", 1)  # the small fixture has a few
    assert interactions.latest_activity(on_spark) == interactions.latest_activity(duck)
    assert quality_counts.has_complaints(on_spark) is quality_counts.has_complaints(duck) is True
    assert quality_counts.unmatched_complaints(on_spark, as_of) == quality_counts.unmatched_complaints(
        duck, as_of
    )
    spark_arrival = quality_counts.complaint_arrival(on_spark, as_of, 30)
    duck_arrival = quality_counts.complaint_arrival(duck, as_of, 30)
    assert spark_arrival is not None and duck_arrival is not None
    assert spark_arrival == pytest.approx(duck_arrival, rel=1e-12)


def test_a_table_macro_becomes_one_cached_view_per_cutoff(engines, as_of) -> None:
    _, on_spark = engines["all"]
    sql = "SELECT count(*) FROM order_baskets($end)"

    def baskets_views() -> set[str]:
        return {name for name in _views(on_spark) if name.startswith("order_baskets")}

    first = on_spark.execute(sql, {"end": as_of.end}).fetchone()
    views = baskets_views()
    assert on_spark.execute(sql, {"end": as_of.end}).fetchone() == first
    assert baskets_views() == views  # the same cutoff: the same view again
    earlier = on_spark.execute(sql, {"end": as_of.days_before(30).end}).fetchone()
    assert earlier[0] < first[0]
    assert len(baskets_views() - views) == 1  # another cutoff: one more view


def test_a_temporary_table_is_dropped_with_its_cache(engines, as_of) -> None:
    _, on_spark = engines["all"]
    with clv.purchase_days(on_spark, as_of.end) as days:
        assert on_spark.spark.catalog.isCached(days)
    assert days not in _views(on_spark)


def test_the_history_fingerprint_is_engine_local_but_keyed_to_the_history(engines, as_of) -> None:
    """DuckDB's hash is Spark's xxhash64 there: another digest, as stable and as sensitive."""
    duck, on_spark = engines["all"]
    tonight = interactions.history_fingerprint(on_spark, as_of)
    assert interactions.history_fingerprint(on_spark, as_of) == tonight
    assert interactions.history_fingerprint(on_spark, as_of.days_before(7)) != tonight
    sql = f'SELECT count(*) FROM orders WHERE "{Col.ORDERED_AT}" < $end'
    lines = duck.execute(sql, {"end": as_of.end}).fetchone()
    assert tonight.split(":")[0] == str(lines[0])  # same lines counted
    assert tonight != interactions.history_fingerprint(duck, as_of)  # never taken for a DuckDB digest


def test_shared_interactions_on_spark_give_each_cutoffs_pairs(engines, as_of) -> None:
    """The nightly's one aggregation for three cutoffs (COPY to Parquet, read back per cutoff)."""
    duck, on_spark = engines["all"]
    cutoffs = [as_of.days_before(30), as_of.days_before(14), as_of]
    with interactions.shared_interactions(on_spark, cutoffs):
        shared = [interactions.build_interactions(on_spark, cutoff) for cutoff in cutoffs]
    for cutoff, frame in zip(cutoffs, shared, strict=True):
        assert_same(interactions.build_interactions(duck, cutoff), frame)


def test_kept_interactions_are_written_once_and_read_again_for_their_cutoff_only(
    data_dir: Path, spark: object, as_of: AsOf, tmp_path: Path
) -> None:
    """The Spark night's interaction rows as of tonight: one aggregation (inside the nightly's
    shared one, as the fitting night has it), written once; the driver's rows and a later query
    (the scoring parts') read the written rows, another cutoff aggregates as before."""
    tables = _tables(data_dir, ALL_TABLES)
    duck, on_spark = connect(tables), SparkConnection(spark, tables, spill_dir=tmp_path)
    earlier = as_of.days_before(14)
    with interactions.shared_interactions(on_spark, [earlier, as_of]):
        interactions.keep_interactions(on_spark, as_of)
        interactions.keep_interactions(on_spark, as_of)  # kept already: not written again
    written = list(tmp_path.glob("siyu-night-interactions-*"))
    assert len(written) == 1 and list(tmp_path.glob("siyu-shared-interactions-*")) == []
    sql, _ = interactions.interactions_query(on_spark, as_of, ordered=False)
    assert str(written[0]) in sql  # tonight's query reads the kept rows
    assert str(written[0]) not in interactions.interactions_query(on_spark, earlier)[0]
    assert_same(
        interactions.build_interactions(duck, as_of), interactions.build_interactions(on_spark, as_of)
    )
    on_spark.close()
    del on_spark
    gc.collect()
    assert not written[0].exists()  # the kept rows go with the connection
    duck.close()


def test_a_cursor_queries_the_connection_and_closing_it_keeps_the_views(engines, as_of) -> None:
    _, on_spark = engines["all"]
    cursor = on_spark.cursor()
    assert cursor.has_table(Table.ORDERS)
    assert (
        cursor.execute("SELECT count(*) FROM orders").fetchone()
        == on_spark.execute("SELECT count(*) FROM orders").fetchone()
    )
    cursor.close()
    assert Table.ORDERS in _views(on_spark)


def test_times_come_back_as_the_contract_wrote_them(engines) -> None:
    """Parquet's nanosecond times (which Spark reads as longs) are timestamps again, to the second."""
    duck, on_spark = engines["all"]
    sql = f'SELECT "{Col.ORDERED_AT}", "{Col.ORDER_ID}" FROM orders ORDER BY 1, 2 LIMIT 5'
    from_spark = on_spark.execute(sql).df()
    assert pd.api.types.is_datetime64_any_dtype(from_spark[Col.ORDERED_AT])
    assert_same(duck.execute(sql).df(), from_spark)
