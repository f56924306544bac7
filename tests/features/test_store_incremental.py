"""Incremental validation: a night that reuses earlier files' outcomes writes exactly what a full
validation of the same data writes, and validates again only the files it must.

Orders are landed as a lake lands them, one Parquet part per day (``orders/dt=.../part-0.parquet``).
Each case validates night 1 into ``out``, changes the data, validates night 2 into the same
``out`` (incremental) and into a fresh folder (full), and compares every file written.
"""

from __future__ import annotations

import contextvars
import json
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

import features.store as store
from features.engine import connect
from features.progress import add_listener
from features.reader import read_dataset
from features.store import write_validated
from features.validate import ValidationConfig
from tests.data import products_frame

NOW = datetime(2025, 3, 10, 12, 0)


def day_orders(day: int, lines: list[tuple[str, str, str]]) -> pd.DataFrame:
    """Order lines of 2025-03-<day> as (order_id, consumer_id, product_id), one unit each."""
    return pd.DataFrame(
        {
            "order_id": [o for o, _, _ in lines],
            "consumer_id": [c for _, c, _ in lines],
            "distributor_id": "D1",
            "product_id": [p for _, _, p in lines],
            "quantity": 1,
            "unit_price": 9.0,
            "ordered_at": pd.Timestamp(f"2025-03-{day:02d} 10:00"),
            "status": "paid",
        }
    )


DAYS = {
    1: day_orders(1, [("O1", "C1", "P1"), ("O1", "C1", "P2"), ("O2", "C2", "P9")]),  # P9: unknown product
    2: day_orders(2, [("O3", "C1", "P3"), ("O4", "C3", "P1")]),
    3: day_orders(3, [("O5", "C2", "P2"), ("O5", "C2", "P2")]),  # a duplicate within the file
}


def land(data: Path, days: dict[int, pd.DataFrame], products: pd.DataFrame | None = None) -> Path:
    """Write ``orders/dt=2025-03-DD/part-0.parquet`` per day and products.parquet (replacing any)."""
    data.mkdir(parents=True, exist_ok=True)
    orders = data / "orders"
    if orders.exists():
        for part in orders.rglob("*.parquet"):
            part.unlink()
    for day, frame in days.items():
        folder = orders / f"dt=2025-03-{day:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(folder / "part-0.parquet", index=False)
    (products if products is not None else products_frame()).to_parquet(
        data / "products.parquet", index=False
    )
    return data


