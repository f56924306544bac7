"""The settings of the segmentation step, one model per area, as the ``segmentation:`` config section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from models.clusters import ClusterConfig
from models.clv import CLVConfig
from models.distributor_tiers import DistributorTierConfig
from models.member_tiers import MemberTierConfig
from models.rfm import RFMConfig
from models.tags import TagConfig


class SegmentationConfig(BaseModel):
    """RFM segments, member tiers, clusters, CLV, distributor tiers and profile tags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recent_days: int = Field(30, gt=0, description="Window of the *_30d activity features and tags.")
    history_months: int = Field(6, ge=2, description="Months of distributor GMV kept in distributor_monthly.")
    rfm: RFMConfig = Field(default_factory=RFMConfig)
    member_tiers: MemberTierConfig = Field(default_factory=MemberTierConfig)
    clusters: ClusterConfig = Field(default_factory=ClusterConfig)
    clv: CLVConfig = Field(default_factory=CLVConfig)
    distributor_tiers: DistributorTierConfig = Field(default_factory=DistributorTierConfig)
    tags: TagConfig = Field(default_factory=TagConfig)
