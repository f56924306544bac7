"""Speed of CLV on a simulated data set: BTYD summary, BG/NBD + Gamma-Gamma MAP fits, predictions for all.

    /tmp/venv/bin/python benchmarks/bench_clv.py --data /tmp/data/sim10m [--as-of 2025-12-31]
        [--threads 2] [--compare-sample 100000] [--holdout-days 90]
        [--nights 14]

Target (issue 3): the CLV fit <= 2 min on 10M order lines and 2 cores. Prints the time of one
DuckDB scan of the orders file (the floor of any feature), of the summary, of each fit and of
the predictions, the peak memory of the process and the load average (the machine is shared).
``--compare-sample N`` also fits the BG/NBD on a seeded sample of N consumers and compares its
parameters and predictions with the full fit. ``--holdout-days N`` also fits as of N days before
the as-of date and compares the forecast of repeat purchase days in those N days with what
happened, against the plain forecast ``frequency / T x N`` (per-consumer mean absolute error).
``--nights N`` fits instead as the nightly's CLV fit does on N nights one after the other (as of
N - 1 days before the as-of date up to it), each in the same process, and prints per night the
buyers, the fit sizes, the fit seconds and how many C modules PyTensor compiled: the cost of a
model new to the cache (docs/clv.md). Give it a copy of a warm cache to compare checkouts,
e.g. ``PYTENSOR_FLAGS=base_compiledir=/tmp/cache-copy``.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import time
from datetime import date
from pathlib import Path

import numpy as np

from features.asof import AsOf
from features.clv import btyd_summary
from features.columns import Col, Table
from features.engine import connect
from features.sql import render
from models.clv import CLVConfig, CLVResult, fit_clv

log = logging.getLogger("bench_clv")


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def _last_day(con: object) -> date:
    return con.execute(render("SELECT max({ordered_at})::DATE FROM {orders}")).fetchone()[0]  # type: ignore[attr-defined]


def _scan_seconds(con: object) -> float:
    started = time.perf_counter()
    con.execute(  # type: ignore[attr-defined]
        render("SELECT count(*), sum({quantity} * {unit_price}), count(DISTINCT {consumer_id}) FROM {orders}")
    ).fetchall()
    return time.perf_counter() - started


def _row(label: str, seconds: float, note: str = "") -> None:
    print(f"{label:<36} {seconds:7.1f} s   {note}")


def _compare(full: CLVResult, sample: CLVResult) -> None:
    print(f"\nBG/NBD on a seeded sample of {sample.fitted_customers:,} vs all {full.fitted_customers:,}:")
    for name, value in full.bgnbd_params.items():
        other = sample.bgnbd_params[name]
        print(
            f"  {name:<6} full {value:9.4f}  sample {other:9.4f}  diff {100 * (other - value) / value:+6.2f}%"
        )
    both = (
        full.predictions["expected_purchases"].to_numpy(),
        sample.predictions["expected_purchases"].to_numpy(),
    )
    relative = np.abs(both[1] - both[0]).sum() / both[0].sum()
    print(f"  expected purchases: total full {both[0].sum():,.0f}, sample {both[1].sum():,.0f}; "
          f"sum |diff| / total {100 * relative:.2f}%")  # fmt: skip
    print(f"  sample fit {sample.timings['bgnbd_fit_s']:.1f} s vs full {full.timings['bgnbd_fit_s']:.1f} s")


def _holdout(con: object, as_of: AsOf, days: int) -> None:
    cutoff = as_of.days_before(days)
    calibration = btyd_summary(con, cutoff)  # type: ignore[arg-type]
    later = btyd_summary(con, as_of).set_index(Col.CONSUMER_ID)  # type: ignore[arg-type]
    actual = (
        later.loc[calibration[Col.CONSUMER_ID], "frequency"].to_numpy() - calibration["frequency"].to_numpy()
    )
    result = fit_clv(calibration, CLVConfig(horizon_days=days))
    bgnbd = result.predictions["expected_purchases"].to_numpy()
    tenure = np.maximum(calibration["T"].to_numpy(dtype="float64"), 1.0)
    rate = calibration["frequency"].to_numpy() / tenure * days
    print(f"\nHoldout: fit as of {cutoff} on {len(calibration):,} consumers, {days} days to {as_of}")
    print(f"  BG/NBD {_rounded(result.bgnbd_params)}")
    print(f"  {'forecast':<12} {'total':>12} {'MAE':>8}")
    print(f"  {'actual':<12} {actual.sum():>12,.0f}")
    for name, forecast in {"BG/NBD": bgnbd, "rate x time": rate}.items():
        print(f"  {name:<12} {forecast.sum():>12,.0f} {np.abs(forecast - actual).mean():>8.3f}")


def _compiled_modules() -> int:
    """C modules in PyTensor's cache of compiled modules (one folder each, holding its ``.so``)."""
    import pytensor

    return sum(1 for _ in Path(pytensor.config.compiledir).glob("*/*.so"))


