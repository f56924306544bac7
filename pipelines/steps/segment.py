"""The segmentation step: features, RFM, member tiers, clusters, CLV, distributor tiers, tags, exports.

``run_segmentation`` reads the clean tables through the DuckDB engine, calls the pure
builders and models, and writes the marketing CSVs (``consumer_tiers.csv`` with its Parquet
twin ``consumer_tiers.parquet``, ``distributor_tiers.csv``) plus the smaller work files
named in ``features.catalog.StepFile``. It returns paths and counts, never the large frames.
Every column is documented in docs/segmentation.md.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from features.asof import AsOf
from features.catalog import StepFile
from features.columns import Col
from features.consumer_features import ConsumerCol, consumer_features
from features.distributor_features import distributor_features, distributor_monthly
from features.engine import connect
from features.errors import SiyuError
from features.files import atomic_path
from features.vocabulary import DistributorFeatureCol, ExportCol
from models.clusters import BehaviourClusters, ClusterCol
from models.distributor_tiers import (
    DistributorTierCol,
    assign_distributor_tiers,
    coaching_list,
    tier_counts,
)
from models.member_tiers import (
    MOVEMENTS,
    TierCol,
    assign_tiers,
    migration_matrix,
    tier_benefits,
    tier_movement,
)
from models.rfm import RFMCol, rf_grid, score_rfm, segment_summary
from models.segmentation import SegmentationConfig
from models.tags import profile_tags
from reporting.excel import read_history, twin_path, write_excel_csv

logger = logging.getLogger(__name__)


def consumer_tier_columns(horizon_days: int) -> list[str]:
    """The columns of consumer_tiers.csv, in order."""
    return [
        Col.CONSUMER_ID,
        ConsumerCol.HOME_DISTRIBUTOR_ID,
        ConsumerCol.RECENCY_DAYS,
        ExportCol.FREQUENCY,
        ConsumerCol.MONETARY,
        RFMCol.R_SCORE,
        RFMCol.F_SCORE,
        RFMCol.M_SCORE,
        RFMCol.RFM_CELL,
        RFMCol.SEGMENT,
        TierCol.MEMBER_TIER,
        TierCol.PREVIOUS_TIER,
        TierCol.MOVEMENT,
        ConsumerCol.ROLLING_SPEND,
        ConsumerCol.ROLLING_ORDERS,
        ClusterCol.CLUSTER,
        ClusterCol.LABEL,
        ExportCol.expected_purchases(horizon_days),
        ExportCol.expected_value(horizon_days),
        ExportCol.PROB_ALIVE,
        ExportCol.CHURN_RISK,
        ConsumerCol.TOP_CATEGORY,
    ]


DISTRIBUTOR_TIER_COLUMNS: tuple[str, ...] = (
    Col.DISTRIBUTOR_ID,
    DistributorTierCol.RANK,
    DistributorTierCol.TIER,
    DistributorFeatureCol.MONTH,
    DistributorFeatureCol.GMV_MONTH,
    DistributorTierCol.GMV_SHARE,
    DistributorFeatureCol.GMV_PREV_MONTH,
    DistributorFeatureCol.GROWTH,
    DistributorFeatureCol.ORDERS_MONTH,
    DistributorFeatureCol.ACTIVE_CUSTOMERS,
    DistributorFeatureCol.ACTIVE_CUSTOMERS_PREV,
    DistributorFeatureCol.NEW_CUSTOMERS,
    DistributorFeatureCol.REPEAT_RATE,
    DistributorFeatureCol.SHARES_MONTH,
    DistributorFeatureCol.ORDERS_PER_SHARE,
    DistributorFeatureCol.ORDERS_PER_SHARE_PREV,
    DistributorFeatureCol.COMMUNITY_SIZE,
    DistributorTierCol.COACHING,
    DistributorTierCol.COACHING_REASON,
)


@dataclass(frozen=True)
class SegmentationOutcome:
    """Where the segmentation step wrote its files, and the counts worth printing."""

    paths: dict[str, Path]
    consumers: int
    buyers: int
    segment_counts: dict[str, int]
    tier_counts: dict[str, int]
    movement_counts: dict[str, int]
    distributor_tier_counts: dict[str, int]
    coaching: int
    clusters: int | None
    clv_set_aside: int | None
    seconds: dict[str, float] = field(default_factory=dict)


class _Stopwatch:
    """Seconds spent per stage, logged as each stage ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._started = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._started, 3)
        logger.info("segmentation: %s done in %.1fs", stage, now - self._started)
        self._started = now


