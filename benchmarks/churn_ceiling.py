"""Ceiling of churn and purchase-forecast quality on the test window: models fitted on its own labels (#12).

    python -m benchmarks.churn_ceiling [--data /tmp/data/online_retail] [--cdnow PATH] [--seeds 5]

Issue #12's targets are judged on the 90 days after 2010-09-09 (Online Retail II) and on CDNOW's
39-week holdout. Every model the nightly may choose is trained on a window *before* the as-of
date. This script asks what any model on the same inputs could reach if the training window
were no obstacle: for each input family it fits the classifier (or regressor) on the **test
window's own labels** by k-fold cross-validation within the test buyers (stratified, shuffled,
seeded) and scores the out-of-fold predictions. Such a model sees four fifths of the very labels
it is judged on, with the season, the level and every interaction of that window, so no honest
model trained before the as-of date can beat it in expectation with the same inputs and model
family. It is an upper bound for these learners on these inputs, not for every learner
imaginable, and an estimate: each cell is the mean (and spread) over ``--seeds`` fold shuffles,
and a model trained on another window or more buyers can land a few thousandths above it
(on CDNOW, logistic models trained before the cut on a short label reach 0.780-0.783 against
0.778). ``logistic in-sample`` (fitted and scored on every test buyer) shows that slack.

Input families (cumulative; each row adds to the one above):

- ``recency + frequency``: log days since the last purchase day and log repeat purchase days;
- ``BTYD summary``: frequency, recency, T and the mean repeat value (``features.clv.btyd_summary``);
- ``activity``: the nightly candidates' inputs (``models.churn.feature_matrix``: trailing
  30 / 90 / 180 / 365-day purchase days and value, mean gap, silence ratio, one-time flag);
- ``+ consumer features``: the numeric columns of ``features.consumer_features`` (orders, spend,
  average order value, active days, rolling spend and orders, return rate, categories, brands,
  price index, tenure) and a main-market flag (home distributor = the most common one). The
  RFM scores are quintiles of recency, orders and spend, already here;
- ``+ season`` (Online Retail only): purchase days and value in December 2009, the only
  same-season activity the data hold; months with a purchase; the share of the buyer's paid
  lines on products with a high December-2009 share of their lines (seasonal products);
- ``+ BTYD model outputs``: the modified BG/NBD's chance of no purchase in the horizon and the
  BG/NBD's expected purchase days and P(alive), fitted on the test frame's own history.

Purchases: a Poisson-loss regressor (predicts the mean: its total bias is meaningful) and an
absolute-error one (predicts the median, the best MAE a point forecast can give; its total is not
a forecast). ``season uplift known before the as-of`` scales the chosen BG/NBD forecast by the
purchase-day rate ratios that the data before the as-of date can show (the last 30 days against
the 90-day window before them; the same calendar window a year earlier, as far as the data
reach, against the last 90 days) and reports the bias the scaled forecast would have.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import PoissonRegressor
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from benchmarks.clv_cdnow import CALIBRATION_END, DEFAULT_DATA, HOLDOUT_WEEKS, cdnow_orders
from features.asof import AsOf
from features.clv import SUMMARY_COLUMNS, ActivityCol, ReturnsRule, labelled_activity, purchase_days
from features.columns import Col, Table
from features.consumer_features import consumer_features
from features.engine import connect
from features.sql import render
from features.vocabulary import BTYDCol, CLVCol, ConsumerCol
from models.churn import (
    CHURN_SCORERS,
    ChurnConfig,
    boosting_classifier,
    churn_label,
    feature_matrix,
    logistic_classifier,
)
from models.clv import CLVConfig, fit_clv

log = logging.getLogger(__name__)

OR_AS_OF = AsOf(date(2010, 9, 9))
OR_HORIZON = 90
SEASON_END = date(2010, 1, 1)  # December 2009: the only same-season activity in Online Retail II
SEASONAL_PRODUCT_SHARE = 0.2  # a product with at least this share of its lines in December 2009
FOLDS = 5
THREADS = 1  # OpenMP / BLAS threads per fit: more spin against each other on a shared machine

Maker = Callable[[int], object]
IN_SAMPLE = "logistic in-sample"  # fitted and scored on the same buyers: no fold held out


def _boosting_slow(seed: int) -> object:
    return HistGradientBoostingClassifier(
        max_iter=400, learning_rate=0.02, max_leaf_nodes=7, min_samples_leaf=30, l2_regularization=1.0,
        random_state=seed,
    )  # fmt: skip


def _poisson_boosting(seed: int) -> object:
    return HistGradientBoostingRegressor(
        loss="poisson", max_iter=150, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=50,
        random_state=seed,
    )  # fmt: skip


def _poisson_linear(seed: int) -> object:
    return make_pipeline(StandardScaler(), PoissonRegressor(alpha=1e-3, max_iter=1000))


def _median_boosting(seed: int) -> object:
    return HistGradientBoostingRegressor(
        loss="absolute_error", max_iter=150, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=50,
        random_state=seed,
    )  # fmt: skip


CLASSIFIERS: dict[str, Maker] = {
    "logistic": logistic_classifier,
    "gradient_boosting": boosting_classifier,
    "gradient_boosting_slow": _boosting_slow,
}
REGRESSORS: dict[str, Maker] = {
    "poisson_boosting": _poisson_boosting,
    "poisson_linear": _poisson_linear,
    "median_boosting (MAE only)": _median_boosting,
}


# --- out-of-fold predictions: every row predicted by a model that never saw its label -------------


def out_of_fold(
    inputs: pd.DataFrame,
    target: np.ndarray,
    make: Maker,
    seed: int,
    folds: int = FOLDS,
    classify: bool = True,
) -> np.ndarray:
    """Each row's prediction from the model fitted on the other folds (``predict_proba`` or ``predict``)."""
    splitter = (
        StratifiedKFold(folds, shuffle=True, random_state=seed)
        if classify
        else KFold(folds, shuffle=True, random_state=seed)
    )
    predictions = np.empty(len(inputs), dtype="float64")
    with warnings.catch_warnings(), threadpool_limits(limits=THREADS):
        warnings.simplefilter("ignore")
        for train, held in splitter.split(inputs, target):
            model = make(seed)
            model.fit(inputs.iloc[train], target[train])  # type: ignore[attr-defined]
            rows = inputs.iloc[held]
            predictions[held] = (
                model.predict_proba(rows)[:, 1] if classify else model.predict(rows)  # type: ignore[attr-defined]
            )
    return predictions


