"""The pure parts of a flow run's context: task timings, Parquet reads per run, each task's memory
against the budget, progress artifacts."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from uuid import UUID, uuid4

import pytest

import pipelines.runtime as runtime
from features.engine import count_table_read
from features.progress import ProgressUpdate, progress
from pipelines.memory import MemoryBudgetExceeded, MemoryWatch, process_tree_rss
from pipelines.runtime import (
    FlowConfig,
    ProgressArtifacts,
    RunClock,
    artifact_key,
    progress_artifacts,
    timed,
)


def test_run_clock_sums_the_seconds_of_a_task_and_counts_only_this_runs_reads() -> None:
    count_table_read("orders")  # before the run: not counted
    clock = RunClock()
    clock.add("segmentation", 1.25)
    clock.add("segmentation", 0.5)  # a retry adds up
    clock.add("quality gate", 2.0, {"orders": 1, "products": 0})
    clock.add("quality gate", 0.5, {"orders": 1})
    count_table_read("orders")
    count_table_read("orders")
    count_table_read("products")
    summary = clock.summary({"orders": 12, "products": 3})
    assert summary["tasks"] == {"segmentation": 1.75, "quality gate": 2.5}
    assert summary["task_reads"] == {"quality gate": {"orders": 2}}
    assert summary["orders_scans"] == 2
    assert summary["table_reads"] == {"orders": 2, "products": 1}
    assert summary["rows"] == {"orders": 12, "products": 3}
    assert summary["peak_rss_bytes"] > 10 * 2**20 and summary["wall_seconds"] >= 0
    assert summary["started_at"] == round(clock.started_at, 3) and clock.started_at <= time.time()


def test_timed_records_into_the_clock_of_its_run_even_when_the_task_fails(monkeypatch) -> None:
    clock = RunClock()
    monkeypatch.setattr(runtime, "_clock_of_this_run", lambda: clock)

    def boom() -> None:
        raise OSError("disk full")

    def read_orders() -> int:
        count_table_read("orders")
        return 42

    assert timed("read", read_orders)() == 42
    with pytest.raises(OSError):
        timed("boom", boom)()
    assert set(clock.tasks) == {"read", "boom"}
    assert clock.task_reads == {"read": {"orders": 1}}


def test_timed_outside_a_run_just_calls() -> None:
    assert timed("double", lambda x: 2 * x)(4) == 8


class FakeArtifacts:
    """Records what would go to Prefect's API."""

    def __init__(self) -> None:
        self.created: list[dict] = []
        self.updated: list[tuple[UUID, dict]] = []

    def create(self, **kwargs) -> UUID:
        self.created.append(kwargs)
        return uuid4()

    def update(self, artifact_id: UUID, **kwargs) -> UUID:
        self.updated.append((artifact_id, kwargs))
        return artifact_id


def _update(step: str, done: float, total: float | None, finished: bool = False) -> ProgressUpdate:
    return ProgressUpdate(step, done, total, "rows", elapsed=10.0, finished=finished)


def test_one_artifact_per_step_updated_at_most_every_interval_and_when_done() -> None:
    fake, now = FakeArtifacts(), [0.0]
    listener = ProgressArtifacts(fake.create, fake.update, every=10.0, clock=lambda: now[0])
    listener(_update("validating orders", 100, 1000))
    now[0] = 4.0
    listener(_update("validating orders", 200, 1000))  # too soon: dropped
    now[0] = 11.0
    listener(_update("validating orders", 500, 1000))
    now[0] = 12.0
    listener(_update("validating orders", 1000, 1000, finished=True))  # the end always goes
    listener(_update("scoring consumers", 5, None))  # no total: 0% until done
    listener.close()  # the calls go out from the listener's own thread: wait for them
    assert [c["key"] for c in fake.created] == [
        "siyu-progress-validating-orders",
        "siyu-progress-scoring-consumers",
    ]
    assert [c["progress"] for c in fake.created] == [10.0, 0.0]
    assert [u[1]["progress"] for u in fake.updated] == [50.0, 100.0]
    assert len({u[0] for u in fake.updated}) == 1
    assert fake.updated[-1][1]["description"].endswith("done")


