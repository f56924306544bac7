"""Progress lines: counts, share, ETA, a final line, listeners that never break the step."""

from __future__ import annotations

import logging

import pytest

from features import progress as progress_module
from features.progress import ProgressUpdate, add_listener, progress


def test_update_line_gives_counts_share_and_eta() -> None:
    update = ProgressUpdate("validating orders", 3_000_000, 10_000_000, "rows", 12.0, finished=False)
    assert update.fraction == pytest.approx(0.3)
    assert update.eta_seconds == pytest.approx(28.0)
    assert update.line() == "validating orders: 3,000,000 / 10,000,000 rows (30%), 12s, ETA 28s"


def test_unknown_total_has_no_eta() -> None:
    update = ProgressUpdate("scoring", 5, None, "blocks", 75.0, finished=False)
    assert update.eta_seconds is None
    assert update.line() == "scoring: 5 blocks, 1m15s"


def test_log_lines_are_throttled_and_the_last_says_done(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIYU_PROGRESS", "log")
    monkeypatch.setattr(progress_module, "LOG_EVERY_SECONDS", 3600.0)
    with caplog.at_level(logging.INFO, logger="siyu.progress"), progress("fit", total=4, unit="steps") as bar:
        for _ in range(4):
            bar.advance()
    lines = [r.getMessage() for r in caplog.records if r.name == "siyu.progress"]
    # the first advance reports (nothing was reported yet), the rest fall inside the interval
    assert len(lines) == 2
    assert lines[-1].startswith("fit: 4 / 4 steps (100%)") and lines[-1].endswith("done")


def test_listeners_see_updates_and_a_failing_listener_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIYU_PROGRESS", "log")
    seen: list[ProgressUpdate] = []

    def broken(update: ProgressUpdate) -> None:
        raise RuntimeError("observer trouble")

    remove_seen, remove_broken = add_listener(seen.append), add_listener(broken)
    try:
        with progress("score", total=2) as bar:
            bar.advance(2)
    finally:
        remove_seen()
        remove_broken()
    assert seen[-1].finished and seen[-1].done == 2


def test_a_failed_step_reports_no_done_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIYU_PROGRESS", "log")
    seen: list[ProgressUpdate] = []
    remove = add_listener(seen.append)
    try:
        with pytest.raises(ValueError), progress("score", total=2):
            raise ValueError("boom")
    finally:
        remove()
    assert not any(update.finished for update in seen)
