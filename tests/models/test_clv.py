"""CLV: the CDNOW check against the published BG/NBD fit, set-aside spend, edge cases and config."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features.asof import AsOf
from features.clv import SUMMARY_COLUMNS, btyd_summary
from features.columns import Col, OrderStatus, Table
from features.engine import connect
from features.errors import SiyuError
from models.clv import PREDICTION_COLUMNS, CLVConfig, CLVResult, fit_clv, fit_rows

CDNOW = Path(__file__).resolve().parents[1] / "fixtures" / "cdnow_sample.parquet"
CALIBRATION_END = AsOf(date(1997, 9, 30))
HOLDOUT_END = AsOf(date(1998, 6, 30))
HOLDOUT_WEEKS = 39
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # Fader, Hardie & Lee 2005, weeks
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}  # Fader & Hardie 2013


@pytest.fixture(scope="module")
def cdnow() -> tuple[pd.DataFrame, np.ndarray]:
    """The calibration summary of the CDNOW sample and each customer's holdout repeat purchases."""
    purchases = pd.read_parquet(CDNOW)
    lines = pd.DataFrame(
        {
            Col.ORDER_ID: [f"T{position}" for position in range(len(purchases))],
            Col.CONSUMER_ID: purchases["customer_id"].astype(str),
            Col.DISTRIBUTOR_ID: "cdnow",
            Col.PRODUCT_ID: "cd",
            Col.QUANTITY: 1,
            Col.UNIT_PRICE: purchases["dollar_value"].astype("float64"),
            Col.ORDERED_AT: pd.to_datetime(purchases["date"]),
            Col.STATUS: OrderStatus.PAID,
        }
    )
    con = connect({Table.ORDERS: lines})
    calibration = btyd_summary(con, CALIBRATION_END)
    whole = btyd_summary(con, HOLDOUT_END).set_index(Col.CONSUMER_ID)
    holdout = whole.loc[calibration[Col.CONSUMER_ID], "frequency"].to_numpy() - calibration["frequency"]
    return calibration, holdout.to_numpy(dtype="float64")


def test_cdnow_summary_matches_the_published_sample(cdnow: tuple[pd.DataFrame, np.ndarray]) -> None:
    calibration, holdout = cdnow
    assert len(calibration) == 2357
    assert (calibration["frequency"] > 0).sum() == 946  # the repeat buyers of the Gamma-Gamma note
    assert holdout.sum() == 1882


@pytest.fixture(scope="module")
def cdnow_weekly(cdnow: tuple[pd.DataFrame, np.ndarray]) -> CLVResult:
    """The check's fit: weeks as the time unit (as the paper), a 39-week horizon, default flat priors."""
    return fit_clv(cdnow[0], CLVConfig(time_unit_days=7, horizon_days=HOLDOUT_WEEKS * 7))


@pytest.mark.slow
def test_cdnow_bgnbd_matches_published_and_beats_the_rate_forecast(
    cdnow: tuple[pd.DataFrame, np.ndarray], cdnow_weekly: CLVResult
) -> None:
    calibration, holdout = cdnow
    result = cdnow_weekly

    for name, published in PUBLISHED_BGNBD.items():
        assert result.bgnbd_params[name] == pytest.approx(published, rel=0.10), name
    for name, published in PUBLISHED_GAMMA_GAMMA.items():
        assert result.gamma_gamma_params[name] == pytest.approx(published, rel=0.10), name

    bgnbd_error = np.abs(result.predictions["expected_purchases"].to_numpy() - holdout).mean()
    rate = calibration["frequency"] / (calibration["T"] / 7) * HOLDOUT_WEEKS
    rate_error = np.abs(rate.to_numpy() - holdout).mean()
    assert bgnbd_error < rate_error
    assert list(result.predictions[Col.CONSUMER_ID]) == list(calibration[Col.CONSUMER_ID])


@pytest.mark.slow
def test_time_unit_only_rescales_alpha(
    cdnow: tuple[pd.DataFrame, np.ndarray], cdnow_weekly: CLVResult
) -> None:
    in_days = fit_clv(cdnow[0], CLVConfig(horizon_days=HOLDOUT_WEEKS * 7))
    assert in_days.bgnbd_params["alpha"] == pytest.approx(7 * cdnow_weekly.bgnbd_params["alpha"], rel=0.01)
    for name in ("r", "a", "b"):
        assert in_days.bgnbd_params[name] == pytest.approx(cdnow_weekly.bgnbd_params[name], rel=0.01)
    np.testing.assert_allclose(
        in_days.predictions["expected_purchases"], cdnow_weekly.predictions["expected_purchases"], rtol=0.02
    )


