"""Churn risk and the choice of models: one-time buyers, long silences, no peek at the test window, bands."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features.asof import AsOf
from features.clv import ActivityCol, model_frames
from features.columns import Col, Table
from features.engine import connect
from features.vocabulary import BTYDCol
from models.churn import (
    CHURN_SCORERS,
    FORECASTERS,
    Choice,
    ChurnConfig,
    FittedModels,
    calibration_table,
    choose_and_predict,
    churn_band,
    churn_metrics,
    forecast_metrics,
    predict_fitted,
    score_candidates,
)
from models.clv import CLVConfig

START = date(2025, 1, 1)
AS_OF = AsOf(date(2025, 12, 31))
HORIZON = 60
CLV = CLVConfig(horizon_days=HORIZON, min_customers=20)
SUPERVISED = ChurnConfig(candidates=("logistic", "logistic_rf"), forecast_candidates=("gradient_boosting",))


def simulated_orders(consumers: int = 400, seed: int = 1) -> pd.DataFrame:
    """Buy-till-you-die consumers: a gamma purchase rate, a 15 % chance to leave after each purchase."""
    rng = np.random.default_rng(seed)
    rows = []
    for consumer in range(consumers):
        rate, day = rng.gamma(1.0, 1 / 25), int(rng.integers(0, 300))
        while day < 420:
            rows.append((f"O{len(rows)}", f"C{consumer:04d}", START + timedelta(days=day)))
            if rng.random() < 0.15:
                break
            day += 1 + int(rng.exponential(1 / rate))
    frame = pd.DataFrame(rows, columns=[Col.ORDER_ID, Col.CONSUMER_ID, Col.ORDERED_AT])
    return frame.assign(
        **{
            Col.ORDERED_AT: pd.to_datetime(frame[Col.ORDERED_AT]) + pd.Timedelta(hours=10),
            Col.DISTRIBUTOR_ID: "D1", Col.PRODUCT_ID: "P1", Col.QUANTITY: 1,
            Col.UNIT_PRICE: 20.0, Col.STATUS: "paid",
        }
    )  # fmt: skip


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return model_frames(connect({Table.ORDERS: simulated_orders()}), AS_OF, HORIZON)


def test_one_time_buyers_get_a_risk_strictly_between_0_and_1(frames) -> None:
    train, validation, current = frames
    result = choose_and_predict(train, validation, current, CLV, SUPERVISED)
    one_time = current[BTYDCol.FREQUENCY].to_numpy() == 0
    assert one_time.sum() > 10
    risk = result.predictions["churn_risk"].to_numpy()
    assert np.all((risk[one_time] > 0) & (risk[one_time] < 1))
    assert result.predictions["churn_band"].notna().all()


def _twins(current: pd.DataFrame) -> pd.DataFrame:
    """Two buyers alike in all but the time since the last purchase: 10 days against 200 (gap 20)."""
    base = current[current[BTYDCol.FREQUENCY] >= 3].iloc[[0, 0]].reset_index(drop=True)
    base[BTYDCol.FREQUENCY], base[BTYDCol.T] = 5, 320
    base[BTYDCol.RECENCY] = [310, 120]
    base[ActivityCol.DAYS_SINCE_LAST] = base[BTYDCol.T] - base[BTYDCol.RECENCY]
    base[ActivityCol.MEAN_GAP_DAYS] = base[BTYDCol.RECENCY] / base[BTYDCol.FREQUENCY]
    base[ActivityCol.SILENCE_RATIO] = base[ActivityCol.DAYS_SINCE_LAST] / base[ActivityCol.MEAN_GAP_DAYS]
    for days in (30, 90, 180):  # the silent one bought nothing lately
        base.loc[1, ActivityCol.purchase_days(days)] = 0
        base.loc[1, ActivityCol.value(days)] = 0.0
    base.loc[0, ActivityCol.purchase_days(30)] = 1
    return base


@pytest.mark.parametrize("candidate", ["logistic", "logistic_rf", "gradient_boosting"])
def test_a_long_silence_ranks_riskier_than_a_recent_purchase(frames, candidate: str) -> None:
    _, validation, current = frames
    twins = _twins(current)
    recent, silent = CHURN_SCORERS[candidate](validation, twins, HORIZON, SUPERVISED)
    assert silent > recent


@pytest.mark.slow
def test_modified_bgnbd_ranks_a_long_silence_riskier_and_one_time_buyers_inside_0_1(frames) -> None:
    _, _, current = frames
    risk = CHURN_SCORERS["mbgnbd"](None, current, HORIZON, SUPERVISED)
    one_time = current[BTYDCol.FREQUENCY].to_numpy() == 0
    assert np.all((risk[one_time] > 0) & (risk[one_time] < 1))
    recent, silent = CHURN_SCORERS["mbgnbd"](
        None, pd.concat([current, _twins(current)]), HORIZON, SUPERVISED
    )[-2:]
    assert silent > recent


def test_the_choice_never_sees_the_test_window(frames) -> None:
    """A planted leak: after the as-of date everyone who churned by the frames' label buys 5 times.

    Were the test window read, the label would flip and the predictions change; they do not.
    """
    orders = simulated_orders()
    leak = orders.groupby(Col.CONSUMER_ID).head(1).copy()
    leak = pd.concat([leak] * 5, ignore_index=True)
    leak[Col.ORDER_ID] = [f"L{i}" for i in range(len(leak))]
    leak[Col.ORDERED_AT] = pd.Timestamp(AS_OF.date) + pd.to_timedelta(np.arange(len(leak)) % 50 + 1, unit="D")
    leaked = model_frames(connect({Table.ORDERS: pd.concat([orders, leak])}), AS_OF, HORIZON)
    clean = choose_and_predict(*frames, CLV, SUPERVISED)
    dirty = choose_and_predict(*leaked, CLV, SUPERVISED)
    assert clean.chosen == dirty.chosen
    pd.testing.assert_frame_equal(clean.predictions, dirty.predictions)
    pd.testing.assert_frame_equal(clean.validation, dirty.validation)


def test_the_choice_is_made_on_the_validation_window(frames) -> None:
    train, validation, current = frames
    result = choose_and_predict(train, validation, current, CLV, SUPERVISED)
    brier = result.validation.query("target == 'churn' and metric == 'brier'").set_index("candidate")["value"]
    assert result.chosen["churn"] == brier.idxmin()
    assert set(result.validation["candidate"]) == {"logistic", "logistic_rf", "gradient_boosting"}


def test_bands_follow_the_configured_thresholds() -> None:
    config = ChurnConfig(medium_from=0.4, high_from=0.8)
    risk = pd.Series([0.1, 0.4, 0.79, 0.8, None])
    assert churn_band(risk, config).tolist()[:4] == ["low", "medium", "medium", "high"]
    assert pd.isna(churn_band(risk, config).iloc[4])
    with pytest.raises(ValidationError, match="medium_from"):
        ChurnConfig(medium_from=0.7, high_from=0.5)


def test_metrics_by_hand() -> None:
    label = np.array([1, 1, 0, 0])
    assert churn_metrics(label, np.array([0.9, 0.8, 0.2, 0.1]))["auc"] == 1.0
    assert churn_metrics(label, np.array([1.0, 1.0, 0.0, 0.0]))["brier"] == 0.0
    found = forecast_metrics(np.array([1.0, 3.0]), np.array([2.0, 4.0]))
    assert found["mae"] == 1.0 and found["bias_pct"] == 50.0
    table = calibration_table(np.array([0, 1, 0, 1]), np.array([0.1, 0.2, 0.8, 0.9]), bins=2)
    assert table["observed_churn"].tolist() == [0.5, 0.5] and table["buyers"].tolist() == [2, 2]


def test_candidates_side_by_side_score_as_one_after_another(frames) -> None:
    """The scikit-learn candidates run on a second thread: the same scores as each run alone, in order."""
    train, validation, _ = frames
    config = ChurnConfig(candidates=("mbgnbd", "gradient_boosting", "logistic"))
    scores = score_candidates(train, validation, CLV, config)
    assert list(scores.churn) == ["mbgnbd", "gradient_boosting", "logistic"]
    assert list(scores.purchases) == ["bgnbd", "gradient_boosting"]
    for name in config.candidates:
        alone = CHURN_SCORERS[name](train, validation, HORIZON, config)
        np.testing.assert_array_equal(scores.churn[name], alone)
    for name in config.forecast_candidates:
        purchases, value, _, _ = FORECASTERS[name](train, validation, CLV, config)
        np.testing.assert_array_equal(scores.purchases[name], purchases)
        np.testing.assert_array_equal(scores.value[name], value)
    np.testing.assert_array_equal(scores.prob_alive, FORECASTERS["bgnbd"](train, validation, CLV, config)[2])


def test_a_forecast_whose_value_is_not_wanted_skips_only_the_value(frames) -> None:
    """The final predictions want BG/NBD for prob_alive only when another candidate forecasts value:
    no Gamma-Gamma (nor value regressor) is fitted, and every output that is used stays the same."""
    train, validation, _ = frames
    config = ChurnConfig(candidates=("logistic",))
    both = score_candidates(train, validation, CLV, config)
    lean = score_candidates(train, validation, CLV, config, value=("gradient_boosting",))
    np.testing.assert_array_equal(lean.prob_alive, both.prob_alive)
    assert lean.set_aside == both.set_aside
    for name in ("bgnbd", "gradient_boosting"):
        np.testing.assert_array_equal(lean.purchases[name], both.purchases[name])
    np.testing.assert_array_equal(lean.value["gradient_boosting"], both.value["gradient_boosting"])
    assert np.isnan(lean.value["bgnbd"]).all() and np.isfinite(both.value["bgnbd"]).any()
    none_valued = score_candidates(train, validation, CLV, config, value=("bgnbd",))
    assert np.isnan(none_valued.value["gradient_boosting"]).all()
    np.testing.assert_array_equal(none_valued.value["bgnbd"], both.value["bgnbd"])


def test_each_candidate_says_when_it_is_done(frames, caplog: pytest.LogCaptureFixture) -> None:
    """One log line per candidate (the CLV fits are no silent stretch), from whichever thread ran it."""
    train, validation, _ = frames
    config = ChurnConfig(candidates=("logistic", "logistic_rf"), forecast_candidates=("gradient_boosting",))
    with caplog.at_level("INFO", logger="siyu.progress"):
        score_candidates(train, validation, CLV, config)
    done = [
        record.getMessage()
        for record in caplog.records
        if "candidate" in record.getMessage() and record.getMessage().endswith(", done")
    ]
    assert sorted(line.split(": ")[1] for line in done) == [
        "churn candidate logistic",
        "churn candidate logistic_rf",
        "forecast candidate gradient_boosting",
    ]
    n = f"{len(validation):,}"
    assert all(f": {n} / {n} buyers scored (100%), " in line for line in done)


def test_a_carried_choice_refits_the_chosen_ones_without_comparing_the_others(frames, monkeypatch) -> None:
    """An earlier night's choice (``rechoose_every_days``) skips the comparison on the validation
    window, not the refit: the predictions are those of a night that made the same choice."""
    import models.churn as churn_module

    made = choose_and_predict(*frames, CLV, SUPERVISED)
    scored: list[tuple[str, ...] | None] = []
    real = churn_module.score_candidates

    def counted(*args, **kwargs):
        scored.append(kwargs.get("churn", args[4] if len(args) > 4 else None))
        return real(*args, **kwargs)

    monkeypatch.setattr(churn_module, "score_candidates", counted)
    kept = choose_and_predict(*frames, CLV, SUPERVISED, Choice(made.chosen, made.validation))
    assert kept.carried and not made.carried
    assert scored == [(made.chosen["churn"],)]  # the final refit only: no candidate compared
    assert kept.chosen == made.chosen
    pd.testing.assert_frame_equal(kept.predictions, made.predictions)
    pd.testing.assert_frame_equal(kept.validation, made.validation)


def test_a_carried_choice_of_a_candidate_no_longer_configured_is_made_again(frames) -> None:
    stale = Choice({"churn": "mbgnbd", "purchases": "bgnbd", "value": "bgnbd"}, pd.DataFrame())
    result = choose_and_predict(*frames, CLV, SUPERVISED, stale)
    assert not result.carried
    assert result.chosen["churn"] in SUPERVISED.candidates
    assert set(result.validation["candidate"]) == {"logistic", "logistic_rf", "gradient_boosting"}


def test_every_candidate_predicts_from_its_fitted_arrays_what_its_fit_predicted(frames) -> None:
    """The fitted state (plain arrays) applied again to the frame it scored gives the same numbers,
    for every candidate: a kept model is the model the fit night used."""
    train, validation, _ = frames
    config = ChurnConfig()
    scores = score_candidates(train, validation, CLV, config)
    assert sorted(scores.fitted) == sorted(
        [("churn", name) for name in config.candidates]
        + [("forecast", name) for name in config.forecast_candidates]
    )
    for (kind, name), fitted in scores.fitted.items():
        assert fitted.arrays and all(isinstance(a, np.ndarray) for a in fitted.arrays.values()), name
        again = predict_fitted(FittedModels({}, (fitted,)), validation, CLV, config)
        if kind == "churn":
            np.testing.assert_array_equal(again.churn[name], scores.churn[name])
        else:
            np.testing.assert_array_equal(again.purchases[name], scores.purchases[name])
            np.testing.assert_array_equal(again.value[name], scores.value[name])
    bgnbd = predict_fitted(FittedModels({}, (scores.fitted[("forecast", "bgnbd")],)), validation, CLV, config)
    np.testing.assert_array_equal(bgnbd.prob_alive, scores.prob_alive)
    assert bgnbd.set_aside == scores.set_aside


def test_a_kept_choice_with_its_kept_models_fits_nothing(frames, monkeypatch) -> None:
    """An earlier night's choice and the models it fitted (``refit_every_days``) predict tonight's
    buyers without a fit: on the same frames, the predictions of the night that fitted them."""
    import models.churn as churn_module

    made = choose_and_predict(*frames, CLV, SUPERVISED)
    assert made.refitted and made.models is not None and made.models.chosen == made.chosen

    def no_fit(*args, **kwargs):
        raise AssertionError("kept models were fitted again")

    monkeypatch.setattr(churn_module, "score_candidates", no_fit)
    kept = choose_and_predict(*frames, CLV, SUPERVISED, Choice(made.chosen, made.validation), made.models)
    assert kept.carried and not kept.refitted and kept.models is made.models
    pd.testing.assert_frame_equal(kept.predictions, made.predictions)


def test_kept_models_serve_only_a_kept_choice_they_were_fitted_for(frames) -> None:
    made = choose_and_predict(*frames, CLV, SUPERVISED)
    choice = Choice(made.chosen, made.validation)
    chosen_tonight = choose_and_predict(*frames, CLV, SUPERVISED, None, made.models)
    assert chosen_tonight.refitted  # a night that chooses always fits
    other = {**made.chosen, "churn": next(n for n in SUPERVISED.candidates if n != made.chosen["churn"])}
    another = FittedModels(other, made.models.models)
    assert choose_and_predict(*frames, CLV, SUPERVISED, choice, another).refitted  # not this choice's models
    assert not choose_and_predict(*frames, CLV, SUPERVISED, choice, made.models).refitted
