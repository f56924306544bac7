"""Customer lifetime value and churn: BG/NBD + Gamma-Gamma through pymc-marketing (see docs/clv.md).

``fit_clv`` takes the summary of ``features.clv.btyd_summary`` (one row per consumer:
``frequency``, ``recency``, ``T`` in days, ``monetary_value``) and returns, per consumer,

- ``expected_purchases``: expected purchase days in the next ``horizon_days`` (BG/NBD);
- ``prob_alive``: probability that the consumer has not dropped out (BG/NBD; 1 without repeats);
- ``expected_value``: ``expected_purchases`` x the Gamma-Gamma expected value of one purchase
  day (the consumer's own mean shrunk toward the population mean), undiscounted.

Both models are fitted by maximum a posteriori (``fit_method: map``); with the default flat
priors (``HalfFlat``) that is the maximum-likelihood fit of the papers, which reproduces the
published CDNOW parameters. Consumers with repeat purchases whose mean value is 0 or negative
cannot enter the Gamma-Gamma likelihood (it takes the log of the value): they are **set
aside** from that fit, counted in ``CLVResult.set_aside``, and get ``expected_value`` 0 (their
repeat purchases netted to nothing). Consumers without repeats take the population mean
spend, as the model prescribes. When a model cannot be fitted (too few consumers, or a fit
that does not converge to finite parameters), its outputs are NaN and a warning is logged;
the nightly never stops on it.

A fit is kept as its posterior draws (``CLVResult.posteriors``: parameter -> chain x draw
array; one draw under MAP), and ``predict_clv`` rebuilds the models from them over any
summary and predicts: ``fit_clv`` predicts that way too, so a night that keeps an earlier
night's fit (``models.churn``, ``segmentation.churn.refit_every_days``) predicts as the fit
itself would.
"""

from __future__ import annotations

import functools
import importlib
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, get_args

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.clv import SUMMARY_COLUMNS, BTYDCol, ReturnsRule
from features.columns import Col
from features.errors import SiyuError
from features.vocabulary import CLVCol

log = logging.getLogger(__name__)

_CUSTOMER_ID = "customer_id"  # the id column pymc-marketing requires

FitMethod = Literal["map", "mcmc", "advi"]  # vocabulary: a value, not a column
MAP, MCMC, ADVI = get_args(FitMethod)


BGNBD_PARAMS = ("r", "alpha", "a", "b")
GAMMA_GAMMA_PARAMS = ("p", "q", "v")
BGNBD, GAMMA_GAMMA = "bgnbd", "gamma_gamma"  # vocabulary: the keys of CLVResult.posteriors
Posterior = dict[str, np.ndarray]  # parameter -> its posterior draws, chain x draw (1 x 1 under MAP)

PREDICTION_COLUMNS: tuple[str, ...] = (
    Col.CONSUMER_ID,
    CLVCol.EXPECTED_PURCHASES,
    CLVCol.EXPECTED_VALUE,
    CLVCol.PROB_ALIVE,
)


class PriorSpec(BaseModel):
    """A prior: a PyMC distribution name and its parameters, e.g. ``Weibull`` with ``{alpha: 2, beta: 1}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    distribution: str = Field("HalfFlat", description="PyMC distribution; HalfFlat = flat on (0, inf).")
    params: dict[str, float] = Field(default_factory=dict, description="The distribution's parameters.")

    @model_validator(mode="after")
    def _valid(self) -> PriorSpec:
        if self.distribution == "HalfFlat" and not self.params:
            return self  # the default: known good, and checking it would import PyMC (seconds) on config load
        try:
            self.to_prior()
        except Exception as error:  # pymc_extras raises several error types
            raise ValueError(f"not a usable prior: {self.distribution} {self.params} ({error})") from None
        return self

    def to_prior(self) -> object:
        """The ``pymc_extras.prior.Prior`` this spec describes."""
        from pymc_extras.prior import Prior

        return Prior(self.distribution, **self.params)


class BGNBDPriors(BaseModel):
    """Priors of the BG/NBD parameters; flat by default, so MAP is the maximum-likelihood fit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    r: PriorSpec = Field(default_factory=PriorSpec, description="Shape of the purchase-rate gamma.")
    alpha: PriorSpec = Field(default_factory=PriorSpec, description="Scale of the purchase-rate gamma.")
    a: PriorSpec = Field(default_factory=PriorSpec, description="Dropout beta, first shape.")
    b: PriorSpec = Field(default_factory=PriorSpec, description="Dropout beta, second shape.")


