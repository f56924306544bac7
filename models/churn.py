"""Churn risk and expected purchases / value, each chosen among candidates on a past window (docs/clv.md).

The label of a buyer as of a date is **churn**: no paid purchase in the next ``horizon_days``.
Each candidate turns a labelled *training* frame and a *target* frame (both
``features.clv.activity_summary`` frames, the training one with ``future_activity`` columns)
into one number per target row:

- churn (a probability): ``mbgnbd`` (modified BG/NBD, fitted on the target's own history:
  one-time buyers can drop out), ``logistic`` (all activity features, standardised),
  ``gradient_boosting`` (scikit-learn histogram gradient boosting, log loss), ``logistic_rf``
  (log recency + log frequency only: the simple baseline the others must beat);
- expected purchase days and value: ``bgnbd`` (BG/NBD + Gamma-Gamma, ``models.clv``) and
  ``gradient_boosting`` (Poisson-loss gradient boosting on the same features).

``choose_and_predict`` never sees the window after the as-of date: candidates are compared on
the *validation* frame (as of one horizon before the as-of date, so its label is known at the
as-of date), trained on the frame one horizon before that; the winner (least Brier score for
churn, least mean absolute error for purchases and value) is refitted on the validation frame
and predicts the current frame. Pure: frames in, frames and metrics out.

The comparison on the validation window is most of the step's time (every candidate fitted),
and its answer changes slowly, so a night may be handed an earlier night's ``Choice``
(``models.churn_choice``: ``rechoose_every_days``): the chosen candidates are then refitted
on tonight's validation frame and predict tonight's buyers, without comparing the others
again. The fitted models change slowly too (a day more of a 90-day window), so such a
night may also be handed the models an earlier night fitted for that choice
(``FittedModels``, ``refit_every_days``): they predict tonight's buyers and nothing is fitted.
Every candidate predicts from its fitted state as plain arrays (below), so kept models give
the numbers the fit itself gave on the same frame.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, TypeVar, get_args

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from features.clv import ActivityCol
from features.columns import Col
from features.progress import progress
from features.vocabulary import BTYDCol, ChurnBand, CLVCol, ExportCol
from models.clv import MAP, CLVConfig, fit_clv, posterior_of, predict_clv, restored, shared_data_models
from models.trees import HGBTrees

log = logging.getLogger(__name__)
T = TypeVar("T")

ChurnCandidate = Literal["mbgnbd", "logistic", "gradient_boosting", "logistic_rf"]
ForecastCandidate = Literal["bgnbd", "gradient_boosting"]
CHURN_CANDIDATES: tuple[str, ...] = get_args(ChurnCandidate)
FORECAST_CANDIDATES: tuple[str, ...] = get_args(ForecastCandidate)
BANDS: tuple[str, ...] = ChurnBand.ALL
RISK_FLOOR = 0.001  # churn_risk is kept within [RISK_FLOOR, 1 - RISK_FLOOR]
RECENCY_BASELINE, FREQUENCY_BASELINE = "recency", "frequency"  # vocabulary: a value, not a column
RANK_ONLY = (RECENCY_BASELINE, FREQUENCY_BASELINE)  # baselines that rank but are no probability: AUC only
CHURN_RISK = ExportCol.CHURN_RISK
CHURN_BAND = ExportCol.CHURN_BAND


class ChurnConfig(BaseModel):
    """The ``segmentation.churn`` config section (the horizon is ``segmentation.clv.horizon_days``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        True, description="Choose churn / value models on a past window (off: BG/NBD only)."
    )
    candidates: tuple[ChurnCandidate, ...] = Field(CHURN_CANDIDATES, min_length=1)
    forecast_candidates: tuple[ForecastCandidate, ...] = Field(FORECAST_CANDIDATES, min_length=1)
    medium_from: float = Field(0.5, gt=0, lt=1, description="churn_risk from here: band medium.")
    high_from: float = Field(0.7, gt=0, lt=1, description="churn_risk from here: band high.")
    max_train_customers: int | None = Field(
        100_000, gt=0, description="Supervised fits on a seeded sample of this many buyers; none = all."
    )
    min_customers: int = Field(50, ge=10, description="Fewer labelled buyers than this: BG/NBD only.")
    seed: int = Field(0, description="Seed of the training sample and of gradient boosting.")
    threads: int | None = Field(
        1, gt=0, description="OpenMP / BLAS threads of the scikit-learn fits; none = the library default."
    )
    rechoose_every_days: int = Field(
        7,
        ge=1,
        description="The nightly compares the candidates again after this many days; between, it "
        "keeps the choice (1: compare every night).",
    )
    refit_every_days: int = Field(
        7,
        ge=1,
        description="The nightly fits the chosen models again after this many days; between, the "
        "models an earlier night fitted score tonight's buyers (1: fit every night). A night that "
        "compares the candidates always fits.",
    )

    @model_validator(mode="after")
    def _ordered_bands(self) -> ChurnConfig:
        if self.medium_from >= self.high_from:
            raise ValueError(
                f"medium_from ({self.medium_from}) must be below high_from ({self.high_from}); "
                "fix: e.g. medium_from 0.5, high_from 0.7"
            )
        return self