def test_a_slow_prefect_api_never_holds_up_the_step() -> None:
    """Under load one artifact call took tens of seconds; the step's thread must not wait for it."""
    fake, api_free = FakeArtifacts(), threading.Event()

    def slow_create(**kwargs) -> UUID:
        api_free.wait(10)
        return fake.create(**kwargs)

    listener = ProgressArtifacts(slow_create, fake.update, every=0.0)
    started = time.monotonic()
    with progress_artifacts(listener):
        with progress("fitting the churn candidate", total=4, unit="buyers") as bar:
            bar.advance(1)  # the first report: its artifact's creation waits on the API
            bar.advance(3)
        returned = time.monotonic() - started  # the step is over while its first call still waits
        api_free.set()
    assert returned < 5
    assert [c["key"] for c in fake.created] == ["siyu-progress-fitting-the-churn-candidate"]
    assert fake.updated[-1][1]["description"].endswith("done")


def test_artifact_keys_are_what_prefect_accepts() -> None:
    assert artifact_key("Fitting ALS (100 iterations)") == "siyu-progress-fitting-als-100-iterations"
    assert artifact_key("…") == "siyu-progress-step"


def test_progress_reaches_the_artifacts_only_inside_the_block() -> None:
    fake = FakeArtifacts()
    listener = ProgressArtifacts(fake.create, fake.update)
    with progress_artifacts(listener), progress("writing lists", total=3, unit="chunks") as bar:
        bar.advance(3)
    with progress("after the run", total=1) as bar:
        bar.advance(1)
    assert [c["key"] for c in fake.created] == ["siyu-progress-writing-lists"]


class FakeTime:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_memory_watch_charges_each_running_task_its_peak_and_warns_once_over_the_budget(caplog) -> None:
    samples = iter([100, 300, 900, 950, 200, 200])
    watch = MemoryWatch(budget=800, sample=lambda: next(samples), clock=FakeTime())
    watch.begin("segmentation")  # 100
    watch.begin("quality gate")  # 300: side by side, both charged
    watch.sample_now()  # 900: over, both named once
    watch.end("quality gate")  # 950
    watch.sample_now()  # 200: segmentation only
    watch.end("segmentation")  # 200
    assert watch.peaks == {"segmentation": 950, "quality gate": 950}
    assert watch.over == {"segmentation": 950, "quality gate": 950}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and all("over flow.step_memory_budget" in line for line in warnings)
    watch.check("segmentation")  # warn only: not enforced
    summary = watch.summary()
    assert summary["memory_budget_bytes"] == 800
    assert summary["tasks_over_memory_budget"] == {"quality gate": 950, "segmentation": 950}


def test_an_enforced_budget_fails_the_task_that_went_over_and_names_it() -> None:
    watch = MemoryWatch(budget=500, enforce=True, sample=lambda: 600, clock=FakeTime())
    watch.begin("segmentation")
    watch.end("segmentation")
    with pytest.raises(
        MemoryBudgetExceeded, match=r"segmentation: .*over flow.step_memory_budget.*\n  fix: "
    ):
        watch.check("segmentation")
    watch.check("publish")  # never ran over: passes


def test_a_quiet_log_during_a_task_gets_a_line_with_its_time_and_memory(caplog) -> None:
    clock = FakeTime()
    watch = MemoryWatch(budget=None, silence=9.0, sample=lambda: 3 * 2**30, clock=clock)
    caplog.set_level("INFO", logger="pipelines.memory")
    watch.tick()  # nothing runs: no line
    watch.begin("segmentation")
    clock.now = 5.0
    watch.tick()  # 5 s quiet: no line yet
    clock.now = 9.5
    watch.tick()
    clock.now = 12.0
    watch.tick()  # the line itself broke the silence 2.5 s ago
    lines = [r.getMessage() for r in caplog.records if r.name == "pipelines.memory"]
    assert lines == ["still running: segmentation 10s (peak 3.00 GiB); the run's processes use 3.00 GiB now"]
    watch.heard()
    clock.now = 20.0
    watch.tick()  # 8 s after a line someone else logged: still quiet enough
    assert len([r for r in caplog.records if r.name == "pipelines.memory"]) == 1


