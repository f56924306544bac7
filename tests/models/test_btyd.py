"""The closed-form BG/NBD, modified BG/NBD and Gamma-Gamma (models/btyd.py) against pymc-marketing
itself: on the CDNOW sample the scipy fits land on the library's MAP fits (flat priors), and at
the same parameters the predictions are the library's to rounding."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from models import btyd
from tests.models.test_clv import PUBLISHED_BGNBD, PUBLISHED_GAMMA_GAMMA, cdnow  # noqa: F401 - fixture

pytestmark = pytest.mark.slow  # three PyMC fits (seconds of compiling each)


def _weekly(calibration: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": np.arange(len(calibration)),
            "frequency": calibration["frequency"].to_numpy(dtype="float64"),
            "recency": calibration["recency"].to_numpy(dtype="float64") / 7,
            "T": calibration["T"].to_numpy(dtype="float64") / 7,
            "monetary_value": calibration["monetary_value"].to_numpy(dtype="float64"),
        }
    )


def _library_fit(model_class: type, data: pd.DataFrame, names: tuple[str, ...]) -> object:
    from pymc_extras.prior import Prior

    model = model_class(model_config={name: Prior("HalfFlat") for name in names})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data=data, method="map", progressbar=False, maxeval=5000)
    return model


def _params(model: object, names: tuple[str, ...]) -> dict[str, float]:
    return {name: float(model.fit_result[name].mean()) for name in names}  # type: ignore[attr-defined]


def _point(draws: object) -> np.ndarray:
    return draws.mean(("chain", "draw")).to_numpy()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def weekly(cdnow) -> pd.DataFrame:  # noqa: F811
    return _weekly(cdnow[0])


def test_bgnbd_fit_and_predictions_are_pymc_marketings(weekly: pd.DataFrame) -> None:
    from pymc_marketing.clv import BetaGeoModel

    library = _library_fit(
        BetaGeoModel, weekly[["customer_id", "frequency", "recency", "T"]], btyd.BGNBD_PARAMS
    )
    expected = _params(library, btyd.BGNBD_PARAMS)
    fitted = btyd.fit_bgnbd(weekly["frequency"], weekly["recency"], weekly["T"])
    for name in btyd.BGNBD_PARAMS:
        assert fitted[name] == pytest.approx(expected[name], rel=2e-3)
        assert fitted[name] == pytest.approx(PUBLISHED_BGNBD[name], rel=5e-3)
    x, t_x, big_t = weekly["frequency"], weekly["recency"], weekly["T"]
    np.testing.assert_allclose(
        btyd.bgnbd_expected_purchases(expected, x, t_x, big_t, 39.0),
        _point(library.expected_purchases(data=weekly, future_t=39.0)),
        rtol=1e-9,
    )
    np.testing.assert_allclose(
        btyd.bgnbd_prob_alive(expected, x, t_x, big_t),
        _point(library.expected_probability_alive(data=weekly)),
        rtol=1e-9,
    )


def test_modified_bgnbd_fit_and_prob_alive_are_pymc_marketings(weekly: pd.DataFrame) -> None:
    from pymc_marketing.clv import ModifiedBetaGeoModel

    columns = ["customer_id", "frequency", "recency", "T"]
    library = _library_fit(ModifiedBetaGeoModel, weekly[columns], btyd.BGNBD_PARAMS)
    expected = _params(library, btyd.BGNBD_PARAMS)
    fitted = btyd.fit_bgnbd(weekly["frequency"], weekly["recency"], weekly["T"], modified=True)
    for name in btyd.BGNBD_PARAMS:
        assert fitted[name] == pytest.approx(expected[name], rel=2e-3)
    alive = btyd.mbgnbd_prob_alive(expected, weekly["frequency"], weekly["recency"], weekly["T"])
    np.testing.assert_allclose(alive, _point(library.expected_probability_alive(data=weekly)), rtol=1e-9)
    assert ((alive > 0) & (alive < 1))[weekly["frequency"] == 0].all()  # one-time buyers may have left


def test_gamma_gamma_fit_and_spend_are_pymc_marketings(weekly: pd.DataFrame) -> None:
    from pymc_marketing.clv import GammaGammaModel

    repeat = weekly[weekly["frequency"] > 0].reset_index(drop=True)
    library = _library_fit(
        GammaGammaModel, repeat[["customer_id", "frequency", "monetary_value"]], btyd.GAMMA_GAMMA_PARAMS
    )
    expected = _params(library, btyd.GAMMA_GAMMA_PARAMS)
    fitted = btyd.fit_gamma_gamma(repeat["frequency"], repeat["monetary_value"])
    for name in btyd.GAMMA_GAMMA_PARAMS:
        assert fitted[name] == pytest.approx(expected[name], rel=2e-3)
        assert fitted[name] == pytest.approx(PUBLISHED_GAMMA_GAMMA[name], rel=5e-3)
    np.testing.assert_allclose(
        btyd.gamma_gamma_spend(expected, weekly["frequency"], weekly["monetary_value"]),
        _point(library.expected_customer_spend(data=weekly)),
        rtol=1e-9,
    )


def test_identical_customers_weigh_as_many() -> None:
    """Counting a repeated customer once with its weight is the same likelihood as repeating it."""
    rng = np.random.default_rng(3)
    big_t = rng.integers(20, 60, 300).astype(float)
    x = rng.poisson(1.5, 300).astype(float)
    t_x = np.where(x > 0, np.floor(big_t * rng.random(300)), 0.0)
    once = btyd.fit_bgnbd(x, t_x, big_t)
    twice = btyd.fit_bgnbd(np.tile(x, 2), np.tile(t_x, 2), np.tile(big_t, 2))
    for name in btyd.BGNBD_PARAMS:
        assert once[name] == pytest.approx(twice[name], rel=1e-4)
