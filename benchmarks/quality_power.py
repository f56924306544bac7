"""What recall any test on one product's window can reach: the exact binomial Neyman-Pearson bound.

For a product with ``n`` order lines in its window, the most powerful test of "healthy" against
"defective" at a false-alarm level ``alpha`` (Neyman-Pearson; for a binomial count it is "at
least K complaints") flags it when its complaints reach the smallest ``K`` with
``P(complaints >= K | healthy) <= alpha``. Healthy here is the simulator's healthy product: its
category's baseline times a lognormal product factor (``sources.simulator.world``: mean one,
sigma 0.3), so the chance is averaged over that spread; defective is ``multiple`` times the
baseline (the simulator plants 6-10). The test knows every rate exactly, which no real gate
does, so its power is an upper bound for any rule that looks at the window alone.

Printed: the power per window volume, averaged over the twelve categories and the multiples
6, 8 and 10 (and the weakest of those cases), at ``alpha`` 1 % and 0.1 %; and the mean over
30-99 lines (each volume weighted alike).

    python -m benchmarks.quality_power
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.stats import binom

from sources.simulator import CATEGORIES

PRODUCT_SIGMA = 0.3  # the simulator's product factor: lognormal(-0.045, 0.3)
PRODUCT_MU = -0.045
MULTIPLES = (6.0, 8.0, 10.0)
VOLUMES = (30, 50, 75, 99, 150, 300)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.01, 0.001])
    args = parser.parse_args()
    factors = np.exp(PRODUCT_MU + PRODUCT_SIGMA * np.random.default_rng(0).standard_normal(4000))
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
