"""The catalog: the name of every file a run writes, in one light module.

Steps, the flow, the artifact writer, the report and the CLI take file names from here and
nowhere else. The folders of a work directory and of an export are named here too, so that
a path is spelled once. (No heavy imports: this module is read by the backend tooling and
the docs generator as well.)
"""

from __future__ import annotations

from typing import ClassVar


class Folder:
    """Folders under a work directory (``--out`` or ``work_dir``) and inside an export."""

    VALIDATED = "validated"
    CLEAN = "clean"
    QUARANTINE = "quarantine"
    OUTPUTS = "outputs"
    EXPORTS = "exports"
    PREFECT = "prefect"
    CHAMPION = "champion"
    ARTIFACT = "artifact"


class StepFile:
    """Files the steps write into the outputs folder; every one of them is exported."""

    # validation (under validated/)
    VALIDATION_REPORT = "validation.json"
    # segmentation
    CONSUMER_TIERS = "consumer_tiers.csv"
    DISTRIBUTOR_TIERS = "distributor_tiers.csv"
    DISTRIBUTOR_COACHING = "distributor_coaching.csv"
    TIER_MIGRATION = "tier_migration.csv"
    MEMBER_TIERS = "member_tiers.csv"
    RFM_SEGMENTS = "rfm_segments.csv"
    RFM_GRID = "rfm_grid.csv"
    CLUSTER_PROFILES = "cluster_profiles.csv"
    PROFILE_TAGS = "profile_tags.parquet"
    DISTRIBUTOR_MONTHLY = "distributor_monthly.parquet"
    # quality gate
    QUALITY_ALERTS = "quality_alerts.csv"
    QUALITY_SUPPLIERS = "quality_suppliers.csv"
    # recommenders
    EVALUATION = "evaluation.json"
    CONSUMER_LISTS = "consumer_recommendations.parquet"
    DISTRIBUTOR_LISTS = "distributor_recommendations.parquet"
    OUTREACH = "distributor_outreach.parquet"
    SIMILAR_ITEMS = "similar_items.parquet"
    FALLBACK_COMMUNITY = "fallback_community.parquet"
    FALLBACK_GLOBAL = "fallback_global.parquet"

    LISTS: tuple[str, ...] = (CONSUMER_LISTS, DISTRIBUTOR_LISTS)

    # machine twins: the exact frames behind the Excel CSVs that later runs read back (previous
    # tiers, quality history, communities); the CSVs quote formula-like ids, these keep them exactly
    CONSUMER_TIERS_TWIN = "consumer_tiers.parquet"
    QUALITY_ALERTS_TWIN = "quality_alerts.parquet"

    TWINS: ClassVar[dict[str, str]] = {
        CONSUMER_TIERS: CONSUMER_TIERS_TWIN,
        QUALITY_ALERTS: QUALITY_ALERTS_TWIN,
    }


class RunFile:
    """Files about a run rather than its results."""

    MANIFEST = "manifest.json"
    REPORT_HTML = "report.html"
    MLFLOW_DB = "mlflow.db"