def run_segmentation(
    clean_paths: dict[str, Path],
    as_of: AsOf | date,
    settings: SegmentationConfig,
    out_dir: Path,
    previous_dir: Path | None,
) -> SegmentationOutcome:
    """Segment every consumer and distributor as of ``as_of``; write the exports under ``out_dir``.

    ``settings`` is the ``segmentation`` section of the nightly config. ``previous_dir`` is an
    earlier run's output directory; its consumer tiers (``read_previous_tiers``) give each
    consumer's previous tier and movement.
    """
    as_of = AsOf.of(as_of)
    previous = read_previous_tiers(previous_dir)
    con = connect(clean_paths)
    # Every builder orders its result explicitly, so DuckDB need not keep scan order (faster, leaner).
    con.execute("SET preserve_insertion_order = false")
    watch = _Stopwatch()
    features = consumer_features(
        con, as_of, window_days=settings.member_tiers.window_days, recent_days=settings.recent_days
    )
    watch.lap("consumer features")
    consumers, summaries = segment_consumers(features, previous, settings, previous_dir)
    watch.lap("rfm, member tiers and clusters")
    clv = _clv_columns(con, as_of, settings)
    if clv is not None:
        typed = clv.astype({Col.CONSUMER_ID: consumers[Col.CONSUMER_ID].dtype})
        consumers = consumers.merge(typed, on=Col.CONSUMER_ID, how="left", validate="one_to_one")
    watch.lap("clv")
    paths = _write_consumer_files(consumers, summaries, settings, out_dir)
    paths[StepFile.PROFILE_TAGS] = _write_parquet(
        profile_tags(features, settings.tags), out_dir / StepFile.PROFILE_TAGS
    )
    watch.lap("consumer exports and tags")
    distributors = _distributor_files(con, as_of, settings, out_dir)
    paths.update(distributors.paths)
    watch.lap("distributor tiers")
    return SegmentationOutcome(
        paths=paths,
        consumers=len(consumers),
        buyers=int((features[ConsumerCol.ORDERS] > 0).sum()),
        segment_counts=_counts(consumers[RFMCol.SEGMENT]),
        tier_counts={
            name: int((consumers[TierCol.MEMBER_TIER] == name).sum()) for name in settings.member_tiers.names
        },
        movement_counts={m: int((consumers[TierCol.MOVEMENT] == m).sum()) for m in MOVEMENTS},
        distributor_tier_counts=distributors.tier_counts,
        coaching=distributors.coaching,
        clusters=summaries.clusters,
        clv_set_aside=None if clv is None else int(clv.attrs.get("set_aside", 0)),
        seconds=watch.seconds,
    )


@dataclass(frozen=True)
class ConsumerSummaries:
    """Small tables that describe the consumer segmentation."""

    rfm_segments: pd.DataFrame
    rfm_grid: pd.DataFrame
    migration: pd.DataFrame
    cluster_profiles: pd.DataFrame | None
    clusters: int | None


