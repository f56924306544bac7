"""When the nightly flow runs by itself: the cron schedule in the config (``schedule:``).

The deployment that ``siyu serve`` serves on it is built in ``pipelines.deployment`` (which
imports the flow; this module must not, as the config imports it). Prefect is imported
inside the functions so that reading the config stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, field_validator

from features.errors import SiyuError

if TYPE_CHECKING:
    from prefect.client.schemas.schedules import CronSchedule


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
    """The Prefect cron schedule of the nightly flow; a ``SiyuError`` naming ``schedule.cron`` when
    Prefect cannot read the line (five fields, but a value out of range such as minute 61)."""
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        return CronSchedule(cron=config.cron, timezone=config.timezone)
    except ValidationError:
        raise SiyuError(
            f"schedule.cron: {config.cron!r} is not a cron line Prefect can run (minute 0-59, hour 0-23, "
            "day 1-31, month 1-12, weekday 0-6; no random or hashed fields)\n"
            "  fix: correct schedule.cron in the config, e.g. '30 2 * * *' for 02:30 every night"
        ) from None