def spend_summary(size: int = 60, seed: int = 7) -> pd.DataFrame:
    """A plausible summary: purchase counts, recency within T, positive mean values for repeat buyers."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(30, 365, size)
    frequency = rng.poisson(2.0, size)
    recency = np.where(frequency > 0, (tenure * rng.uniform(0.2, 1.0, size)).astype(int), 0)
    monetary = np.where(frequency > 0, rng.gamma(4.0, 15.0, size).round(2), 0.0)
    ids = [f"C{number:03d}" for number in rng.permutation(size)]  # deliberately not sorted
    return pd.DataFrame(
        {
            Col.CONSUMER_ID: ids,
            "frequency": frequency,
            "recency": recency,
            "T": tenure,
            "monetary_value": monetary,
        }
    )


@pytest.mark.slow
def test_zero_and_negative_spend_are_set_aside_and_do_not_change_the_spend_fit() -> None:
    clean = spend_summary()
    repeat_rows = np.flatnonzero(clean["frequency"] > 0)
    spoiled = clean.copy()
    spoiled.loc[repeat_rows[:3], "monetary_value"] = 0.0
    spoiled.loc[repeat_rows[3:5], "monetary_value"] = [-12.5, -80.0]

    result = fit_clv(spoiled, CLVConfig())

    assert result.set_aside == 5
    assert result.gamma_gamma_customers == len(repeat_rows) - 5
    predictions = result.predictions
    assert tuple(predictions.columns) == PREDICTION_COLUMNS
    assert list(predictions[Col.CONSUMER_ID]) == list(spoiled[Col.CONSUMER_ID])
    assert (predictions.loc[repeat_rows[:5], "expected_value"] == 0.0).all()
    others = predictions.drop(index=repeat_rows[:5])
    assert np.isfinite(others["expected_value"]).all() and (others["expected_value"] > 0).all()
    assert predictions["prob_alive"].between(0, 1).all()
    assert np.isfinite(predictions["expected_purchases"]).all()

    # Without the set-aside consumers, the Gamma-Gamma fit is the same. (This second fit also runs
    # the BG/NBD on a seeded sample, which the Gamma-Gamma fit does not use, to save a test fit.)
    without = fit_clv(
        spoiled.drop(index=repeat_rows[:5]).reset_index(drop=True), CLVConfig(max_fit_customers=40)
    )
    for name, value in without.gamma_gamma_params.items():
        assert result.gamma_gamma_params[name] == pytest.approx(value, rel=1e-6)
    assert without.fitted_customers == 40
    assert without.predictions["expected_purchases"].notna().all()


def test_fit_sample_is_seeded_sorted_and_all_when_small() -> None:
    config = CLVConfig(max_fit_customers=50, seed=3)
    rows = fit_rows(80, config)
    assert len(rows) == 50 and len(set(rows)) == 50 and (np.diff(rows) > 0).all()
    np.testing.assert_array_equal(rows, fit_rows(80, config))
    assert not np.array_equal(rows, fit_rows(80, CLVConfig(max_fit_customers=50, seed=4)))
    np.testing.assert_array_equal(fit_rows(30, config), np.arange(30))


def test_too_few_consumers_gives_empty_predictions_not_an_error() -> None:
    result = fit_clv(spend_summary(size=5), CLVConfig())
    assert len(result.predictions) == 5
    assert result.predictions[["expected_purchases", "expected_value", "prob_alive"]].isna().all().all()
    assert result.bgnbd_params == {} and result.gamma_gamma_params == {}

    empty = fit_clv(spend_summary(size=5).iloc[:0], CLVConfig())
    assert tuple(empty.predictions.columns) == PREDICTION_COLUMNS and empty.predictions.empty


def test_a_broken_summary_is_refused_with_a_clear_message() -> None:
    summary = spend_summary()
    with pytest.raises(SiyuError, match="missing columns"):
        fit_clv(summary.drop(columns="T"), CLVConfig())
    with pytest.raises(SiyuError, match="more than once"):
        fit_clv(pd.concat([summary, summary.iloc[:1]]), CLVConfig())
    with pytest.raises(SiyuError, match="recency > T"):
        fit_clv(summary.assign(recency=summary["T"] + 1), CLVConfig())
    assert set(SUMMARY_COLUMNS) <= set(summary.columns)


def test_config_forbids_unknown_keys_and_unusable_priors() -> None:
    with pytest.raises(ValidationError):
        CLVConfig(horizon=90)
    with pytest.raises(ValidationError, match="not a usable prior"):
        CLVConfig(bgnbd_priors={"r": {"distribution": "NoSuchDistribution"}})
    weibull = CLVConfig(
        bgnbd_priors={"alpha": {"distribution": "Weibull", "params": {"alpha": 2, "beta": 10}}}
    )
    assert weibull.bgnbd_priors.alpha.to_prior().distribution == "Weibull"
    assert weibull.bgnbd_priors.r.distribution == "HalfFlat"


@pytest.mark.slow
def test_warm_up_imports_pymc_marketing_and_loads_pytensors_module_cache() -> None:
    """In a fresh interpreter (here both may be loaded already): what the first fit would otherwise do."""
    check = (
        "import sys\n"
        "from pytensor.link.c import cmodule\n"
        "assert cmodule._module_cache is None and 'pymc_marketing.clv' not in sys.modules\n"
        "from models.clv import warm_up\n"
        "warm_up(); warm_up()\n"
        "assert cmodule._module_cache is not None and 'pymc_marketing.clv' in sys.modules\n"
        "assert warm_up.cache_info().hits == 1\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], cwd=Path(__file__).parents[2], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the C modules PyTensor compiles from here on (modules found in its cache are
    not compiled: this list stays empty for them)."""
    from pytensor.link.c.cmodule import GCC_compiler

    names: list[str] = []
    original = GCC_compiler.compile_str

    def counted(module_name: str, *args: object, **kwargs: object) -> object:
        names.append(module_name)
        return original(module_name, *args, **kwargs)

    monkeypatch.setattr(GCC_compiler, "compile_str", staticmethod(counted))
    return names


