"""One engine session per run: orders read from Parquet once, shared views, memory limit and spill folder."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest
from pydantic import ValidationError

from features.clv import btyd_summary
from features.columns import Table
from features.consumer_features import consumer_features
from features.distributor_features import distributor_features, distributor_monthly
from features.engine import EngineConfig, connect, session, setting, table_reads
from features.interactions import build_interactions, purchased_pairs
from features.quality_counts import quality_counts
from tests.features.test_consumer_features import AS_OF, all_tables


def _write(tables: dict[str, pd.DataFrame], folder: Path) -> dict[str, Path]:
    paths = {}
    for name, frame in tables.items():
        paths[name] = folder / f"{name}.parquet"
        frame.to_parquet(paths[name])
    return paths


def _every_builder(con) -> dict[str, pd.DataFrame]:
    """What the nightly's steps ask of the orders table, builder by builder."""
    return {
        "consumer_features": consumer_features(con, AS_OF),
        "distributor_monthly": distributor_monthly(con, AS_OF, months=3),
        "distributor_features": distributor_features(con, AS_OF),
        "btyd_summary": btyd_summary(con, AS_OF),
        "interactions": build_interactions(con, AS_OF),
        "purchased_pairs": purchased_pairs(con, AS_OF.days_before(30), AS_OF),
        "quality_counts": quality_counts(con, AS_OF, 30, 0),
    }


def test_orders_are_read_from_parquet_once_and_never_again(tmp_path: Path) -> None:
    """After ``connect`` the orders file can go: no builder scans it again (the run reads it once)."""
    paths = _write(all_tables(), tmp_path)
    before = table_reads().get(Table.ORDERS, 0)
    con = connect(paths)
    assert table_reads().get(Table.ORDERS, 0) == before + 1
    paths[Table.ORDERS].unlink()
    from_session = _every_builder(con)
    assert table_reads().get(Table.ORDERS, 0) == before + 1
    from_frames = _every_builder(connect(all_tables()))
    for name, frame in from_frames.items():
        pd.testing.assert_frame_equal(from_session[name], frame, check_dtype=False, obj=name)


def test_a_table_left_as_a_view_needs_its_file_at_every_query(tmp_path: Path) -> None:
    """The counter-test of the one above: deleting a file a view reads breaks the next query."""
    paths = _write(all_tables(), tmp_path)
    con = connect(paths)
    paths[Table.PRODUCTS].unlink()
    with pytest.raises(duckdb.IOException):
        con.execute("SELECT count(*) FROM products").fetchone()


def test_paid_lines_view_and_order_baskets_macro() -> None:
    con = connect(all_tables())
    paid = con.execute("SELECT order_id, product_id, cents FROM paid_lines ORDER BY 1, 2").fetchall()
    assert paid == [("O1", "P1", 2000), ("O1", "P3", 10000), ("O4", "P2", 2000), ("O5", "P1", 1000)]
    baskets = con.execute(
        "SELECT consumer_id, order_id, distributor, paid_cents, paid_lines, returned_lines "
        "FROM order_baskets($end) ORDER BY 1, 2",
        {"end": AS_OF.days_before(10).end},  # 2025-03-21: O4 (03-30) and O3 (03-25) are later
    ).fetchall()
    assert baskets == [
        ("C1", "O1", "D1", 12000, 2, 0),
        ("C1", "O2", "D1", None, 0, 1),  # returned only: no paid cents
        ("C2", "O5", "D1", 1000, 1, 0),
        ("C3", "O6", "D2", None, 0, 0),  # cancelled: neither paid nor returned
    ]


def test_session_applies_the_engine_config_and_removes_its_spill_folder(tmp_path: Path) -> None:
    config = EngineConfig(memory_limit="512MB", threads=1)
    spill = tmp_path / "work" / "duckdb_tmp"
    with session(all_tables(), config, tmp_path / "work") as con:
        limit, threads, temp = con.execute(
            "SELECT current_setting('memory_limit'), current_setting('threads'), "
            "current_setting('temp_directory')"
        ).fetchone()
        assert (limit, threads, Path(temp)) == ("488.2 MiB", 1, spill)
        assert spill.is_dir()
    assert not spill.exists()


def test_spill_folder_defaults_under_the_work_dir_and_can_be_set(tmp_path: Path) -> None:
    assert EngineConfig().spill_dir(tmp_path) == tmp_path / "duckdb_tmp"
    assert EngineConfig(temp_directory=tmp_path / "x").spill_dir(Path("w")) == tmp_path / "x"


@pytest.mark.parametrize("bad", ["lots", "4", "-1GB", "4 parsecs"])
def test_memory_limit_must_be_an_amount(bad: str) -> None:
    with pytest.raises(ValidationError, match="not an amount of memory"):
        EngineConfig(memory_limit=bad)


def test_setting_is_restored_after_the_block() -> None:
    con = connect(all_tables())
    with setting(con, "preserve_insertion_order", False):
        assert con.execute("SELECT current_setting('preserve_insertion_order')").fetchone() == (False,)
    assert con.execute("SELECT current_setting('preserve_insertion_order')").fetchone() == (True,)
