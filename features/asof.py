"""The run's as-of point in time: one value, made once by the CLI or the flow and passed down.

Everything that happened on the as-of date itself is in the run; ``end`` is the exclusive
upper bound, the next day at 00:00 in the platform's local time. No other module computes
"end of day": feature builders, validation, the quality gate and the recommenders all take
an ``AsOf`` (or its ``end``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd


@dataclass(frozen=True, order=True)
class AsOf:
    """An as-of date and its exclusive end instant (``date`` + 1 day, 00:00)."""

    date: date

    @classmethod
    def of(cls, value: AsOf | date | datetime | str) -> AsOf:
        """An ``AsOf`` from another one, a date, a datetime (cut to its date) or ``YYYY-MM-DD``."""
        if isinstance(value, AsOf):
            return value
        if isinstance(value, str):
            return cls(date.fromisoformat(value))
        if isinstance(value, datetime):
            return cls(value.date())
        return cls(value)

    @property
    def end(self) -> datetime:
        """The exclusive upper time bound: the day after the as-of date at 00:00."""
        return datetime.combine(self.date + timedelta(days=1), datetime.min.time())

    @property
    def end_timestamp(self) -> pd.Timestamp:
        """``end`` as a pandas timestamp (nanoseconds, naive local time)."""
        return pd.Timestamp(self.end)

    def days_before(self, days: int) -> AsOf:
        """The as-of ``days`` days earlier (a cutoff for a holdout or a quality window)."""
        return AsOf(self.date - timedelta(days=days))

    def isoformat(self) -> str:
        return self.date.isoformat()

    def __str__(self) -> str:
        return self.date.isoformat()
