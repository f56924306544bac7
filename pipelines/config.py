"""The nightly configuration: one YAML file loaded into pydantic models that forbid unknown keys.

Each layer owns the model of its own settings (``features.reader.DataSourceConfig``,
``features.validate.ValidationConfig``, ...); this module only composes them and turns
a bad file into a message that names the file, the key and the fix.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from features.columns import Table
from features.errors import SiyuError
from features.reader import DataSourceConfig
from features.validate import ValidationConfig
from models.quality import QualityConfig
from models.recommenders.list_config import ListsConfig
from models.recommenders.training import RecommendConfig
from models.segmentation import SegmentationConfig
from pipelines.publish import PublishConfig
from pipelines.schedule import ScheduleConfig
from pipelines.tracking import TrackingConfig
from sources.simulator import SimulationConfig

DEFAULT_CONFIG = Path("configs/nightly.yaml")


class ConfigError(SiyuError):
    """A configuration file that cannot be used."""


class DataConfig(DataSourceConfig):
    """Input data: a directory of contract files (``dir``) and optional column mapping.

    When ``dir`` is empty the built-in demo data set is simulated into ``demo_dir`` once
    and used from there. ``optional_tables``: tables this run may go without although the
    previous run read them (otherwise such a run stops; see docs/nightly.md).
    """

    dir: Path | None = None
    demo_dir: Path = Path("data/demo")
    optional_tables: list[str] = Field(default_factory=list)

    @field_validator("optional_tables")
    @classmethod
    def _known_optional_tables(cls, tables: list[str]) -> list[str]:
        unknown = sorted(set(tables) - set(Table.OPTIONAL))
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not an optional table; allowed: {', '.join(Table.OPTIONAL)}"
            )
        return tables


class NightlyConfig(BaseModel):
    """Everything ``siyu nightly`` and the single-step commands read from the config file."""

    model_config = ConfigDict(extra="forbid")

    data: DataConfig = Field(default_factory=DataConfig)
    demo: SimulationConfig = Field(default_factory=SimulationConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    lists: ListsConfig = Field(default_factory=ListsConfig)
    recommend: RecommendConfig = Field(default_factory=RecommendConfig)
    segmentation: SegmentationConfig = Field(default_factory=SegmentationConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    work_dir: Path = Path("work")


def load_config(path: Path | None) -> NightlyConfig:
    """Load ``path`` (or the defaults when it is None and configs/nightly.yaml is absent)."""
    if path is None:
        if not DEFAULT_CONFIG.exists():
            return NightlyConfig()
        path = DEFAULT_CONFIG
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found\n  fix: pass --config with an existing YAML file")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(
            f"{path}: not valid YAML ({error})\n  fix: correct the syntax at the line named"
        ) from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (data:, validation:, ...)")
    try:
        return NightlyConfig.model_validate(content)
    except ValidationError as error:
        raise ConfigError(_describe(path, error)) from None


def _describe(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: {error.error_count()} problem(s) in the config"]
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"])
        if problem["type"] == "extra_forbidden":
            lines.append(
                f"  {key}: unknown key\n    fix: remove it or check its spelling against configs/nightly.yaml"
            )
        else:
            lines.append(f"  {key}: {problem['msg']} (got {problem.get('input')!r})")
    return "\n".join(lines)
