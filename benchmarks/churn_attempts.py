"""Churn on Online Retail II: the session-8 attempts at the #12 targets, each judged as the nightly would.

    python -m benchmarks.churn_attempts [--data /tmp/data/online_retail]

Every variant is a churn model fitted at a *cut* date on labelled frames whose label window ends
on or before the cut; it predicts "no paid purchase in the next 90 days" for the buyers as of
the cut. It is run twice: at the validation cut (2010-06-11; scored on the window up to the
as-of date 2010-09-09, the only thing a choice may look at) and at the as-of date itself
(scored on the test window to 2010-12-08, once). The variants:

- (a) more recent labels: one frame with a short label window ending at the cut (30 or 60 days;
  the model's level is then that of the short window), several label lengths ending at the cut
  with log(label days) as an input (predicted at 90 days), 90-day labels stacked every 15 days;
- (b) inputs meant to carry across seasons: December-2009 activity, months with a purchase and
  the seasonal-product share (``benchmarks.churn_ceiling.season_inputs``), the trend of the
  last 30 / 90 / 180 days against the buyer's own history rate;
- (c) the level: the probability raised to the ratio of the last 30 days' purchase-day rate
  to the 90-day label window's (a hazard scaled by the recent rate), or the logit shifted so
  that the model meets the churn of the 30 days before the cut.

Prints one line per variant: AUC, Brier, mean risk and the observed churn rate on each window.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from scipy.optimize import brentq
from sklearn.metrics import brier_score_loss, roc_auc_score
from threadpoolctl import threadpool_limits

from benchmarks.churn_ceiling import CLASSIFIERS, season_inputs
from features.asof import AsOf
from features.clv import ActivityCol, _labelled, purchase_days
from features.columns import Col, Table
from features.engine import connect
from features.vocabulary import BTYDCol
from models.churn import churn_label, feature_matrix

HORIZON = 90
VALIDATION_CUT, TEST_CUT = date(2010, 6, 11), date(2010, 9, 9)
FIRST_AS_OF = date(2010, 1, 15)  # stacked frames start here: six weeks after the data's first day
LABEL_DAYS = "label_days"


class Frames:
    """Labelled activity frames at any as-of date and label length, with the season inputs; cached."""

    def __init__(self, con: duckdb.DuckDBPyConnection, days: str) -> None:
        self.con, self.days, self.cache = con, days, {}

    def __call__(self, as_of: date, label_days: int) -> pd.DataFrame:
        key = (as_of, label_days)
        if key not in self.cache:
            frame = _labelled(self.con, self.days, AsOf(as_of), label_days, "subtracted")
            season = season_inputs(self.con, AsOf(as_of), frame[Col.CONSUMER_ID])
            self.cache[key] = pd.concat([frame, season], axis=1).assign(**{LABEL_DAYS: label_days})
        return self.cache[key]


def inputs(frame: pd.DataFrame, extra: tuple[str, ...]) -> pd.DataFrame:
    """The nightly candidates' inputs plus the named extra families."""
    out = feature_matrix(frame)
    if "season" in extra:
        out[["december_days", "december_value", "months_active", "seasonal_share"]] = frame[
            ["december_days", "december_value", "months_active", "seasonal_share"]
        ].to_numpy()
    if "trend" in extra:
        rate = (frame[BTYDCol.FREQUENCY] + 1) / frame[BTYDCol.T].clip(lower=1)
        for days in (30, 90, 180):
            out[f"trend_{days}d"] = np.log1p(frame[ActivityCol.purchase_days(days)]) - np.log1p(rate * days)
    if "label_days" in extra:
        out[LABEL_DAYS] = np.log(frame[LABEL_DAYS])
    return out


def training_frames(frames: Frames, cut: date, scheme: str) -> pd.DataFrame:
    """``one90`` (the nightly's), ``short<d>``, ``lengths`` (30, 60, 90 ending at the cut), ``stack15``."""
    if scheme == "one90":
        parts = [frames(cut - timedelta(days=HORIZON), HORIZON)]
    elif scheme.startswith("short"):
        days = int(scheme.removeprefix("short"))
        parts = [frames(cut - timedelta(days=days), days)]
    elif scheme == "lengths":
        parts = [frames(cut - timedelta(days=days), days) for days in (30, 60, 90)]
    elif scheme == "stack15":
        last = cut - timedelta(days=HORIZON)
        count = (last - FIRST_AS_OF).days // 15 + 1
        parts = [frames(last - timedelta(days=15 * k), HORIZON) for k in range(count)]
    else:
        raise ValueError(scheme)
    return pd.concat(parts, ignore_index=True)


