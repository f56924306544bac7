"""Benchmark of the whole nightly, as a user runs it: first night, next night, and scaling.

For each size the data is simulated in the partitioned layout (``siyu simulate --layout
partitioned``: orders, events and complaints as day partitions ``orders/dt=YYYY-MM-DD/``) into
a scratch folder, or taken from ``--data DIR`` (a single-file table is split into day
partitions first, with DuckDB). The data then lands in a "lake" folder as it would land on a
platform, by hard links, and ``siyu nightly --data LAKE`` runs in a child process twice, with
one work folder:

- the first night: every day but the last (the as-of day), ``--as-of`` the day before it;
- the next night: the last day's partitions appended, ``--as-of`` the last day; its wall time
  is reported as a share of the first night's.

With ``--layout single`` the lake holds each of those tables as one file instead, rewritten
each night (today's layout, to measure a baseline checkout given by ``--code``).

Each night is measured from outside: wall time (``time.perf_counter``), the CPU seconds (user +
system) of the nightly and every process it started (``getrusage(RUSAGE_CHILDREN)``; with the
share of what the machine's cores could give in that wall time: a night near 100% waits on the
CPU, not on its steps' order) and peak RSS of the
process tree (psutil, sampled; without psutil ``/usr/bin/time -v``'s maximum resident set
size of the largest single process; the report says which). From inside, when the flow
writes ``<work>/run_timings.json``: seconds per task, each task's peak RSS of the process
tree (against ``flow.step_memory_budget``), the flow's own wall and peak RSS, and how often it
scanned the orders data ("n/a" when the file is absent). "outside flow" is the night's wall
less the flow's: the process start, imports, the local Prefect server's start and stop; "before / after
flow" splits it at the flow's start (``started_at`` in ``run_timings.json``): start-up, then the server's
stop and the interpreter's exit. With ``--rounds N`` the nights run N times, each round on a new lake and work
folder (``round<N>-code<i>/``), and several ``--code`` checkouts run one after the other in
each round (alternated, so that the machine's drift falls on each alike); the report adds each
size and code's medians over the rounds of the first night, the next night and their ratio, with
every round's figure: on a shared machine one night moves by tens of percent between runs. With several sizes
(``--sizes``, each ``consumers[:distributors]``) the first and the last are compared on their
first nights: the scaling exponent ``log(t_big / t_small) / log(lines_big / lines_small)``
when their order lines differ, the peak memory per added distributor when only their
distributors differ. Output: a markdown table on stdout and, with ``--json``, a JSON file. Every
figure is an upper bound on a shared machine; the load average is recorded with it. Nothing
here asserts a speed.

Run from the repository root (the ``siyu`` of ``--code``, default this checkout, is run):

    python benchmarks/bench_nightly.py --consumers 20000
    python benchmarks/bench_nightly.py --sizes 100000,1000000 --json /tmp/bench/nightly.json
    python benchmarks/bench_nightly.py --sizes 1000000:300,1000000:300000   # memory per distributor
    python benchmarks/bench_nightly.py --data /tmp/data/online_retail --as-of 2010-09-09
    python benchmarks/bench_nightly.py --data /tmp/data/sim100k --rounds 3 --code BEFORE --code AFTER
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RUN_TIMINGS = "run_timings.json"  # written by the nightly flow into its work folder
PARTITION_KEY = "dt"  # as sources.simulator.config.PARTITION_KEY; this script imports no siyu code
DAY_TABLES = {"orders": "ordered_at", "events": "event_at", "complaints": "complained_at"}
SIYU = "import sys; sys.argv[0] = 'siyu'; from pipelines.cli import main; main()"
GIB = 2**30

logger = logging.getLogger("bench_nightly")


# --- pure helpers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunTimings:
    """What the flow measured itself (``<work>/run_timings.json``); None where a key is missing."""

    tasks: dict[str, float]
    wall_seconds: float | None
    peak_rss_bytes: int | None
    orders_scans: int | None
    task_peak_rss_bytes: dict[str, int] = field(default_factory=dict)
    memory_budget_bytes: int | None = None
    started_at: float | None = None  # when the flow's clock started (Unix time)


def parse_run_timings(text: str) -> RunTimings:
    """``run_timings.json``'s keys ``tasks`` {name: seconds}, ``wall_seconds``,
    ``peak_rss_bytes``, ``orders_scans``, ``task_peak_rss_bytes`` {name: bytes},
    ``memory_budget_bytes`` and ``started_at``; a missing or malformed key reads as absent."""
    data = json.loads(text)
    if not isinstance(data, dict):
        return RunTimings({}, None, None, None)
    return RunTimings(
        tasks=_numbers(data.get("tasks"), float),
        wall_seconds=float(data["wall_seconds"]) if _is_number(data.get("wall_seconds")) else None,
        peak_rss_bytes=int(data["peak_rss_bytes"]) if _is_number(data.get("peak_rss_bytes")) else None,
        orders_scans=int(data["orders_scans"]) if _is_number(data.get("orders_scans")) else None,
        task_peak_rss_bytes=_numbers(data.get("task_peak_rss_bytes"), int),
        memory_budget_bytes=(
            int(data["memory_budget_bytes"]) if _is_number(data.get("memory_budget_bytes")) else None
        ),
        started_at=float(data["started_at"]) if _is_number(data.get("started_at")) else None,
    )


def _numbers(values: object, kind: type) -> dict[str, Any]:
    """{name: number} of a JSON object, leaving out what is not a number."""
    if not isinstance(values, dict):
        return {}
    return {str(name): kind(value) for name, value in values.items() if _is_number(value)}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def scaling_exponent(small: tuple[float, float], big: tuple[float, float]) -> float:
    """``log(t_big / t_small) / log(lines_big / lines_small)`` of two (order lines, seconds)
    pairs: 1.0 is linear, above 1 superlinear."""
    (lines_small, t_small), (lines_big, t_big) = small, big
    if min(lines_small, t_small, lines_big, t_big) <= 0 or lines_small == lines_big:
        raise ValueError(f"need two different positive sizes and positive times, got {small} and {big}")
    return math.log(t_big / t_small) / math.log(lines_big / lines_small)


def partition_day(folder: str) -> date | None:
    """The day of a Hive-style day partition folder (``dt=2025-12-31``), else None."""
    match = re.fullmatch(rf"{PARTITION_KEY}=(\d{{4}}-\d{{2}}-\d{{2}})", folder)
    return date.fromisoformat(match.group(1)) if match else None


def peak_rss_from_time(report: str) -> int | None:
    """Bytes of ``/usr/bin/time -v``'s "Maximum resident set size (kbytes)", if present."""
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    return int(match.group(1)) * 1024 if match else None


