"""What recall any test can reach at a given false-alarm level: exact Neyman-Pearson bounds.

Two bounds, both for a test that knows every rate exactly (which no real gate does), so that
their power is an upper bound for any rule that sees the same lines.

**One window** (the default). For a product with ``n`` order lines in its window, the most
powerful test of "healthy" against "defective" at a false-alarm level ``alpha``
(Neyman-Pearson; for a binomial count it is "at least K complaints") flags it when its
complaints reach the smallest ``K`` with ``P(complaints >= K | healthy) <= alpha``. Healthy here
is the simulator's healthy product: its category's baseline times a lognormal product factor
(``sources.simulator.world``: mean one, sigma 0.3), so the chance is averaged over that spread;
defective is ``multiple`` times the baseline (the simulator plants 6-10). Printed: the power per
window volume, averaged over the twelve categories and the multiples 6, 8 and 10 (and the
weakest of those cases), at ``alpha`` 1 % and 0.1 %; and the mean over 30-99 lines.

**The product's whole history** (``--history``). The simulator's own defect population: it
simulates a year per (consumers, seed) as ``benchmarks.quality_gate`` does (tuning seeds by
default) and takes every planted product-month at 30-99 window lines on a month end (defective
for the whole window: what recall at 30-99 lines counts). The oracle knows the product's
category baseline, its true defective rate and its onset, and sees every line the gate could
see as of that date: the exposed lines (``features.quality_counts.daily_counts``: young lines
count as the share of complaints that have arrived by their age) ordered since the onset,
over the gate's 90-day history and over the product's whole life. Its complaints are Poisson
with mean rate x exposure; the test is the randomised Neyman-Pearson test of that count
(healthy: the lognormal spread of rates around the baseline), so its power is the most any
rule can catch of that product-month at ``alpha`` false alarms per healthy product. Printed:
the mean power over the product-months (the expected recall of the best possible gate) with
the window's lines alone, the 90-day history and the whole life, per ``alpha``; and
``history_realised``, the share of those product-months the same test flags on the complaints
that did come in the 90-day history (what the best gate would have caught on this draw).

    python -m benchmarks.quality_power
    python -m benchmarks.quality_power --history --products 600 --consumers 30000
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binom, poisson

from benchmarks.quality_gate import TRUTH_FILE, TUNING_SEEDS, gated_days, load, month_ends
from features.asof import AsOf
from features.columns import Col
from features.quality_counts import daily_counts, quality_counts
from models.quality import QualityCol, QualityConfig
from sources.simulator import CATEGORIES, SimulationConfig, Truth, simulate

PRODUCT_SIGMA = 0.3  # the simulator's product factor: lognormal(-0.045, 0.3)
PRODUCT_MU = -0.045
MULTIPLES = (6.0, 8.0, 10.0)
VOLUMES = (30, 50, 75, 99, 150, 300)
BUCKET = (30, 100)  # window lines of the bucket the history bound is measured on


def product_factors(draws: int = 4000) -> np.ndarray:
    """Draws of the simulator's healthy product factor (seeded: the bound is reproducible)."""
    return np.exp(PRODUCT_MU + PRODUCT_SIGMA * np.random.default_rng(0).standard_normal(draws))


def critical_count(n: int, healthy: np.ndarray, alpha: float) -> int:
    """The smallest K with P(complaints >= K) <= alpha, averaged over the healthy rates."""
    for k in range(n + 2):
        if binom.sf(k - 1, n, healthy).mean() <= alpha:
            return k
    return n + 1


def power(n: int, alpha: float, factors: np.ndarray) -> tuple[float, float]:
    """Mean and weakest power at ``n`` lines over the categories and ``MULTIPLES``."""
    powers = []
    for category in CATEGORIES:
        k = critical_count(n, category.complaint_rate * factors, alpha)
        powers += [float(binom.sf(k - 1, n, min(m * category.complaint_rate, 0.5))) for m in MULTIPLES]
    return float(np.mean(powers)), float(np.min(powers))


def critical_test(exposure: float, baseline: float, alpha: float, factors: np.ndarray) -> tuple[int, float]:
    """The randomised Neyman-Pearson test of a Poisson complaint count on ``exposure`` lines against
    the healthy rate ``baseline`` x a product factor (averaged over ``factors``): flag at ``K`` or
    more complaints, and at ``K - 1`` with chance ``share``, so that false alarms are exactly ``alpha``."""
    healthy = baseline * factors * exposure
    k = 0
    while (tail := float(poisson.sf(k - 1, healthy).mean())) > alpha:
        k += 1
    at_boundary = float(poisson.pmf(k - 1, healthy).mean()) if k > 0 else 0.0
    return k, (alpha - tail) / at_boundary if at_boundary > 0 else 0.0


def poisson_power(
    exposure: float, baseline: float, defective: float, alpha: float, factors: np.ndarray
) -> float:
    """Power of ``critical_test`` when the product's rate is ``defective``. No exposure: power 0."""
    if exposure <= 0:
        return 0.0
    k, share = critical_test(exposure, baseline, alpha, factors)
    mean = defective * exposure
    return float(poisson.sf(k - 1, mean) + share * poisson.pmf(k - 1, mean))


def flagged_share(
    complaints: float, exposure: float, baseline: float, alpha: float, factors: np.ndarray
) -> float:
    """The chance ``critical_test`` flags an observed count: 1 at ``K`` or more, ``share`` at ``K - 1``."""
    if exposure <= 0:
        return 0.0
    k, share = critical_test(exposure, baseline, alpha, factors)
    return 1.0 if complaints >= k else share if complaints == k - 1 else 0.0


