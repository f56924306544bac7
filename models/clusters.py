"""Data-driven behaviour segments: KMeans on scaled RFM and behaviour features, k by silhouette.

``BehaviourClusters`` is a scikit-learn-style estimator over the consumer feature frame of
buyers. Skewed counts and amounts are log-transformed, every feature is standardised, and
KMeans is fitted for each k in the configured range on a fixed random sample; the k with the
highest silhouette score (on a sub-sample; ties go to the smaller k) is kept and every
consumer is assigned to its nearest centre. Clusters are numbered 1..k by descending mean
spend, so the numbering is stable across runs, and each gets a readable label from the
features where its mean differs most from the overall mean (e.g. "recent, frequent, high
spend").
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

from features.consumer_features import ConsumerCol
from features.vocabulary import ClusterCol

logger = logging.getLogger(__name__)

# feature -> (transform, word when clearly above average, word when clearly below)
FEATURES: dict[str, tuple[str, str, str]] = {
    ConsumerCol.RECENCY_DAYS: ("log", "lapsed", "recent"),
    ConsumerCol.ORDERS: ("log", "frequent", "one-off"),
    ConsumerCol.MONETARY: ("log", "high spend", "low spend"),
    ConsumerCol.AVG_ORDER_VALUE: ("log", "big baskets", "small baskets"),
    ConsumerCol.CATEGORIES: ("log", "broad", "narrow"),
    ConsumerCol.RETURN_RATE: ("raw", "returns often", "rarely returns"),
    ConsumerCol.PRICE_INDEX: ("raw", "premium", "bargain hunting"),
}


class ClusterConfig(BaseModel):
    """KMeans settings; k is chosen by silhouette within [k_min, k_max]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    k_min: int = Field(3, ge=2)
    k_max: int = Field(8, ge=2)
    fit_sample: int = Field(20_000, ge=100, description="Consumers KMeans is fitted on (random sample).")
    silhouette_sample: int = Field(5_000, ge=100, description="Consumers the silhouette is computed on.")
    n_init: int = Field(3, ge=1)
    label_threshold: float = Field(0.3, gt=0, description="|mean z-score| a feature needs to name a cluster.")
    label_words: int = Field(3, ge=1)
    random_state: int = 0
    rechoose_every_days: int = Field(
        7,
        ge=1,
        description="The nightly chooses k by silhouette again after this many days; between, it "
        "fits KMeans for the kept k on tonight's buyers (1: choose every night).",
    )

    @model_validator(mode="after")
    def _range(self) -> ClusterConfig:
        if self.k_max < self.k_min:
            raise ValueError(f"k_max ({self.k_max}) must be at least k_min ({self.k_min})")
        return self


def feature_matrix(features: pd.DataFrame) -> np.ndarray:
    """The unscaled model inputs: log1p of skewed columns, missing rates as 0 and price index as 1."""
    columns = []
    for name, (transform, _, _) in FEATURES.items():
        fill = 1.0 if name == ConsumerCol.PRICE_INDEX else 0.0
        values = features[name].astype("float64").fillna(fill).to_numpy()
        columns.append(np.log1p(np.maximum(values, 0)) if transform == "log" else values)
    return np.column_stack(columns)


