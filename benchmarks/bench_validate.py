"""Wall time and peak memory of ``siyu validate`` on a data directory, and equality checks.

Runs the validate command in a child process under ``/usr/bin/time -v`` and reports its
wall time and peak RSS; with ``--compare-with`` it also checks that another output
directory (e.g. written by an older version) holds the same clean rows (row count and
an order-independent checksum of every table) and byte-identical quarantine files.

    python benchmarks/bench_validate.py --data /tmp/data/sim100k --out /tmp/val100k
    python benchmarks/bench_validate.py --data /tmp/data/sim100k --out /tmp/val100k \\
        --compare-with /tmp/val100k_old
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]


def run_validate(data: Path, out: Path, code: Path, extra: list[str]) -> dict[str, float]:
    """Run ``siyu validate`` with the code in ``code`` under /usr/bin/time -v; return wall
    seconds, CPU seconds (user + system, the JVM included: it is a waited-for child) and peak
    RSS in GiB."""
    command = ["/usr/bin/time", "-v", sys.executable, "-c", "from pipelines.cli import main; main()"]
    command += ["validate", "--data", str(data), "--out", str(out), *extra]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, cwd=code)
    report = completed.stderr
    if completed.returncode not in (0, 1):
        raise SystemExit(f"validate failed ({completed.returncode}):\n{report[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", report)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    cpu = [re.search(rf"{kind} time \(seconds\): (\S+)", report) for kind in ("User", "System")]
    assert wall and rss and all(cpu), report[-2000:]
    parts = [float(p) for p in wall.group(1).split(":")]
    seconds = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    return {
        "wall_s": seconds,
        "cpu_s": sum(float(c.group(1)) for c in cpu if c),
        "peak_rss_gib": int(rss.group(1)) / 2**20,
        "exit": completed.returncode,
    }


def clean_checksum(path: Path) -> tuple[int, str]:
    """Row count and an order-independent checksum of a Parquet file's rows (or a folder of parts')."""
    files = f"{path}/*.parquet" if path.is_dir() else str(path)
    row = duckdb.sql(
        f"SELECT count(*), bit_xor(hash(t)), sum(hash(t)::HUGEINT) FROM read_parquet('{files}') t"
    ).fetchall()[0]
    return int(row[0]), f"{row[1]:x}:{row[2]:x}"


def compare(new: Path, old: Path) -> list[str]:
    """Lines saying, per output file, whether ``new`` and ``old`` agree."""
    lines = []
    for clean in sorted((new / "clean").glob("*.parquet")):
        same = clean_checksum(clean) == clean_checksum(old / "clean" / clean.name)
        rows, checksum = clean_checksum(clean)
        lines.append(
            f"clean/{clean.name}: {rows:,} rows, checksum {checksum}: {'same' if same else 'DIFFERENT'}"
        )
    for quarantine in sorted((new / "quarantine").glob("*.csv")):
        digest = hashlib.sha256(quarantine.read_bytes()).hexdigest()[:16]
        old_digest = hashlib.sha256((old / "quarantine" / quarantine.name).read_bytes()).hexdigest()[:16]
        verdict = "identical" if digest == old_digest else "DIFFERENT"
        lines.append(f"quarantine/{quarantine.name}: sha256 {digest}: {verdict}")
    return lines


def make_dirty(source: Path, target: Path, seed: int = 0) -> None:
    """Copy a clean data set to ``target`` with planted defects of every quarantine kind:
    orders as CSV (text cells) and events as Parquet, the rest copied as they are."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    target.mkdir(parents=True, exist_ok=True)
    for name in ("products", "consumers", "distributors", "complaints"):
        if (source / f"{name}.parquet").exists():
            frame = pd.read_parquet(source / f"{name}.parquet")
            if name == "consumers":
                frame = pd.concat([frame, frame.sample(50, random_state=seed).assign(gender="x")])
            frame.to_parquet(target / f"{name}.parquet", index=False)
    orders = pd.read_parquet(source / "orders.parquet").astype(str)
    rows = lambda n: rng.choice(len(orders), n, replace=False)  # noqa: E731
    orders.loc[rows(40), "quantity"] = "two"
    orders.loc[rows(40), "unit_price"] = "-1"
    orders.loc[rows(40), "ordered_at"] = "2099-01-01 00:00:00"
    orders.loc[rows(40), "ordered_at"] = "not a date"
    orders.loc[rows(40), "product_id"] = "P_UNKNOWN"
    orders.loc[rows(40), "status"] = "refunded"
    orders.loc[rows(40), "consumer_id"] = ""
    orders = pd.concat([orders, orders.iloc[rows(60)]], ignore_index=True)  # duplicates, late in the file
    orders.to_csv(target / "orders.csv", index=False)
    events = pd.read_parquet(source / "events.parquet")
    events.loc[rows(30), "event_type"] = "teleport"
    events.loc[rows(30), "event_at"] = pd.Timestamp("2099-01-01")
    pd.concat([events, events.iloc[rows(30)]], ignore_index=True).to_parquet(target / "events.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare-with", type=Path, help="an output directory to compare against")
    parser.add_argument("--skip-run", action="store_true", help="only compare existing outputs")
    parser.add_argument(
        "--code", type=Path, default=REPO, help="checkout whose siyu to run (default: this one)"
    )
    parser.add_argument("--make-dirty-from", type=Path, help="first write --data as a dirty copy of this")
    args, extra = parser.parse_known_args()
    if args.make_dirty_from:
        make_dirty(args.make_dirty_from, args.data)
    if not args.skip_run:
        measured = run_validate(args.data.resolve(), args.out.resolve(), args.code, extra)
        print(
            f"{args.data}: wall {measured['wall_s']:.1f} s, CPU {measured['cpu_s']:.1f} s, "
            f"peak RSS {measured['peak_rss_gib']:.2f} GiB, "
            f"exit {measured['exit']}"
        )
    if args.compare_with:
        print("\n".join(compare(args.out, args.compare_with)))


if __name__ == "__main__":
    main()
