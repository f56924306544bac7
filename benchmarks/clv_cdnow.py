"""CLV check on the CDNOW sample: BG/NBD and Gamma-Gamma parameters against the published fit, holdout error.

    /tmp/venv/bin/python benchmarks/clv_cdnow.py [--data ../shared/datasets/cdnow_sample.parquet]

The 2,357-customer CDNOW sample (Fader, Hardie & Lee 2005) is turned into contract order lines
(one paid line per purchase row, value = ``dollar_value``), summarised by
``features.clv.btyd_summary`` as of the end of the 39-week calibration (1997-09-30) and fitted by
``models.clv.fit_clv`` in weeks (``time_unit_days: 7``, as the paper), with the default flat
priors and, for comparison, the pymc-marketing default priors and a fit in days. Holdout repeat
purchases (the next 39 weeks) are the growth of ``frequency`` from the calibration end to
1998-06-30; the plain forecast is each customer's calibration rate ``frequency / T`` times 39 weeks.

Churn (issue #12): the label is "no purchase in the 39 holdout weeks"; the modified BG/NBD's
probability of no purchase (``models.churn``, the candidate the nightly falls back to when no
labelled window exists, as here: every customer's first purchase is in the first 12 weeks, so
there is no earlier 39-week window to train a classifier on) is compared with days since the
last purchase alone and -frequency alone by ROC AUC.
"""

from __future__ import annotations

import argparse
import logging
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from features.asof import AsOf
from features.clv import btyd_summary
from features.columns import Col, OrderStatus, Table
from features.engine import connect
from models.churn import CHURN_SCORERS, ChurnConfig, churn_metrics
from models.clv import CLVConfig, CLVResult, fit_clv

CALIBRATION_END = AsOf(date(1997, 9, 30))
HOLDOUT_END = AsOf(date(1998, 6, 30))
HOLDOUT_WEEKS = 39
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cdnow_sample.parquet"


def cdnow_orders(purchases: pd.DataFrame) -> pd.DataFrame:
    """CDNOW purchase rows (customer_id, date, dollar_value) as contract order lines."""
    return pd.DataFrame(
        {
            Col.ORDER_ID: [f"T{position}" for position in range(len(purchases))],
            Col.CONSUMER_ID: purchases["customer_id"].astype(str).to_numpy(),
            Col.DISTRIBUTOR_ID: "cdnow",
            Col.PRODUCT_ID: "cd",
            Col.QUANTITY: 1,
            Col.UNIT_PRICE: purchases["dollar_value"].to_numpy(dtype="float64"),
            Col.ORDERED_AT: pd.to_datetime(purchases["date"]).to_numpy(),
            Col.STATUS: OrderStatus.PAID,
        }
    )


