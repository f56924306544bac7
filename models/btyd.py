"""Maximum-likelihood BG/NBD, modified BG/NBD and Gamma-Gamma in closed form (numpy + scipy).

The nightly's CLV and churn models are the MAP fits of pymc-marketing with flat priors, which
are the maximum-likelihood fits of the papers. pymc-marketing compiles a PyTensor graph for
every fit (seconds each, five fits a night, whatever the data's size), so with flat priors the
same likelihoods are maximised here with scipy instead: the log-likelihoods and predictions
are pymc-marketing 0.19.2's own formulas (``BetaGeoNBD.logp``, ``ModifiedBetaGeoNBD.logp``,
``GammaGammaModel``'s potential, ``expected_purchases``, ``expected_probability_alive``,
``expected_customer_spend``), and tests/models/test_btyd.py holds them to the library on the
same data. Identical customers (same frequency, recency and T) are counted once with a weight.

Every function takes arrays in one time unit and returns arrays in customer order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, gammaln, hyp2f1

BGNBD_PARAMS: tuple[str, ...] = ("r", "alpha", "a", "b")
GAMMA_GAMMA_PARAMS: tuple[str, ...] = ("p", "q", "v")
_MAX_ITERATIONS = 2000


class FitError(ValueError):
    """The optimiser did not reach finite parameters."""


def fit_bgnbd(
    frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, modified: bool = False
) -> dict[str, float]:
    """``r, alpha, a, b`` maximising the BG/NBD (or, ``modified``, the MBG/NBD) likelihood."""
    rows, weights = _unique_rows(np.column_stack([frequency, recency, T]).astype("float64"))
    x, t_x, big_t = (_Levels(column) for column in rows.T)
    loglik = _mbgnbd_loglik if modified else _bgnbd_loglik
    start = np.log([1.0, max(float(np.average(big_t.values, weights=weights)), 1e-3), 1.0, 1.0])
    return _maximise(lambda params: loglik(*params, x, t_x, big_t), weights, start, BGNBD_PARAMS)


def fit_gamma_gamma(frequency: np.ndarray, monetary_value: np.ndarray) -> dict[str, float]:
    """``p, q, v`` maximising the Gamma-Gamma likelihood of repeat buyers' mean values (all > 0)."""
    rows, weights = _unique_rows(np.column_stack([frequency, monetary_value]).astype("float64"))
    x, mean_value = _Levels(rows[:, 0]), rows[:, 1]
    start = np.log([1.0, 2.0, max(float(np.average(mean_value, weights=weights)), 1e-3)])
    logs = (np.log(mean_value), np.log(x.values), x.values * mean_value)
    return _maximise(
        lambda params: _gamma_gamma_loglik(*params, x, *logs), weights, start, GAMMA_GAMMA_PARAMS
    )


def bgnbd_expected_purchases(
    params: dict[str, float], frequency: np.ndarray, recency: np.ndarray, T: np.ndarray, t: float
) -> np.ndarray:
    """Expected purchases in the next ``t`` (Fader, Hardie & Lee 2005, eq. 10)."""
    r, alpha, a, b = (params[name] for name in BGNBD_PARAMS)
    x, recency, T = _arrays(frequency, recency, T)
    with np.errstate(over="ignore", invalid="ignore"):
        numerator = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(
            r + x, b + x, a + b + x - 1, t / (alpha + T + t)
        )
        numerator *= (a + b + x - 1) / (a - 1)
        denominator = 1 + (x > 0) * (a / (b + x - 1)) * ((alpha + T) / (alpha + recency)) ** (r + x)
        return numerator / denominator


