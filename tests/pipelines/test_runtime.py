"""The garbage collector around a night's imports (``pipelines.runtime``): paused while they run,
their heap frozen afterwards, garbage that exists before the freeze still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

import pipelines.flow as flow_module
from pipelines.runtime import freeze_long_lived, paused_collection


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Each test starts and ends with nothing frozen (the rest of the suite collects as usual)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


class _Node:
    """A reference cycle's member; a weak reference tells whether it was freed."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def _garbage_cycle() -> weakref.ref[_Node]:
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    return weakref.ref(first)


def test_paused_collection_disables_the_collector_and_restores_it() -> None:
    assert gc.isenabled()
    with paused_collection():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_paused_collection_restores_the_collector_after_an_error() -> None:
    with pytest.raises(RuntimeError), paused_collection():
        raise RuntimeError("an import failed")
    assert gc.isenabled()


def test_paused_collection_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with paused_collection():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_freeze_collects_the_garbage_there_is_then_freezes_what_lives(unfrozen: None) -> None:
    dead = _garbage_cycle()
    alive = [_Node()]
    assert gc.get_freeze_count() == 0
    freeze_long_lived()
    assert dead() is None  # collected before the freeze, not kept for good
    assert gc.get_freeze_count() > 0
    assert not any(item is alive for item in gc.get_objects())  # frozen: in no generation


def test_the_head_start_freezes_after_its_imports(unfrozen: None, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(flow_module, "freeze_long_lived", lambda: calls.append("freeze"))
    monkeypatch.setattr(flow_module.tracking, "using_tracking", _recording_tracking(calls))
    settings = flow_module.NightlyConfig()
    clv = settings.segmentation.clv.model_copy(update={"enabled": False})
    settings = settings.model_copy(
        update={"segmentation": settings.segmentation.model_copy(update={"clv": clv})}
    )
    flow_module.head_start(settings, Path("unused"))
    assert calls == ["tracking with the collector paused", "freeze"]


def _recording_tracking(calls: list[str]) -> Callable[..., AbstractContextManager[None]]:
    @contextmanager
    def using(*_: object) -> Iterator[None]:
        calls.append("tracking with the collector paused" if not gc.isenabled() else "tracking")
        yield

    return using
