"""The DuckDB → Spark SQL layer (features.transpile), checked on its text: no Spark needed."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from features.engine import TABLE_MACROS
from features.transpile import TranspileError, copy_target, substitute, to_spark


def test_named_parameters_become_typed_literals() -> None:
    sql = to_spark(
        "SELECT * FROM t WHERE at < $end AND day = $day AND w = $weight AND n = $n AND s = $s AND b = $flag",
        {
            "end": datetime(2025, 3, 1, 12, 30),
            "day": date(2025, 2, 28),
            "weight": 0.5,
            "n": 3,
            "s": "it's",
            "flag": True,
        },
    )
    assert "CAST('2025-03-01 12:30:00' AS TIMESTAMP_NTZ)" in sql  # DuckDB's TIMESTAMP: no time zone
    assert "CAST('2025-02-28' AS DATE)" in sql
    assert "CAST(0.5 AS DOUBLE)" in sql  # DuckDB binds a Python float as DOUBLE, not DECIMAL
    assert "n = 3" in sql and "s = 'it\\'s'" in sql and "b = TRUE" in sql
    assert "$" not in sql and ":" not in sql.replace("12:30:00", "")


def test_positional_parameters_are_bound_in_order() -> None:
    assert to_spark("SELECT ? + ?", [1, 2]) == "SELECT 1 + 2"


def test_a_missing_parameter_is_named() -> None:
    with pytest.raises(TranspileError, match=r"\$end has no value"):
        to_spark("SELECT * FROM t WHERE at < $end", {"start": 1})
    with pytest.raises(TranspileError, match="more \\? parameters"):
        to_spark("SELECT ? + ?", [1])


def test_a_table_macro_call_becomes_the_view_the_caller_names() -> None:
    calls = []

    def view(name: str, arguments: list[str]) -> str:
        calls.append((name, arguments))
        return "baskets_view_1"

    sql = to_spark(
        "SELECT count(*) FROM order_baskets($end) b JOIN other_fn(1) o ON true",
        {"end": date(2025, 1, 1)},
        macros=TABLE_MACROS,
        macro_view=view,
    )
    assert calls == [("order_baskets", ["CAST('2025-01-01' AS DATE)"])]
    assert "FROM baskets_view_1 AS b" in sql
    assert "OTHER_FN(1)" in sql.upper()  # not a macro of ours: left alone


def test_a_macro_body_takes_its_arguments_for_its_parameter_names() -> None:
    macro = TABLE_MACROS["order_baskets"]
    sql = substitute(macro.select, {"end_at": "CAST('2025-01-01 00:00:00' AS TIMESTAMP_NTZ)"})
    assert "< CAST('2025-01-01 00:00:00' AS TIMESTAMP_NTZ)" in sql
    assert "end_at" not in sql


def test_division_is_always_of_doubles() -> None:
    sql = to_spark("SELECT a / 100.0 / (b - 1) FROM t")
    assert sql == (
        "SELECT CAST(CAST(a AS DOUBLE) / CAST(100.0 AS DOUBLE) AS DOUBLE) / CAST((b - 1) AS DOUBLE) FROM t"
    )
    assert "DIV" in to_spark("SELECT a // 2 FROM t")  # integer division stays integer


def test_epoch_of_an_interval_is_a_difference_in_microseconds() -> None:
    sql = to_spark("SELECT epoch($end - happened_at) FROM t", {"end": datetime(2025, 1, 1)})
    assert "TIMESTAMPDIFF(MICROSECOND, happened_at, CAST('2025-01-01 00:00:00' AS TIMESTAMP_NTZ))" in sql
    assert "UNIX_TIMESTAMP" not in sql


def test_rounding_to_places_is_written_out_and_plain_rounding_is_not() -> None:
    written = to_spark("SELECT round(x, 2) FROM t")
    assert "ELSE ROUND(CAST((x) AS DOUBLE) * CAST(100 AS DOUBLE)) END / CAST(100 AS DOUBLE)" in written
    assert "134217729" in written  # the split that recovers the product's rounding error
    assert to_spark("SELECT round(x)::BIGINT FROM t") == "SELECT CAST(ROUND(x) AS BIGINT) FROM t"


def test_duckdb_idioms_sqlglot_translates() -> None:
    sql = to_spark(
        "SELECT count(*) FILTER (WHERE s = 'paid'), date_diff('day', a::DATE, b), median(p), "
        "any_value(d), NULL::VARCHAR FROM t GROUP BY ALL"
    )
    assert "COUNT(*) FILTER(WHERE s = 'paid')" in sql
    assert "DATEDIFF(DAY, CAST(a AS DATE), b)" in sql
    assert "MEDIAN(p)" in sql and "CAST(NULL AS STRING)" in sql and "GROUP BY ALL" in sql


def test_engine_local_hash_becomes_xxhash64_and_hugeint_a_decimal() -> None:
    sql = to_spark("SELECT coalesce(sum(hash(a, b)::HUGEINT), 0) FROM t")
    assert "XXHASH64(a, b)" in sql and "CAST(XXHASH64(a, b) AS DECIMAL(38, 0))" in sql
    assert "HASH(" not in sql.replace("XXHASH64(", "")


def test_current_setting_is_the_connections_answer_or_refused_with_a_fix() -> None:
    assert to_spark("SELECT current_setting('temp_directory')", settings={"temp_directory": "/s"}) == (
        "SELECT '/s'"
    )
    assert to_spark("SELECT current_setting('temp_directory')", settings={"temp_directory": ""}) == (
        "SELECT NULL"
    )
    with pytest.raises(TranspileError, match=r"current_setting\('threads'\) is a DuckDB setting[\s\S]*fix:"):
        to_spark("SELECT current_setting('threads')", settings={"temp_directory": ""})


def test_copy_to_parquet_is_split_into_its_query_and_file() -> None:
    query, path = copy_target("COPY (SELECT a FROM t WHERE x < $end) TO '/tmp/p.parquet' (FORMAT parquet)")
    assert (query, path) == ("SELECT a FROM t WHERE x < $end", "/tmp/p.parquet")
    assert copy_target("SELECT 1") is None
    with pytest.raises(TranspileError, match="Parquet only"):
        copy_target("COPY (SELECT 1) TO '/tmp/p.csv' (FORMAT csv)")


def test_sql_sqlglot_cannot_parse_is_refused_with_the_text() -> None:
    with pytest.raises(TranspileError, match="cannot parse"):
        to_spark("SELECT FROM WHERE (")
