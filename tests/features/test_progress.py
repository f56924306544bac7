"""Progress lines: counts, share, ETA, a final line, listeners that never break the step."""

from __future__ import annotations

import logging
import re
import threading

import pytest

from features import progress as progress_module
from features.progress import ProgressUpdate, add_listener, open_steps, progress


def test_update_line_gives_counts_share_and_eta() -> None:
    update = ProgressUpdate("validating orders", 3_000_000, 10_000_000, "rows", 12.0, finished=False)
    assert update.fraction == pytest.approx(0.3)
    assert update.eta_seconds == pytest.approx(28.0)
    assert update.line() == "validating orders: 3,000,000 / 10,000,000 rows (30%), 12s, ETA 28s"


def test_eta_rate_starts_at_the_first_advance(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening files before the first chunk is not a rate: validating 11,278 complaint rows whose
    first row came after 2 s of setup logged "ETA 4h52m" for a step of 2 s."""
    now = [100.0]
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: now[0])
    monkeypatch.setenv("SIYU_PROGRESS", "log")
    monkeypatch.setattr(progress_module, "LOG_EVERY_SECONDS", 0.0)
    with caplog.at_level(logging.INFO, logger="siyu.progress"), progress("validating", 10_000, "rows") as bar:
        now[0] += 2.0  # setup: nothing counted yet
        bar.advance(1)  # the first row: no rate yet, so no ETA
        now[0] += 1.0
        bar.advance(4_999)  # 4,999 rows in 1 s since the first: 5,000 left ≈ 1 s
    lines = [r.getMessage() for r in caplog.records if r.name == "siyu.progress"]
    assert lines[0] == "validating: 1 / 10,000 rows (0%), 2s"
    assert lines[1] == "validating: 5,000 / 10,000 rows (50%), 3s, ETA 1s"
    # the rate over the whole time since the step began would have said 3 s, and 5h33m at first
    assert ProgressUpdate("validating", 1, 10_000, "rows", 2.0, False).line().endswith("ETA 5h33m")


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


def test_open_steps_say_what_runs_now_on_every_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the nightly's quiet-log line names: every open step, counted or not, whichever thread."""
    monkeypatch.setenv("SIYU_PROGRESS", "log")
    inside, release = threading.Event(), threading.Event()

    def fit() -> None:
        with progress("fitting the churn candidate"):  # one library call: nothing to count
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=fit)
    with progress("CLV frames", total=4, unit="queries") as bar:
        bar.advance()
        worker.start()
        assert inside.wait(10)
        steps = open_steps()
        release.set()
        worker.join(10)
    # (only this test's steps: a shared Spark session's task watch, tests.spark, may still hold its
    # "Spark tasks" step open for a few seconds after an earlier module's last job)
    ours = ("CLV frames", "fitting the churn candidate")
    steps = [update for update in steps if update.step in ours]
    assert [update.step for update in steps] == list(ours)
    assert steps[0].line().startswith("CLV frames: 1 / 4 queries (25%), ")
    assert re.fullmatch(r"fitting the churn candidate: \d+s", steps[1].line())  # no "0 items"
    assert not [update for update in open_steps() if update.step in ours]


def test_a_step_without_counts_ends_with_its_time_and_a_full_count_is_said_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIYU_PROGRESS", "log")
    with caplog.at_level(logging.INFO, logger="siyu.progress"):
        with progress("fitting"):
            pass
        with progress("scoring", total=3, unit="buyers") as bar:
            bar.advance(3)  # complete at the first report: only the done line says so
    lines = [r.getMessage() for r in caplog.records if r.name == "siyu.progress"]
    assert re.fullmatch(r"fitting: \d+s, done", lines[0])
    assert len(lines) == 2 and lines[1].startswith("scoring: 3 / 3 buyers (100%), ")