@dataclass(frozen=True)
class Choice:
    """The candidates chosen on a validation window and the metrics they were chosen on."""

    chosen: dict[str, str]  # churn / purchases / value -> candidate name
    validation: pd.DataFrame  # target, candidate, metric, value


@dataclass(frozen=True)
class ChurnResult:
    """Predictions for the current buyers, the chosen candidates and the validation metrics."""

    predictions: (
        pd.DataFrame
    )  # consumer_id, churn_risk, churn_band, expected_purchases, expected_value, prob_alive
    chosen: dict[str, str]  # churn / purchases / value -> candidate name
    validation: pd.DataFrame  # target, candidate, metric, value (window before the as-of date)
    set_aside: int = 0
    notes: list[str] = field(default_factory=list)
    carried: bool = False  # the choice was handed in (an earlier night's), not made tonight
    models: FittedModels | None = None  # the models that predicted
    refitted: bool = True  # the models were fitted tonight (False: kept ones, handed in)


def churn_label(frame: pd.DataFrame) -> np.ndarray:
    """1 where the buyer made no paid purchase in the horizon after the frame's as-of date."""
    return (frame[ActivityCol.FUTURE_PURCHASE_DAYS].to_numpy() == 0).astype("int64")


def churn_band(risk: pd.Series, config: ChurnConfig) -> pd.Series:
    """``low`` below ``medium_from``, ``high`` from ``high_from``, else ``medium``; empty where risk is."""
    band = np.where(risk >= config.high_from, "high", np.where(risk >= config.medium_from, "medium", "low"))
    return pd.Series(band, index=risk.index, dtype="string").mask(risk.isna())


def feature_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """The model inputs: log counts and values, log days, a one-time flag; no empty cells."""
    out = pd.DataFrame(index=frame.index)
    days = [BTYDCol.T, BTYDCol.RECENCY, ActivityCol.DAYS_SINCE_LAST, ActivityCol.MEAN_GAP_DAYS]
    counts = [BTYDCol.FREQUENCY, *[c for c in frame.columns if c.startswith("purchase_days_")]]
    values = [
        BTYDCol.MONETARY_VALUE,
        ActivityCol.VALUE_TOTAL,
        *[c for c in frame.columns if c.startswith("value_")],
    ]
    for column in days + counts:
        out[column] = np.log1p(frame[column].astype("float64").fillna(-1).clip(lower=0))
    for column in dict.fromkeys(values):
        value = frame[column].astype("float64").fillna(0)
        out[column] = np.sign(value) * np.log1p(value.abs())
    out["one_time"] = (frame[BTYDCol.FREQUENCY] == 0).astype("float64")
    out[ActivityCol.SILENCE_RATIO] = np.log1p(frame[ActivityCol.SILENCE_RATIO].astype("float64").fillna(0))
    return out


def _sample(frame: pd.DataFrame, config: ChurnConfig) -> pd.DataFrame:
    if config.max_train_customers is None or len(frame) <= config.max_train_customers:
        return frame
    return frame.sample(n=config.max_train_customers, random_state=config.seed)


# --- fitted candidates: their state as plain arrays, applied to any frame --------------------------
#
# Every candidate is fitted (``CHURN_FITTERS`` / ``FORECAST_FITTERS``: training and target frames
# -> arrays, no pickle) and then predicts from those arrays alone (``CHURN_PREDICTORS`` /
# ``FORECAST_PREDICTORS``: arrays and any target frame -> its outputs). The night that fits
# predicts that way, and so does a night that keeps the fitted models (``refit_every_days``):
# one path, the same numbers. The supervised candidates are fitted on the training frame; the
# BTYD ones (modified BG/NBD, BG/NBD + Gamma-Gamma) on the target's own history, which is how
# those models are fitted, so a kept one is an earlier night's population parameters.

Arrays = dict[str, np.ndarray]
CHURN, FORECAST = "churn", "forecast"  # vocabulary: the two kinds of candidate (a value, not a column)


@dataclass(frozen=True, eq=False)  # arrays: compared by identity
class Fitted:
    """One candidate as fitted: ``kind`` churn or forecast, its ``name`` and its state (empty: the
    fit failed, and its outputs are empty)."""

    kind: str
    name: str
    arrays: Arrays


