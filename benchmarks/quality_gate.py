"""How well and how fast the quality gate finds the simulator's planted defective products.

For each (consumers, seed) the benchmark simulates a year (``SimulationConfig`` defaults but
for size, seed and ``onset_share``: half of the planted defects turn defective on a day of
their sale instead of from launch; browse events are off, they are drawn after orders and
complaints), then runs the gate (``models.quality.assess`` with the default ``QualityConfig``,
or the one ``--set`` gives) as of **every day** whose order window lies inside the year, and
compares the levels with ``truth/defective_products.csv``.

Truth per product on an as-of date: *defective* when it was defective for the whole order
window (lifelong, or its onset on or before the window's first day), *healthy* when it was
not defective by the as-of date (never planted, or its onset still to come), *turning*
otherwise (onset inside the window or between the window and the as-of date: left out of
recall and false alarms, it is what the delay measures).

Reported, on the month ends (a product on a month end is a "product-month"):

- recall: defective product-months at warning or pulled / all defective product-months, by
  volume bucket of ``orders_30d`` (< 30, 30-99, >= 100 lines in the window);
- false alarms: healthy product-months with >= 30 lines at warning or pulled / all such, pooled,
  the worst single as-of date and the dates above the issue's 1 %; and the same without the
  healthy products whose own complaint probability is at or above their category's alarm value
  (``default_multiplier`` x the category baseline; the simulator spreads healthy products'
  rates, ``healthy_complaint_rates``):
  by the gate's own definition those are above the alarm value, though never planted;

and, on the daily runs, for every onset:

- detection delay: days from the onset to the first as-of date at warning or pulled
  (median and 90th percentile; undetected onsets count as longer than any); the target set is
  defects at >= 3x their category rate on products selling >= 5 lines a day in the 30 days
  after the onset;
- sold between evidence and pull: order lines (paid or returned) of a defective product
  ordered after the first day at warning up to the first day at pulled (to the end of the year
  when never pulled).

Tuning and reporting use different seeds: ``--tuning`` runs ``TUNING_SEEDS``; the defaults run
``REPORTING_SEEDS``. ``--set key=value`` overrides a ``QualityConfig`` key (for tuning).

    python -m benchmarks.quality_gate --consumers 100000 300000 --json out.json
    python -m benchmarks.quality_gate --tuning --consumers 100000 --set prior_lines=30
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from features.asof import AsOf
from features.columns import Col, OrderStatus, Table
from features.quality_counts import daily_counts, quality_counts, window_bounds
from models.quality import PULLED, WARNING, QualityCol, QualityConfig, assess
from sources.simulator import SimulationConfig, Truth, healthy_complaint_rates, simulate

TUNING_SEEDS = (101, 102, 103)
REPORTING_SEEDS = (1, 2, 3)
TRUTH_FILE = Path("truth") / f"{Truth.DEFECTIVE_PRODUCTS}.csv"
BUCKETS = ((0, 30, "<30"), (30, 100, "30-99"), (100, None, ">=100"))
ALARM_MIN_LINES = 30
DATE_TARGET = 0.01  # the false alarms per healthy product at each as-of date
DELAY_MIN_MULTIPLE, DELAY_MIN_DAILY_LINES, DELAY_RATE_DAYS = 3.0, 5.0, 30


def load(data: Path) -> duckdb.DuckDBPyConnection:
    """The three tables the gate reads, loaded into memory (the daily runs read them hundreds of times)."""
    con = duckdb.connect()
    for table in (Table.ORDERS, Table.PRODUCTS, Table.COMPLAINTS):
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{data / f'{table}.parquet'}')")
    return con


def gated_days(first: date, last: date, config: QualityConfig) -> list[date]:
    """Every as-of date up to ``last`` whose order window starts on or after ``first``."""
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [
        d for d in days if window_bounds(AsOf(d), config.window_days, config.maturity_days)[0].date() >= first
    ]


def gate_inputs(
    con: duckdb.DuckDBPyConnection, days: list[date], config: QualityConfig
) -> list[tuple[date, pd.DataFrame, pd.DataFrame]]:
    """The gate's own counts (``features.quality_counts``) on every day: window counts and daily history."""
    inputs = []
    for day in days:
        as_of = AsOf(day)
        counts = quality_counts(con, as_of, config.window_days, config.maturity_days)
        inputs.append((day, counts, daily_counts(con, as_of, config.history_days, config.maturity_days)))
    return inputs


