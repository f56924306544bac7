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
on tonight's validation frame and predict tonight's buyers as always, without comparing the
others again.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, TypeVar, get_args

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
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
from models.clv import MAP, CLVConfig, fit_clv, shared_data_models

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
        "refits the chosen ones on tonight's data (1: compare every night).",
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


# --- churn candidates: (train, target, horizon, config) -> probability per target row -------------


def _supervised_churn(make: Callable[[int], object], columns: list[str] | None = None):
    def score(train: pd.DataFrame, target: pd.DataFrame, horizon: int, config: ChurnConfig) -> np.ndarray:
        sample = _sample(train, config)
        inputs = feature_matrix(sample)
        model = make(config.seed)
        target_inputs = feature_matrix(target)
        with warnings.catch_warnings(), threadpool_limits(limits=config.threads):
            warnings.simplefilter("ignore")
            model.fit(inputs if columns is None else inputs[columns], churn_label(sample))  # type: ignore[attr-defined]
            return model.predict_proba(target_inputs if columns is None else target_inputs[columns])[:, 1]  # type: ignore[attr-defined]

    return score


def logistic_classifier(seed: int) -> object:
    """The churn candidates' logistic regression (standardised inputs); ``seed`` unused."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=3000))


def boosting_classifier(seed: int) -> object:
    """The churn candidates' gradient-boosted trees, seeded."""
    return HistGradientBoostingClassifier(
        max_iter=150, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=50, l2_regularization=1.0,
        random_state=seed,
    )  # fmt: skip


