"""The nightly benchmark's pure parts: run_timings.json, the scaling exponent, landing a lake."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks.bench_nightly import (
    Night,
    RunTimings,
    SizeRun,
    _cpu,
    compare,
    land,
    land_single,
    last_day,
    markdown,
    measure_size,
    median,
    order_lines,
    parse_run_timings,
    partition_day,
    partitioned_copy,
    peak_rss_from_time,
    rounds,
    run_measured,
    scaling_exponent,
    sizes_argument,
)


def test_run_timings_are_read_with_their_four_keys() -> None:
    text = json.dumps(
        {
            "tasks": {"validate": 12.5, "segment": 3},
            "wall_seconds": 40.25,
            "peak_rss_bytes": 2**31,
            "orders_scans": 4,
            "rows": {"orders": 10},
        }
    )
    assert parse_run_timings(text) == RunTimings({"validate": 12.5, "segment": 3.0}, 40.25, 2**31, 4)


def test_each_tasks_peak_memory_and_the_budget_are_read_and_tabled_with_the_tasks_over_it() -> None:
    text = json.dumps(
        {
            "tasks": {"validate": 12.5, "segment": 3},
            "wall_seconds": 40.0,
            "task_peak_rss_bytes": {"validate": 2**30, "segment": 3 * 2**30, "odd": "big"},
            "memory_budget_bytes": 2 * 2**30,
        }
    )
    timings = parse_run_timings(text)
    assert timings.task_peak_rss_bytes == {"validate": 2**30, "segment": 3 * 2**30}
    assert timings.memory_budget_bytes == 2 * 2**30
    night = Night("first", "2025-12-30", 45.5, 3 * 2**30, 1.0, 1.0, 10, 1_000, timings)
    run = SizeRun(5_000, 300, 1_000, "/data", 1.0, [night])
    table = markdown([run], compare([run]), "psutil")
    assert "| validate | 1.00 |" in table and "| segment | 3.00 ! |" in table
    assert "step memory budget: 2.00 GiB" in table
    # outside the flow: 45.5 s less its 40 s
    assert table.splitlines()[2].endswith("| 5.5 | n/a | n/a | 1 | n/a |")


def test_outside_the_flow_is_split_at_the_flows_start_into_start_up_and_exit() -> None:
    """``started_at`` (the flow clock's Unix time) less the process's launch is the start-up; the
    rest of the time outside the flow comes after it."""
    timings = parse_run_timings(json.dumps({"tasks": {}, "wall_seconds": 40.0, "started_at": 1_000_003.0}))
    assert timings.started_at == 1_000_003.0
    night = Night("first", "2025-12-30", 45.5, None, 1.0, 1.0, 10, 1_000, timings, launched_at=1_000_000.0)
    assert night.before_flow_seconds() == 3.0
    run = SizeRun(5_000, 300, 1_000, "/data", 1.0, [night])
    row = markdown([run], compare([run]), "psutil").splitlines()[2]
    assert row.endswith("| 5.5 | 3.0 / 2.5 | n/a | 1 | n/a |")


def test_missing_or_malformed_keys_read_as_absent() -> None:
    text = json.dumps(
        {"tasks": {"validate": "slow", "segment": 1.0}, "wall_seconds": None, "orders_scans": True}
    )
    assert parse_run_timings(text) == RunTimings({"segment": 1.0}, None, None, None)
    assert parse_run_timings("[]") == RunTimings({}, None, None, None)


def test_the_scaling_exponent_is_one_for_linear_time_and_exact_otherwise() -> None:
    assert scaling_exponent((1_000_000, 60.0), (10_000_000, 600.0)) == pytest.approx(1.0)
    assert scaling_exponent((1_000_000, 60.0), (10_000_000, 60.0 * 10**1.05)) == pytest.approx(1.05)
    assert scaling_exponent((100, 10.0), (400, 20.0)) == pytest.approx(math.log(2) / math.log(4))
    with pytest.raises(ValueError, match="two different positive sizes"):
        scaling_exponent((100, 10.0), (100, 20.0))


def test_partition_folders_peak_rss_and_sizes_are_parsed() -> None:
    assert partition_day("dt=2025-12-31") == date(2025, 12, 31)
    assert partition_day("dt=latest") is None
    assert partition_day("day=2025-12-31") is None
    report = (
        "\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02.50\n\tMaximum resident set size (kbytes): 2048\n"
    )
    assert peak_rss_from_time(report) == 2 * 2**20
    assert peak_rss_from_time("no report") is None
    assert sizes_argument("100000,1_000_000:300000") == [(100_000, None), (1_000_000, 300_000)]
    with pytest.raises(argparse.ArgumentTypeError, match="consumers\\[:distributors\\]"):
        sizes_argument("1e6")


def _touch(path: Path, text: str = "x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_lake_gets_every_day_up_to_the_night_and_the_next_day_later(tmp_path: Path) -> None:
    source, lake = tmp_path / "source", tmp_path / "lake"
    for day in ("2025-12-29", "2025-12-30", "2025-12-31"):
        _touch(source / "orders" / f"dt={day}" / "part-0.parquet", day)
    _touch(source / "events" / "dt=2025-12-31" / "part-0.parquet")
    _touch(source / "products.parquet")
    _touch(source / "truth" / "consumer_traits.parquet")
    assert last_day(source) == date(2025, 12, 31)

    assert land(source, lake, date(2025, 12, 30)) == 3
    files = sorted(str(p.relative_to(lake)) for p in lake.rglob("*") if p.is_file())
    assert files == [
        "orders/dt=2025-12-29/part-0.parquet",
        "orders/dt=2025-12-30/part-0.parquet",
        "products.parquet",
    ]
    assert (lake / "orders/dt=2025-12-29/part-0.parquet").stat().st_ino == (
        source / "orders/dt=2025-12-29/part-0.parquet"
    ).stat().st_ino  # a hard link: the same bytes, no copy

    assert land(source, lake, date(2025, 12, 31)) == 2  # the last day's orders and events
    assert (lake / "orders/dt=2025-12-31/part-0.parquet").read_text() == "2025-12-31"
    assert not (lake / "truth").exists()


def test_the_report_says_n_a_for_what_the_flow_did_not_write_and_gives_the_share() -> None:
    first = Night(
        "first",
        "2025-12-30",
        100.0,
        3 * 2**30,
        1.0,
        2.0,
        10,
        51_234,
        RunTimings({"validate": 40.0}, 95.0, None, 4),
    )
    second = Night("next", "2025-12-31", 50.0, None, 2.0, 2.0, 2, 51_300, None, share_of_first=0.5)
    run = SizeRun(5_000, 300, 51_400, "/data", 3.0, [first, second])
    table = markdown([run], compare([run]), "psutil")
    rows = table.splitlines()
    assert "| 5,000 | 300 | 51,234 | first | 2025-12-30 | 100.0 | 3.00 | 95.0 | n/a | 4 | n/a |" in rows[2]
    assert "| 51,300 | next | 2025-12-31 | 50.0 | n/a | n/a | n/a | n/a | 50% |" in rows[3]
    assert "| validate | 40.0 | n/a |" in table


def _run(consumers: int, distributors: int, lines: int, wall: float, peak: int) -> SizeRun:
    night = Night("first", "2025-12-30", wall, peak, 1.0, 1.0, 10, lines)
    return SizeRun(consumers, distributors, lines, "/data", 1.0, [night])


def test_two_sizes_give_the_exponent_and_two_distributor_counts_the_memory_per_distributor() -> None:
    by_lines = compare(
        [_run(100_000, 300, 1_000_000, 60.0, 2**30), _run(1_000_000, 300, 10_000_000, 600.0, 2**32)]
    )
    assert by_lines == {"scaling_exponent": pytest.approx(1.0), "kib_per_distributor": None}
    added = 300_000 - 300
    by_distributors = compare(
        [
            _run(1_000_000, 300, 10_000_000, 600.0, 2**32),
            _run(1_000_000, 300_000, 10_000_100, 650.0, 2**32 + added * 1024),
        ]
    )
    assert by_distributors == {"scaling_exponent": None, "kib_per_distributor": pytest.approx(1.0)}
    assert compare([_run(100, 3, 1_000, 6.0, 1)]) == {"scaling_exponent": None, "kib_per_distributor": None}


def test_a_single_file_lake_holds_each_table_up_to_the_night_in_day_order(tmp_path: Path) -> None:
    source, lake = tmp_path / "source", tmp_path / "lake"
    for day, quantity in (("2025-12-31", 3), ("2025-12-29", 1), ("2025-12-30", 2)):
        part = source / "orders" / f"dt={day}" / "part-0.parquet"
        part.parent.mkdir(parents=True)
        pq.write_table(pa.table({"quantity": [quantity, quantity]}), part)
    _touch(source / "products.parquet")

    assert land_single(source, lake, date(2025, 12, 30)) == 2
    assert pq.read_table(lake / "orders.parquet").column_names == ["quantity"]  # no dt column
    assert pq.read_table(lake / "orders.parquet")["quantity"].to_pylist() == [1, 1, 2, 2]
    assert land_single(source, lake, date(2025, 12, 31)) == 1  # orders rewritten, products kept
    assert pq.read_table(lake / "orders.parquet")["quantity"].to_pylist() == [1, 1, 2, 2, 3, 3]
    assert sorted(p.name for p in lake.iterdir()) == ["orders.parquet", "products.parquet"]


def test_a_single_file_data_set_is_split_into_day_partitions_without_the_day_column(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    at = pa.array([datetime(2025, 12, 30, 23, 59), datetime(2025, 12, 31, 0, 1)], pa.timestamp("ns"))
    pq.write_table(
        pa.table({"complaint_id": ["K1", "K2"], "complained_at": at}), source / "complaints.parquet"
    )
    pq.write_table(pa.table({"order_id": ["O1", "O2"], "ordered_at": at}), source / "orders.parquet")
    _touch(source / "products.parquet")

    target = partitioned_copy(source, tmp_path / "partitioned")
    assert last_day(target) == date(2025, 12, 31)
    assert order_lines(target) == order_lines(source) == 2
    for table in ("complaints", "orders"):
        late = pq.read_table(next((target / table / "dt=2025-12-31").glob("*.parquet")))
        assert late.num_rows == 1 and "dt" not in late.column_names
    assert (target / "products.parquet").exists()


def _pair(code: str, number: int, first: float, next_night: float, lines: int = 1_000) -> SizeRun:
    nights = [
        Night("first", "2025-12-30", first, 2**30, 1.0, 1.0, 10, lines),
        Night("next", "2025-12-31", next_night, 2**31, 1.0, 1.0, 2, lines, share_of_first=next_night / first),
    ]
    return SizeRun(5_000, 300, lines, "/data", 1.0, nights, code=code, round=number)


def test_the_median_is_the_middle_value_or_the_mean_of_the_two_middle_ones() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError):
        median([])


def test_rounds_give_each_codes_medians_and_every_rounds_figures() -> None:
    runs = [
        _pair("/clones/before", 1, 100.0, 70.0),
        _pair("/clones/after", 1, 90.0, 45.0),
        _pair("/clones/before", 2, 80.0, 60.0),
        _pair("/clones/after", 2, 110.0, 44.0),
        _pair("/clones/before", 3, 120.0, 66.0),
        _pair("/clones/after", 3, 100.0, 60.0),
    ]
    before, after = rounds(runs)
    assert (before.code, before.first, before.next) == ("before", [100.0, 80.0, 120.0], [70.0, 60.0, 66.0])
    assert median(before.shares) == pytest.approx(0.7)  # 0.7, 0.75, 0.55: the median of the ratios
    assert median(after.next) == 45.0 and after.peak_rss_bytes == 2**31
    table = markdown(runs, compare(runs), "psutil")
    after_line = (
        "| 5,000:300 | after | 3 | 100.0 (90.0, 110.0, 100.0) | 45.0 (45.0, 44.0, 60.0) "
        "| 50% (50%, 40%, 60%) | 2.00 |"
    )
    assert after_line in table.splitlines()
    assert table.splitlines()[3].endswith("| 70% | 1.0→1.0 | n/a | n/a | n/a | 1 | before |")


def test_sizes_are_compared_within_the_first_codes_first_round() -> None:
    small_before, small_after = _pair("/b", 1, 60.0, 30.0, 1_000_000), _pair("/a", 1, 6.0, 3.0, 1_000_000)
    big_before = _pair("/b", 1, 600.0, 300.0, 10_000_000)
    big_before.consumers = 50_000
    found = compare([small_before, small_after, big_before])
    assert found["scaling_exponent"] == pytest.approx(1.0)  # 60 -> 600 s, not the other code's 6 s


def _orders_day(data: Path, day: date) -> None:
    folder = data / "orders" / f"dt={day}"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"order_id": ["o1", "o2"]}), folder / "part-0.parquet")


def test_rounds_alternate_the_codes_each_on_a_new_lake_and_work_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    _orders_day(data, date(2025, 12, 30))
    ran: list[tuple[str, Path]] = []

    def fake_nights(args: argparse.Namespace, source: Path, folder: Path, run: SizeRun, code: Path) -> None:
        assert not (folder / "lake").exists()  # every round starts on a new lake
        (folder / "lake").mkdir()
        ran.append((code.name, folder.relative_to(tmp_path / "scratch" / "data")))
        run.nights.append(Night("first", "2025-12-30", 1.0, None, 0.0, 0.0, 1, run.order_lines))

    monkeypatch.setattr("benchmarks.bench_nightly.run_nights", fake_nights)
    args = argparse.Namespace(data=data, rounds=2, codes=[tmp_path / "before", tmp_path / "after"])
    runs = measure_size(args, None, 300, tmp_path / "scratch")
    assert ran == [
        ("before", Path("round1-code1")),
        ("after", Path("round1-code2")),
        ("before", Path("round2-code1")),
        ("after", Path("round2-code2")),
    ]
    assert [(run.round, Path(run.code).name) for run in runs] == [
        (1, "before"), (1, "after"), (2, "before"), (2, "after"),
    ]  # fmt: skip
    assert all(not (tmp_path / "scratch" / "data" / folder / "lake").exists() for _, folder in ran)


def test_a_commands_cpu_seconds_count_its_children_and_show_as_a_share_of_the_cores(tmp_path: Path) -> None:
    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {busy!r}], check=True)"
    measured = run_measured([sys.executable, "-c", parent], tmp_path, tmp_path / "run.log", 0.05)
    assert measured.cpu_seconds >= 0.3  # the grandchild's busy loop is counted
    assert measured.cpu_seconds <= measured.wall_seconds * (os.cpu_count() or 1) + 0.1
    night = Night("first", "2025-12-30", 10.0, None, 0.0, 0.0, 1, 10, cpu_seconds=15.0)
    assert _cpu(night, cores=2) == "15.0 (75%)"
    assert _cpu(Night("next", "2025-12-31", 10.0, None, 0.0, 0.0, 1, 10), cores=2) == "n/a"