@pytest.mark.slow
def test_a_fit_on_new_data_of_a_new_size_compiles_nothing(compiled: list[str]) -> None:
    """Every night's data are new (and most often of a new size): the models must find their C
    modules in PyTensor's cache, not fold the data into new ones (docs/clv.md)."""
    from models.churn import CHURN_SCORERS, ChurnConfig

    first = spend_summary(size=60, seed=1)
    fit_clv(first, CLVConfig())
    CHURN_SCORERS["mbgnbd"](None, first, 90, ChurnConfig())
    compiled.clear()  # the first fits compile what this machine's cache lacks

    tonight = spend_summary(size=83, seed=2)
    result = fit_clv(tonight, CLVConfig())
    risk = CHURN_SCORERS["mbgnbd"](None, tonight, 90, ChurnConfig())

    assert compiled == []
    assert set(result.bgnbd_params) == {"r", "alpha", "a", "b"} and set(result.gamma_gamma_params) == {
        "p",
        "q",
        "v",
    }
    assert np.isfinite(result.predictions["expected_value"]).all() and np.isfinite(risk).all()


@pytest.mark.slow
def test_shared_data_models_fit_as_pymc_marketings_own(cdnow: tuple[pd.DataFrame, np.ndarray]) -> None:
    """The same likelihood and priors as the library's models: the same MAP parameters on the
    CDNOW sample, up to the optimizer's tolerance (the graphs round in another order)."""
    from pymc_extras.prior import Prior
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel, ModifiedBetaGeoModel

    from models.clv import shared_data_models

    summary = cdnow[0].drop(columns=[Col.CONSUMER_ID]).astype("float64")
    summary.insert(0, "customer_id", np.arange(len(summary)))
    recency_frequency = summary[["customer_id", "frequency", "recency", "T"]]
    spend = summary.loc[summary["frequency"] > 0, ["customer_id", "frequency", "monetary_value"]]
    shared = shared_data_models()
    pairs = [
        (BetaGeoModel, shared.bgnbd, recency_frequency, ("r", "alpha", "a", "b")),
        (ModifiedBetaGeoModel, shared.modified_bgnbd, recency_frequency, ("r", "alpha", "a", "b")),
        (GammaGammaModel, shared.gamma_gamma, spend.reset_index(drop=True), ("p", "q", "v")),
    ]
    for library, ours, data, names in pairs:
        fitted = []
        for model_class in (library, ours):
            model = model_class(model_config={name: Prior("HalfFlat") for name in names})
            model.fit(data=data, method="map", progressbar=False, maxeval=5000)
            fitted.append({name: float(model.fit_result[name].mean()) for name in names})
        for name in names:
            assert fitted[1][name] == pytest.approx(fitted[0][name], rel=1e-4), (library.__name__, name)


def test_shared_data_models_refuse_covariates() -> None:
    from models.clv import shared_data_models

    model = shared_data_models().bgnbd(model_config={"purchase_covariate_cols": ["age"]})
    with pytest.raises(SiyuError, match="covariates"):
        model.build_model(spend_summary(size=30).rename(columns={Col.CONSUMER_ID: "customer_id"}))