def test_the_quiet_log_line_names_the_steps_open_inside_the_task(caplog) -> None:
    clock = FakeTime()
    fitting = ProgressUpdate("churn candidate gradient_boosting", 0, 459_376, "buyers", 15, False)
    frames = ProgressUpdate("CLV frames", 1, 4, "queries", 12, False)
    watch = MemoryWatch(sample=lambda: 2**30, clock=clock, steps=lambda: [frames, fitting])
    caplog.set_level("INFO", logger="pipelines.memory")
    watch.begin("segmentation")
    clock.now = 10.0
    watch.tick()
    [line] = [r.getMessage() for r in caplog.records if r.name == "pipelines.memory"]
    assert line == (
        "still running: segmentation 10s (peak 1.00 GiB); the run's processes use 1.00 GiB now; "
        "in progress: CLV frames: 1 / 4 queries (25%), 12s, ETA 36s; "
        "churn candidate gradient_boosting: 0 / 459,376 buyers (0%), 15s"
    )


def test_timed_with_a_tiny_enforced_budget_fails_the_task_after_recording_it(monkeypatch) -> None:
    """The real process tree is far over 1 MB: the task runs, its time and peak are kept, then it fails."""
    clock = RunClock(memory=MemoryWatch(budget=2**20, enforce=True))
    monkeypatch.setattr(runtime, "_clock_of_this_run", lambda: clock)
    ran: list[int] = []
    with pytest.raises(MemoryBudgetExceeded, match="publish: the run's processes used"):
        timed("publish", lambda: ran.append(1))()
    assert ran == [1] and "publish" in clock.tasks
    summary = clock.summary({})
    assert summary["task_peak_rss_bytes"]["publish"] > 10 * 2**20
    assert summary["tasks_over_memory_budget"] == summary["task_peak_rss_bytes"]


def test_the_process_tree_includes_a_child_process() -> None:
    """The local Prefect server is a child of the run: its memory counts in the budget."""
    alone = process_tree_rss()
    hold = "import sys, time; b = b'x' * (80 * 2**20); print('ready', flush=True); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        assert process_tree_rss() >= alone + 80 * 2**20
    finally:
        child.kill()
        child.wait()


def test_memory_budget_is_read_from_the_flow_config_as_an_amount() -> None:
    assert FlowConfig().step_memory_budget == 8_000_000_000
    assert FlowConfig(step_memory_budget="6GiB").step_memory_budget == 6 * 2**30
    assert FlowConfig(step_memory_budget=None).step_memory_budget is None
    with pytest.raises(ValueError):
        FlowConfig(step_memory_budget="a lot")


HEALTHY = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class Ok(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/api/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), Ok).serve_forever()
"""


def test_a_server_that_exits_at_once_is_relaunched_on_a_new_port_and_stopped_at_the_end(monkeypatch) -> None:
    """As Prefect's own start-up: a port taken meanwhile makes the server exit; a new port is tried."""
    launched: list[int] = []

    def launch(port: int) -> subprocess.Popen:
        launched.append(port)
        if len(launched) == 1:
            return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
        return subprocess.Popen([sys.executable, "-c", HEALTHY, str(port)])

    monkeypatch.setattr(runtime, "_launch_server", launch)
    server = runtime._LocalServer.launch()
    server.until_healthy()
    assert len(launched) == 2 and server.port == launched[1]
    assert server.api_url == f"http://127.0.0.1:{launched[1]}/api"
    server.stop()
    assert server.process.poll() is not None