def _nights(con: object, as_of: AsOf, nights: int, config: CLVConfig) -> None:
    header = ("as of", "buyers", "fitted", "GG fitted", "BG/NBD s", "GG s", "compiled")
    print("\n" + " ".join(f"{name:>9}" for name in header))
    for back in range(nights - 1, -1, -1):
        day = as_of.days_before(back)
        summary = btyd_summary(con, day)  # type: ignore[arg-type]
        before = _compiled_modules()
        result = fit_clv(summary, config)
        print(
            f"{day!s:>9} {len(summary):>9,} {result.fitted_customers:>9,} {result.gamma_gamma_customers:>9,}"
            f" {result.timings['bgnbd_fit_s']:>9.2f} {result.timings['gamma_gamma_fit_s']:>9.2f}"
            f" {_compiled_modules() - before:>9}"
        )


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 4) for name, value in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/data/sim10m"))
    parser.add_argument("--as-of", type=AsOf.of, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compare-sample", type=int, default=None)
    parser.add_argument("--holdout-days", type=int, default=None)
    parser.add_argument("--nights", type=int, default=None, help="Fit on this many nights in turn.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    print(f"start: {_load()}, {os.cpu_count()} CPUs visible, DuckDB threads {args.threads}")
    con = connect({Table.ORDERS: args.data / "orders.parquet"}, threads=args.threads)
    as_of = args.as_of or AsOf.of(_last_day(con))
    config = CLVConfig()
    if args.nights:
        from models.clv import warm_up

        warm_up()
        _nights(con, as_of, args.nights, config)
        return
    scan = _scan_seconds(con)
    started = time.perf_counter()
    summary = btyd_summary(con, as_of)
    summary_s = time.perf_counter() - started
    repeaters = int((summary["frequency"] > 0).sum())
    print(f"as of {as_of}: {len(summary):,} consumers with a purchase, {repeaters:,} repeat buyers")

    started = time.perf_counter()
    result = fit_clv(summary, config)
    clv_s = time.perf_counter() - started
    timings = result.timings
    print()
    _row("one DuckDB scan of orders (floor)", scan)
    _row("btyd_summary", summary_s, f"{summary_s / scan:.1f} x the scan")
    _row("BG/NBD MAP fit", timings["bgnbd_fit_s"], f"on {result.fitted_customers:,}")
    gamma_gamma_note = f"on {result.gamma_gamma_customers:,}, {result.set_aside:,} set aside"
    _row("Gamma-Gamma MAP fit", timings["gamma_gamma_fit_s"], gamma_gamma_note)
    _row("predict (purchases, alive, value)", timings["predict_s"], f"for {len(result.predictions):,}")
    _row("fit_clv total", clv_s)
    _row("summary + fit_clv", summary_s + clv_s, "target <= 120 s")
    print(f"{'peak memory (max RSS)':<36} {_peak_gib():7.2f} GiB")
    print(f"BG/NBD {result.bgnbd_params}\nGamma-Gamma {result.gamma_gamma_params}")
    predictions = result.predictions
    print(predictions.describe().round(3).to_string())
    if args.compare_sample:
        _compare(result, fit_clv(summary, CLVConfig(max_fit_customers=args.compare_sample, seed=0)))
    if args.holdout_days:
        _holdout(con, as_of, args.holdout_days)
    print(f"\nend: {_load()}")


if __name__ == "__main__":
    main()