def bgnbd_prob_alive(
    params: dict[str, float], frequency: np.ndarray, recency: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """P(alive) under the BG/NBD: 1 without repeat purchases (Hardie's note 021)."""
    r, alpha, a, b = (params[name] for name in BGNBD_PARAMS)
    x, recency, T = _arrays(frequency, recency, T)
    log_div = (r + x) * np.log((alpha + T) / (alpha + recency)) + np.log(a / (b + np.maximum(x, 1) - 1))
    return np.where(x == 0, 1.0, expit(-log_div))


def mbgnbd_prob_alive(
    params: dict[str, float], frequency: np.ndarray, recency: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """P(alive) under the modified BG/NBD, where one-time buyers may have dropped out too."""
    r, alpha, a, b = (params[name] for name in BGNBD_PARAMS)
    x, recency, T = _arrays(frequency, recency, T)
    with np.errstate(over="ignore"):
        return 1.0 / (1 + (a / (b + x)) * ((alpha + T) / (alpha + recency)) ** (r + x))


def gamma_gamma_spend(
    params: dict[str, float], frequency: np.ndarray, monetary_value: np.ndarray
) -> np.ndarray:
    """Expected value of one purchase: the consumer's mean shrunk toward the population mean."""
    p, q, v = (params[name] for name in GAMMA_GAMMA_PARAMS)
    x, mean_value = _arrays(frequency, monetary_value)
    weight = p * x / (p * x + q - 1)
    return (1 - weight) * (v * p / (q - 1)) + weight * mean_value


def _arrays(*columns: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(column, dtype="float64") for column in columns)


# --- log-likelihoods of the parameters, one value per distinct customer ----------------------------


class _Levels:
    """A column of whole numbers (purchases, days) as its few distinct values and each row's one,
    so that a function of it is computed once per value (gammaln(r + x) for every x, ...)."""

    def __init__(self, column: np.ndarray) -> None:
        self.values = column
        self.levels, self.index = np.unique(column, return_inverse=True)

    def apply(self, function: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``function`` of every row, evaluated on the distinct values only."""
        return function(self.levels)[self.index]


def _bgnbd_loglik(
    r: float, alpha: float, a: float, b: float, x: _Levels, t_x: _Levels, T: _Levels
) -> np.ndarray:
    d1 = x.apply(
        lambda k: (
            gammaln(r + k) - gammaln(r) + gammaln(a + b) + gammaln(b + k) - gammaln(b) - gammaln(a + b + k)
        )
    )
    log_recent, log_now = t_x.apply(lambda d: np.log(alpha + d)), T.apply(lambda d: np.log(alpha + d))
    d2 = r * np.log(alpha) - (r + x.values) * log_recent
    c3 = np.exp((r + x.values) * (log_recent - log_now))
    c4 = x.apply(lambda k: np.where(k > 0, a / np.where(k > 0, b + k - 1, 1.0), 0.0))
    return d1 + d2 + np.log(c3 + c4)


def _mbgnbd_loglik(
    r: float, alpha: float, a: float, b: float, x: _Levels, t_x: _Levels, T: _Levels
) -> np.ndarray:
    a12 = x.apply(
        lambda k: gammaln(r + k) - gammaln(r) + r * np.log(alpha)
        + gammaln(a + b) + gammaln(b + k + 1) - gammaln(b) - gammaln(a + b + k + 1)
    )  # fmt: skip
    log_recent, log_now = t_x.apply(lambda d: np.log(alpha + d)), T.apply(lambda d: np.log(alpha + d))
    a3 = -(r + x.values) * log_now
    a4 = x.apply(lambda k: np.log(a) - np.log(b + k)) + (r + x.values) * (log_now - log_recent)
    return a12 + a3 + np.logaddexp(a4, 0)


def _gamma_gamma_loglik(
    p: float, q: float, v: float, x: _Levels, log_mean: np.ndarray, log_x: np.ndarray, spend: np.ndarray
) -> np.ndarray:
    """``spend``: x times the mean value (the repeat purchases' total)."""
    shape = p * x.values
    return (
        x.apply(lambda k: gammaln(p * k + q) - gammaln(p * k) - gammaln(q) + q * np.log(v))
        + (shape - 1) * log_mean + shape * log_x - (shape + q) * np.log(spend + v)
    )  # fmt: skip


def _unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    unique, counts = np.unique(rows, axis=0, return_counts=True)
    return unique, counts.astype("float64")


def _maximise(
    loglik: Callable[[np.ndarray], np.ndarray], weights: np.ndarray, start: np.ndarray, names: tuple[str, ...]
) -> dict[str, float]:
    """Parameters (positive: optimised on the log scale) maximising the weighted log-likelihood."""
    total = weights.sum()

    def objective(log_params: np.ndarray) -> float:
        with np.errstate(all="ignore"):
            value = -float(np.dot(weights, loglik(np.exp(log_params)))) / total
        return value if np.isfinite(value) else 1e300

    fitted = minimize(objective, start, method="L-BFGS-B", options={"maxiter": _MAX_ITERATIONS})
    params = dict(zip(names, np.exp(fitted.x).tolist(), strict=True))
    if not all(np.isfinite(value) and value > 0 for value in params.values()):
        raise FitError(f"the fit gave parameters {params}")
    return params