def _threads(config: ChurnConfig) -> int:
    return config.threads or os.cpu_count() or 1


def _inputs(frame: pd.DataFrame, columns: list[str] | None) -> pd.DataFrame:
    inputs = feature_matrix(frame)
    return inputs if columns is None else inputs[columns]


# --- churn candidates: (train, target, horizon, config) -> arrays -> probability per target row ----


def _fit_supervised(make: Callable[[int], object], columns: list[str] | None = None):
    def fit(train: pd.DataFrame, target: pd.DataFrame, horizon: int, config: ChurnConfig) -> Arrays:
        sample = _sample(train, config)
        model = make(config.seed)
        with warnings.catch_warnings(), threadpool_limits(limits=config.threads):
            warnings.simplefilter("ignore")
            model.fit(_inputs(sample, columns), churn_label(sample))  # type: ignore[attr-defined]
        if isinstance(model, HistGradientBoostingClassifier):
            return HGBTrees.of(model).state()
        scaler, regression = model[0], model[-1]  # type: ignore[index]
        return {
            "mean": scaler.mean_, "scale": scaler.scale_,
            "coef": regression.coef_, "intercept": regression.intercept_,
        }  # fmt: skip

    return fit


def _supervised_risk(columns: list[str] | None = None):
    def predict(arrays: Arrays, target: pd.DataFrame, horizon: int, config: ChurnConfig) -> np.ndarray:
        x = _inputs(target, columns).to_numpy(dtype="float64")
        if "coef" in arrays:  # the logistic pipeline's own arithmetic: standardise, then X @ coef.T + b
            scaled = (x - arrays["mean"]) / arrays["scale"]
            return expit((scaled @ arrays["coef"].T + arrays["intercept"]).ravel())
        return expit(HGBTrees.from_state(arrays).raw(x, _threads(config)))

    return predict


def logistic_classifier(seed: int) -> object:
    """The churn candidates' logistic regression (standardised inputs); ``seed`` unused."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=3000))


def boosting_classifier(seed: int) -> object:
    """The churn candidates' gradient-boosted trees, seeded."""
    return HistGradientBoostingClassifier(
        max_iter=150, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=50, l2_regularization=1.0,
        random_state=seed,
    )  # fmt: skip


_MBGNBD_PARAMS = ("r", "alpha", "a", "b")
_RF_COLUMNS = [ActivityCol.DAYS_SINCE_LAST, BTYDCol.FREQUENCY]  # logistic_rf: log recency + frequency


def _btyd_data(target: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": np.arange(len(target)),
            BTYDCol.FREQUENCY: target[BTYDCol.FREQUENCY].to_numpy(dtype="float64"),
            BTYDCol.RECENCY: target[BTYDCol.RECENCY].to_numpy(dtype="float64"),
            BTYDCol.T: target[BTYDCol.T].to_numpy(dtype="float64"),
        }
    )


def _mbgnbd_priors() -> dict[str, object]:
    from pymc_extras.prior import Prior

    return {name: Prior("HalfFlat") for name in _MBGNBD_PARAMS}


def _fit_mbgnbd(
    train: pd.DataFrame | None, target: pd.DataFrame, horizon: int, config: ChurnConfig
) -> Arrays:
    """The modified BG/NBD fitted on the target's own history (its posterior draws); empty when the
    fit fails."""
    data = _btyd_data(target)
    model = shared_data_models().modified_bgnbd(model_config=_mbgnbd_priors())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(data=data, method=MAP, progressbar=False, maxeval=5000)
    except (ValueError, FloatingPointError, RuntimeError) as error:
        log.warning(
            "churn: modified BG/NBD fit failed on %d buyers (%s); churn_risk left empty", len(data), error
        )
        return {}
    posterior = posterior_of(model, _MBGNBD_PARAMS)
    params = {name: float(posterior[name].mean()) for name in ("r", "alpha")}
    if not all(np.isfinite(value) and value > 0 for value in params.values()):
        log.warning("churn: modified BG/NBD gave parameters %s; churn_risk left empty", params)
        return {}
    return posterior