def kib_per_distributor(small: tuple[int, int], big: tuple[int, int]) -> float:
    """Peak memory per added distributor, KiB, from two (distributors, peak RSS bytes) pairs."""
    (distributors_small, peak_small), (distributors_big, peak_big) = small, big
    if distributors_small == distributors_big:
        raise ValueError(f"need two different distributor counts, got {distributors_small} twice")
    return (peak_big - peak_small) / (distributors_big - distributors_small) / 1024


def sizes_argument(text: str) -> list[tuple[int, int | None]]:
    """``--sizes 100000,1000000:30000`` as (consumers, distributors or None for --distributors)."""
    sizes: list[tuple[int, int | None]] = []
    for part in filter(None, (part.strip() for part in text.split(","))):
        consumers, _, distributors = part.replace("_", "").partition(":")
        if not consumers.isdigit() or not (distributors.isdigit() or not distributors):
            raise argparse.ArgumentTypeError(
                f"{part!r}: expected consumers[:distributors], e.g. 100000,1000000 or 1000000:300000"
            )
        sizes.append((int(consumers), int(distributors) if distributors else None))
    if not sizes or min(min(consumers, distributors or 1) for consumers, distributors in sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive counts")
    return sizes


def compare(runs: list[SizeRun]) -> dict[str, float | None]:
    """The first and the last size's first nights compared (of the first code's first round): the
    scaling exponent over order lines, and KiB of peak RSS per added distributor when only the
    distributors differ."""
    found: dict[str, float | None] = {"scaling_exponent": None, "kib_per_distributor": None}
    runs = [run for run in runs if run.code == runs[0].code and run.round == runs[0].round] if runs else []
    if len(runs) < 2 or not (runs[0].nights and runs[-1].nights):
        return found
    small, big = runs[0], runs[-1]
    first_small, first_big = small.nights[0], big.nights[0]
    if first_small.order_lines != first_big.order_lines and small.consumers != big.consumers:
        found["scaling_exponent"] = scaling_exponent(
            (first_small.order_lines, first_small.wall_seconds),
            (first_big.order_lines, first_big.wall_seconds),
        )
    peaks = small.nights[0].peak_rss_bytes, big.nights[0].peak_rss_bytes
    if small.consumers == big.consumers and small.distributors != big.distributors and None not in peaks:
        found["kib_per_distributor"] = kib_per_distributor(
            (small.distributors or 0, peaks[0] or 0), (big.distributors or 0, peaks[1] or 0)
        )
    return found


def median(values: list[float]) -> float:
    """The middle value (the mean of the two middle ones for an even count)."""
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


@dataclass(frozen=True)
class Rounds:
    """One size and code over its rounds: each round's first and next night (seconds, share)."""

    size: str
    code: str
    first: list[float]
    next: list[float]
    shares: list[float]
    peak_rss_bytes: int | None

    def line(self) -> str:
        cells = [self.size, self.code, str(len(self.first))]
        cells += [_spread(self.first, "{:.1f}"), _spread(self.next, "{:.1f}"), _spread(self.shares, "{:.0%}")]
        return "| " + " | ".join([*cells, _gib(self.peak_rss_bytes)]) + " |"


def rounds(runs: list[SizeRun]) -> list[Rounds]:
    """Each size and code's rounds, in the order they first ran; a night not run is left out."""
    groups: dict[tuple[str, str], list[SizeRun]] = {}
    for run in runs:
        groups.setdefault((_size(run), run.code), []).append(run)
    found = []
    for (size, code), group in groups.items():
        firsts = [run.nights[0].wall_seconds for run in group if run.nights]
        pairs = [run.nights for run in group if len(run.nights) == 2]
        peaks = [night.peak_rss_bytes for run in group for night in run.nights if night.peak_rss_bytes]
        found.append(
            Rounds(
                size,
                _code_name(code),
                firsts,
                [pair[1].wall_seconds for pair in pairs],
                [pair[1].wall_seconds / pair[0].wall_seconds for pair in pairs],
                max(peaks) if peaks else None,
            )
        )
    return found


def rounds_table(runs: list[SizeRun]) -> list[str]:
    """Medians over the rounds (``--rounds``, several ``--code``): on a shared machine one night's
    wall time moves by tens of percent from run to run, so a ratio is read over several rounds."""
    lines = [
        "| size | code | rounds | first night s: median (each) | next night s: median (each) "
        "| next / first: median (each) | peak RSS GiB (max) |",
        "|" + "---|" * 7,
    ]
    return lines + [group.line() for group in rounds(runs)]


def _spread(values: list[float], spec: str) -> str:
    if not values:
        return "n/a"
    each = ", ".join(spec.format(value) for value in values)
    return f"{spec.format(median(values))} ({each})" if len(values) > 1 else each


def _size(run: SizeRun) -> str:
    return run.data if run.consumers is None else f"{run.consumers:,}:{run.distributors:,}"


def _code_name(code: str) -> str:
    return Path(code).name if code else "n/a"


# --- landing data as a lake does ---------------------------------------------------------------


def last_day(source: Path) -> date:
    """The latest day partition of the orders in ``source``."""
    days = [day for p in (source / "orders").iterdir() if (day := partition_day(p.name)) is not None]
    if not days:
        raise SystemExit(f"{source / 'orders'}: no day partitions ({PARTITION_KEY}=YYYY-MM-DD)")
    return max(days)


def land(source: Path, lake: Path, until: date) -> int:
    """Hard-link into ``lake`` what a lake holds at the end of ``until``: every file of
    ``source`` but the truth, the day partitions only up to ``until``. Files already in
    ``lake`` are kept as they are. Returns the number of files linked."""
    linked = 0
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if not path.is_file() or relative.parts[0] == "truth" or relative.name.startswith("."):
            continue
        days = [day for part in relative.parts[:-1] if (day := partition_day(part)) is not None]
        if days and days[0] > until:
            continue
        target = lake / relative
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            _link(path, target)
            linked += 1
    return linked


def land_single(source: Path, lake: Path, until: date) -> int:
    """As ``land``, but each partitioned table (re)written as one file ``<table>.parquet`` of
    its days up to ``until``, in day order: today's single-file layout, for measuring code
    that reads no partitions. Returns the number of files linked or written."""
    import pyarrow.parquet as pq

    partitioned = {p.parent.parent for p in source.glob(f"*/{PARTITION_KEY}=*/*.parquet")}
    written = 0
    for table in sorted(partitioned):
        parts = sorted(table.glob(f"{PARTITION_KEY}=*/*.parquet"))
        parts = [part for part in parts if (day := partition_day(part.parent.name)) and day <= until]
        if not parts:
            continue
        target, partial = lake / f"{table.name}.parquet", lake / f".{table.name}.parquet.partial"
        lake.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(partial, pq.read_schema(parts[0])) as writer:
            for part in parts:
                writer.write_table(pq.read_table(part))
        os.replace(partial, target)
        written += 1
    singles = [path for path in source.iterdir() if path.is_file() and not path.name.startswith(".")]
    for path in singles:
        if not (lake / path.name).exists():
            _link(path, lake / path.name)
            written += 1
    return written


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system: a copy holds the same bytes
        shutil.copy2(source, target)


def partitioned_copy(source: Path, target: Path) -> Path:
    """``source`` with each single-file day table (``orders.parquet`` ...) split into day
    partitions ``<table>/dt=YYYY-MM-DD/`` (DuckDB); the other files linked. Returns ``target``."""
    import duckdb

    connection = duckdb.connect()
    connection.execute("SET enable_progress_bar = false")
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        table = path.name.removesuffix(".parquet")
        if path.is_file() and path.suffix == ".parquet" and table in DAY_TABLES:
            day = f"strftime(CAST({DAY_TABLES[table]} AS DATE), '%Y-%m-%d')"
            connection.execute(
                f"COPY (SELECT *, {day} AS {PARTITION_KEY} FROM read_parquet('{path}')) TO "
                f"'{target / table}' (FORMAT parquet, PARTITION_BY ({PARTITION_KEY}), "
                "FILENAME_PATTERN 'part-{i}')"
            )
        elif path.is_file() and path.suffix in (".parquet", ".csv"):
            _link(path, target / path.name)
        elif path.is_dir() and path.name != "truth":
            shutil.copytree(path, target / path.name, copy_function=os.link)
    return target


def order_lines(data: Path) -> int:
    """Rows of the orders table (a file or day partitions), from the Parquet footers."""
    import pyarrow.parquet as pq

    files = (
        [data / "orders.parquet"]
        if (data / "orders.parquet").exists()
        else (data / "orders").rglob("*.parquet")
    )
    return sum(pq.read_metadata(path).num_rows for path in files)


# --- running siyu --------------------------------------------------------------------------


@dataclass
class Night:
    """One nightly run, measured from outside (and from inside when the flow says)."""

    name: str
    as_of: str
    wall_seconds: float
    peak_rss_bytes: int | None
    load_before: float
    load_after: float
    files_landed: int
    order_lines: int  # in the lake that night
    timings: RunTimings | None = None
    share_of_first: float | None = None
    launched_at: float | None = None  # when the nightly process was started (Unix time)
    cpu_seconds: float | None = None  # user + system, the nightly and every process it started

    def before_flow_seconds(self) -> float | None:
        """From the process's start to the flow's clock: imports, the local Prefect server, the head
        start; the rest of "outside flow" comes after the flow (its server's stop, the interpreter's exit)."""
        if self.launched_at is None or self.timings is None or self.timings.started_at is None:
            return None
        return self.timings.started_at - self.launched_at


@dataclass
class SizeRun:
    """One data set: how it was made and its nights."""

    consumers: int | None
    distributors: int | None
    order_lines: int
    data: str
    simulate_seconds: float | None
    nights: list[Night] = field(default_factory=list)
    code: str = ""  # the checkout whose siyu ran (``--code``)
    round: int = 1  # the round (``--rounds``): each round runs its nights on a new lake and work folder


@dataclass(frozen=True)
class Measured:
    """One command, measured from outside: wall seconds, peak RSS bytes (see ``rss_method``) and
    the CPU seconds (user + system) of it and every descendant it waited for."""

    wall_seconds: float
    peak_rss_bytes: int | None
    cpu_seconds: float


def run_measured(command: list[str], cwd: Path, log: Path, every: float) -> Measured:
    """Run ``command``, its output into ``log``, and measure it (one command at a time: the CPU
    seconds are this process's waited-for children's, before and after)."""
    if _psutil() is None:
        command = ["/usr/bin/time", "-v", "-o", f"{log}.time", *command]
    with log.open("w") as output:
        cpu_before = _children_cpu_seconds()
        began = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
        peak = _poll_tree(child, every) if _psutil() is not None else None
        code = child.wait()
        wall = time.perf_counter() - began
        cpu = _children_cpu_seconds() - cpu_before
    if code != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise SystemExit(f"{' '.join(command[-8:])} failed with exit {code}; see {log}:\n{tail}")
    if peak is None:
        peak = peak_rss_from_time(Path(f"{log}.time").read_text())
    return Measured(wall, peak, cpu)


def _children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's children that have ended and been waited for
    (their own waited-for children included: the nightly's Prefect server and workbooks' child)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _psutil() -> Any:
    try:
        import psutil
    except ImportError:
        return None
    return psutil


def _poll_tree(child: subprocess.Popen[bytes], every: float) -> int:
    """Peak of the summed RSS of ``child`` and all its descendants, sampled every ``every`` s."""
    psutil = _psutil()
    root = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        try:
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        peak = max(peak, sum(_rss(process, psutil) for process in processes))
        try:
            child.wait(timeout=every)  # returns at once when the child ends: the wall stays exact
        except subprocess.TimeoutExpired:
            continue
    return peak


def _rss(process: Any, psutil: Any) -> int:
    try:
        return int(process.memory_info().rss)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0


def rss_method(every: float) -> str:
    if _psutil() is not None:
        return (
            f"psutil: RSS of the nightly process and its children summed (pages they share count once "
            f"per process), sampled every {every:g} s"
        )
    return "/usr/bin/time -v: maximum resident set size of the largest single process"


def read_timings(work: Path, since: float) -> RunTimings | None:
    """The flow's ``run_timings.json`` if this night wrote it (modified after ``since``)."""
    path = work / RUN_TIMINGS
    if not path.exists() or path.stat().st_mtime < since:
        return None
    return parse_run_timings(path.read_text())


def siyu(*args: str) -> list[str]:
    return [sys.executable, "-c", SIYU, *args]


def simulate(args: argparse.Namespace, consumers: int, distributors: int, out: Path) -> float:
    sizes = ["--consumers", consumers, "--distributors", distributors, "--products", args.products]
    sizes += ["--days", args.days, "--seed", args.seed]
    command = siyu("simulate", "--out", str(out), "--layout", "partitioned", *map(str, sizes))
    logger.info("simulating %s consumers into %s", f"{consumers:,}", out)
    return run_measured(command, args.codes[0], out.parent / "simulate.log", args.sample_seconds).wall_seconds


def run_nights(args: argparse.Namespace, source: Path, folder: Path, run: SizeRun, code: Path) -> None:
    """The first night without the last day, then the next night with it, in one work folder,
    by the ``siyu`` of ``code``."""
    as_of = date.fromisoformat(args.as_of) if args.as_of else last_day(source)
    lake, work = folder / "lake", folder / "work"
    extra = ["--config", str(args.config)] if args.config else []
    for name, day in (("first", as_of - timedelta(days=1)), ("next", as_of)):
        landed = (land_single if args.layout == "single" else land)(source, lake, day)
        load_before = os.getloadavg()[0]
        started = time.time()
        logger.info("%s night as of %s (%d files landed)", name, day, landed)
        command = siyu("nightly", "--data", str(lake), "--as-of", day.isoformat(), "--out", str(work), *extra)
        measured = run_measured(command, code, folder / f"nightly-{name}.log", args.sample_seconds)
        load_after = os.getloadavg()[0]
        night = Night(
            name,
            day.isoformat(),
            measured.wall_seconds,
            measured.peak_rss_bytes,
            load_before,
            load_after,
            landed,
            order_lines(lake),
            cpu_seconds=measured.cpu_seconds,
        )
        night.timings = read_timings(work, started)
        night.launched_at = started
        run.nights.append(night)
        if args.first_night_only:
            break
    if len(run.nights) == 2:
        run.nights[1].share_of_first = run.nights[1].wall_seconds / run.nights[0].wall_seconds


# --- report --------------------------------------------------------------------------------


def _cpu(night: Night, cores: int | None = None) -> str:
    """CPU seconds and their share of what the cores could give in the night's wall time."""
    if night.cpu_seconds is None:
        return "n/a"
    available = night.wall_seconds * (cores or os.cpu_count() or 1)
    return f"{night.cpu_seconds:.1f} ({night.cpu_seconds / available:.0%})" if available > 0 else "n/a"


def _before_after(night: Night) -> str:
    """``before / after`` the flow, seconds ("n/a" without the flow's start time)."""
    before = night.before_flow_seconds()
    if before is None or night.timings is None or night.timings.wall_seconds is None:
        return "n/a"
    after = night.wall_seconds - before - night.timings.wall_seconds
    return f"{before:.1f} / {after:.1f}"


def markdown(runs: list[SizeRun], comparison: dict[str, float | None], method: str) -> str:
    lines = [
        "| consumers | distributors | order lines | night | as of | wall s | peak RSS GiB "
        "| flow wall s | flow peak GiB | orders scans | share of first night | load 1m | outside flow s "
        "| before / after flow s | CPU s (of wall × cores) | round | code |",
        "|" + "---|" * 17,
    ]
    for run in runs:
        for night in run.nights:
            timings = night.timings
            cells = [
                _count(run.consumers),
                _count(run.distributors),
                _count(night.order_lines),
                night.name,
                night.as_of,
                f"{night.wall_seconds:.1f}",
                _gib(night.peak_rss_bytes),
                _maybe(timings and timings.wall_seconds, "{:.1f}"),
                _gib(timings.peak_rss_bytes if timings else None),
                _maybe(timings and timings.orders_scans, "{}"),
                _maybe(night.share_of_first, "{:.0%}"),
                f"{night.load_before:.1f}→{night.load_after:.1f}",
                _maybe(
                    timings and timings.wall_seconds and night.wall_seconds - timings.wall_seconds, "{:.1f}"
                ),
                _before_after(night),
                _cpu(night),
                str(run.round),
                _code_name(run.code),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    if len({(run.code, run.round) for run in runs}) > 1:
        lines += ["", *rounds_table(runs)]
    lines += ["", *steps_table(runs), "", *steps_memory_table(runs), ""]
    first, last = runs[0], runs[-1]
    if comparison["scaling_exponent"] is not None:
        lines.append(
            f"scaling exponent (first nights, {first.nights[0].order_lines:,} → "
            f"{last.nights[0].order_lines:,} order lines): "
            f"{comparison['scaling_exponent']:.3f}"
        )
    if comparison["kib_per_distributor"] is not None:
        lines.append(
            f"peak RSS per added distributor (first nights, {_count(first.distributors)} → "
            f"{_count(last.distributors)} distributors): {comparison['kib_per_distributor']:.1f} KiB"
        )
    lines.append(f"peak RSS: {method}")
    return "\n".join(lines)


def steps_table(runs: list[SizeRun]) -> list[str]:
    """Seconds per flow task, one column per night ("n/a" without run_timings.json)."""
    nights = [(run, night) for run in runs for night in run.nights]
    steps: list[str] = []
    for _, night in nights:
        steps += [step for step in (night.timings.tasks if night.timings else {}) if step not in steps]
    if not steps:
        return ["per-step seconds: n/a (the flow wrote no run_timings.json)"]
    header = [f"{_label(run, runs)} {night.name}" for run, night in nights]
    lines = ["| step | " + " | ".join(header) + " |", "|" + "---|" * (len(header) + 1)]
    for step in steps:
        cells = [
            _maybe(night.timings.tasks.get(step) if night.timings else None, "{:.1f}") for _, night in nights
        ]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return lines


def steps_memory_table(runs: list[SizeRun]) -> list[str]:
    """Peak RSS GiB of the process tree per flow task (``task_peak_rss_bytes``), one column per
    night, a ``!`` after a task over the run's ``flow.step_memory_budget``."""
    nights = [(run, night) for run in runs for night in run.nights]
    steps: list[str] = []
    for _, night in nights:
        known = night.timings.task_peak_rss_bytes if night.timings else {}
        steps += [step for step in known if step not in steps]
    if not steps:
        return ["per-step peak RSS: n/a (run_timings.json has no task_peak_rss_bytes)"]
    header = [f"{_label(run, runs)} {night.name}" for run, night in nights]
    lines = ["| step peak RSS GiB | " + " | ".join(header) + " |", "|" + "---|" * (len(header) + 1)]
    for step in steps:
        cells = [_step_peak(night.timings, step) for _, night in nights]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    budgets = {night.timings.memory_budget_bytes for _, night in nights if night.timings}
    budget = next(iter(budgets)) if len(budgets) == 1 else None
    lines.append("")
    lines.append(f"step memory budget: {_gib(budget)} GiB" if budget else "step memory budget: n/a")
    return lines


def _step_peak(timings: RunTimings | None, step: str) -> str:
    peak = timings.task_peak_rss_bytes.get(step) if timings else None
    if peak is None:
        return "n/a"
    over = (
        timings is not None and timings.memory_budget_bytes is not None and peak > timings.memory_budget_bytes
    )
    return f"{peak / GIB:.2f}" + (" !" if over else "")


def _label(run: SizeRun, runs: list[SizeRun]) -> str:
    """The run's size; with its code and round when ``runs`` hold several."""
    size = f"{run.order_lines:,} lines" if run.consumers is None else _size(run)
    several = len({(other.code, other.round) for other in runs}) > 1
    return f"{size} {_code_name(run.code)} r{run.round}" if several else size


def _count(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def _gib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / GIB:.2f}"


def _maybe(value: object, spec: str) -> str:
    return "n/a" if value is None else spec.format(value)


def _json(
    runs: list[SizeRun], comparison: dict[str, float | None], method: str, args: argparse.Namespace
) -> dict[str, Any]:
    commits = {
        str(code): subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=code, capture_output=True, text=True, check=False
        ).stdout.strip()
        or None
        for code in args.codes
    }
    return {
        "code": str(args.codes[0]),
        "commit": commits[str(args.codes[0])],
        "commits": commits,
        "rounds": [asdict(group) for group in rounds(runs)],
        "cores": os.cpu_count(),
        "peak_rss_method": method,
        "runs": [asdict(run) for run in runs],
        **comparison,
    }


# --- main ----------------------------------------------------------------------------------


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--consumers", type=int, default=5_000, help="Consumers simulated (~10 lines each).")
    size.add_argument(
        "--sizes", type=sizes_argument, help="Several consumers[:distributors], e.g. 100000,1000000."
    )
    size.add_argument("--data", type=Path, help="Use this data folder instead of simulating.")
    parser.add_argument("--distributors", type=int, default=300)
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", help="The next night's as-of date (default: the last day of orders).")
    parser.add_argument("--config", type=Path, help="Nightly config passed to siyu nightly.")
    parser.add_argument(
        "--code",
        type=Path,
        action="append",
        help="Checkout whose siyu runs (default: this one); give it again to compare checkouts: "
        "each round runs them one after the other, on the same data.",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="Run every size's nights this many times, each round on a new lake and work folder; "
        "the report adds the medians.",
    )
    parser.add_argument(
        "--scratch", type=Path, help="Keep data and work folders here (default: temp, removed)."
    )
    parser.add_argument("--json", type=Path, help="Also write the results as JSON here.")
    parser.add_argument("--first-night-only", action="store_true", help="Skip the next night.")
    parser.add_argument(
        "--layout",
        choices=("partitioned", "single"),
        default="partitioned",
        help="How the lake holds orders, events, complaints: day partitions, or one file each "
        "rewritten every night (for code that reads no partitions, e.g. a baseline).",
    )
    parser.add_argument("--sample-seconds", type=float, default=0.2, help="RSS sampling interval (psutil).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args.codes = [code.resolve() for code in args.code or [REPO]]
    if args.rounds < 1:
        raise SystemExit(f"--rounds {args.rounds}: give 1 or more")
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="bench_nightly_"))
    sizes = [(None, None)] if args.data else args.sizes or [(args.consumers, None)]
    runs: list[SizeRun] = []
    try:
        for consumers, distributors in sizes:
            runs += measure_size(args, consumers, distributors or args.distributors, scratch)
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    comparison = compare(runs)
    method = rss_method(args.sample_seconds)
    print(markdown(runs, comparison, method))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_json(runs, comparison, method, args), indent=2) + "\n")
        print(f"wrote {args.json}")