@pytest.fixture
def validated_parts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files each validation reads again (not reused from the cache), in order."""
    seen: list[str] = []
    validate_parts = store._validate_parts

    def spy(entries, *args, **kwargs):
        seen.extend(f"{entry.part.name}:{entry.part.path.parent.name}" for entry in entries)
        return validate_parts(entries, *args, **kwargs)

    monkeypatch.setattr(store, "_validate_parts", spy)
    return seen


def validate(data: Path, out: Path, as_of: date, config: ValidationConfig | None = None) -> None:
    write_validated(read_dataset(data), as_of, out, chunk_rows=2, config=config, now=NOW)


def written(out: Path) -> dict[str, object]:
    """Every file validation writes for a reader: clean tables, quarantine files, the report."""
    files: dict[str, object] = {"validation.json": json.loads((out / "validation.json").read_text())}
    for path in sorted((out / "clean").glob("*.parquet")):
        files[f"clean/{path.name}"] = pd.read_parquet(path)
    for path in sorted((out / "quarantine").glob("*.csv")):
        files[f"quarantine/{path.name}"] = path.read_text()
    return files


def assert_same(incremental: Path, full: Path) -> None:
    left, right = written(incremental), written(full)
    assert left.keys() == right.keys()
    for name, value in left.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(value, right[name], check_exact=True)
        else:
            assert value == right[name], name


def nights(
    tmp_path: Path,
    second: dict[int, pd.DataFrame],
    as_of: date,
    products: pd.DataFrame | None = None,
    validated: list[str] | None = None,
) -> tuple[Path, Path]:
    """Night 1 on DAYS as of 2025-03-03, then night 2 on ``second``: (incremental out, full out).
    ``validated`` is left holding the files night 2 validated again."""
    data = land(tmp_path / "data", DAYS)
    out = tmp_path / "out"
    validate(data, out, date(2025, 3, 3))
    land(data, second, products)
    validated = validated if validated is not None else []
    validated.clear()
    validate(data, out, as_of)
    night_2 = list(validated)
    validate(data, tmp_path / "full", as_of)
    validated[:] = night_2
    return out, tmp_path / "full"


def test_one_new_day_validates_only_that_day(tmp_path: Path, validated_parts: list[str]) -> None:
    new_day = day_orders(4, [("O6", "C1", "P3")])
    incremental, full = nights(tmp_path, {**DAYS, 4: new_day}, date(2025, 3, 4), validated=validated_parts)
    assert_same(incremental, full)
    assert validated_parts == ["orders:dt=2025-03-04"]
    assert len(pd.read_parquet(incremental / "clean" / "orders.parquet")) == 2 + 2 + 1 + 1


def test_the_same_night_again_validates_nothing(tmp_path: Path, validated_parts: list[str]) -> None:
    data = land(tmp_path / "data", DAYS)
    validate(data, tmp_path / "out", date(2025, 3, 3))
    validated_parts.clear()
    validate(data, tmp_path / "out", date(2025, 3, 3))
    assert validated_parts == []
    validate(data, tmp_path / "full", date(2025, 3, 3))
    assert_same(tmp_path / "out", tmp_path / "full")


def test_a_duplicate_of_an_old_line_in_a_new_day_is_quarantined(tmp_path: Path) -> None:
    copy = DAYS[2].iloc[[1]].copy()  # O4's line again, with its time: the whole row repeats
    new_day = pd.concat([day_orders(4, [("O7", "C1", "P1")]), copy], ignore_index=True)
    incremental, full = nights(tmp_path, {**DAYS, 4: new_day}, date(2025, 3, 4))
    assert_same(incremental, full)
    quarantine = pd.read_csv(incremental / "quarantine" / "orders.csv")
    # source_row counts across the table's files: 3 + 2 + 2 rows before day 4's second line
    assert quarantine.set_index("source_row")["quarantine_reason"].to_dict() == {
        3: "unknown_product",
        7: "duplicate_row",
        9: "duplicate_row",
    }


def test_a_changed_old_file_is_validated_again_with_the_files_after_it(
    tmp_path: Path, validated_parts: list[str]
) -> None:
    changed = day_orders(2, [("O3", "C1", "P3"), ("O4", "C3", "P1"), ("O8", "C4", "P5")])  # P5 unknown
    incremental, full = nights(tmp_path, {**DAYS, 2: changed}, date(2025, 3, 3), validated=validated_parts)
    assert_same(incremental, full)
    assert validated_parts == ["orders:dt=2025-03-02", "orders:dt=2025-03-03"]


def test_a_deleted_file(tmp_path: Path) -> None:
    remaining = {day: frame for day, frame in DAYS.items() if day != 2}
    incremental, full = nights(tmp_path, remaining, date(2025, 3, 3))
    assert_same(incremental, full)
    assert len(pd.read_parquet(incremental / "clean" / "orders.parquet")) == 3


def test_a_new_line_that_makes_an_old_order_inconsistent(tmp_path: Path, validated_parts: list[str]) -> None:
    new_day = day_orders(4, [("O3", "C9", "P2")])  # order O3 of day 2, another consumer and day
    incremental, full = nights(tmp_path, {**DAYS, 4: new_day}, date(2025, 3, 4), validated=validated_parts)
    assert_same(incremental, full)
    assert validated_parts == ["orders:dt=2025-03-02", "orders:dt=2025-03-04"]
    reasons = pd.read_csv(incremental / "quarantine" / "orders.csv")["quarantine_reason"]
    assert (reasons == "order_inconsistent").sum() == 2


def test_a_product_added_later_lets_an_old_line_in(tmp_path: Path, validated_parts: list[str]) -> None:
    products = pd.concat(
        [products_frame(), pd.DataFrame({"product_id": ["P9"], "supplier_id": ["S3"], "category": ["toys"]})],
        ignore_index=True,
    ).assign(list_price=5.0)
    incremental, full = nights(tmp_path, DAYS, date(2025, 3, 3), products=products, validated=validated_parts)
    assert_same(incremental, full)
    assert validated_parts == ["products:data", "orders:dt=2025-03-01"]
    assert "unknown_product" not in (incremental / "quarantine" / "orders.csv").read_text()


def test_an_earlier_as_of_date_leaves_later_days_out(tmp_path: Path) -> None:
    incremental, full = nights(tmp_path, DAYS, date(2025, 3, 2))
    assert_same(incremental, full)
    assert json.loads((incremental / "validation.json").read_text())["tables"][1]["rows_out_of_window"] == 2


def test_a_config_change_validates_every_file_again(tmp_path: Path, validated_parts: list[str]) -> None:
    data = land(tmp_path / "data", DAYS)
    validate(data, tmp_path / "out", date(2025, 3, 3))
    validated_parts.clear()
    stricter = ValidationConfig(max_values={"unit_price": 5.0})
    validate(data, tmp_path / "out", date(2025, 3, 3), stricter)
    assert validated_parts == [
        "products:data",
        "orders:dt=2025-03-01",
        "orders:dt=2025-03-02",
        "orders:dt=2025-03-03",
    ]
    validate(data, tmp_path / "full", date(2025, 3, 3), stricter)
    assert_same(tmp_path / "out", tmp_path / "full")
    assert "unit_price_above_max" in (tmp_path / "out" / "quarantine" / "orders.csv").read_text()


def test_cache_keeps_only_what_the_last_run_used(tmp_path: Path) -> None:
    data = land(tmp_path / "data", DAYS)
    validate(data, tmp_path / "out", date(2025, 3, 3))
    land(data, {1: DAYS[1]})
    validate(data, tmp_path / "out", date(2025, 3, 3))
    orders_entries = [p for p in (tmp_path / "out" / "cache" / "orders").iterdir() if p.is_dir()]
    assert len(orders_entries) == 1
    assert len([p for p in orders_entries[0].iterdir() if p.is_dir()]) == 1


def test_a_single_file_table_is_validated_once_and_reused(tmp_path: Path, validated_parts: list[str]) -> None:
    data = tmp_path / "data"
    land(data, {})
    pd.concat(DAYS.values(), ignore_index=True).to_parquet(data / "orders.parquet", index=False)
    for _ in range(3):
        validate(data, tmp_path / "out", date(2025, 3, 3))
        assert not list((tmp_path / "out").rglob("*.partial"))  # every output renamed into place
    assert validated_parts == ["products:data", "orders:data"]


def cache_outcomes(out: Path) -> dict[str, str]:
    """Every file's kept outcome in the cache (its counts, reasons and notes), by cache path."""
    return {
        str(path.relative_to(out)): path.read_text() for path in sorted((out / "cache").rglob("result.json"))
    }