class BehaviourClusters:
    """KMeans behaviour segments with k chosen by silhouette; fit on buyers' feature rows."""

    def __init__(self, config: ClusterConfig | None = None) -> None:
        self.config = config or ClusterConfig()

    def fit(self, features: pd.DataFrame, k: int | None = None) -> BehaviourClusters:
        """Choose k and fit; learned: ``scaler_``, ``kmeans_``, ``k_``, ``silhouettes_`` (the
        silhouette of each k tried; empty when ``k`` is given), ``order_``.

        ``k``: fit KMeans for this k alone (an earlier night's choice, ``models.cluster_choice``):
        the same model a fit that chose this k gets. None, or a k this sample cannot have (more
        than its distinct rows less one): chosen by silhouette within [k_min, k_max].
        """
        config = self.config
        matrix = feature_matrix(features)
        rng = np.random.default_rng(config.random_state)
        sample = _sample(rng, len(matrix), config.fit_sample)
        self.scaler_ = StandardScaler().fit(matrix[sample])
        scaled = self.scaler_.transform(matrix[sample])
        judged = _sample(rng, len(scaled), config.silhouette_sample)
        k_max = min(config.k_max, len(np.unique(scaled, axis=0)) - 1)
        if k_max < config.k_min:
            raise ValueError(f"too few distinct consumers ({len(scaled)}) for k_min={config.k_min} clusters")
        self.silhouettes_: dict[int, float] = {}
        if k is not None and config.k_min <= k <= k_max:
            self.k_, self.kmeans_ = k, self._kmeans(k, scaled)
        else:
            fitted: dict[int, KMeans] = {}
            for tried in range(config.k_min, k_max + 1):
                fitted[tried] = model = self._kmeans(tried, scaled)
                score = silhouette_score(scaled[judged], model.labels_[judged])
                self.silhouettes_[tried] = round(float(score), 6)
                logger.info("clusters: k=%d silhouette %.4f", tried, self.silhouettes_[tried])
            self.k_ = max(self.silhouettes_, key=lambda k: (self.silhouettes_[k], -k))
            self.kmeans_ = fitted[self.k_]
        self.order_ = self._number_by_spend(features, matrix[sample])
        return self

    def _kmeans(self, k: int, scaled: np.ndarray) -> KMeans:
        config = self.config
        return KMeans(n_clusters=k, n_init=config.n_init, random_state=config.random_state).fit(scaled)

    def _number_by_spend(self, features: pd.DataFrame, sample_matrix: np.ndarray) -> np.ndarray:
        """Map raw KMeans labels to 1..k by descending mean (log) spend of the fitted sample."""
        raw = self.kmeans_.labels_
        spend = sample_matrix[:, list(FEATURES).index(ConsumerCol.MONETARY)]
        means = np.array([spend[raw == label].mean() for label in range(self.k_)])
        ranks = np.empty(self.k_, dtype="int64")
        ranks[np.argsort(-means, kind="stable")] = np.arange(1, self.k_ + 1)
        return ranks

    def predict(self, features: pd.DataFrame) -> pd.Series:
        """Cluster number (1..k) of each row."""
        scaled = self.scaler_.transform(feature_matrix(features))
        labels = self.kmeans_.predict(scaled)
        return pd.Series(self.order_[labels], index=features.index, name=ClusterCol.CLUSTER, dtype="int64")

    def profile(self, features: pd.DataFrame, clusters: pd.Series) -> pd.DataFrame:
        """One row per cluster: label, consumers, share, mean z-score and median of each feature."""
        scaled = pd.DataFrame(self.scaler_.transform(feature_matrix(features)), columns=list(FEATURES))
        scaled.index = features.index
        z = scaled.groupby(clusters).mean()
        medians = features[list(FEATURES)].astype("float64").groupby(clusters).median()
        sizes = clusters.value_counts().reindex(z.index, fill_value=0)
        profile = pd.DataFrame(
            {
                ClusterCol.CLUSTER: z.index.astype("int64"),
                ClusterCol.LABEL: [self._label(z.loc[c]) for c in z.index],
                ClusterCol.CONSUMERS: sizes.to_numpy(),
                ClusterCol.SHARE: (sizes / max(len(clusters), 1)).round(4).to_numpy(),
            }
        )
        for name in FEATURES:
            profile[f"median_{name}"] = medians[name].round(4).to_numpy()
            profile[f"z_{name}"] = z[name].round(3).to_numpy()
        return profile.sort_values(ClusterCol.CLUSTER).reset_index(drop=True)

    def _label(self, z_means: pd.Series) -> str:
        strong = z_means[z_means.abs() >= self.config.label_threshold]
        strong = strong.reindex(strong.abs().sort_values(ascending=False, kind="stable").index)
        words = [FEATURES[name][1] if value > 0 else FEATURES[name][2] for name, value in strong.items()]
        return ", ".join(words[: self.config.label_words]) or "average"


def _sample(rng: np.random.Generator, size: int, limit: int) -> np.ndarray:
    """Sorted positions of a random sample of at most ``limit`` out of ``size`` rows."""
    if size <= limit:
        return np.arange(size)
    return np.sort(rng.choice(size, size=limit, replace=False))
