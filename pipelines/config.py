"""The nightly configuration: one YAML file loaded into pydantic models that forbid unknown keys.

Each layer owns the model of its own settings (``features.reader.DataSourceConfig``,
``features.validate.ValidationConfig``, ...); this module only composes them and turns
a bad file into a message that names the file, the key, the bad value, what is allowed
and the fix (``features.config_errors`` derives it from the models themselves).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from features.columns import Table
from features.config_errors import ConfigError, describe_errors, read_yaml
from features.engine import EngineConfig
from features.messages import check_locale
from features.reader import DataSourceConfig
from features.spark_engine import SparkConfig
from features.validate import ValidationConfig
from models.quality import QualityConfig
from models.recommenders.list_config import ListsConfig
from models.recommenders.training import RecommendConfig
from models.segmentation import SegmentationConfig
from pipelines.publish import PublishConfig
from pipelines.runtime import FlowConfig
from pipelines.schedule import ScheduleConfig
from pipelines.tracking import TrackingConfig
from reporting.workbook import WorkbookConfig
from sources.simulator import SimulationConfig

DEFAULT_CONFIG = Path("configs/nightly.yaml")
# The config shipped beside the code: read when the current folder has no configs/nightly.yaml,
# so that `siyu nightly` started in another folder (cron's, say) runs with the checkout's settings,
# not with the built-in defaults, which evaluate more models and plant fewer defective products.
SHIPPED_CONFIG = Path(__file__).resolve().parents[1] / DEFAULT_CONFIG

__all__ = [
    "DEFAULT_CONFIG",
    "ConfigError",
    "DataConfig",
    "NightlyConfig",
    "load_config",
    "with_engine",
    "with_locale",
]


class DataConfig(DataSourceConfig):
    """Input data: a directory of contract files (``dir``) and optional column mapping.

    When ``dir`` is empty the built-in demo data set is simulated into ``demo_dir`` once
    and used from there. ``optional_tables``: tables this run may go without although the
    previous run read them (otherwise such a run stops; see docs/nightly.md).
    """

    dir: Path | None = Field(
        None, description="Folder of contract files (orders, products, ...); empty = the demo data set."
    )
    demo_dir: Path = Field(Path("data/demo"), description="Where the demo data set is simulated once.")
    optional_tables: list[str] = Field(
        default_factory=list,
        description="Tables this run may go without although the previous run read them.",
    )

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
    engine: EngineConfig = Field(default_factory=EngineConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    lists: ListsConfig = Field(default_factory=ListsConfig)
    recommend: RecommendConfig = Field(default_factory=RecommendConfig)
    segmentation: SegmentationConfig = Field(default_factory=SegmentationConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    workbooks: WorkbookConfig = Field(default_factory=WorkbookConfig)
    flow: FlowConfig = Field(default_factory=FlowConfig)
    work_dir: Path = Field(
        Path("work"), description="Working folder: validated data, features, MLflow store, exports."
    )
    # --- the Spark engine (issue #11): engine.kind picks it, this section starts it (docs/spark.md) ---
    spark: SparkConfig = Field(default_factory=SparkConfig)

    # --- locale (issue #13): the language of every label and header a person reads ---
    locale: Literal["en", "zh-CN"] = Field(
        "en",
        description="Language of the marketing files' headers and labels and of the list reasons "
        "(features/messages); machine files keep English codes.",
    )


def load_config(path: Path | None) -> NightlyConfig:
    """Load ``path``; when it is None, ``configs/nightly.yaml`` of the current folder, else the one
    shipped beside the code (``SHIPPED_CONFIG``), else the built-in defaults.

    An empty file gives the defaults. Every problem raises a ``ConfigError`` whose message
    names the file, the key (or the line of a YAML syntax error), the bad value and the fix.
    """
    if path is None:
        path = next((found for found in (DEFAULT_CONFIG, SHIPPED_CONFIG) if found.is_file()), None)
        if path is None:
            return NightlyConfig()
    if not path.is_file():
        what = "is a folder, not a config file" if path.is_dir() else "config file not found"
        raise ConfigError(f"{path}: {what}\n  fix: pass --config with an existing YAML file")
    content = read_yaml(path)
    if not isinstance(content, dict):
        got = "a list" if isinstance(content, list) else f"a single value {content!r}"
        raise ConfigError(
            f"{path}: the top level must be a mapping of sections (data:, validation:, ...), got {got}\n"
            f"  fix: write sections as 'name:' lines at the left margin, as in {DEFAULT_CONFIG}"
        )
    try:
        return NightlyConfig.model_validate(content)
    except ValidationError as error:
        raise ConfigError(describe_errors(path, error, NightlyConfig, DEFAULT_CONFIG)) from None


# --- the engine (issue #11): --engine on the CLI overrides engine.kind ---
def with_engine(settings: NightlyConfig, kind: str | None) -> NightlyConfig:
    """``settings`` with ``kind`` (``--engine``: duckdb or spark) in place of ``engine.kind``, when given."""
    if kind is None:
        return settings
    try:
        engine = EngineConfig.model_validate({**settings.engine.model_dump(), "kind": kind})
    except ValidationError:
        raise ConfigError(
            f"--engine {kind!r}: not an engine\n  fix: pass --engine duckdb or --engine spark"
        ) from None
    return settings.model_copy(update={"engine": engine})


def with_locale(settings: NightlyConfig, locale: str | None) -> NightlyConfig:
    """``settings`` with ``locale`` (``--locale``) in place of the config's, when given."""
    if locale is None:
        return settings
    return settings.model_copy(update={"locale": check_locale(locale)})