def _mbgnbd_risk(arrays: Arrays, target: pd.DataFrame, horizon: int, config: ChurnConfig) -> np.ndarray:
    """1 - P(a purchase in the horizon) under the fitted modified BG/NBD.

    P(no purchase in t) = 1 - P(alive) x (1 - ((alpha + T) / (alpha + T + t)) ** (r + x)): a
    consumer alive at T buys at a rate whose posterior is Gamma(r + x, alpha + T).
    """
    data = _btyd_data(target)
    model = restored(shared_data_models().modified_bgnbd, _mbgnbd_priors(), data, arrays or None)
    if model is None:
        return np.full(len(data), np.nan)
    alive = model.expected_probability_alive(data=data).mean(("chain", "draw")).to_numpy()  # type: ignore[attr-defined]
    r, alpha = (float(arrays[name].mean()) for name in ("r", "alpha"))
    t_now = data[BTYDCol.T].to_numpy() + alpha
    silent = (t_now / (t_now + horizon)) ** (r + data[BTYDCol.FREQUENCY].to_numpy())
    return np.clip(1 - alive * (1 - silent), 0.0, 1.0)


CHURN_FITTERS = {
    "mbgnbd": _fit_mbgnbd,
    "logistic": _fit_supervised(logistic_classifier),
    "gradient_boosting": _fit_supervised(boosting_classifier),
    "logistic_rf": _fit_supervised(logistic_classifier, _RF_COLUMNS),
}
CHURN_PREDICTORS = {
    "mbgnbd": _mbgnbd_risk,
    "logistic": _supervised_risk(),
    "gradient_boosting": _supervised_risk(),
    "logistic_rf": _supervised_risk(_RF_COLUMNS),
}


# --- forecast candidates: -> arrays -> (expected purchase days, expected value, prob_alive, set aside)


def _fit_bgnbd(
    train: pd.DataFrame | None, target: pd.DataFrame, clv: CLVConfig, config: ChurnConfig, value: bool = True
) -> Arrays:
    """BG/NBD (and, with ``value``, Gamma-Gamma) fitted on the target's own history: their
    posterior draws as ``<model>.<parameter>``."""
    posteriors = fit_clv(target, clv, value, predict=False).posteriors  # predicted below
    return {
        f"{model}.{name}": draws
        for model, posterior in posteriors.items()
        for name, draws in posterior.items()
    }


def _bgnbd_forecast(
    arrays: Arrays, target: pd.DataFrame, clv: CLVConfig, config: ChurnConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    posteriors: dict[str, dict[str, np.ndarray]] = {}
    for key, draws in arrays.items():
        model, _, name = key.partition(".")
        posteriors.setdefault(model, {})[name] = draws
    predictions, set_aside = predict_clv(target, clv, posteriors)
    return (
        predictions[CLVCol.EXPECTED_PURCHASES].to_numpy(),
        predictions[CLVCol.EXPECTED_VALUE].to_numpy(),
        predictions[CLVCol.PROB_ALIVE].to_numpy(),
        set_aside,
    )


_FORECASTS = {"purchases": ActivityCol.FUTURE_PURCHASE_DAYS, "value": ActivityCol.FUTURE_VALUE}


def _fit_boosting(
    train: pd.DataFrame, target: pd.DataFrame, clv: CLVConfig, config: ChurnConfig, value: bool = True
) -> Arrays:
    """Purchase days and value, each by its own Poisson-loss model (``purchases.*``, ``value.*``);
    the two fit side by side (``value`` False: purchase days only)."""
    sample = _sample(train, config)
    inputs = feature_matrix(sample)

    def fit(forecast: str) -> Arrays:
        model = HistGradientBoostingRegressor(
            loss="poisson", max_iter=150, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=50,
            random_state=config.seed,
        )  # fmt: skip
        with threadpool_limits(limits=config.threads):
            model.fit(inputs, sample[_FORECASTS[forecast]].astype("float64").clip(lower=0))
        return {f"{forecast}.{name}": array for name, array in HGBTrees.of(model).state().items()}

    forecasts = list(_FORECASTS) if value else ["purchases"]
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="siyu-forecast") as pool:
        return {key: array for arrays in pool.map(fit, forecasts) for key, array in arrays.items()}


def _boosting_forecast(
    arrays: Arrays, target: pd.DataFrame, clv: CLVConfig, config: ChurnConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    x = feature_matrix(target).to_numpy(dtype="float64")
    empty = np.full(len(target), np.nan)

    def forecast(name: str) -> np.ndarray:
        state = {key.partition(".")[2]: array for key, array in arrays.items() if key.startswith(f"{name}.")}
        return np.exp(HGBTrees.from_state(state).raw(x, _threads(config))) if state else empty

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="siyu-forecast") as pool:  # as they fit
        purchases, value = pool.map(forecast, _FORECASTS)
    return purchases, value, empty, 0


FORECAST_FITTERS = {"bgnbd": _fit_bgnbd, "gradient_boosting": _fit_boosting}
FORECAST_PREDICTORS = {"bgnbd": _bgnbd_forecast, "gradient_boosting": _boosting_forecast}
PYMC_CANDIDATES = frozenset({"mbgnbd", "bgnbd"})  # fitted with PyMC: on the calling thread only
SIDE_THREADS = 2  # threads for the scikit-learn candidates, beside the PyMC fits