def segment_consumers(
    features: pd.DataFrame,
    previous: pd.DataFrame | None,
    settings: SegmentationConfig,
    previous_dir: Path | None = None,
) -> tuple[pd.DataFrame, ConsumerSummaries]:
    """RFM, member tier with movement and cluster of each consumer, plus the summary tables."""
    scored = score_rfm(features, settings.rfm)
    current = pd.DataFrame(
        {
            Col.CONSUMER_ID: features[Col.CONSUMER_ID],
            TierCol.MEMBER_TIER: assign_tiers(features, settings.member_tiers),
        }
    )
    try:
        moved = tier_movement(current, previous, settings.member_tiers)
    except ValueError as error:
        where = previous_dir / StepFile.CONSUMER_TIERS if previous_dir else "previous tiers"
        raise SiyuError(
            f"{where}: {error}\n  fix: pass --previous with an earlier run made with the same member tiers"
        ) from None
    consumers = scored.rename(columns={ConsumerCol.ORDERS: ExportCol.FREQUENCY})
    for column in (TierCol.MEMBER_TIER, TierCol.PREVIOUS_TIER, TierCol.MOVEMENT):
        consumers[column] = moved[column]
    for column in (ConsumerCol.HOME_DISTRIBUTOR_ID, ConsumerCol.ROLLING_SPEND, ConsumerCol.ROLLING_ORDERS):
        consumers[column] = features[column]
    consumers[ConsumerCol.TOP_CATEGORY] = features[ConsumerCol.TOP_CATEGORY]
    clusters, profiles = _clusters(features, settings)
    consumers[ClusterCol.CLUSTER] = clusters[ClusterCol.CLUSTER]
    consumers[ClusterCol.LABEL] = clusters[ClusterCol.LABEL]
    summaries = ConsumerSummaries(
        rfm_segments=segment_summary(scored),
        rfm_grid=rf_grid(scored, settings.rfm),
        migration=migration_matrix(moved, settings.member_tiers),
        cluster_profiles=profiles,
        clusters=None if profiles is None else len(profiles),
    )
    return consumers, summaries


