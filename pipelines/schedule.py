"""When the nightly flow runs by itself: the cron schedule and the Prefect deployment ``siyu serve`` serves.

Serving needs a running Prefect server (``prefect server start``) and ``PREFECT_API_URL``
pointing at it; a plain cron line calling ``siyu nightly`` needs neither. Prefect is
imported inside the functions so that reading the config stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, field_validator

from features.errors import SiyuError

if TYPE_CHECKING:
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.deployments.runner import RunnerDeployment


class ScheduleConfig(BaseModel):
    """The cron line (in ``timezone``) on which ``siyu serve`` starts the nightly flow."""

    model_config = ConfigDict(extra="forbid")

    cron: str = "0 2 * * *"
    timezone: str = "Asia/Shanghai"
    deployment_name: str = "siyu-nightly"

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, cron: str) -> str:
        if len(cron.split()) != 5:
            raise ValueError("a cron line has five fields: minute hour day-of-month month day-of-week")
        return cron

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, timezone: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not an IANA time zone name such as Asia/Shanghai or UTC") from None
        return timezone


def build_schedule(config: ScheduleConfig) -> CronSchedule:
    """The Prefect cron schedule of the nightly flow."""
    from prefect.client.schemas.schedules import CronSchedule

    return CronSchedule(cron=config.cron, timezone=config.timezone)


def build_deployment(config: ScheduleConfig, parameters: dict[str, Any]) -> RunnerDeployment:
    """The deployment of the nightly flow on ``config``'s schedule, with fixed flow ``parameters``."""
    from pipelines.flow import nightly_flow, quiet_prefect_client

    quiet_prefect_client()

    return nightly_flow.to_deployment(
        name=config.deployment_name,
        schedule=build_schedule(config),
        parameters=parameters,
        description="siyu nightly: validate, segment, quality gate, recommend, register, publish",
        tags=["siyu", "nightly"],
    )


def serve(
    config: ScheduleConfig, config_path: Path | None, data_dir: Path | None, out_dir: Path | None
) -> None:
    """Serve the nightly deployment until interrupted; fails clearly when no Prefect server is set."""
    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise SiyuError(
            "PREFECT_API_URL is not set: `siyu serve` needs a running Prefect server\n"
            "  fix: run `prefect server start` in another terminal, then "
            "`export PREFECT_API_URL=http://127.0.0.1:4200/api`; or use the cron line in docs/nightly.md"
        )
    parameters = {
        name: str(value.absolute())
        for name, value in {"config_path": config_path, "data_dir": data_dir, "out_dir": out_dir}.items()
        if value is not None
    }
    prefect_serve(build_deployment(config, parameters))