def _scorer(fit: Callable[..., Arrays], predict: Callable[..., T]) -> Callable[..., T]:
    """A candidate fitted on ``train`` and ``target`` and applied to ``target``, in one call."""

    def score(train: pd.DataFrame | None, target: pd.DataFrame, *args: object) -> T:
        return predict(fit(train, target, *args), target, *args[:2])

    return score


CHURN_SCORERS = {name: _scorer(CHURN_FITTERS[name], CHURN_PREDICTORS[name]) for name in CHURN_CANDIDATES}
FORECASTERS = {
    name: _scorer(FORECAST_FITTERS[name], FORECAST_PREDICTORS[name]) for name in FORECAST_CANDIDATES
}


# --- metrics -------------------------------------------------------------------------------------


def churn_metrics(label: np.ndarray, risk: np.ndarray) -> dict[str, float]:
    """ROC AUC (NaN with one class only), Brier score and mean predicted vs observed churn."""
    both = len(np.unique(label)) == 2
    return {
        "auc": float(roc_auc_score(label, risk)) if both else float("nan"),
        "brier": float(brier_score_loss(label, np.clip(risk, 0, 1))),
        "mean_risk": float(np.mean(risk)),
        "churn_rate": float(np.mean(label)),
    }


def forecast_metrics(actual: np.ndarray, forecast: np.ndarray) -> dict[str, float]:
    """Mean absolute error per buyer, forecast and actual totals, and total bias in percent."""
    total, predicted = float(np.sum(actual)), float(np.nansum(forecast))
    return {
        "mae": float(np.nanmean(np.abs(forecast - actual))),
        "total_actual": total,
        "total_forecast": predicted,
        "bias_pct": 100 * (predicted - total) / total if total else float("nan"),
    }


