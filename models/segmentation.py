"""Consumer segmentation as one pure function: RFM, member tier with movement, cluster and CLV.

``SegmentationConfig`` is the ``segmentation:`` config section (one model per area);
``segment_consumers`` joins the per-area models into one row per consumer plus the summary
tables; ``clv_columns`` turns the BTYD fit into the export's CLV columns. No I/O: the step in
``pipelines.steps.segment`` reads and writes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.columns import Col
from features.progress import progress
from features.vocabulary import ClusterCol, CLVCol, ConsumerCol, ExportCol, TierCol
from models.churn import Choice, ChurnConfig, FittedModels
from models.clusters import BehaviourClusters, ClusterConfig
from models.clv import CLVConfig
from models.distributor_tiers import DistributorTierConfig
from models.member_tiers import MemberTierConfig, assign_tiers, migration_matrix, tier_movement
from models.rfm import RFMConfig, rf_grid, score_rfm, segment_summary
from models.tags import TagConfig

logger = logging.getLogger(__name__)


class SegmentationConfig(BaseModel):
    """RFM segments, member tiers, clusters, CLV, distributor tiers and profile tags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recent_days: int = Field(30, gt=0, description="Window of the *_30d activity features and tags.")
    history_months: int = Field(6, ge=2, description="Months of distributor GMV kept in distributor_monthly.")
    rfm: RFMConfig = Field(default_factory=RFMConfig)
    member_tiers: MemberTierConfig = Field(default_factory=MemberTierConfig)
    clusters: ClusterConfig = Field(default_factory=ClusterConfig)
    clv: CLVConfig = Field(default_factory=CLVConfig)
    churn: ChurnConfig = Field(default_factory=ChurnConfig)
    distributor_tiers: DistributorTierConfig = Field(default_factory=DistributorTierConfig)
    tags: TagConfig = Field(default_factory=TagConfig)


class PreviousTiersMismatch(ValueError):
    """The previous run's tiers name a tier the member-tier config does not have."""


@dataclass(frozen=True)
class ConsumerSummaries:
    """Small tables that describe the consumer segmentation."""

    rfm_segments: pd.DataFrame
    rfm_grid: pd.DataFrame
    migration: pd.DataFrame
    cluster_profiles: pd.DataFrame | None
    clusters: int | None
    # the silhouette of each k tried (empty: k was given, or no clusters)
    cluster_silhouettes: dict[int, float] = field(default_factory=dict)


def segment_consumers(
    features: pd.DataFrame,
    previous: pd.DataFrame | None,
    settings: SegmentationConfig,
    cluster_k: int | None = None,
) -> tuple[pd.DataFrame, ConsumerSummaries]:
    """RFM, member tier with movement and cluster of each consumer, plus the summary tables.

    ``cluster_k``: the clusters' k kept from an earlier night (``BehaviourClusters.fit``'s
    ``k``); None: chosen by silhouette. Raises ``PreviousTiersMismatch`` when ``previous``
    names tiers the config does not have.
    """
    # seconds each at 1M consumers: counted parts, so the step is never a silent stretch
    with progress("consumer segments", total=4, unit="parts") as bar:
        scored = score_rfm(features, settings.rfm)
        bar.advance()
        current = pd.DataFrame(
            {
                Col.CONSUMER_ID: features[Col.CONSUMER_ID],
                TierCol.MEMBER_TIER: assign_tiers(features, settings.member_tiers),
            }
        )
        try:
            moved = tier_movement(current, previous, settings.member_tiers)
        except ValueError as error:
            raise PreviousTiersMismatch(str(error)) from None
        consumers = scored.rename(columns={ConsumerCol.ORDERS: ExportCol.FREQUENCY})
        for column in (TierCol.MEMBER_TIER, TierCol.PREVIOUS_TIER, TierCol.MOVEMENT):
            consumers[column] = moved[column]
        carried = (ConsumerCol.HOME_DISTRIBUTOR_ID, ConsumerCol.ROLLING_SPEND, ConsumerCol.ROLLING_ORDERS)
        for column in (*carried, ConsumerCol.TOP_CATEGORY):
            consumers[column] = features[column]
        bar.advance()
        clusters, profiles, silhouettes = _clusters(features, settings, cluster_k)
        consumers[ClusterCol.CLUSTER] = clusters[ClusterCol.CLUSTER]
        consumers[ClusterCol.LABEL] = clusters[ClusterCol.LABEL]
        bar.advance()
        summaries = ConsumerSummaries(
            rfm_segments=segment_summary(scored),
            rfm_grid=rf_grid(scored, settings.rfm),
            migration=migration_matrix(moved, settings.member_tiers),
            cluster_profiles=profiles,
            clusters=None if profiles is None else len(profiles),
            cluster_silhouettes=silhouettes,
        )
        bar.advance()
    return consumers, summaries