def since_onset(daily: pd.DataFrame, onset_age: pd.Series) -> pd.DataFrame:
    """Exposed lines and complaints per product of ``daily`` ordered at most ``onset_age[product]``
    days before the cutoff (missing: every line), i.e. since the product turned defective."""
    limit = daily[Col.PRODUCT_ID].map(onset_age).fillna(np.inf)
    since = daily[daily[QualityCol.AGE_DAYS] <= limit]
    return since.groupby(Col.PRODUCT_ID)[[QualityCol.DAY_EXPOSURE, QualityCol.DAY_COMPLAINTS]].sum()


def bucket_months(consumers: int, products: int, seed: int) -> pd.DataFrame:
    """Every planted product-month of one simulated year at ``BUCKET`` window lines on a month end:
    its window lines, baseline, defective rate, and exposed lines since the onset over the gate's
    history and over its whole life."""
    config = QualityConfig()
    simulation = SimulationConfig(
        consumers=consumers, products=products, seed=seed, events=False, onset_share=0.5
    )
    with tempfile.TemporaryDirectory() as tmp:
        summary = simulate(Path(tmp), simulation)
        truth = pd.read_csv(
            Path(tmp) / TRUTH_FILE, dtype={Col.PRODUCT_ID: str}, parse_dates=[Truth.DEFECT_ONSET]
        )
        con = load(Path(tmp))
    truth = truth.set_index(Col.PRODUCT_ID)
    frames = []
    for day in month_ends(gated_days(simulation.start, summary.as_of, config)):
        as_of, stamp = AsOf(day), pd.Timestamp(day)
        counts = quality_counts(con, as_of, config.window_days, config.maturity_days).set_index(
            Col.PRODUCT_ID
        )
        lines = counts[QualityCol.ORDERS_30D].reindex(truth.index).fillna(0)
        window_start = stamp - pd.Timedelta(days=config.maturity_days + config.window_days - 1)
        onset = truth[Truth.DEFECT_ONSET]
        chosen = (onset.isna() | (onset <= window_start)) & lines.between(BUCKET[0], BUCKET[1] - 1)
        if not chosen.any():
            continue
        onset_age = (stamp - onset[chosen]).dt.days
        history = daily_counts(con, as_of, config.history_days, config.maturity_days)
        life = daily_counts(con, as_of, (day - simulation.start).days + 1, config.maturity_days)
        frames.append(
            pd.DataFrame(
                {
                    "seed": seed,
                    "as_of": day,
                    "window_lines": lines[chosen],
                    "baseline": truth.loc[chosen, Truth.CATEGORY_BASELINE],
                    "defective_rate": truth.loc[chosen, Truth.COMPLAINT_PROBABILITY],
                    **_since_columns("history", since_onset(history, onset_age), onset_age.index),
                    **_since_columns("life", since_onset(life, onset_age), onset_age.index),
                }
            ).fillna(0.0)
        )
    con.close()
    return pd.concat(frames) if frames else pd.DataFrame()


def _since_columns(name: str, since: pd.DataFrame, products: pd.Index) -> dict[str, pd.Series]:
    since = since.reindex(products)
    return {
        f"{name}_exposure": since[QualityCol.DAY_EXPOSURE],
        f"{name}_complaints": since[QualityCol.DAY_COMPLAINTS],
    }


def history_bound(months: pd.DataFrame, alpha: float, factors: np.ndarray) -> dict[str, float]:
    """Mean oracle power over ``months`` with the window's lines, the 90-day history and the whole
    life; and ``history_realised``: the share of ``months`` the oracle's test flags on the complaints
    that actually came over the 90-day history (its recall on this draw, beside its expectation)."""
    bound = {}
    baseline, defective = months["baseline"].to_numpy(), months["defective_rate"].to_numpy()
    for name, column in (
        ("window", "window_lines"),
        ("history", "history_exposure"),
        ("life", "life_exposure"),
    ):
        exposure = months[column].to_numpy()
        bound[name] = float(
            np.mean(
                [
                    poisson_power(exposure[i], baseline[i], defective[i], alpha, factors)
                    for i in range(len(months))
                ]
            )
        )
    exposure, complaints = months["history_exposure"].to_numpy(), months["history_complaints"].to_numpy()
    bound["history_realised"] = float(
        np.mean(
            [
                flagged_share(complaints[i], exposure[i], baseline[i], alpha, factors)
                for i in range(len(months))
            ]
        )
    )
    return bound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.01, 0.005, 0.001])
    parser.add_argument("--history", action="store_true", help="The whole-history bound on simulated data.")
    parser.add_argument("--consumers", type=int, nargs="+", default=[30_000])
    parser.add_argument("--products", type=int, default=600)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(TUNING_SEEDS))
    args = parser.parse_args()
    factors = product_factors()
    if args.history:
        for consumers in args.consumers:
            months = pd.concat([bucket_months(consumers, args.products, seed) for seed in args.seeds])
            for alpha in args.alphas:
                bound = history_bound(months, alpha, factors)
                print(
                    f"{args.products} products, {consumers} consumers, seeds {args.seeds}: "
                    f"{len(months)} defective product-months at 30-99 lines; alpha {alpha:g}: "
                    + ", ".join(f"{name} {value:.3f}" for name, value in bound.items())
                )
        return
    for alpha in args.alphas:
        cells = [
            f"{n}: {mean:.2f} (weakest {low:.2f})"
            for n in VOLUMES
            for mean, low in [power(n, alpha, factors)]
        ]
        bucket = np.mean([power(n, alpha, factors)[0] for n in range(30, 100)])
        print(f"alpha {alpha:g}: " + "; ".join(cells) + f"; mean over 30-99 lines {bucket:.2f}")


if __name__ == "__main__":
    main()
