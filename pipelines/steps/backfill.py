"""``siyu backfill``: one nightly export per as-of date, oldest first, so history is consecutive.

``backfill_dates(start, end, every)`` lists the as-of dates: ``start``, then every ``every``
(``7D``, ``1W``, ``2W``, ``1M``, ``3M``; months keep the day of the month, the month's last day
when it has none) up to ``end``. ``run_backfill`` runs the nightly (``pipelines.flow.run_nightly``,
the same flow as every night: validate, segment, quality gate, evaluate and recommend, register,
publish) once per date into one work directory. Each run publishes into the work directory's
exports with the previous date's export as its history, so tier migration (``tier_migration.csv``,
``consumer_tiers``' ``movement``), quality levels and the champion gate carry on from date to date
exactly as on consecutive nights.

Cheap enough for a data scientist's question ("how did tiers and metrics move this year?"): the
cost is one nightly per date under the given config (turn CLV off or trim
``recommend.evaluation.nightly_models`` in a backfill config to make it cheaper). The exports
directory must hold no export dated on or after the first date (a backfill does not rewrite
history, and ``current`` ends on the last date); ``publish.keep_last`` is raised to keep every
backfilled date. ``backfill.csv`` in the work directory lists, per date, the export, the
production model's validation NDCG and the gate's decision, the member-tier counts and the
tier movements against the previous date.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from features.asof import AsOf
from features.catalog import Folder, StepFile
from features.errors import SiyuError
from features.files import atomic_path
from features.progress import progress
from features.vocabulary import Movement, TierCol
from pipelines.workdir import claim

if TYPE_CHECKING:
    from pipelines.config import NightlyConfig
    from pipelines.flow import NightlySummary

logger = logging.getLogger(__name__)

BACKFILL_FILE = "backfill.csv"
_EVERY = re.compile(r"^\s*(\d+)\s*([DWM])\s*$", re.IGNORECASE)
# backfill.csv columns (a work-directory file, not an export)
AS_OF = "as_of"
EXPORT = "export_dir"
NDCG = "validation_ndcg"
ALIAS = "model_alias"
TIER_PREFIX = "tier."
MOVEMENT_PREFIX = "movement."


@dataclass(frozen=True)
class BackfillOutcome:
    """The nightly summaries of a backfill, oldest first, and its ``backfill.csv``."""

    summaries: list[NightlySummary]
    table: pd.DataFrame
    path: Path


def parse_every(every: str) -> pd.DateOffset:
    """``7D`` / ``1W`` / ``1M`` (days, weeks, calendar months; case-insensitive) as an offset."""
    match = _EVERY.match(every)
    if match is None or int(match.group(1)) < 1:
        raise SiyuError(
            f"--every {every!r}: not a step between as-of dates\n"
            "  fix: a positive count and D (days), W (weeks) or M (months), e.g. --every 1M or --every 7D"
        )
    count, unit = int(match.group(1)), match.group(2).upper()
    if unit == "M":
        return pd.DateOffset(months=count)
    return pd.DateOffset(days=count * (7 if unit == "W" else 1))


def backfill_dates(start: date, end: date, every: str) -> list[date]:
    """``start``, ``start + every``, ``start + 2·every`` ... up to ``end`` (counted from ``start``, so
    monthly dates from the 31st land on each month's last day and come back to the 31st)."""
    step = parse_every(every)
    if end < start:
        raise SiyuError(f"--to {end} is before --from {start}\n  fix: give the earliest as-of date as --from")
    days, index = [], 0
    while (day := (pd.Timestamp(start) + step * index).date()) <= end:
        days.append(day)
        index += 1
    return days


def run_backfill(
    config_path: Path | None,
    data_dir: Path | None,
    start: date,
    end: date,
    every: str,
    work: Path,
    settings: NightlyConfig,
) -> BackfillOutcome:
    """Run the nightly for every date of ``backfill_dates`` into ``work``; write ``backfill.csv``."""
    from pipelines.flow import run_nightly
    from pipelines.publish import dated_exports

    days = backfill_dates(start, end, every)
    exports_dir = settings.publish.exports_dir or work / Folder.EXPORTS
    later = [p.name for p in dated_exports(exports_dir) if p.name >= str(days[0])]
    if later:
        raise SiyuError(
            f"{exports_dir}: already holds exports dated {', '.join(later)}, on or after --from {days[0]}; "
            "a backfill appends history, it does not rewrite it\n"
            "  fix: backfill into a fresh work directory (--out), or start after the newest export"
        )
    settings = _keeping(settings, len(dated_exports(exports_dir)) + len(days))
    summaries = []
    with (
        claim(work, "backfill"),
        progress(f"backfilling {len(days)} as-of dates", total=len(days), unit="exports") as bar,
    ):
        for day in days:
            logger.info("backfill: nightly as of %s", day)
            summaries.append(run_nightly(config_path, data_dir, AsOf.of(day), work, settings))
            bar.advance()
        table = backfill_table(summaries)
        with atomic_path(work / BACKFILL_FILE) as partial:
            table.to_csv(partial, index=False)
    return BackfillOutcome(summaries, table, work / BACKFILL_FILE)


def _keeping(settings: NightlyConfig, exports: int) -> NightlyConfig:
    """``settings`` with ``publish.keep_last`` raised to at least ``exports``."""
    keep = settings.publish.keep_last
    if keep is None or keep >= exports:
        return settings
    logger.info("backfill: keeping %d exports (publish.keep_last %d)", exports, keep)
    publish = settings.publish.model_copy(update={"keep_last": exports})
    return settings.model_copy(update={"publish": publish})


def backfill_table(summaries: list[NightlySummary]) -> pd.DataFrame:
    """One row per backfilled date: export, validation NDCG and gate alias, tier counts, movements."""
    rows = []
    for summary in summaries:
        row: dict[str, object] = {AS_OF: str(summary.as_of), EXPORT: str(summary.export_dir)}
        if summary.model is not None:
            row[NDCG] = summary.model.validation_ndcg
            row[ALIAS] = summary.model.alias
        row.update({f"{TIER_PREFIX}{tier}": count for tier, count in summary.tiers.items()})
        movements = movement_counts(summary.export_dir)
        row.update({f"{MOVEMENT_PREFIX}{name}": count for name, count in movements.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def movement_counts(export_dir: Path) -> dict[str, int]:
    """Consumers per tier movement in an export's consumer tiers, every movement of
    ``Movement.ALL`` (0 when none moved so), so that backfill.csv has the same columns on every
    date; {} without consumer tiers."""
    path = export_dir / StepFile.CONSUMER_TIERS_TWIN
    if not path.is_file():
        return {}
    counts = pd.read_parquet(path, columns=[TierCol.MOVEMENT])[TierCol.MOVEMENT].value_counts()
    return {name: int(counts.get(name, 0)) for name in Movement.ALL}