def churn_ceiling(
    families: dict[str, pd.DataFrame], label: np.ndarray, seeds: int, folds: int = FOLDS
) -> pd.DataFrame:
    """AUC and Brier of out-of-fold churn probabilities: mean and standard deviation over seeds."""
    rows = []
    for family, inputs in families.items():
        for name, make in CLASSIFIERS.items():
            scores = []
            for seed in range(seeds):
                risk = out_of_fold(inputs, label, make, seed, folds)
                scores.append((roc_auc_score(label, risk), brier_score_loss(label, risk)))
            auc, brier = np.array(scores).T
            rows.append((family, name, auc.mean(), auc.std(), brier.mean(), brier.std()))
        rows.append((family, IN_SAMPLE, *_in_sample(inputs, label)))
    return pd.DataFrame(rows, columns=["inputs", "model", "auc", "auc_sd", "brier", "brier_sd"])


def _in_sample(inputs: pd.DataFrame, label: np.ndarray) -> tuple[float, float, float, float]:
    """AUC and Brier of the logistic fitted and scored on every test buyer (an optimistic check)."""
    with warnings.catch_warnings(), threadpool_limits(limits=THREADS):
        warnings.simplefilter("ignore")
        risk = logistic_classifier(0).fit(inputs, label).predict_proba(inputs)[:, 1]  # type: ignore[attr-defined]
    return roc_auc_score(label, risk), 0.0, brier_score_loss(label, risk), 0.0