def test_files_checked_together_give_what_each_file_checked_alone_gives(tmp_path: Path) -> None:
    odd_day = day_orders(4, [("O9", "C5", "P1"), ("O3", "C7", "P2"), ("O1", "C1", "P1")])
    odd_day.loc[0, "quantity"] = None  # this file's quantity reads as float: a chunk of its own
    days = {**DAYS, 4: odd_day}  # O3 and O1 now disagree across files; O1's P1 line repeats day 1's
    data = land(tmp_path / "data", days)
    alone, together = tmp_path / "alone", tmp_path / "together"
    write_validated(read_dataset(data), date(2025, 3, 4), alone, chunk_rows=1, now=NOW)
    write_validated(read_dataset(data), date(2025, 3, 4), together, chunk_rows=1000, now=NOW)
    assert_same(together, alone)
    assert cache_outcomes(together) == cache_outcomes(alone)
    reasons = pd.read_csv(together / "quarantine" / "orders.csv").set_index("source_row")["quarantine_reason"]
    assert reasons.to_dict() == {
        1: "order_inconsistent",
        2: "order_inconsistent",
        3: "unknown_product",
        4: "order_inconsistent",
        7: "duplicate_row",
        8: "missing_quantity",
        9: "order_inconsistent",
        10: "duplicate_order_line;order_inconsistent",
    }


