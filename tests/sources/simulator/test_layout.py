"""The simulator's layouts: one file per table as before, or day partitions as a data lake lands them."""

from __future__ import annotations

import hashlib
import logging
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.columns import Table
from sources import simulator
from sources.simulator import SimulationConfig, simulate
from sources.simulator.config import DAY_COLUMNS, PARTITION_KEY, Layout
from sources.simulator.sinks import partition_path
from tests.cli import run_cli

TINY = SimulationConfig(consumers=400, distributors=12, products=120, days=60, seed=3)
PARTITIONED = TINY.model_copy(update={"layout": Layout.PARTITIONED})

# sha256 of every file ``simulate`` wrote for TINY before layouts existed (main 9a63909): the
# single layout must stay byte-identical. One exception, on purpose: truth/defective_products.csv
# gained the defect_onset column (issue #15); its other columns are unchanged. The consumer traits
# are held apart (TRAITS below): their floats come from numpy's vectorised exp/log, whose last
# bits depend on the CPU's SIMD kernels (AVX-512 or not), so their bytes differ between CPUs.
SINGLE_DIGESTS = {
    "complaints.parquet": "85dd380c4a6d7fd933bc838545b3e23d551c70ce87636b3b9f5fe4bff98c3cd4",
    "consumers.parquet": "9a156cb4ffe903dbf0aa09bdfa1dafbc8223177880720eb21e3732d6b8e51a15",
    "distributors.parquet": "7fe3a9d7f770934df36bceea97512125a03678469b045b3d724767723e3c4bed",
    "events.parquet": "8be0e27f1477e406a95acf16a06c5190f4c4fb54445706818f66427d6c428e82",
    "orders.parquet": "5eb5e316a2cbfd3cf66550a125a63588b004371787ad3f7bd4efb8bd22e580d6",
    "products.parquet": "43f51f099717553d8a8c3ed54d3d615f891a45004152260d43a6f25c7465f8b6",
    "truth/community_tastes.parquet": "b9fd030af245e2520edc26285037b018a9d3bbcec6c2810aa80d6c8531538847",
    "truth/consumer_brand_tastes.parquet": "4fada0d41374c9362aab0bb2014c52792f9151a0488e72fb27e9c9d0e72e799d",
    "truth/consumer_tastes.parquet": "2080a0f18a353fe748bdd97d8bb8fd71035c549eae85a73699ab708e297110c3",
    "truth/defective_products.csv": "d5621a5252161df15bea23df563d18f113cac24d148454db66f5e85880b55349",
}
# truth/consumer_traits.parquet as main 9a63909's simulator wrote it for TINY (on an AMD EPYC
# without AVX-512; on the AVX-512 machine it had sha256 7626e942...): the same schema and ids
# and churn times exactly, the Gamma and lognormal draws to TRAITS_RTOL (a changed draw moves
# them by far more).
TRAITS = "truth/consumer_traits.parquet"
TRAITS_FIXTURE = Path(__file__).parent / "fixtures" / "consumer_traits_tiny.parquet"
TRAITS_FLOATS, TRAITS_RTOL = ["purchase_rate", "price_sensitivity"], 1e-7


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _assert_single_layout_as_before(folder: Path) -> None:
    digests = _digests(folder)
    assert TRAITS in digests
    assert {name: digest for name, digest in digests.items() if name != TRAITS} == SINGLE_DIGESTS
    got, expected = pq.read_table(folder / TRAITS), pq.read_table(TRAITS_FIXTURE)
    assert got.schema.equals(expected.schema, check_metadata=True)
    got, expected = got.to_pandas(), expected.to_pandas()
    exact = [column for column in expected.columns if column not in TRAITS_FLOATS]
    pd.testing.assert_frame_equal(got[exact], expected[exact], check_exact=True)
    for column in TRAITS_FLOATS:
        np.testing.assert_allclose(got[column], expected[column], rtol=TRAITS_RTOL, atol=0, err_msg=column)


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """TINY in both layouts, simulated in chunks of 100 consumers so that a day spans chunks."""
    single, partitioned = tmp_path_factory.mktemp("single"), tmp_path_factory.mktemp("partitioned")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(simulator, "CHUNK_CONSUMERS", 100)
        simulate(single, TINY)
        simulate(partitioned, PARTITIONED)
    return single, partitioned