def _mbgnbd_churn(train: pd.DataFrame, target: pd.DataFrame, horizon: int, config: ChurnConfig) -> np.ndarray:
    """1 - P(a purchase in the horizon) under the modified BG/NBD fitted on the target's own history.

    P(no purchase in t) = 1 - P(alive) x (1 - ((alpha + T) / (alpha + T + t)) ** (r + x)): a
    consumer alive at T buys at a rate whose posterior is Gamma(r + x, alpha + T).
    """
    from pymc_extras.prior import Prior

    data = pd.DataFrame(
        {
            "customer_id": np.arange(len(target)),
            BTYDCol.FREQUENCY: target[BTYDCol.FREQUENCY].to_numpy(dtype="float64"),
            BTYDCol.RECENCY: target[BTYDCol.RECENCY].to_numpy(dtype="float64"),
            BTYDCol.T: target[BTYDCol.T].to_numpy(dtype="float64"),
        }
    )
    model = shared_data_models().modified_bgnbd(
        model_config={name: Prior("HalfFlat") for name in ("r", "alpha", "a", "b")}
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(data=data, method=MAP, progressbar=False, maxeval=5000)
    except (ValueError, FloatingPointError, RuntimeError) as error:
        log.warning(
            "churn: modified BG/NBD fit failed on %d buyers (%s); churn_risk left empty", len(data), error
        )
        return np.full(len(data), np.nan)
    params = {name: float(model.fit_result[name].mean()) for name in ("r", "alpha")}
    if not all(np.isfinite(value) and value > 0 for value in params.values()):
        log.warning("churn: modified BG/NBD gave parameters %s; churn_risk left empty", params)
        return np.full(len(data), np.nan)
    alive = model.expected_probability_alive(data=data).mean(("chain", "draw")).to_numpy()
    t_now = data[BTYDCol.T].to_numpy() + params["alpha"]
    silent = (t_now / (t_now + horizon)) ** (params["r"] + data[BTYDCol.FREQUENCY].to_numpy())
    return np.clip(1 - alive * (1 - silent), 0.0, 1.0)


CHURN_SCORERS = {
    "mbgnbd": _mbgnbd_churn,
    "logistic": _supervised_churn(logistic_classifier),
    "gradient_boosting": _supervised_churn(boosting_classifier),
    "logistic_rf": _supervised_churn(logistic_classifier, [ActivityCol.DAYS_SINCE_LAST, BTYDCol.FREQUENCY]),
}


# --- forecast candidates: -> (expected purchase days, expected value) per target row -------------


def _bgnbd_forecast(
    train: pd.DataFrame, target: pd.DataFrame, clv: CLVConfig, config: ChurnConfig, value: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    result = fit_clv(target, clv, value)
    predictions = result.predictions
    return (
        predictions[CLVCol.EXPECTED_PURCHASES].to_numpy(),
        predictions[CLVCol.EXPECTED_VALUE].to_numpy(),
        predictions[CLVCol.PROB_ALIVE].to_numpy(),
        result.set_aside,
    )


def _boosting_forecast(
    train: pd.DataFrame, target: pd.DataFrame, clv: CLVConfig, config: ChurnConfig, value: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Purchase days and value, each by its own Poisson-loss model; the two fit side by side
    (``value`` False: purchase days only, value empty)."""
    sample = _sample(train, config)
    inputs, target_inputs = feature_matrix(sample), feature_matrix(target)

    def forecast(column: str) -> np.ndarray:
        model = HistGradientBoostingRegressor(
            loss="poisson", max_iter=150, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=50,
            random_state=config.seed,
        )  # fmt: skip
        with threadpool_limits(limits=config.threads):
            model.fit(inputs, sample[column].astype("float64").clip(lower=0))
            return model.predict(target_inputs)

    empty = np.full(len(target), np.nan)
    if not value:
        return forecast(ActivityCol.FUTURE_PURCHASE_DAYS), empty, empty, 0
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="siyu-forecast") as pool:
        purchases, values = pool.map(forecast, (ActivityCol.FUTURE_PURCHASE_DAYS, ActivityCol.FUTURE_VALUE))
    return purchases, values, empty, 0


FORECASTERS = {"bgnbd": _bgnbd_forecast, "gradient_boosting": _boosting_forecast}
PYMC_CANDIDATES = frozenset({"mbgnbd", "bgnbd"})  # fitted with PyMC: on the calling thread only
SIDE_THREADS = 2  # threads for the scikit-learn candidates, beside the PyMC fits


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
    """Every candidate's output for one target frame."""

    churn: dict[str, np.ndarray]
    purchases: dict[str, np.ndarray]
    value: dict[str, np.ndarray]
    prob_alive: np.ndarray
    set_aside: int


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
    horizon = clv.horizon_days
    # one warnings / thread-pool state for both threads, restored when both are done
    with (
        warnings.catch_warnings(),
        threadpool_limits(limits=config.threads),
        ThreadPoolExecutor(max_workers=SIDE_THREADS, thread_name_prefix="siyu-churn") as side,
    ):
        later = {
            ("churn", name): side.submit(
                _logged, "churn", name, CHURN_SCORERS[name], train, target, horizon, config
            )
            for name in churn_names
            if name not in PYMC_CANDIDATES
        } | {
            ("forecast", name): side.submit(
                _logged, "forecast", name, FORECASTERS[name], train, target, clv, config, name in valued
            )
            for name in forecast_names
            if name not in PYMC_CANDIDATES
        }
        here = {
            ("churn", name): _logged("churn", name, CHURN_SCORERS[name], train, target, horizon, config)
            for name in churn_names
            if name in PYMC_CANDIDATES
        } | {
            ("forecast", name): _logged(
                "forecast", name, FORECASTERS[name], train, target, clv, config, name in valued
            )
            for name in forecast_names
            if name in PYMC_CANDIDATES
        }
        done = here | {key: future.result() for key, future in later.items()}
    purchases, value = {}, {}
    prob_alive, set_aside = np.full(len(target), np.nan), 0
    for name in forecast_names:  # in the configured order, whichever thread ran them
        purchases[name], value[name], alive, aside = done[("forecast", name)]
        if name == "bgnbd":
            prob_alive, set_aside = alive, aside
    return Scores(
        {name: done[("churn", name)] for name in churn_names}, purchases, value, prob_alive, set_aside
    )


def _logged(
    kind: str,
    name: str,
    candidate: Callable[..., T],
    train: pd.DataFrame | None,
    target: pd.DataFrame,
    *args: object,
) -> T:
    """``candidate(train, target, *args)`` as a step of its own (``features.progress``), whose line
    says when it is done: at 10M lines the candidates take up to half a minute each, side by side,
    and while one fits, a quiet stretch of the night's log names it."""
    with progress(f"churn models: {kind} candidate {name}", total=len(target), unit="buyers scored") as bar:
        result = candidate(train, target, *args)
        bar.advance(len(target))
    return result


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
) -> ChurnResult:  # fmt: skip
    """Choose candidates on ``validation`` (trained on ``train``); refit on it and predict ``current``.

    ``train`` and ``validation`` are labelled frames as of two and one horizon before the
    as-of date of ``current`` (unlabelled). Without enough labelled buyers (or ``enabled``
    off) the BG/NBD outputs are kept and churn comes from the modified BG/NBD, noted.
    ``carried``: a choice already made (an earlier night's) whose candidates are all configured;
    it replaces the comparison (``train`` is then not used), not the refit on ``validation``.
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
    # prob_alive needs the BG/NBD, never its Gamma-Gamma: only the chosen value candidate forecasts value
    final = score_candidates(
        validation, current, clv, config, (chosen["churn"],), forecast, value=(chosen["value"],)
    )
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
    log.info("churn: %s %s on the validation window; %s", how, chosen, "; ".join(notes) or "")
    return ChurnResult(predictions, chosen, metrics, final.set_aside, notes, carried is not None)


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