def forecast_ceiling(
    families: dict[str, pd.DataFrame], actual: np.ndarray, seeds: int, folds: int = FOLDS
) -> pd.DataFrame:
    """MAE per buyer and total bias (%) of out-of-fold purchase forecasts, mean over seeds."""
    rows = []
    total = float(actual.sum())
    for family, inputs in families.items():
        for name, make in REGRESSORS.items():
            scores = []
            for seed in range(seeds):
                forecast = out_of_fold(inputs, actual, make, seed, folds, classify=False)
                scores.append((np.mean(np.abs(forecast - actual)), 100 * (forecast.sum() - total) / total))
            mae, bias = np.array(scores).T
            rows.append((family, name, mae.mean(), mae.std(), bias.mean()))
    return pd.DataFrame(rows, columns=["inputs", "model", "mae", "mae_sd", "bias_pct"])


# --- input families ---------------------------------------------------------------------------------


def _signed_log(values: pd.Series) -> pd.Series:
    values = values.astype("float64").fillna(0)
    return np.sign(values) * np.log1p(values.abs())


def base_families(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The three families every data set has, from a ``labelled_activity`` frame (cumulative)."""
    activity = feature_matrix(frame).reset_index(drop=True)
    summary = [BTYDCol.FREQUENCY, BTYDCol.RECENCY, BTYDCol.T, BTYDCol.MONETARY_VALUE]
    return {
        "recency + frequency": activity[[ActivityCol.DAYS_SINCE_LAST, BTYDCol.FREQUENCY]],
        "BTYD summary": activity[summary],
        "activity": activity,
    }


def consumer_inputs(con: duckdb.DuckDBPyConnection, as_of: AsOf, buyers: pd.Series) -> pd.DataFrame:
    """Numeric consumer features (signed log) and a main-market flag, one row per buyer, buyers' order."""
    features = consumer_features(con, as_of).set_index(Col.CONSUMER_ID).loc[buyers.to_numpy()]
    numeric = features.select_dtypes("number").drop(columns=[ConsumerCol.COMPLAINTS], errors="ignore")
    out = pd.DataFrame({column: _signed_log(numeric[column]) for column in numeric.columns})
    home = features[ConsumerCol.HOME_DISTRIBUTOR_ID]
    out["main_market"] = (home == home.mode().iloc[0]).astype("float64")
    return out.reset_index(drop=True)


_SEASON_SQL = """
WITH product_season AS (
    SELECT {product_id}, avg(({ordered_at} < $season_end)::INT) AS december_share
    FROM {orders} WHERE {status} = {paid} AND {ordered_at} < $end GROUP BY 1
)
SELECT o.{consumer_id},
    count(DISTINCT o.{ordered_at}::DATE) FILTER (WHERE o.{ordered_at} < $season_end) AS december_days,
    coalesce(sum(o.{quantity} * o.{unit_price}) FILTER (WHERE o.{ordered_at} < $season_end), 0)
        AS december_value,
    count(DISTINCT date_trunc('month', o.{ordered_at})) AS months_active,
    avg((p.december_share >= $seasonal)::INT) AS seasonal_share
FROM {orders} o JOIN product_season p ON p.{product_id} = o.{product_id}
WHERE o.{status} = {paid} AND o.{ordered_at} < $end
GROUP BY 1
"""


def season_inputs(con: duckdb.DuckDBPyConnection, as_of: AsOf, buyers: pd.Series) -> pd.DataFrame:
    """December-2009 activity, months with a purchase and the seasonal-product share, buyers' order."""
    params = {"end": as_of.end, "season_end": datetime.combine(SEASON_END, datetime.min.time())}
    season = con.execute(render(_SEASON_SQL), params | {"seasonal": SEASONAL_PRODUCT_SHARE}).df()
    season = season.set_index(Col.CONSUMER_ID).reindex(buyers.to_numpy()).fillna(0)
    return pd.DataFrame(
        {
            "december_days": np.log1p(season["december_days"].to_numpy(dtype="float64")),
            "december_value": _signed_log(season["december_value"]).to_numpy(),
            "months_active": np.log1p(season["months_active"].to_numpy(dtype="float64")),
            "seasonal_share": season["seasonal_share"].to_numpy(dtype="float64"),
        }
    )


# --- the season uplift a model could know before the as-of date --------------------------------------

_RATE_SQL = """
SELECT count(*) FILTER (WHERE paid_lines > 0) / ($end::DATE - $start::DATE) AS per_day
FROM {days} WHERE day >= $start::DATE AND day < $end::DATE
"""


def purchase_day_rate(con: duckdb.DuckDBPyConnection, days: str, start: date, end: date) -> float:
    """Purchase days (all consumers) per calendar day in ``[start, end)``."""
    return float(con.execute(_RATE_SQL.format(days=days), {"start": start, "end": end}).fetchone()[0])


@dataclass(frozen=True)
class Uplift:
    """A ratio of purchase-day rates readable on the as-of date, and the true one."""

    name: str
    ratio: float


def uplifts(con: duckdb.DuckDBPyConnection, as_of: AsOf, horizon: int) -> list[Uplift]:
    """Rate ratios before the as-of date, and the truth (the test window against the last horizon)."""
    day = as_of.date + timedelta(days=1)  # the first day after the as-of date
    test_end = day + timedelta(days=horizon)
    last_year = (day - timedelta(days=365), test_end - timedelta(days=365))
    with purchase_days(con, AsOf(test_end).end) as days:
        rate = lambda start, end: purchase_day_rate(con, days, start, end)  # noqa: E731
        first = con.execute(f"SELECT min(day) FROM {days}").fetchone()[0]
        recent = rate(day - timedelta(days=horizon), day)
        seen = (max(last_year[0], first), last_year[1])
        out = [Uplift("last 30 days / last 90 days", rate(day - timedelta(days=30), day) / recent)]
        if seen[0] < seen[1]:
            out.append(Uplift(f"same window a year before ({seen[0]}..{seen[1]}) / last 90 days",
                              rate(*seen) / recent))  # fmt: skip
        out.append(Uplift("truth: the test window / last 90 days (not known on the as-of date)",
                          rate(day, test_end) / recent))  # fmt: skip
    return out


def btyd_outputs(test: pd.DataFrame, horizon: int, returns: ReturnsRule) -> pd.DataFrame:
    """The BTYD models' outputs fitted on the frame's own history (no label): the modified BG/NBD's
    chance of no purchase in the horizon, the BG/NBD's expected purchase days and P(alive)."""
    clv = CLVConfig(returned_lines=returns, horizon_days=horizon)
    predictions = fit_clv(test[list(SUMMARY_COLUMNS)], clv).predictions
    return pd.DataFrame(
        {
            "mbgnbd_no_purchase": CHURN_SCORERS["mbgnbd"](test, test, horizon, ChurnConfig()),
            "bgnbd_purchases": np.log1p(predictions[CLVCol.EXPECTED_PURCHASES].to_numpy()),
            "bgnbd_alive": predictions[CLVCol.PROB_ALIVE].to_numpy(),
        }
    )


def bias_pct(forecast: np.ndarray, actual: np.ndarray) -> float:
    """Total forecast against the total actual, in percent."""
    return float(100 * (forecast.sum() - actual.sum()) / actual.sum())


# --- the two data sets -------------------------------------------------------------------------------


def online_retail(data: Path) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], duckdb.DuckDBPyConnection]:
    """The test frame as of 2010-09-09 (labels: the next 90 days), its input families, the connection."""
    con = connect({Table.ORDERS: data / f"{Table.ORDERS}.parquet",
                   Table.CONSUMERS: data / f"{Table.CONSUMERS}.parquet",
                   Table.PRODUCTS: data / f"{Table.PRODUCTS}.parquet"})  # fmt: skip
    test = labelled_activity(con, OR_AS_OF, OR_HORIZON, "subtracted")
    families = base_families(test)
    buyers = test[Col.CONSUMER_ID]
    families["+ consumer features"] = pd.concat(
        [families["activity"], consumer_inputs(con, OR_AS_OF, buyers)], axis=1
    )
    families["+ season"] = pd.concat(
        [families["+ consumer features"], season_inputs(con, OR_AS_OF, buyers)], axis=1
    )
    btyd = btyd_outputs(test, OR_HORIZON, "subtracted")
    families["+ BTYD model outputs"] = pd.concat([families["+ season"], btyd], axis=1)
    return test, families, con