def calibration_table(label: np.ndarray, risk: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Reliability table: buyers, mean predicted risk and observed churn rate per risk decile."""
    frame = pd.DataFrame({"risk": risk, "churned": label})
    frame["bin"] = pd.qcut(frame["risk"].rank(method="first"), q=min(bins, len(frame)), labels=False)
    table = frame.groupby("bin").agg(
        buyers=("risk", "size"), mean_risk=("risk", "mean"), observed_churn=("churned", "mean")
    )
    return (
        table.reset_index(drop=True).rename_axis("decile").reset_index().assign(decile=lambda t: t.decile + 1)
    )


# --- choosing and predicting ---------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """Every candidate's output for one target frame, and the candidates as fitted."""

    churn: dict[str, np.ndarray]
    purchases: dict[str, np.ndarray]
    value: dict[str, np.ndarray]
    prob_alive: np.ndarray
    set_aside: int
    fitted: dict[tuple[str, str], Fitted] = field(default_factory=dict)  # (kind, name) -> its state


@dataclass(frozen=True, eq=False)  # arrays: compared by identity
class FittedModels:
    """The chosen candidates as one night fitted them, which predict its current buyers and may be
    kept for the nights until the next refit (``refit_every_days``, ``models.churn_choice``): the
    churn model, then the forecast models (BG/NBD for ``prob_alive`` when configured, and the
    chosen purchases and value ones; only the chosen value one forecasts value)."""

    chosen: dict[str, str]
    models: tuple[Fitted, ...]

    def serves(self, chosen: dict[str, str], forecast: tuple[str, ...]) -> bool:
        """Whether these are the models that ``chosen`` and tonight's ``forecast`` candidates need."""
        needed = ((CHURN, chosen["churn"]), *((FORECAST, name) for name in forecast))
        return self.chosen == chosen and tuple((model.kind, model.name) for model in self.models) == needed


def score_candidates(
    train: pd.DataFrame, target: pd.DataFrame, clv: CLVConfig, config: ChurnConfig,
    churn: tuple[str, ...] | None = None, forecast: tuple[str, ...] | None = None,
    value: tuple[str, ...] | None = None,
) -> Scores:  # fmt: skip
    """Each named candidate (default: the configured ones) trained on ``train``, applied to ``target``.

    ``value``: the forecast candidates whose expected value is wanted (default: all of
    ``forecast``); the others forecast purchase days only (their value is left empty).

    The scikit-learn candidates run on ``SIDE_THREADS`` other threads while the PyMC ones
    (``PYMC_CANDIDATES``, whose graph compilation is not made to run side by side) run on this
    one, ``config.threads`` OpenMP threads each: the fits and predictions let go of the GIL,
    so the cores stay busy without OpenMP threads spinning against each other. Every candidate
    has its own seed and inputs, so the scores do not depend on which finishes first.
    """
    churn_names = tuple(config.candidates if churn is None else churn)
    forecast_names = tuple(config.forecast_candidates if forecast is None else forecast)
    valued = set(forecast_names if value is None else value)
    jobs = [(CHURN, name, (clv.horizon_days, config)) for name in churn_names] + [
        (FORECAST, name, (clv, config, name in valued)) for name in forecast_names
    ]
    done = _side_by_side(
        jobs, config, lambda kind, name, args: _fit_and_predict(kind, name, train, target, args)
    )
    return _scores(churn_names, forecast_names, done, len(target))


def predict_fitted(models: FittedModels, target: pd.DataFrame, clv: CLVConfig, config: ChurnConfig) -> Scores:
    """``models`` (fitted on this or an earlier night) applied to ``target``, without fitting: side
    by side as ``score_candidates`` runs the candidates (at 10M lines each model's trees take
    seconds over 600,000 buyers)."""
    fitted = {(model.kind, model.name): model for model in models.models}

    def predict(kind: str, name: str, args: tuple[object, ...]) -> tuple[Fitted, object]:
        predictor = CHURN_PREDICTORS[name] if kind == CHURN else FORECAST_PREDICTORS[name]
        return fitted[(kind, name)], predictor(fitted[(kind, name)].arrays, target, *args)

    jobs = [
        (kind, name, (clv.horizon_days, config) if kind == CHURN else (clv, config)) for kind, name in fitted
    ]
    with progress("churn models: kept models", total=len(target), unit="buyers scored") as bar:
        done = _side_by_side(jobs, config, predict)
        bar.advance(len(target))
    churn_names = tuple(name for kind, name in fitted if kind == CHURN)
    forecast_names = tuple(name for kind, name in fitted if kind == FORECAST)
    return _scores(churn_names, forecast_names, done, len(target))


def _side_by_side(
    jobs: list[tuple[str, str, tuple[object, ...]]],
    config: ChurnConfig,
    run: Callable[[str, str, tuple[object, ...]], T],
) -> dict[tuple[str, str], T]:
    """``run(kind, name, args)`` of every job, by ``(kind, name)`` in the jobs' order: the PyMC
    candidates (``PYMC_CANDIDATES``) on this thread, the others on ``SIDE_THREADS`` other threads,
    under one warnings / thread-pool state, restored when all are done."""
    with (
        warnings.catch_warnings(),
        threadpool_limits(limits=config.threads),
        ThreadPoolExecutor(max_workers=SIDE_THREADS, thread_name_prefix="siyu-churn") as side,
    ):
        later = {
            (kind, name): side.submit(run, kind, name, args)
            for kind, name, args in jobs
            if name not in PYMC_CANDIDATES
        }
        here = {(kind, name): run(kind, name, args) for kind, name, args in jobs if name in PYMC_CANDIDATES}
        done = here | {key: future.result() for key, future in later.items()}
    return {(kind, name): done[(kind, name)] for kind, name, _ in jobs}  # whichever thread ran them


def _scores(
    churn_names: tuple[str, ...],
    forecast_names: tuple[str, ...],
    done: dict[tuple[str, str], tuple[Fitted, object]],
    rows: int,
) -> Scores:
    purchases, value = {}, {}
    prob_alive, set_aside = np.full(rows, np.nan), 0
    for name in forecast_names:
        purchases[name], value[name], alive, aside = done[(FORECAST, name)][1]  # type: ignore[misc]
        if name == "bgnbd":
            prob_alive, set_aside = alive, aside
    churn = {name: done[(CHURN, name)][1] for name in churn_names}
    fitted = {key: model for key, (model, _) in done.items()}
    return Scores(churn, purchases, value, prob_alive, set_aside, fitted)  # type: ignore[arg-type]


def _fit_and_predict(
    kind: str, name: str, train: pd.DataFrame | None, target: pd.DataFrame, args: tuple[object, ...]
) -> tuple[Fitted, object]:
    """The candidate fitted (on ``train`` and ``target``) and applied to ``target``, as a step of its
    own (``features.progress``), whose line says when it is done: at 10M lines the candidates
    take up to half a minute each, side by side, and while one fits, a quiet stretch of the
    night's log names it."""
    fit = CHURN_FITTERS[name] if kind == CHURN else FORECAST_FITTERS[name]
    predict = CHURN_PREDICTORS[name] if kind == CHURN else FORECAST_PREDICTORS[name]
    with progress(f"churn models: {kind} candidate {name}", total=len(target), unit="buyers scored") as bar:
        arrays = fit(train, target, *args)
        result = predict(arrays, target, *args[:2])
        bar.advance(len(target))
    return Fitted(kind, name, arrays), result


def validation_metrics(scores: Scores, target: pd.DataFrame) -> pd.DataFrame:
    """Long table (target, candidate, metric, value) of every candidate against ``target``'s labels."""
    rows = []
    label = churn_label(target)
    for name, risk in scores.churn.items():
        rows += [("churn", name, metric, value) for metric, value in churn_metrics(label, risk).items()]
    for kind, column, forecasts in (
        ("purchases", ActivityCol.FUTURE_PURCHASE_DAYS, scores.purchases),
        ("value", ActivityCol.FUTURE_VALUE, scores.value),
    ):
        actual = target[column].to_numpy(dtype="float64")
        for name, forecast in forecasts.items():
            rows += [
                (kind, name, metric, value) for metric, value in forecast_metrics(actual, forecast).items()
            ]
    return pd.DataFrame(rows, columns=["target", "candidate", "metric", "value"])


def best(metrics: pd.DataFrame, target: str, metric: str) -> str:
    """The candidate with the least finite ``metric`` for ``target``."""
    rows = metrics[(metrics["target"] == target) & (metrics["metric"] == metric)].dropna(subset=["value"])
    return str(rows.sort_values(["value", "candidate"]).iloc[0]["candidate"])


def choose_and_predict(
    train: pd.DataFrame | None, validation: pd.DataFrame | None, current: pd.DataFrame,
    clv: CLVConfig, config: ChurnConfig, carried: Choice | None = None,
    kept: FittedModels | None = None,
) -> ChurnResult:  # fmt: skip
    """Choose candidates on ``validation`` (trained on ``train``); refit on it and predict ``current``.

    ``train`` and ``validation`` are labelled frames as of two and one horizon before the
    as-of date of ``current`` (unlabelled). Without enough labelled buyers (or ``enabled``
    off) the BG/NBD outputs are kept and churn comes from the modified BG/NBD, noted.
    ``carried``: a choice already made (an earlier night's) whose candidates are all configured;
    it replaces the comparison (``train`` is then not used), not the refit on ``validation``.
    ``kept``: the models an earlier night fitted for that same choice (``refit_every_days``);
    with a carried choice they serve, they predict ``current`` and nothing is fitted. A night
    that chooses always fits.
    """
    notes: list[str] = []
    usable = config.enabled and all(
        frame is not None and len(frame) >= config.min_customers for frame in (train, validation)
    )
    carried = carried if usable and carried is not None and _configured(carried, config) else None
    if carried is not None:
        metrics, chosen = carried.validation, dict(carried.chosen)
    elif usable:
        metrics = validation_metrics(score_candidates(train, validation, clv, config), validation)
        chosen = {
            "churn": best(metrics, "churn", "brier"),
            "purchases": best(metrics, "purchases", "mae"),
            "value": best(metrics, "value", "mae"),
        }
    else:
        notes.append(
            "too little labelled history (or churn off): BG/NBD and modified BG/NBD without a choice"
        )
        metrics = pd.DataFrame(columns=["target", "candidate", "metric", "value"])
        chosen = {"churn": "mbgnbd", "purchases": "bgnbd", "value": "bgnbd"}
        validation = current.iloc[:0] if validation is None else validation
    keep_bgnbd = ("bgnbd",) if "bgnbd" in config.forecast_candidates else ()  # prob_alive comes from it
    forecast = tuple(dict.fromkeys((*keep_bgnbd, chosen["purchases"], chosen["value"])))
    if carried is not None and kept is not None and kept.serves(chosen, forecast):
        final, models = predict_fitted(kept, current, clv, config), kept
    else:
        # prob_alive needs the BG/NBD, never its Gamma-Gamma: only the chosen value candidate forecasts value
        final = score_candidates(
            validation, current, clv, config, (chosen["churn"],), forecast, value=(chosen["value"],)
        )
        fitted = [(CHURN, chosen["churn"]), *((FORECAST, name) for name in forecast)]
        models = FittedModels(dict(chosen), tuple(final.fitted[key] for key in fitted))
    # no model is sure of a person's next 90 days: keep risk off 0 and 1 (and off them after rounding)
    risk = pd.Series(np.clip(final.churn[chosen["churn"]], RISK_FLOOR, 1 - RISK_FLOOR), dtype="float64")
    predictions = pd.DataFrame(
        {
            Col.CONSUMER_ID: current[Col.CONSUMER_ID].reset_index(drop=True),
            CHURN_RISK: risk,
            CHURN_BAND: churn_band(risk, config),
            CLVCol.EXPECTED_PURCHASES: final.purchases[chosen["purchases"]],
            CLVCol.EXPECTED_VALUE: final.value[chosen["value"]],
            CLVCol.PROB_ALIVE: final.prob_alive,
        }
    )
    how = "kept the earlier choice" if carried is not None else "chose"
    fit = "kept models" if models is kept else "models fitted tonight"
    log.info("churn: %s %s on the validation window, %s; %s", how, chosen, fit, "; ".join(notes) or "")
    return ChurnResult(
        predictions, chosen, metrics, final.set_aside, notes, carried is not None, models, models is not kept
    )


def _configured(choice: Choice, config: ChurnConfig) -> bool:
    """Whether every candidate of ``choice`` is still among the configured ones."""
    return (
        choice.chosen.get("churn") in config.candidates
        and choice.chosen.get("purchases") in config.forecast_candidates
        and choice.chosen.get("value") in config.forecast_candidates
    )


# --- evaluation on a held-out window (siyu evaluate-segments) ------------------------------------


def baseline_scores(validation: pd.DataFrame, test: pd.DataFrame, horizon_days: int) -> Scores:
    """The simple baselines: recency and -frequency (ranks only), the base rate, rate x time, the mean.

    ``base_rate`` and ``validation_mean`` are the validation window's churn rate and mean
    purchases / value per buyer, the same number for every buyer.
    """
    days = test[BTYDCol.T].to_numpy(dtype="float64")
    per_day = np.divide(1.0, days, out=np.zeros_like(days), where=days > 0) * horizon_days
    rate = test[BTYDCol.FREQUENCY].to_numpy(dtype="float64") * per_day
    value_rate = test[ActivityCol.VALUE_TOTAL].to_numpy(dtype="float64") * per_day
    constant = np.ones(len(test))
    return Scores(
        churn={
            RECENCY_BASELINE: test[ActivityCol.DAYS_SINCE_LAST].to_numpy(dtype="float64"),
            FREQUENCY_BASELINE: -test[BTYDCol.FREQUENCY].to_numpy(dtype="float64"),
            "base_rate": constant * churn_label(validation).mean(),
        },
        purchases={
            "rate_x_time": rate,
            "validation_mean": constant * validation[ActivityCol.FUTURE_PURCHASE_DAYS].mean(),
        },
        value={
            "rate_x_time": value_rate,
            "validation_mean": constant * validation[ActivityCol.FUTURE_VALUE].mean(),
        },
        prob_alive=np.full(len(test), np.nan),
        set_aside=0,
    )


@dataclass(frozen=True)
class SegmentEvaluation:
    """Every candidate and baseline on the held-out window, the choice made before it, calibration."""

    chosen: dict[str, str]
    validation: pd.DataFrame  # the metrics the choice was made on
    test: (
        pd.DataFrame
    )  # target, candidate, metric, value on the held-out window; role: chosen/candidate/baseline
    calibration: pd.DataFrame  # decile table of the chosen churn model on the held-out window


def evaluate_segments(
    train: pd.DataFrame, validation: pd.DataFrame, test: pd.DataFrame, clv: CLVConfig, config: ChurnConfig
) -> SegmentEvaluation:
    """Choose as the nightly would (``choose_and_predict`` sees ``train`` and ``validation`` only), then
    score every candidate and baseline on ``test``, whose labels are the held-out window."""
    unlabelled = test.drop(columns=[ActivityCol.FUTURE_PURCHASE_DAYS, ActivityCol.FUTURE_VALUE])
    result = choose_and_predict(train, validation, unlabelled, clv, config)
    candidates = validation_metrics(score_candidates(validation, test, clv, config), test)
    baselines = validation_metrics(baseline_scores(validation, test, clv.horizon_days), test)
    rank_only = baselines["candidate"].isin(RANK_ONLY) & (baselines["metric"] != "auc")
    baselines.loc[rank_only & (baselines["target"] == "churn"), "value"] = np.nan
    table = pd.concat([candidates.assign(role="candidate"), baselines.assign(role="baseline")])
    for kind, name in result.chosen.items():
        chosen_rows = (
            (table["target"] == kind) & (table["candidate"] == name) & (table["role"] == "candidate")
        )
        table.loc[chosen_rows, "role"] = "chosen"
    calibration = calibration_table(churn_label(test), result.predictions[CHURN_RISK].to_numpy())
    return SegmentEvaluation(result.chosen, result.validation, table.reset_index(drop=True), calibration)


def tracking_metrics(evaluation_table: pd.DataFrame, prefix: str) -> dict[str, float]:
    """``<prefix>.<target>.<candidate>.<metric>`` -> value, finite values only (for MLflow)."""
    return {
        f"{prefix}.{row.target}.{row.candidate}.{row.metric}": float(row.value)
        for row in evaluation_table.itertuples()
        if np.isfinite(row.value)
    }
