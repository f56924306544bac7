"""The pure parts of a flow run's context: task timings, Parquet reads per run, progress artifacts."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

import pipelines.runtime as runtime
from features.engine import count_table_read
from features.progress import ProgressUpdate, progress
from pipelines.runtime import ProgressArtifacts, RunClock, artifact_key, progress_artifacts, timed


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
    assert [c["key"] for c in fake.created] == [
        "siyu-progress-validating-orders",
        "siyu-progress-scoring-consumers",
    ]
    assert [c["progress"] for c in fake.created] == [10.0, 0.0]
    assert [u[1]["progress"] for u in fake.updated] == [50.0, 100.0]
    assert len({u[0] for u in fake.updated}) == 1
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
