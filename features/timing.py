"""Seconds per stage of a long step, logged as each stage ends (what a person watching the log sees)."""

from __future__ import annotations

import logging
import time


class Stopwatch:
    """``lap(stage)`` records and logs the seconds since the previous lap (or the start)."""

    def __init__(self, step: str, logger: logging.Logger) -> None:
        self.step = step
        self.seconds: dict[str, float] = {}
        self._logger = logger
        self._started = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._started, 3)
        self._logger.info("%s: %s done in %.1fs", self.step, stage, now - self._started)
        self._started = now
