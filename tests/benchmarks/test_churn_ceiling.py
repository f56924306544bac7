"""The churn ceiling's pure parts: out-of-fold predictions never see their own label, the tables, the uplifts.

A one-nearest-neighbour model scores every training row perfectly, so any in-sample prediction
would show as an AUC of 1 on labels that are pure noise; the out-of-fold one must stay near 0.5.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier

from benchmarks.churn_ceiling import (
    CLASSIFIERS,
    REGRESSORS,
    churn_ceiling,
    forecast_ceiling,
    out_of_fold,
    uplifts,
)
from features.asof import AsOf
from features.columns import Col, Table
from features.engine import connect


def noise(rows: int = 600, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=rows), "z": rng.normal(size=rows)}), rng.integers(0, 2, rows)


def test_out_of_fold_never_predicts_a_row_from_its_own_label() -> None:
    inputs, label = noise()
    memorise = lambda seed: KNeighborsClassifier(n_neighbors=1)  # noqa: E731
    in_sample = memorise(0).fit(inputs, label).predict_proba(inputs)[:, 1]
    assert roc_auc_score(label, in_sample) == 1.0  # the leak this test would catch
    assert abs(roc_auc_score(label, out_of_fold(inputs, label, memorise, seed=0)) - 0.5) < 0.08


def test_out_of_fold_finds_a_label_the_inputs_determine() -> None:
    inputs, _ = noise()
    label = (inputs["x"] > 0).to_numpy().astype("int64")
    risk = out_of_fold(inputs, label, CLASSIFIERS["logistic"], seed=0)
    assert roc_auc_score(label, risk) > 0.99


def test_ceiling_tables_have_one_row_per_family_and_model() -> None:
    inputs, label = noise(300)
    families = {"one": inputs[["x"]], "two": inputs}
    churn = churn_ceiling(families, label, seeds=2)
    assert list(churn["inputs"]) == [family for family in families for _ in range(len(CLASSIFIERS) + 1)]
    assert churn["auc"].between(0.3, 0.7).all()  # noise: no family can rank it
    forecast = forecast_ceiling(families, np.full(300, 2.0), seeds=1)
    assert len(forecast) == len(families) * len(REGRESSORS)
    poisson = forecast[forecast["model"] == "poisson_linear"]
    assert np.allclose(poisson["mae"], 0, atol=0.05) and np.allclose(poisson["bias_pct"], 0, atol=1)


def test_uplifts_are_purchase_day_rates_known_by_hand() -> None:
    """One buyer each of the 90 days before the as-of date, a second in the last 30, three a day after."""
    as_of = date(2025, 6, 30)
    rows = []
    for back in range(90):
        day = as_of - timedelta(days=back)
        rows += [("A", day)] + ([("B", day)] if back < 30 else [])
    for ahead in range(1, 91):
        rows += [(name, as_of + timedelta(days=ahead)) for name in ("A", "B", "C")]
    orders = pd.DataFrame(rows, columns=[Col.CONSUMER_ID, Col.ORDERED_AT]).assign(
        **{Col.ORDER_ID: lambda f: [f"O{i}" for i in range(len(f))], Col.DISTRIBUTOR_ID: "D",
           Col.PRODUCT_ID: "P", Col.QUANTITY: 1, Col.UNIT_PRICE: 5.0, Col.STATUS: "paid"}
    )  # fmt: skip
    orders[Col.ORDERED_AT] = pd.to_datetime(orders[Col.ORDERED_AT]) + pd.Timedelta(hours=9)
    found = uplifts(connect({Table.ORDERS: orders}), AsOf(as_of), 90)
    # last 90 days: 90 + 30 = 120 purchase days; last 30: 60; the test window: 270; no year-before data
    assert [uplift.ratio for uplift in found] == pytest.approx([(60 / 30) / (120 / 90), 3 / (120 / 90)])