class GammaGammaPriors(BaseModel):
    """Priors of the Gamma-Gamma parameters; flat by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    p: PriorSpec = Field(default_factory=PriorSpec, description="Shape of a purchase's value.")
    q: PriorSpec = Field(default_factory=PriorSpec, description="Shape of the consumers' mean value.")
    v: PriorSpec = Field(default_factory=PriorSpec, description="Scale of the consumers' mean value.")


class CLVConfig(BaseModel):
    """Settings of the CLV and churn models (the ``segmentation.clv`` config section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Fit CLV at all (off: the CLV export columns stay empty).")
    horizon_days: int = Field(90, gt=0, description="Forecast horizon of expected purchases and value.")
    time_unit_days: float = Field(
        1.0, gt=0, description="Days per model time unit (7 = weeks); alpha is in this unit."
    )
    returned_lines: ReturnsRule = Field(
        "excluded",
        description="How a returned line counts against value: 'excluded' (it is the refunded line "
        "itself) or 'subtracted' (it is a separate refund line). Passed to btyd_summary.",
    )
    fit_method: FitMethod = Field(MAP, description="pymc-marketing fit method.")
    max_fit_customers: int | None = Field(
        100_000,
        gt=0,
        description="Fit on a seeded sample of this many consumers, predict for all; none = all.",
    )
    min_customers: int = Field(20, ge=2, description="Fewer consumers (or GG repeaters) than this: no fit.")
    maxeval: int = Field(5000, gt=0, description="Most log-posterior evaluations of a MAP fit.")
    seed: int = Field(0, description="Seed of the fit sample and of MCMC / ADVI.")
    bgnbd_priors: BGNBDPriors = Field(default_factory=BGNBDPriors)
    gamma_gamma_priors: GammaGammaPriors = Field(default_factory=GammaGammaPriors)


@dataclass(frozen=True)
class CLVResult:
    """Per-consumer predictions (summary order), fitted parameters, set-aside count and timings."""

    predictions: pd.DataFrame
    bgnbd_params: dict[str, float]
    gamma_gamma_params: dict[str, float]
    set_aside: int
    fitted_customers: int = 0
    gamma_gamma_customers: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # the fitted models' posterior draws (``predict_clv``): "bgnbd" and "gamma_gamma", each only when fitted
    posteriors: dict[str, Posterior] = field(default_factory=dict)


def fit_clv(summary: pd.DataFrame, config: CLVConfig, value: bool = True, predict: bool = True) -> CLVResult:
    """Fit BG/NBD and Gamma-Gamma on ``summary`` and predict for every consumer in it.

    ``value`` False: no Gamma-Gamma fit (``expected_value`` empty; ``set_aside`` still counted),
    for a caller that takes only the BG/NBD outputs (a PyMC fit less). ``predict`` False: the fit
    only, ``predictions`` left without rows, for a caller that predicts from ``posteriors`` itself
    (``models.churn``: at 10M lines the BG/NBD's predictions take about 2 s).
    """
    data = _model_frame(summary, config.time_unit_days)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    bgnbd, fitted = _fit_bgnbd(data, config)
    timings["bgnbd_fit_s"] = time.perf_counter() - started

    spend_data, set_aside = _gamma_gamma_frame(data)
    started = time.perf_counter()
    gamma_gamma = _fit_gamma_gamma(spend_data, config) if value else None
    timings["gamma_gamma_fit_s"] = time.perf_counter() - started

    posteriors = {
        name: posterior_of(model, params)
        for name, model, params in (
            (BGNBD, bgnbd, BGNBD_PARAMS),
            (GAMMA_GAMMA, gamma_gamma, GAMMA_GAMMA_PARAMS),
        )
        if model is not None
    }
    predictions = pd.DataFrame(columns=list(PREDICTION_COLUMNS))
    if predict:
        started = time.perf_counter()
        predictions, _ = predict_clv(summary, config, posteriors)
        timings["predict_s"] = time.perf_counter() - started
    result = CLVResult(
        predictions=predictions,
        bgnbd_params=_params(bgnbd, BGNBD_PARAMS),
        gamma_gamma_params=_params(gamma_gamma, GAMMA_GAMMA_PARAMS),
        set_aside=set_aside,
        fitted_customers=fitted,
        gamma_gamma_customers=len(spend_data),
        timings=timings,
        posteriors=posteriors,
    )
    log.info(
        "CLV: %d consumers, BG/NBD %s, Gamma-Gamma %s on %d, %d set aside; %s",
        len(data), _rounded(result.bgnbd_params), _rounded(result.gamma_gamma_params),
        len(spend_data), set_aside, _rounded(timings),
    )  # fmt: skip
    return result


def predict_clv(
    summary: pd.DataFrame, config: CLVConfig, posteriors: dict[str, Posterior]
) -> tuple[pd.DataFrame, int]:
    """Per-consumer predictions of ``summary`` (``fit_clv``'s columns) from fitted posteriors
    (``CLVResult.posteriors``, fitted on this or an earlier summary), and how many repeat
    buyers are set aside from the Gamma-Gamma (expected value 0). A model without its
    posterior leaves its outputs empty."""
    data = _model_frame(summary, config.time_unit_days)
    spend_data, set_aside = _gamma_gamma_frame(data)
    models = shared_data_models()
    # a model is rebuilt over rows it could have been fitted on: none (no buyers, or no repeat
    # buyer with a positive value tonight) leaves its outputs empty, as a fit would
    bgnbd = restored(models.bgnbd, priors(config.bgnbd_priors), data, posteriors.get(BGNBD))
    gamma_gamma = restored(
        models.gamma_gamma, priors(config.gamma_gamma_priors), spend_data, posteriors.get(GAMMA_GAMMA)
    )
    return _predict(data, bgnbd, gamma_gamma, config, summary[Col.CONSUMER_ID]), set_aside


def posterior_of(model: object, names: tuple[str, ...]) -> Posterior:
    """The fitted ``model``'s posterior draws of ``names`` (chain x draw arrays), for ``restored``."""
    posterior = model.fit_result  # type: ignore[attr-defined]
    return {name: np.asarray(posterior[name].to_numpy(), dtype="float64") for name in names}


def priors(specs: BaseModel) -> dict[str, object]:
    """A model's ``model_config``: each parameter's prior of a priors section (``bgnbd_priors``, ...)."""
    return {name: spec.to_prior() for name, spec in specs}


def restored(
    model_type: type, model_config: dict[str, object], data: pd.DataFrame, posterior: Posterior | None
) -> object | None:
    """A pymc-marketing model of ``model_type`` (with ``model_config``, its priors) over ``data``
    whose fit is ``posterior`` (None: none): the same predictions as the model that was fitted,
    without fitting."""
    if posterior is None or data.empty:
        return None
    import arviz as az
    import xarray as xr

    model = model_type(model_config=model_config)
    model.build_model(data)
    draws = {
        name: (("chain", "draw"), np.asarray(values, dtype="float64")) for name, values in posterior.items()
    }
    model.idata = az.InferenceData(posterior=xr.Dataset(draws))
    return model


@functools.cache
def warm_up() -> None:
    """Import pymc-marketing and load PyTensor's cache of compiled C modules, once per process.

    Both are seconds of pure Python that the first fit would otherwise spend (the cache's
    index is read whole, one pickle per module ever compiled on the machine: ~3 s of CPU for
    some 500 modules). A caller runs this on a thread beside work that lets go of the GIL
    (the DuckDB feature queries), before any fit compiles; a failure is left for the fit to
    meet and report.
    """
    import pytensor
    import pytensor.tensor as pt

    importlib.import_module("pymc_marketing.clv")
    shared_data_models()
    values = pt.dvector("values")
    pytensor.function([values], pt.log1p(values))  # a C function: PyTensor reads its module cache


class SharedDataModels(NamedTuple):
    """pymc-marketing's BTYD models whose data enter the PyMC model as shared variables."""

    bgnbd: type
    modified_bgnbd: type
    gamma_gamma: type


@functools.cache
def shared_data_models() -> SharedDataModels:
    """pymc-marketing's ``BetaGeoModel``, ``ModifiedBetaGeoModel`` and ``GammaGammaModel``, each
    built with its data as shared variables (``pm.Data``) rather than constants; the same
    likelihood, priors, fit and predictions (without covariates, which siyu does not use).

    Why: the library puts the data in the graph as constants, and PyTensor's rewrites fold
    their number and sums into the C modules it compiles (``(60492.0) * ...``), so every fit on
    new data compiled its modules again: 3 s for a BG/NBD, 2 s for a Gamma-Gamma, every night.
    With shared data the compiled modules are the same for any data and are found in
    PyTensor's cache (docs/clv.md, "Why a fit compiled again every night, and how it stopped").
    """
    import pymc as pm
    import pytensor.tensor as pt
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel, ModifiedBetaGeoModel
    from pymc_marketing.clv.distributions import BetaGeoNBD, ModifiedBetaGeoNBD

    def recency_frequency(distribution: type) -> Callable[..., None]:
        def build_model(self: Any, data: pd.DataFrame | None = None) -> None:
            _start_build(self, data, self.purchase_covariate_cols or self.dropout_covariate_cols)
            with pm.Model() as self.model:
                params = {
                    name: self.model_config[name].create_variable(name) for name in ("a", "b", "r", "alpha")
                }
                observed = np.stack((self.data[BTYDCol.RECENCY], self.data[BTYDCol.FREQUENCY]), axis=1)
                distribution(
                    name="recency_frequency",
                    **params,
                    T=pm.Data("T", self.data[BTYDCol.T].to_numpy(dtype="float64")),
                    observed=pm.Data("recency_frequency_observed", observed.astype("float64")),
                )

        return build_model

    def spend(self: Any, data: pd.DataFrame | None = None) -> None:
        _start_build(self, data, ())
        with pm.Model() as self.model:
            p, q, v = (self.model_config[name].create_variable(name) for name in ("p", "q", "v"))
            z_mean = pm.Data(
                BTYDCol.MONETARY_VALUE, self.data[BTYDCol.MONETARY_VALUE].to_numpy(dtype="float64")
            )
            x = pm.Data(BTYDCol.FREQUENCY, self.data[BTYDCol.FREQUENCY].to_numpy(dtype="float64"))
            pm.Potential(  # the library's likelihood: Eq. 1a of Fader & Hardie, marginal over nu
                "likelihood",
                pt.gammaln(p * x + q) - pt.gammaln(p * x) - pt.gammaln(q) + q * pt.log(v)
                + (p * x - 1) * pt.log(z_mean) + (p * x) * pt.log(x) - (p * x + q) * pt.log(x * z_mean + v),
            )  # fmt: skip

    def shared(base: type, build: Callable[..., None]) -> type:
        return type(f"SharedData{base.__name__}", (base,), {"build_model": build})

    return SharedDataModels(
        bgnbd=shared(BetaGeoModel, recency_frequency(BetaGeoNBD)),
        modified_bgnbd=shared(ModifiedBetaGeoModel, recency_frequency(ModifiedBetaGeoNBD)),
        gamma_gamma=shared(GammaGammaModel, spend),
    )


def _start_build(model: Any, data: pd.DataFrame | None, covariates: object) -> None:
    """What the library's ``build_model`` does before its PyMC model: validate and keep the data."""
    if data is None:
        raise SiyuError(f"{type(model).__name__}.build_model needs its data (fit(data=...))")
    if covariates:
        raise SiyuError(f"{type(model).__name__} takes no covariates; use pymc-marketing's own model")
    model._validate_data(data)
    model.data = data


def fit_rows(consumers: int, config: CLVConfig) -> np.ndarray:
    """Positions of the consumers the BG/NBD is fitted on: all, or a seeded sample of that many."""
    if config.max_fit_customers is None or consumers <= config.max_fit_customers:
        return np.arange(consumers)
    rng = np.random.default_rng(config.seed)
    return np.sort(rng.choice(consumers, size=config.max_fit_customers, replace=False))


def _model_frame(summary: pd.DataFrame, time_unit_days: float) -> pd.DataFrame:
    missing = [column for column in SUMMARY_COLUMNS if column not in summary.columns]
    if missing:
        raise SiyuError(f"CLV summary is missing columns {missing}; build it with features.clv.btyd_summary")
    if summary[Col.CONSUMER_ID].duplicated().any():
        raise SiyuError("CLV summary has a consumer_id more than once; build it with btyd_summary")
    if (summary[BTYDCol.RECENCY] > summary[BTYDCol.T]).any():
        raise SiyuError("CLV summary has recency > T; T must run to the as-of date, after the last purchase")
    return pd.DataFrame(
        {
            _CUSTOMER_ID: np.arange(len(summary)),  # positions: unique, ordered, cheap for xarray
            BTYDCol.FREQUENCY: summary[BTYDCol.FREQUENCY].to_numpy(dtype="float64"),
            BTYDCol.RECENCY: summary[BTYDCol.RECENCY].to_numpy(dtype="float64") / time_unit_days,
            BTYDCol.T: summary[BTYDCol.T].to_numpy(dtype="float64") / time_unit_days,
            BTYDCol.MONETARY_VALUE: summary[BTYDCol.MONETARY_VALUE].to_numpy(dtype="float64"),
        }
    )


def _gamma_gamma_frame(data: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Repeat buyers with a positive mean value, and how many repeat buyers were set aside."""
    repeat = data[BTYDCol.FREQUENCY] > 0
    positive = data[BTYDCol.MONETARY_VALUE] > 0
    spend_data = data.loc[repeat & positive, [_CUSTOMER_ID, BTYDCol.FREQUENCY, BTYDCol.MONETARY_VALUE]]
    return spend_data.reset_index(drop=True), int((repeat & ~positive).sum())


def _fit_bgnbd(data: pd.DataFrame, config: CLVConfig) -> tuple[object | None, int]:
    if len(data) < config.min_customers:
        log.warning(
            "CLV: %d consumers, fewer than min_customers=%d; no BG/NBD fit", len(data), config.min_customers
        )
        return None, 0
    fit_data = data.iloc[fit_rows(len(data), config)].reset_index(drop=True)
    model = shared_data_models().bgnbd(model_config=priors(config.bgnbd_priors))
    columns = [_CUSTOMER_ID, BTYDCol.FREQUENCY, BTYDCol.RECENCY, BTYDCol.T]
    fitted = _fit(model, fit_data[columns], config, "BG/NBD", BGNBD_PARAMS)
    return fitted, len(fit_data) if fitted is not None else 0


def _fit_gamma_gamma(spend_data: pd.DataFrame, config: CLVConfig) -> object | None:
    if len(spend_data) < config.min_customers:
        log.warning(
            "CLV: %d repeat buyers with positive value, fewer than min_customers=%d; no Gamma-Gamma fit",
            len(spend_data), config.min_customers,
        )  # fmt: skip
        return None
    model = _fit(
        shared_data_models().gamma_gamma(model_config=priors(config.gamma_gamma_priors)),
        spend_data,
        config,
        "Gamma-Gamma",
        GAMMA_GAMMA_PARAMS,
    )
    if model is not None and _params(model, ("q",))["q"] <= 1:
        log.warning("CLV: Gamma-Gamma q <= 1 (population mean value undefined); expected_value left empty")
        return None
    return model


def _fit(
    model: object, data: pd.DataFrame, config: CLVConfig, name: str, params: tuple[str, ...]
) -> object | None:
    """``model`` fitted on ``data``, or None (logged) when the fit fails or gives non-finite parameters."""
    kwargs: dict[str, object] = {"progressbar": False}
    if config.fit_method == MAP:
        kwargs["maxeval"] = config.maxeval
    else:
        kwargs["random_seed"] = config.seed
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            model.fit(data=data, method=config.fit_method, **kwargs)  # type: ignore[attr-defined]
    except (ValueError, FloatingPointError, RuntimeError) as error:
        log.warning("CLV: %s fit failed (%s); its outputs are left empty", name, error)
        return None
    values = _params(model, params)
    if not all(np.isfinite(value) and value > 0 for value in values.values()):
        log.warning("CLV: %s fit gave parameters %s; its outputs are left empty", name, values)
        return None
    return model


def _predict(
    data: pd.DataFrame, bgnbd: object | None, gamma_gamma: object | None, config: CLVConfig, ids: pd.Series
) -> pd.DataFrame:
    nan = np.full(len(data), np.nan)
    purchases, alive, spend = nan, nan, nan
    if bgnbd is not None:
        future_t = config.horizon_days / config.time_unit_days
        purchases = _point(bgnbd.expected_purchases(data=data, future_t=future_t), len(data))  # type: ignore[attr-defined]
        alive = _point(bgnbd.expected_probability_alive(data=data), len(data))  # type: ignore[attr-defined]
        broken = int((~np.isfinite(purchases)).sum())
        if broken:
            log.warning("CLV: BG/NBD gave no finite expected purchases for %d consumers (left empty)", broken)
    if gamma_gamma is not None:
        spend = _point(gamma_gamma.expected_customer_spend(data=data), len(data))  # type: ignore[attr-defined]
        set_aside = (data[BTYDCol.FREQUENCY] > 0) & (data[BTYDCol.MONETARY_VALUE] <= 0)
        spend = np.where(set_aside.to_numpy(), 0.0, spend)
    return pd.DataFrame(
        {
            Col.CONSUMER_ID: ids.reset_index(drop=True),
            CLVCol.EXPECTED_PURCHASES: purchases,
            CLVCol.EXPECTED_VALUE: purchases * spend,
            CLVCol.PROB_ALIVE: alive,
        }
    )


def _point(draws: object, size: int) -> np.ndarray:
    """The posterior mean per customer, in the model frame's row order (customer_id = position)."""
    mean = draws.mean(("chain", "draw"))  # type: ignore[attr-defined]
    return mean.sel({_CUSTOMER_ID: np.arange(size)}).to_numpy().astype("float64")


def _params(model: object | None, names: tuple[str, ...]) -> dict[str, float]:
    if model is None:
        return {}
    posterior = model.fit_result  # type: ignore[attr-defined]
    return {name: float(posterior[name].mean()) for name in names}


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 4) for key, value in values.items()}