def _clusters(
    features: pd.DataFrame, settings: SegmentationConfig
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Cluster number and label of every consumer (empty for non-buyers or when disabled)."""
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
        return empty, None
    model = BehaviourClusters(settings.clusters).fit(buyers)
    labels = model.predict(buyers)
    profiles = model.profile(buyers, labels)
    logger.info("clusters: k=%d chosen by silhouette %s", model.k_, model.silhouettes_)
    empty.loc[buyers.index, ClusterCol.CLUSTER] = labels
    names = profiles.set_index(ClusterCol.CLUSTER)[ClusterCol.LABEL]
    empty.loc[buyers.index, ClusterCol.LABEL] = labels.map(names).astype("string")
    return empty, profiles


def _clv_columns(
    con: duckdb.DuckDBPyConnection, as_of: AsOf, settings: SegmentationConfig
) -> pd.DataFrame | None:
    """Expected purchases and value over the horizon, probability alive and churn risk; None when off."""
    if not settings.clv.enabled:
        return None
    from features.clv import btyd_summary
    from models.clv import fit_clv

    horizon = settings.clv.horizon_days
    result = fit_clv(btyd_summary(con, as_of, settings.clv.returned_lines), settings.clv)
    predictions = result.predictions
    clv = pd.DataFrame(
        {
            Col.CONSUMER_ID: predictions[Col.CONSUMER_ID].astype("string"),
            ExportCol.expected_purchases(horizon): predictions["expected_purchases"]
            .astype("float64")
            .round(4),
            ExportCol.expected_value(horizon): predictions["expected_value"].astype("float64").round(2),
            ExportCol.PROB_ALIVE: predictions["prob_alive"].astype("float64").round(4),
            ExportCol.CHURN_RISK: (1 - predictions["prob_alive"].astype("float64")).round(4),
        }
    )
    clv.attrs["set_aside"] = int(result.set_aside)
    return clv


def read_previous_tiers(previous_dir: Path | None) -> pd.DataFrame | None:
    """The previous run's consumer ids and tiers, exactly as it wrote them; None without ``previous_dir``.

    Read from the Parquet twin ``consumer_tiers.parquet`` (an export made before twins
    existed: from its consumer_tiers.csv, with a logged note).
    """
    if previous_dir is None:
        return None
    path = previous_dir / StepFile.CONSUMER_TIERS
    fix = "pass --previous with the output directory of an earlier `siyu segment` run"
    if not path.is_file() and not twin_path(path).is_file():
        raise SiyuError(f"{path}: previous consumer tiers not found\n  fix: {fix}")
    return read_history(path, [Col.CONSUMER_ID, TierCol.MEMBER_TIER], fix)


def read_communities(out_dir: Path) -> pd.DataFrame | None:
    """``consumer_id, distributor_id`` (each consumer's home distributor) of the segmentation run
    in ``out_dir``, ids exactly as written (from the Parquet twin); None when it wrote none.

    The flow hands this to the artifact writer, so that a consumer with a formula-like or
    ``NA`` id keeps its community.
    """
    path = out_dir / StepFile.CONSUMER_TIERS
    if not path.is_file() and not twin_path(path).is_file():
        return None
    fix = "rerun `siyu segment` (or the nightly) into this directory"
    homes = read_history(path, [Col.CONSUMER_ID, ConsumerCol.HOME_DISTRIBUTOR_ID], fix)
    return homes.rename(columns={ConsumerCol.HOME_DISTRIBUTOR_ID: Col.DISTRIBUTOR_ID}).dropna()


def _write_consumer_files(
    consumers: pd.DataFrame, summaries: ConsumerSummaries, settings: SegmentationConfig, out_dir: Path
) -> dict[str, Path]:
    columns = consumer_tier_columns(settings.clv.horizon_days)
    export = consumers.reindex(columns=columns)
    paths = {
        StepFile.CONSUMER_TIERS: write_excel_csv(export, out_dir / StepFile.CONSUMER_TIERS, twin=True),
        StepFile.TIER_MIGRATION: write_excel_csv(summaries.migration, out_dir / StepFile.TIER_MIGRATION),
        StepFile.MEMBER_TIERS: write_excel_csv(
            tier_benefits(settings.member_tiers), out_dir / StepFile.MEMBER_TIERS
        ),
        StepFile.RFM_SEGMENTS: write_excel_csv(summaries.rfm_segments, out_dir / StepFile.RFM_SEGMENTS),
        StepFile.RFM_GRID: write_excel_csv(summaries.rfm_grid, out_dir / StepFile.RFM_GRID),
    }
    paths[StepFile.CONSUMER_TIERS_TWIN] = twin_path(paths[StepFile.CONSUMER_TIERS])
    if summaries.cluster_profiles is not None:
        paths[StepFile.CLUSTER_PROFILES] = write_excel_csv(
            summaries.cluster_profiles, out_dir / StepFile.CLUSTER_PROFILES
        )
    return paths


@dataclass(frozen=True)
class _DistributorResult:
    paths: dict[str, Path]
    tier_counts: dict[str, int]
    coaching: int


def _distributor_files(
    con: duckdb.DuckDBPyConnection, as_of: AsOf, settings: SegmentationConfig, out_dir: Path
) -> _DistributorResult:
    monthly = distributor_monthly(con, as_of, months=settings.history_months)
    tiered = assign_distributor_tiers(distributor_features(con, as_of, monthly), settings.distributor_tiers)
    export = tiered.assign(
        **{DistributorFeatureCol.MONTH: tiered[DistributorFeatureCol.MONTH].dt.strftime("%Y-%m")}
    )
    export = export[list(DISTRIBUTOR_TIER_COLUMNS)]
    coached = coaching_list(export)
    paths = {
        StepFile.DISTRIBUTOR_TIERS: write_excel_csv(export, out_dir / StepFile.DISTRIBUTOR_TIERS),
        StepFile.DISTRIBUTOR_COACHING: write_excel_csv(coached, out_dir / StepFile.DISTRIBUTOR_COACHING),
        StepFile.DISTRIBUTOR_MONTHLY: _write_parquet(monthly, out_dir / StepFile.DISTRIBUTOR_MONTHLY),
    }
    return _DistributorResult(paths, tier_counts(tiered), len(coached))


def _write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as partial:
        frame.to_parquet(partial, index=False)
    return path


def _counts(values: pd.Series) -> dict[str, int]:
    counts = values.value_counts()
    return {
        str(name): int(count) for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    }