def cdnow(path: Path) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """CDNOW as of the calibration end (labels: the 39 holdout weeks) and its input families."""
    orders = cdnow_orders(pd.read_parquet(path))
    products = pd.DataFrame(
        {Col.PRODUCT_ID: orders[Col.PRODUCT_ID].unique(), Col.SUPPLIER_ID: "cdnow", Col.CATEGORY: "music",
         Col.LIST_PRICE: orders[Col.UNIT_PRICE].median()}
    )  # fmt: skip
    con = connect({Table.ORDERS: orders, Table.PRODUCTS: products})
    test = labelled_activity(con, CALIBRATION_END, HOLDOUT_WEEKS * 7)
    families = base_families(test)
    families["+ consumer features"] = pd.concat(
        [families["activity"], consumer_inputs(con, CALIBRATION_END, test[Col.CONSUMER_ID])], axis=1
    )
    btyd = btyd_outputs(test, HOLDOUT_WEEKS * 7, "excluded")
    families["+ BTYD model outputs"] = pd.concat([families["+ consumer features"], btyd], axis=1)
    return test, families


def _print_ceiling(title: str, test: pd.DataFrame, families: dict[str, pd.DataFrame], seeds: int) -> None:
    label = churn_label(test)
    actual = test[ActivityCol.FUTURE_PURCHASE_DAYS].to_numpy(dtype="float64")
    started = time.perf_counter()
    churn = churn_ceiling(families, label, seeds)
    forecast = forecast_ceiling(families, actual, seeds)
    print(f"\n== {title}: {len(test):,} buyers, churn rate {label.mean():.3f}, "
          f"{actual.sum():,.0f} purchase days in the test window ==")  # fmt: skip
    print("churn, out-of-fold on the test window's own labels (mean over seeds; sd):")
    print(churn.round(4).to_string(index=False))
    print("purchase days, out-of-fold on the test window's own labels:")
    print(forecast.round(4).to_string(index=False))
    held_out = churn[churn["model"] != IN_SAMPLE]
    best = held_out.loc[held_out["auc"].idxmax()]
    print(f"ceiling (out of fold): churn AUC {best['auc']:.4f} ({best['inputs']}, {best['model']}); "
          f"least Brier {held_out['brier'].min():.4f}; purchases MAE {forecast['mae'].min():.4f}; "
          f"in-sample logistic up to AUC {churn['auc'].max():.4f}; "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip


def _online_retail_report(data: Path, seeds: int) -> None:
    test, families, con = online_retail(data)
    _print_ceiling(f"Online Retail II as of {OR_AS_OF}, {OR_HORIZON} days", test, families, seeds)
    forecast = np.expm1(families["+ BTYD model outputs"]["bgnbd_purchases"].to_numpy())
    actual = test[ActivityCol.FUTURE_PURCHASE_DAYS].to_numpy(dtype="float64")
    print("the BG/NBD forecast (the chosen purchases model) scaled by a season uplift of purchase days:")
    mae = np.mean(np.abs(forecast - actual))
    print(f"  x{1:.3f}  bias {bias_pct(forecast, actual):+.1f} %  MAE {mae:.4f}  (as chosen)")
    for uplift in uplifts(con, OR_AS_OF, OR_HORIZON):
        scaled = forecast * uplift.ratio
        print(f"  x{uplift.ratio:.3f}  bias {bias_pct(scaled, actual):+.1f} %  "
              f"MAE {np.mean(np.abs(scaled - actual)):.4f}  {uplift.name}")  # fmt: skip
    print(
        f"  x{actual.sum() / forecast.sum():.3f}  bias +0.0 %  the uplift the test window needed "
        "(its purchase days over the forecast; the population ratios above also count new consumers)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/data/online_retail"))
    parser.add_argument("--cdnow", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", type=int, default=5, help="fold shuffles per cell (seeds 0..n-1)")
    parser.add_argument("--skip-cdnow", action="store_true")
    parser.add_argument("--skip-online-retail", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.skip_online_retail:
        _online_retail_report(args.data, args.seeds)
    if not args.skip_cdnow:
        test, families = cdnow(args.cdnow)
        _print_ceiling("CDNOW, 39-week calibration / 39-week holdout", test, families, args.seeds)


if __name__ == "__main__":
    main()