def test_a_clean_table_is_a_folder_of_the_cached_parts(tmp_path: Path) -> None:
    data = land(tmp_path / "data", DAYS)
    out = tmp_path / "out"
    (out / "clean").mkdir(parents=True)
    (out / "clean" / "orders.parquet").write_bytes(b"an earlier layout's single file")
    validate(data, out, date(2025, 3, 3))
    land(data, {**DAYS, 4: day_orders(4, [("O6", "C1", "P3")])})
    validate(data, out, date(2025, 3, 4))
    parts = sorted((out / "clean" / "orders.parquet").iterdir())
    assert [part.name for part in parts] == [f"part-{index:06d}.parquet" for index in range(4)]
    assert all(part.stat().st_nlink == 2 for part in parts)  # linked from the cache, not rewritten
    con = connect({"orders": out / "clean" / "orders.parquet"})
    read_by_duckdb = con.execute("SELECT order_id FROM orders").fetchdf()["order_id"].tolist()
    assert read_by_duckdb == ["O1", "O1", "O3", "O4", "O5", "O6"]
    assert not list(out.rglob("*.pkl")) and not list(out.rglob("*.partial"))


def test_tables_side_by_side_write_what_one_after_the_other_writes(tmp_path: Path) -> None:
    """``validation.tables_at_once`` changes how tables are scheduled, not what is written:
    events (needing only products) run beside orders; complaints wait for orders' lines."""
    data = land(tmp_path / "data", DAYS)
    events = pd.DataFrame(
        {
            "consumer_id": ["C1", "C2", "C1", "C1"],
            "distributor_id": "D1",
            "product_id": ["P1", "P9", "P2", "P1"],  # P9: unknown product
            "event_type": ["view", "view", "teleport", "view"],  # teleport: not an event type
            "event_at": pd.Timestamp("2025-03-02 09:00"),
        }
    )
    events = pd.concat([events, events.iloc[[0]]], ignore_index=True)  # a duplicate row
    events.to_parquet(data / "events.parquet", index=False)
    complaints = pd.DataFrame(
        {
            "complaint_id": ["K1", "K2", "K3"],
            "order_id": ["O1", "O3", "O9"],  # O9: no such order
            "product_id": ["P2", "P1", "P1"],  # O3 holds P3, not P1
            "consumer_id": ["C1", "C1", "C2"],
            "complained_at": pd.Timestamp("2025-03-03 12:00"),
            "reason": "broken",
        }
    )
    complaints.to_parquet(data / "complaints.parquet", index=False)
    one, two = tmp_path / "one", tmp_path / "two"
    validate(data, one, date(2025, 3, 3), ValidationConfig(tables_at_once=1))
    validate(data, two, date(2025, 3, 3), ValidationConfig(tables_at_once=2))
    assert_same(two, one)
    reports = json.loads((two / "validation.json").read_text())["tables"]
    assert [r["table"] for r in reports] == ["products", "orders", "events", "complaints"]
    reasons = {r["table"]: r["reasons"] for r in reports}
    assert reasons["events"] and reasons["complaints"] and reasons["orders"]


def test_tables_side_by_side_report_progress_in_the_callers_context(tmp_path: Path) -> None:
    """Each table's thread runs in a copy of the caller's context: a progress listener that needs
    the caller's context (the flow's Prefect artifacts, in a task's run context) finds it there."""
    run_of = contextvars.ContextVar("run_of", default="none")
    seen: list[tuple[str, str]] = []
    remove = add_listener(lambda update: seen.append((update.step, run_of.get())))
    token = run_of.set("task-1")
    try:
        data = land(tmp_path / "data", DAYS)
        validate(data, tmp_path / "out", date(2025, 3, 3), ValidationConfig(tables_at_once=2))
    finally:
        run_of.reset(token)
        remove()
    steps = {step for step, _ in seen}
    assert {"validating products", "validating orders"} <= steps
    assert {context for _, context in seen} == {"task-1"}