def measure_size(
    args: argparse.Namespace, consumers: int | None, distributors: int, scratch: Path
) -> list[SizeRun]:
    """Simulate (or take ``--data``), then run the nights: ``--rounds`` times, each round every
    ``--code`` in turn (alternated, so that a machine's drift falls on all of them alike), each
    on a lake and work folder of its own (the previous one removed)."""
    folder = scratch / (f"size-{consumers}-{distributors}" if consumers else "data")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if consumers is None:
        data = args.data.resolve()
        single = any((data / f"{table}.parquet").exists() for table in DAY_TABLES)
        source = partitioned_copy(data, folder / "partitioned") if single else data
        made = SizeRun(None, None, order_lines(source), str(data), None)
    else:
        source = folder / "simulated"
        seconds = simulate(args, consumers, distributors, source)
        made = SizeRun(consumers, distributors, order_lines(source), str(source), seconds)
    runs = []
    for number in range(1, args.rounds + 1):
        for index, code in enumerate(args.codes):
            run = replace(made, nights=[], code=str(code), round=number)
            several = len(args.codes) * args.rounds > 1
            nights = folder / f"round{number}-code{index + 1}" if several else folder
            nights.mkdir(parents=True, exist_ok=True)
            logger.info("round %d of %d: %s", number, args.rounds, code)
            run_nights(args, source, nights, run, code)
            runs.append(run)
            if several:
                shutil.rmtree(nights / "lake", ignore_errors=True)  # hard links; the logs and work stay
    return runs


if __name__ == "__main__":
    main()
