"""The Prefect deployment of the nightly flow that ``siyu serve`` serves on the config's cron.

Serving needs a running Prefect server (``prefect server start``) and ``PREFECT_API_URL``
pointing at it; a plain cron line calling ``siyu nightly`` needs neither. The deployment runs one
night at a time (``concurrency_limit=1``: a run that comes due while another is going waits for
it), on top of the work directory's lock that refuses a second run into the same folder. The
served runs load the flow from its module; the flow applies the config's ``flow.timeout_minutes``
itself (``pipelines.runtime.flow_deadline``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.errors import SiyuError
from pipelines.runtime import quiet_prefect_client
from pipelines.schedule import ScheduleConfig, build_schedule

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment


def build_deployment(config: ScheduleConfig, parameters: dict[str, Any]) -> RunnerDeployment:
    """The deployment of the nightly flow on ``config``'s schedule, with fixed flow ``parameters``,
    one run at a time."""
    from pipelines.flow import nightly_flow

    quiet_prefect_client()
    return nightly_flow.to_deployment(
        name=config.deployment_name,
        schedule=build_schedule(config),
        parameters=parameters,
        description="siyu nightly: validate, segment, quality gate, recommend, register, publish",
        tags=["siyu", "nightly"],
        concurrency_limit=1,
    )


def serve(
    config: ScheduleConfig, config_path: Path | None, data_dir: Path | None, out_dir: Path | None
) -> None:
    """Serve the nightly deployment until interrupted; fails clearly when no Prefect server is set."""
    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_API_URL

    build_schedule(config)  # a bad cron line is named before anything starts
    if not PREFECT_API_URL.value():
        raise SiyuError(
            "PREFECT_API_URL is not set: `siyu serve` needs a running Prefect server\n"
            "  fix: run `prefect server start` in another terminal, then "
            "`export PREFECT_API_URL=http://127.0.0.1:4200/api`; or use the cron line in docs/nightly.md"
        )
    print(  # after the checks: only a deployment that will be served is announced
        f"serving deployment {config.deployment_name!r} on cron {config.cron!r} ({config.timezone}); "
        "Ctrl+C stops",
        flush=True,
    )
    parameters = {
        name: str(value.absolute())
        for name, value in {"config_path": config_path, "data_dir": data_dir, "out_dir": out_dir}.items()
        if value is not None
    }
    prefect_serve(build_deployment(config, parameters))