def test_the_single_layout_is_byte_identical_to_before(tmp_path: Path) -> None:
    """Byte for byte, but for the consumer traits' CPU-dependent float bits (see TRAITS)."""
    simulate(tmp_path, TINY)
    _assert_single_layout_as_before(tmp_path)


def test_each_day_file_holds_that_days_rows_in_the_single_files_order(both: tuple[Path, Path]) -> None:
    single, partitioned = both
    for table, day_column in DAY_COLUMNS.items():
        expected = pd.read_parquet(single / f"{table}.parquet")
        expected_days = expected[day_column].dt.date
        days = sorted(
            date.fromisoformat(folder.name.removeprefix(f"{PARTITION_KEY}="))
            for folder in (partitioned / table).iterdir()
        )
        assert days == sorted(set(expected_days)), table
        for day in days:
            rows = pd.read_parquet(partition_path(partitioned, table, day))
            assert (rows[day_column].dt.date == day).all(), (table, day)
            pd.testing.assert_frame_equal(rows, expected[expected_days == day].reset_index(drop=True))


def test_the_other_tables_are_the_same_files_in_both_layouts(both: tuple[Path, Path]) -> None:
    single, partitioned = (_digests(folder) for folder in both)
    day_files = {name: digest for name, digest in partitioned.items() if name.split("/")[0] in DAY_COLUMNS}
    assert len(day_files) > 100  # 60 days of orders and events, a few of complaints
    assert {name: digest for name, digest in partitioned.items() if name not in day_files} == {
        name: digest for name, digest in single.items() if name.removesuffix(".parquet") not in DAY_COLUMNS
    }


def test_the_partitioned_layout_is_deterministic_and_reports_rows_per_table(tmp_path: Path) -> None:
    first = simulate(tmp_path / "a", PARTITIONED)
    simulate(tmp_path / "b", PARTITIONED)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    orders = pd.read_parquet(tmp_path / "a" / Table.ORDERS)  # the partitions read as one table
    assert first.rows[Table.ORDERS] == first.order_lines == len(orders)
    assert list(first.rows) == [name for name in Table.ALL if name in first.rows]


def test_a_failed_partitioned_run_leaves_no_file_and_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_partitions(self: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(simulator.Sinks, "finish", broken_partitions)
    with pytest.raises(RuntimeError, match="disk full"):
        simulate(tmp_path, PARTITIONED)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["truth"]


def test_a_rerun_in_the_other_layout_leaves_each_table_in_one_form(tmp_path: Path) -> None:
    simulate(tmp_path, TINY.model_copy(update={"layout": Layout.PARTITIONED, "days": 90}))
    simulate(tmp_path, PARTITIONED)  # 60 days: the 30 later partitions are stale
    assert not (tmp_path / f"{Table.ORDERS}.parquet").exists()
    assert len(list((tmp_path / Table.ORDERS).iterdir())) == 60
    simulate(tmp_path, TINY)
    _assert_single_layout_as_before(tmp_path)


def test_simulate_command_takes_the_layout_and_refuses_an_unknown_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sizes = ["--consumers", "50", "--distributors", "3", "--products", "24", "--days", "14"]
    assert run_cli(monkeypatch, "simulate", "--out", str(tmp_path), *sizes, "--layout", "partitioned") == 0
    assert list((tmp_path / Table.ORDERS).glob(f"{PARTITION_KEY}=*/part-0.parquet"))
    assert run_cli(monkeypatch, "simulate", "--out", str(tmp_path), "--layout", "lake") == 2
    error = capsys.readouterr().err
    assert "--layout lake" in error and "'single' or 'partitioned'" in error and "fix:" in error


def test_a_partitioned_table_without_rows_leaves_no_folder_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # One consumer over a week: with this seed they order nothing (as in test_sinks).
    nothing = SimulationConfig(
        consumers=1, distributors=1, products=24, days=7, seed=1, defective_share=0.0, events=False
    )
    with caplog.at_level(logging.WARNING):
        summary = simulate(tmp_path, nothing.model_copy(update={"layout": Layout.PARTITIONED}))
    assert summary.rows[Table.ORDERS] == summary.rows[Table.COMPLAINTS] == 0
    assert not any((tmp_path / name).exists() for name in DAY_COLUMNS)
    assert f"{Table.ORDERS}: no rows simulated, so no partition is written" in caplog.text
    assert Table.EVENTS not in caplog.text  # not simulated at all (events=False): nothing to say
    assert Table.EVENTS not in summary.rows
