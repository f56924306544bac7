"""Behaviour clusters: k by silhouette recovers planted groups, numbering and labels, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features.consumer_features import ConsumerCol
from models.clusters import FEATURES, BehaviourClusters, ClusterCol, ClusterConfig

# (recency days, orders, spend, average order value, categories, return rate, price index)
GROUPS = {
    "champions": (2, 30, 5000.0, 160.0, 8, 0.02, 1.0),
    "one-off bargain": (200, 1, 50.0, 50.0, 1, 0.0, 0.7),
    "returners": (60, 5, 800.0, 160.0, 3, 0.3, 1.3),
}
CONFIG = ClusterConfig(k_min=2, k_max=6, fit_sample=1_000, silhouette_sample=500, random_state=7)


def planted(per_group: int = 80, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for index, centre in enumerate(GROUPS.values()):
        noise = 1 + 0.05 * rng.standard_normal((per_group, len(centre)))
        rows.append(np.asarray(centre) * noise)
        truth += [index] * per_group
    frame = pd.DataFrame(np.vstack(rows), columns=list(FEATURES))
    for column in (ConsumerCol.RECENCY_DAYS, ConsumerCol.ORDERS, ConsumerCol.CATEGORIES):
        frame[column] = frame[column].round().clip(lower=0).astype("int64")
    return frame, np.asarray(truth)


def test_silhouette_picks_the_planted_k_and_recovers_the_groups() -> None:
    frame, truth = planted()
    model = BehaviourClusters(CONFIG).fit(frame)
    assert model.k_ == 3
    assert set(model.silhouettes_) == {2, 3, 4, 5, 6}
    labels = model.predict(frame)
    # each planted group falls into exactly one cluster, and clusters do not mix groups
    crossed = pd.crosstab(truth, labels.to_numpy())
    assert ((crossed > 0).sum(axis=1) == 1).all() and ((crossed > 0).sum(axis=0) == 1).all()
    # clusters are numbered by descending spend: the champions are cluster 1
    assert set(labels[truth == 0]) == {1}


def test_profile_is_readable() -> None:
    frame, truth = planted()
    model = BehaviourClusters(CONFIG).fit(frame)
    labels = model.predict(frame)
    profile = model.profile(frame, labels).set_index(ClusterCol.CLUSTER)
    assert profile[ClusterCol.CONSUMERS].tolist() == [80, 80, 80]
    assert profile[ClusterCol.SHARE].tolist() == [0.3333] * 3
    champions = profile.loc[1, ClusterCol.LABEL].split(", ")
    assert len(champions) == 3 and {"frequent", "high spend"} & set(champions)
    returners = profile.loc[labels[truth == 2].iloc[0], ClusterCol.LABEL]
    assert "returns often" in returners
    assert profile.loc[1, f"median_{ConsumerCol.ORDERS}"] == pytest.approx(30, abs=2)


def test_refit_is_deterministic() -> None:
    frame, _ = planted()
    first = BehaviourClusters(CONFIG).fit(frame).predict(frame)
    second = BehaviourClusters(CONFIG).fit(frame).predict(frame)
    pd.testing.assert_series_equal(first, second)


def test_config_range_is_checked() -> None:
    with pytest.raises(ValidationError, match="k_max"):
        ClusterConfig(k_min=5, k_max=4)


def test_a_kept_k_fits_the_model_a_fit_that_chose_it_gets_without_trying_the_others() -> None:
    """``fit(frame, k)``: KMeans for that k alone, the same centres, numbering and clusters as a
    fit that chose k by silhouette (models.cluster_choice keeps k between nights)."""
    frame, _ = planted(seed=3)
    chosen = BehaviourClusters(CONFIG).fit(frame)
    for k in (chosen.k_, 4):  # the k a fit chooses, and another k within the range
        kept = BehaviourClusters(CONFIG).fit(frame, k)
        assert kept.k_ == k and kept.silhouettes_ == {}
        alone = BehaviourClusters(CONFIG.model_copy(update={"k_min": k, "k_max": k})).fit(frame)
        np.testing.assert_array_equal(kept.kmeans_.cluster_centers_, alone.kmeans_.cluster_centers_)
        np.testing.assert_array_equal(kept.order_, alone.order_)
        pd.testing.assert_series_equal(kept.predict(frame), alone.predict(frame))
    kept = BehaviourClusters(CONFIG).fit(frame, chosen.k_)
    np.testing.assert_array_equal(kept.kmeans_.cluster_centers_, chosen.kmeans_.cluster_centers_)
    pd.testing.assert_series_equal(kept.predict(frame), chosen.predict(frame))


@pytest.mark.parametrize("k", [1, 7, 50])
def test_a_kept_k_out_of_the_configured_range_is_chosen_again(k: int) -> None:
    frame, _ = planted()
    refit = BehaviourClusters(CONFIG).fit(frame, k)
    assert refit.k_ == 3 and set(refit.silhouettes_) == {2, 3, 4, 5, 6}