def month_ends(days: list[date]) -> list[date]:
    """The days of ``days`` that end a month, and the last one."""
    return [d for d in days if (d + timedelta(days=1)).month != d.month or d == days[-1]]


def grade_days(inputs: list[tuple[date, pd.DataFrame, pd.DataFrame]], config: QualityConfig) -> pd.DataFrame:
    """The gate's alerts on every day of ``inputs``, one frame with an ``as_of`` column."""
    frames = []
    for day, counts, daily in inputs:
        alerts = assess(counts, daily, AsOf(day), config).alerts
        frames.append(
            alerts.drop(columns=[QualityCol.PREVIOUS_LEVEL, QualityCol.CHANGE, QualityCol.SINCE]).assign(
                as_of=pd.Timestamp(day)
            )
        )
    graded = pd.concat(frames, ignore_index=True)
    return graded.assign(level=graded[QualityCol.LEVEL].astype(str))


def label(
    graded: pd.DataFrame, truth: pd.DataFrame, rates: pd.DataFrame, config: QualityConfig
) -> pd.DataFrame:
    """Add truth: defective / healthy / turning per product and day, ``flagged``, and ``above_alarm``:
    a product never planted whose own healthy rate is at or above its category's alarm value
    (``default_multiplier`` x the category baseline)."""
    merged = graded.merge(truth, on=Col.PRODUCT_ID, how="left")
    window_start = merged["as_of"] - pd.Timedelta(days=config.maturity_days + config.window_days - 1)
    planted = merged[Truth.COMPLAINT_PROBABILITY].notna()
    onset = merged[Truth.DEFECT_ONSET]
    defective = planted & (onset.isna() | (onset <= window_start))
    healthy = ~planted | (onset > merged["as_of"])
    own = rates.set_index(Col.PRODUCT_ID)
    multiple = merged[Col.PRODUCT_ID].map(own[Truth.COMPLAINT_PROBABILITY] / own[Truth.CATEGORY_BASELINE])
    return merged.assign(
        defective=defective,
        healthy=healthy & ~defective,
        above_alarm=~planted & (multiple >= config.default_multiplier),
        flagged=merged[QualityCol.LEVEL].isin([WARNING, PULLED]),
        pulled=merged[QualityCol.LEVEL] == PULLED,
    )