def recent_ratio(con: duckdb.DuckDBPyConnection, days: str, cut: date) -> float:
    """Purchase days per day (all consumers) in the 30 days up to the cut over the 90 days up to it."""
    sql = f"""SELECT count(*) FILTER (WHERE day > $cut::DATE - 30) * 3.0 / count(*) FROM {days}
              WHERE paid_lines > 0 AND day > $cut::DATE - 90 AND day <= $cut::DATE"""
    return float(con.execute(sql, {"cut": cut}).fetchone()[0])


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def predict(frames: Frames, cut: date, settings: dict[str, object]) -> tuple[np.ndarray, np.ndarray]:
    """The variant's churn risk for the buyers as of ``cut`` and their 90-day label.

    ``settings``: ``scheme`` (``training_frames``; default ``one90``), ``model`` (a
    ``benchmarks.churn_ceiling.CLASSIFIERS`` name; default ``logistic``), ``extra`` (input
    families of ``inputs``), ``level`` (``recent_rate``, ``recent_churn`` or none).
    """
    scheme, model = str(settings.get("scheme", "one90")), str(settings.get("model", "logistic"))
    extra, level = tuple(settings.get("extra", ())), settings.get("level")  # type: ignore[arg-type]
    train, target = training_frames(frames, cut, scheme), frames(cut, HORIZON)
    fitted = CLASSIFIERS[model](0)
    fitted.fit(inputs(train, extra), churn_label(train))  # type: ignore[attr-defined]
    risk = fitted.predict_proba(inputs(target, extra))[:, 1]  # type: ignore[attr-defined]
    if level == "recent_rate":
        risk = np.clip(risk, 1e-6, 1) ** recent_ratio(frames.con, frames.days, cut)
    elif level == "recent_churn":
        recent = frames(cut - timedelta(days=30), 30)
        before = fitted.predict_proba(inputs(recent, extra))[:, 1]  # type: ignore[attr-defined]
        observed = churn_label(recent).mean()
        shift = brentq(lambda s: (1 / (1 + np.exp(-(_logit(before) + s)))).mean() - observed, -5, 5)
        risk = 1 / (1 + np.exp(-(_logit(risk) + shift)))
    return risk, churn_label(target)


VARIANTS: dict[str, dict[str, object]] = {
    "logistic, all inputs (the nightly's)": {},
    "(a) 30-day label ending at the cut": {"scheme": "short30"},
    "(a) 60-day label ending at the cut": {"scheme": "short60"},
    "(a) 30/60/90-day labels, label days an input": {"scheme": "lengths", "extra": ("label_days",)},
    "(a) 90-day labels stacked every 15 days": {"scheme": "stack15"},
    "(b) + December 2009, months, seasonal products": {"extra": ("season",)},
    "(b) + trend 30/90/180 days vs own history": {"extra": ("trend",)},
    "(b) + season + trend": {"extra": ("season", "trend")},
    "(b) gradient boosting + season + trend": {"model": "gradient_boosting", "extra": ("season", "trend")},
    "(c) risk ^ (30-day / 90-day purchase rate)": {"level": "recent_rate"},
    "(c) 30/60/90 labels, logit shifted to the last 30 days' churn": {
        "scheme": "lengths", "extra": ("label_days",), "level": "recent_churn",
    },
}  # fmt: skip


def run(frames: Frames, settings: dict[str, object]) -> list[float]:
    """AUC, Brier, mean risk and churn rate at the validation cut, then at the test cut."""
    scores: list[float] = []
    for cut in (VALIDATION_CUT, TEST_CUT):
        risk, label = predict(frames, cut, settings)
        scores += [roc_auc_score(label, risk), brier_score_loss(label, risk), risk.mean(), label.mean()]
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/data/online_retail"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    con = connect({Table.ORDERS: args.data / f"{Table.ORDERS}.parquet"})
    columns = [
        "val AUC",
        "val Brier",
        "val risk",
        "val churn",
        "test AUC",
        "test Brier",
        "test risk",
        "test churn",
    ]
    with (
        purchase_days(con, datetime(2010, 12, 10)) as days,
        warnings.catch_warnings(),
        threadpool_limits(limits=1),
    ):
        warnings.simplefilter("ignore")
        frames = Frames(con, days)
        rows = {name: run(frames, settings) for name, settings in VARIANTS.items()}
        ratios = [f"{recent_ratio(con, days, cut):.3f}" for cut in (VALIDATION_CUT, TEST_CUT)]
        print(f"recent rate ratio (30 / 90 days): validation cut {ratios[0]}, test cut {ratios[1]}")
    print(pd.DataFrame.from_dict(rows, orient="index", columns=columns).round(4).to_string())


if __name__ == "__main__":
    main()