def _clusters(
    features: pd.DataFrame, settings: SegmentationConfig, k: int | None
) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[int, float]]:
    """Cluster number and label of every consumer (empty for non-buyers or when disabled), the
    profiles, and the silhouette of each k tried (none when ``k``, kept, was fitted)."""
    empty = pd.DataFrame(
        {
            ClusterCol.CLUSTER: pd.Series(pd.NA, index=features.index, dtype="Int64"),
            ClusterCol.LABEL: pd.Series(pd.NA, index=features.index, dtype="string"),
        }
    )
    buyers = features[features[ConsumerCol.ORDERS] > 0]
    if not settings.clusters.enabled or len(buyers) <= settings.clusters.k_min:
        if settings.clusters.enabled:
            logger.warning("clusters: only %d buyers, too few to cluster; cluster left empty", len(buyers))
        return empty, None, {}
    model = BehaviourClusters(settings.clusters).fit(buyers, k)
    labels = model.predict(buyers)
    profiles = model.profile(buyers, labels)
    if model.silhouettes_:
        logger.info("clusters: k=%d chosen by silhouette %s", model.k_, model.silhouettes_)
    else:
        logger.info("clusters: k=%d kept from an earlier night", model.k_)
    empty.loc[buyers.index, ClusterCol.CLUSTER] = labels
    names = profiles.set_index(ClusterCol.CLUSTER)[ClusterCol.LABEL]
    empty.loc[buyers.index, ClusterCol.LABEL] = labels.map(names).astype("string")
    return empty, profiles, model.silhouettes_


def clv_columns(
    current: pd.DataFrame,
    settings: SegmentationConfig,
    train: pd.DataFrame | None = None,
    validation: pd.DataFrame | None = None,
    carried: Choice | None = None,
    kept: FittedModels | None = None,
) -> pd.DataFrame:
    """Expected purchases and value over the horizon, probability alive, churn risk and band per buyer.

    ``current`` is the buyers' ``features.clv.activity_summary`` (a plain ``btyd_summary``
    is enough without ``train`` and ``validation``); ``train`` and ``validation`` are the
    labelled frames of ``features.clv.model_frames``, on which ``models.churn`` chooses the
    churn and value models. ``attrs``: ``set_aside`` (buyers the Gamma-Gamma fit left out),
    ``chosen`` (candidate per target), ``validation`` (records of the metrics the choice
    was made on), ``carried`` (True: ``carried``, an earlier choice, was kept, and
    ``validation`` holds its night's metrics), ``models`` (the ``models.churn.FittedModels``
    that predicted) and ``refitted`` (False: ``kept``, an earlier night's models, predicted).
    """
    from models.churn import CHURN_BAND, CHURN_RISK, choose_and_predict

    horizon = settings.clv.horizon_days
    result = choose_and_predict(train, validation, current, settings.clv, settings.churn, carried, kept)
    predictions = result.predictions
    clv = pd.DataFrame(
        {
            Col.CONSUMER_ID: predictions[Col.CONSUMER_ID].astype("string"),
            ExportCol.expected_purchases(horizon): predictions[CLVCol.EXPECTED_PURCHASES]
            .astype("float64")
            .round(4),
            ExportCol.expected_value(horizon): predictions[CLVCol.EXPECTED_VALUE].astype("float64").round(2),
            ExportCol.PROB_ALIVE: predictions[CLVCol.PROB_ALIVE].astype("float64").round(4),
            ExportCol.CHURN_RISK: predictions[CHURN_RISK].astype("float64").round(4),
            ExportCol.CHURN_BAND: predictions[CHURN_BAND],
        }
    )
    clv.attrs.update(
        set_aside=int(result.set_aside),
        chosen=result.chosen,
        validation=result.validation.to_dict("records"),
        carried=result.carried,
        models=result.models,
        refitted=result.refitted,
    )
    return clv
