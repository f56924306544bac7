"""The garbage collector around a night's imports (``pipelines.runtime``): paused while they run,
their heap frozen afterwards, garbage that exists before the freeze still collected. The local
Prefect server's start: its database migrated beside the server app's imports, and started by the
CLI before the flow's imports."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

import pipelines.flow as flow_module
from features.errors import SiyuError
from pipelines import runtime
from pipelines.runtime import freeze_long_lived, paused_collection
from tests.cli import run_cli


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


# --- the Prefect server's start (#18) ---------------------------------------------------------------


def launched(
    monkeypatch: pytest.MonkeyPatch, migrate_on_start: bool, home: Path, cache: Path | None = None
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment ``_launch_server`` starts the launcher with, for the
    database under ``home``, with store templates in ``cache`` (default: a new folder under
    ``home``, so none; ``pipelines.store_templates``)."""
    from prefect.settings import temporary_settings

    seen: dict[str, Any] = {}

    def popen(args: list[str], env: dict[str, str]) -> object:
        seen.update(args=args, env=env)
        return object()

    monkeypatch.setattr(runtime.subprocess, "Popen", popen)
    monkeypatch.delenv("PREFECT_SERVER_DATABASE_MIGRATE_ON_START", raising=False)
    monkeypatch.setenv("SIYU_CACHE_DIR", str(cache or home / "cache"))
    with temporary_settings(updates={"home": home, "server.database.migrate_on_start": migrate_on_start}):
        runtime._launch_server(4321)
    return seen["args"], seen["env"]


def test_the_launcher_migrates_the_database_beside_the_server_app(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    args, env = launched(monkeypatch, migrate_on_start=True, home=tmp_path)
    # -P: the folder the night starts in stays off the server's sys.path
    assert args[1:4] == ["-P", "-c", runtime._LAUNCHER] and args[5] == "migrate"
    assert env["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] == "false"  # done once, by the launcher
    assert args[args.index("--port") + 1] == "4321"


def test_a_database_prefect_must_not_migrate_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    args, env = launched(monkeypatch, migrate_on_start=False, home=tmp_path)
    assert args[5] == "-"
    assert env.get("PREFECT_SERVER_DATABASE_MIGRATE_ON_START", "false").lower() == "false"


def test_off_linux_the_server_migrates_as_it_starts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(runtime.sys, "platform", "darwin")
    args, env = launched(monkeypatch, migrate_on_start=True, home=tmp_path)
    assert args[5] == "-"
    assert env.get("PREFECT_SERVER_DATABASE_MIGRATE_ON_START", "true").lower() == "true"


def test_a_failed_migration_ends_the_launcher_before_it_serves(tmp_path: Path) -> None:
    unwritable = tmp_path / "no such folder" / "prefect.db"
    env = {**os.environ, "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{unwritable}"}
    launcher = [sys.executable, "-c", runtime._LAUNCHER, str(os.getpid()), "migrate", str(unwritable), "-"]
    launcher += ["--port", "1"]
    server = subprocess.run(launcher, capture_output=True, text=True, env=env, timeout=300)
    assert server.returncode == 1, server.stderr[-2000:]
    assert "unable to open database file" in server.stderr and "Uvicorn running" not in server.stderr


def test_the_cli_starts_the_server_before_it_imports_the_flow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    @contextmanager
    def local_prefect(work: Path, meanwhile: Callable[[], object]) -> Iterator[None]:
        calls.append(f"server for {work.name}")
        meanwhile()
        try:
            yield
        finally:
            calls.append("server stopped")

    def run_nightly(*args: object) -> object:
        calls.append("night")
        raise SiyuError("stop here")

    monkeypatch.setattr(runtime, "local_prefect", local_prefect)
    monkeypatch.setattr(flow_module, "head_start", lambda settings, work: calls.append("head start"))
    monkeypatch.setattr(flow_module, "run_nightly", run_nightly)
    assert run_cli(monkeypatch, "nightly", "--out", str(tmp_path / "work")) == 2
    assert calls == ["server for work", "head start", "night", "server stopped"]