def calibration_and_holdout(purchases: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The calibration summary (days) and each customer's holdout repeat purchases, in summary order."""
    con = connect({Table.ORDERS: cdnow_orders(purchases)})
    calibration = btyd_summary(con, CALIBRATION_END)
    whole = btyd_summary(con, HOLDOUT_END).set_index(Col.CONSUMER_ID)
    later = whole.loc[calibration[Col.CONSUMER_ID], "frequency"].to_numpy()
    holdout = pd.Series(later - calibration["frequency"].to_numpy(), name="holdout_purchases")
    return calibration, holdout


def rate_forecast(calibration: pd.DataFrame) -> np.ndarray:
    """Plain forecast: repeat purchases per week of the calibration times the holdout weeks."""
    weeks = calibration["T"].to_numpy(dtype="float64") / 7
    return calibration["frequency"].to_numpy(dtype="float64") / weeks * HOLDOUT_WEEKS


def weekly_config(**changes: object) -> CLVConfig:
    """The check's settings: weeks as the time unit, a 39-week horizon, otherwise the defaults."""
    return CLVConfig(time_unit_days=7, horizon_days=HOLDOUT_WEEKS * 7, **changes)


def library_default_fit(calibration: pd.DataFrame) -> dict[str, float]:
    """BG/NBD by MAP with pymc-marketing's default priors (Weibull r and alpha, pooled a and b), in weeks."""
    from pymc_marketing.clv import BetaGeoModel

    weekly = pd.DataFrame(
        {
            "customer_id": np.arange(len(calibration)),
            "frequency": calibration["frequency"].to_numpy(),
            "recency": calibration["recency"].to_numpy() / 7,
            "T": calibration["T"].to_numpy() / 7,
        }
    )
    model = BetaGeoModel()
    model.fit(data=weekly, method="map", progressbar=False)
    return {name: float(model.fit_result[name].mean()) for name in PUBLISHED_BGNBD}


def percent_off(fitted: dict[str, float], published: dict[str, float]) -> dict[str, float]:
    """Relative difference of each fitted parameter from the published one, in percent."""
    return {name: 100 * (fitted[name] - value) / value for name, value in published.items()}


def _table(title: str, fitted: dict[str, float], published: dict[str, float], scale: dict[str, float]) -> str:
    rows = [f"{title}", f"  {'param':<6} {'fitted':>9} {'published':>10} {'diff %':>8}"]
    for name, value in published.items():
        estimate = fitted.get(name, float("nan")) * scale.get(name, 1.0)
        rows.append(f"  {name:<6} {estimate:>9.3f} {value:>10.3f} {100 * (estimate - value) / value:>+8.1f}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    calibration, holdout = calibration_and_holdout(pd.read_parquet(args.data))
    results: dict[str, CLVResult] = {}
    print(f"{len(calibration)} customers, {int(calibration['frequency'].sum())} calibration repeat purchases")
    fits: dict[str, tuple[dict[str, float], float]] = {}
    for label, config in {
        "weeks, flat priors (default)": weekly_config(),
        "days, flat priors (alpha / 7)": CLVConfig(horizon_days=HOLDOUT_WEEKS * 7),
    }.items():
        started = time.perf_counter()
        result = fit_clv(calibration, config)
        fits[label] = (result.bgnbd_params, time.perf_counter() - started)
        results[label] = result
    started = time.perf_counter()
    fits["weeks, pymc-marketing's own default priors"] = (
        library_default_fit(calibration),
        time.perf_counter() - started,
    )

    for label, (params, seconds) in fits.items():
        scale = {"alpha": 1 / 7} if label.startswith("days") else {}
        print(_table(f"\nBG/NBD, {label}  [{seconds:.1f} s]", params, PUBLISHED_BGNBD, scale))
    main_fit = results["weeks, flat priors (default)"]
    print(_table("\nGamma-Gamma (flat priors)", main_fit.gamma_gamma_params, PUBLISHED_GAMMA_GAMMA, {}))
    fitted, set_aside = main_fit.gamma_gamma_customers, main_fit.set_aside
    print(f"  fitted on {fitted} repeat buyers, {set_aside} set aside (value <= 0)")

    bgnbd = main_fit.predictions["expected_purchases"].to_numpy()
    rate = rate_forecast(calibration)
    actual = holdout.to_numpy(dtype="float64")
    print(f"\nHoldout ({HOLDOUT_WEEKS} weeks to {HOLDOUT_END}): repeat purchases per customer")
    print(f"  {'forecast':<22} {'total':>8} {'vs actual':>10} {'MAE':>7}")
    print(f"  {'actual':<22} {actual.sum():>8.0f} {'':>10} {'':>7}")
    for name, forecast in {"BG/NBD": bgnbd, "rate x time": rate}.items():
        off = 100 * (forecast.sum() - actual.sum()) / actual.sum()
        print(f"  {name:<22} {forecast.sum():>8.0f} {off:>+9.1f}% {np.abs(forecast - actual).mean():>7.3f}")

    churn_check(calibration, holdout.to_numpy())


def churn_check(calibration: pd.DataFrame, holdout: np.ndarray) -> dict[str, float]:
    """ROC AUC and Brier of the modified BG/NBD churn risk against recency and frequency alone."""
    churned = (holdout == 0).astype("int64")
    days_since_last = (calibration["T"] - calibration["recency"]).to_numpy(dtype="float64")
    frame = calibration.assign(days_since_last=days_since_last)
    risk = CHURN_SCORERS["mbgnbd"](None, frame, HOLDOUT_WEEKS * 7, ChurnConfig())
    scores = {
        "modified BG/NBD": risk,
        "days since last purchase": days_since_last,
        "-frequency": -calibration["frequency"].to_numpy(dtype="float64"),
    }
    print(f"\nChurn = no purchase in the {HOLDOUT_WEEKS} holdout weeks ({churned.mean():.1%} of customers)")
    aucs = {}
    for name, score in scores.items():
        metrics = churn_metrics(churned, score)
        aucs[name] = metrics["auc"]
        brier = f"{metrics['brier']:.4f}" if name == "modified BG/NBD" else ""
        print(f"  {name:<26} AUC {metrics['auc']:.4f}  {brier}")
    best_simple = max(aucs["days since last purchase"], aucs["-frequency"])
    print(f"  modified BG/NBD - best simple = {aucs['modified BG/NBD'] - best_simple:+.4f} (target >= +0.03)")
    return aucs


if __name__ == "__main__":
    main()