def lines_per_day(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Paid or returned order lines per product and order day."""
    return (
        con.execute(
            f"SELECT {Col.PRODUCT_ID}, CAST({Col.ORDERED_AT} AS DATE) AS day, count(*) AS lines "
            f"FROM {Table.ORDERS} WHERE {Col.STATUS} IN ('{OrderStatus.PAID}', '{OrderStatus.RETURNED}') "
            "GROUP BY ALL"
        )
        .df()
        .assign(day=lambda f: pd.to_datetime(f["day"]))
    )


def run_one(consumers: int, seed: int, args: argparse.Namespace, config: QualityConfig) -> dict[str, object]:
    """Simulate one data set, grade it every day; the labelled month ends and one row per defect."""
    simulation = SimulationConfig(
        consumers=consumers,
        products=args.products,
        seed=seed,
        events=False,
        onset_share=args.onset_share,
        defective_share=args.defective_share,
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        summary = simulate(data, simulation)
        truth = pd.read_csv(data / TRUTH_FILE, dtype={Col.PRODUCT_ID: str}, parse_dates=[Truth.DEFECT_ONSET])
        con = load(data)
    rates = healthy_complaint_rates(simulation)
    days = gated_days(simulation.start, summary.as_of, config)
    days = month_ends(days) if args.month_ends_only else days
    graded = label(grade_days(gate_inputs(con, days, config), config), truth, rates, config)
    defects = defect_rows(graded, truth, lines_per_day(con), summary.as_of)
    con.close()
    ends = pd.to_datetime(month_ends(days))
    monthly = graded[graded["as_of"].isin(ends)]
    run = {"consumers": consumers, "seed": seed, "order_lines": summary.order_lines, "as_of_dates": len(ends)}
    tags = {"consumers": consumers, "seed": seed}
    return {
        "run": run | {"seconds": round(time.perf_counter() - started, 1)},
        "monthly": monthly.assign(**tags),
        "defects": defects.assign(**tags),
    }


def defect_rows(graded: pd.DataFrame, truth: pd.DataFrame, lines: pd.DataFrame, last: date) -> pd.DataFrame:
    """One row per planted defect: onset, detection day, delay, daily lines, lines sold warning -> pulled."""
    end = pd.Timestamp(last)
    rows = []
    for _, defect in truth.iterrows():
        product, onset = defect[Col.PRODUCT_ID], defect[Truth.DEFECT_ONSET]
        days = graded[graded[Col.PRODUCT_ID] == product]
        sold = lines[lines[Col.PRODUCT_ID] == product]
        start = onset if pd.notna(onset) else days["as_of"].min()
        after = days[days["as_of"] >= start]
        warned = after.loc[after["flagged"], "as_of"].min()
        pulled = after.loc[after["pulled"], "as_of"].min()
        stop = pulled if pd.notna(pulled) else end
        between = (
            sold[(sold["day"] > warned) & (sold["day"] <= stop)]["lines"].sum() if pd.notna(warned) else 0
        )
        rate_days = sold[(sold["day"] >= start) & (sold["day"] < start + pd.Timedelta(days=DELAY_RATE_DAYS))]
        observed = max(min(DELAY_RATE_DAYS, (end - start).days + 1), 1)
        rows.append(
            {
                Col.PRODUCT_ID: product,
                Col.CATEGORY: defect[Col.CATEGORY],
                "onset": onset,
                "multiple": defect[Truth.COMPLAINT_PROBABILITY] / defect[Truth.CATEGORY_BASELINE],
                "lines_per_day": rate_days["lines"].sum() / observed,
                "follow_up_days": (end - start).days,
                "first_flagged": warned,
                "delay_days": (warned - onset).days if pd.notna(warned) and pd.notna(onset) else np.nan,
                "first_pulled": pulled,
                "sold_warning_to_pull": int(between),
            }
        )
    return pd.DataFrame(rows)


def recall_by_bucket(monthly: pd.DataFrame) -> list[dict[str, object]]:
    """Recall at >= warning per volume bucket of orders_30d (defective product-months with a line)."""
    defective = monthly[monthly["defective"] & (monthly[QualityCol.ORDERS_30D] > 0)]
    rows = []
    for low, high, name in BUCKETS:
        lines = defective[QualityCol.ORDERS_30D]
        bucket = defective[(lines >= low) & (lines < (high if high is not None else np.inf))]
        caught = int(bucket["flagged"].sum())
        rows.append(
            {
                "bucket": name,
                "defective": len(bucket),
                "caught": caught,
                "recall": _share(caught, len(bucket)),
            }
        )
    return rows


def false_alarms(monthly: pd.DataFrame) -> dict[str, object]:
    """Healthy product-months with >= ALARM_MIN_LINES lines flagged: pooled, and the worst date;
    then the same without the healthy products whose own rate is above their category's alarm value."""
    result = _false_alarms(monthly[monthly["healthy"]])
    below = _false_alarms(monthly[monthly["healthy"] & ~monthly["above_alarm"]])
    result["below_alarm_value"] = {
        key: below[key]
        for key in ("healthy", "false_alarms", "rate", "worst_date_rate", "worst_date", "dates_over_target")
    }
    return result


def _false_alarms(healthy_months: pd.DataFrame) -> dict[str, object]:
    healthy = healthy_months[healthy_months[QualityCol.ORDERS_30D] >= ALARM_MIN_LINES]
    per_date = healthy.groupby(["consumers", "seed", "as_of"])["flagged"].agg(["sum", "size"])
    worst = per_date.assign(rate=per_date["sum"] / per_date["size"]).sort_values("rate").iloc[-1]
    small = healthy_months[healthy_months[QualityCol.ORDERS_30D] < ALARM_MIN_LINES]
    return {
        "healthy": len(healthy),
        "false_alarms": int(healthy["flagged"].sum()),
        "rate": _share(int(healthy["flagged"].sum()), len(healthy)),
        "worst_date_rate": float(worst["rate"]),
        "worst_date": f"{worst.name[0]}/{worst.name[1]}/{worst.name[2].date()}: "
        f"{int(worst['sum'])}/{int(worst['size'])}",
        "dates_over_target": int((per_date["sum"] > DATE_TARGET * per_date["size"] + 1e-9).sum()),
        "dates": len(per_date),
        "healthy_below_30_flagged": int(small["flagged"].sum()),
        "healthy_below_30": len(small),
    }


def delays(defects: pd.DataFrame) -> dict[str, object]:
    """Median and 90th percentile delay from onset to warning, for all onsets and the target set."""
    onsets = defects[defects["onset"].notna() & (defects["follow_up_days"] >= 45)]
    target = onsets[
        (onsets["multiple"] >= DELAY_MIN_MULTIPLE) & (onsets["lines_per_day"] >= DELAY_MIN_DAILY_LINES)
    ]
    result = {}
    for name, group in (("all_onsets", onsets), ("target", target)):
        delay = group["delay_days"].fillna(np.inf)
        result[name] = {
            "onsets": len(group),
            "detected": int(group["delay_days"].notna().sum()),
            "median_days": _quantile(delay, 0.5),
            "p90_days": _quantile(delay, 0.9),
        }
    return result


def sold_between(defects: pd.DataFrame) -> dict[str, object]:
    """Lines sold between the first warning and the pull, over the defects that reached warning."""
    warned = defects[defects["first_flagged"].notna()]
    return {
        "defects_warned": len(warned),
        "never_pulled": int(warned["first_pulled"].isna().sum()),
        "lines_total": int(warned["sold_warning_to_pull"].sum()),
        "lines_median": _quantile(warned["sold_warning_to_pull"], 0.5),
        "lines_p90": _quantile(warned["sold_warning_to_pull"], 0.9),
    }


def _share(part: int, whole: int) -> float:
    return part / whole if whole else float("nan")


def _quantile(values: pd.Series, q: float) -> float:
    return (
        float(np.quantile(values.to_numpy(dtype=float), q, method="inverted_cdf"))
        if len(values)
        else float("nan")
    )


def summarise(monthly: pd.DataFrame, defects: pd.DataFrame) -> dict[str, object]:
    """Every number of the report for one set of runs."""
    return {
        "recall": recall_by_bucket(monthly),
        "false_alarms": false_alarms(monthly),
        "delay": delays(defects),
        "sold_between_warning_and_pull": sold_between(defects),
    }


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consumers", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="Default: REPORTING_SEEDS.")
    parser.add_argument("--tuning", action="store_true", help="Run TUNING_SEEDS instead.")
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--onset-share", type=float, default=0.5)
    parser.add_argument("--defective-share", type=float, default=0.02, help="More onsets for a delay study.")
    parser.add_argument(
        "--month-ends-only",
        action="store_true",
        help="Grade month ends only: recall and false alarms, no delays.",
    )
    parser.add_argument("--set", nargs="*", default=[], help="QualityConfig overrides, key=value.")
    parser.add_argument("--json", type=Path, default=None, help="Also write every number to this file.")
    return parser.parse_args()


def _config(overrides: list[str]) -> QualityConfig:
    settings = dict(item.split("=", 1) for item in overrides)
    return QualityConfig(**settings)


def main() -> None:
    args = _arguments()
    logging.basicConfig(level=logging.WARNING)
    config = _config(args.set)
    seeds = args.seeds or (TUNING_SEEDS if args.tuning else REPORTING_SEEDS)
    results = [run_one(consumers, seed, args, config) for consumers in args.consumers for seed in seeds]
    monthly = pd.concat([r["monthly"] for r in results], ignore_index=True)
    defects = pd.concat([r["defects"] for r in results], ignore_index=True)
    report = {
        "config": config.model_dump(),
        "seeds": list(seeds),
        "load_average": os.getloadavg(),
        "runs": [r["run"] for r in results],
        "by_size": {
            str(c): summarise(monthly[monthly["consumers"] == c], defects[defects["consumers"] == c])
            for c in args.consumers
        },
        "all": summarise(monthly, defects),
    }
    if args.month_ends_only:  # delays and sales between levels need the daily runs
        for part in (*report["by_size"].values(), report["all"]):
            del part["delay"], part["sold_between_warning_and_pull"]
    print(json.dumps(report, indent=2, default=str))
    onsets = defects[defects["onset"].notna()].sort_values(["consumers", "seed", "delay_days"])
    print(onsets.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.json is not None:
        report["defects"] = defects.to_dict("records")
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
