"""Shared pytest fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.store_templates import CACHE_ENV
from tests.data import orders_frame, products_frame, write_tables
from tests.spark import SharedSpark


@pytest.fixture(autouse=True, scope="session")
def _store_templates_of_this_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The session's MLflow and Prefect store templates in a folder of its own, never the user's
    cache (``pipelines.store_templates``); the processes tests start inherit it."""
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("siyu-cache"))
    yield
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


@pytest.fixture(scope="session")
def shared_prefect_server(
    tmp_path_factory: pytest.TempPathFactory, _store_templates_of_this_session: None
) -> Iterator[None]:
    """One temporary Prefect API server for the rest of the session (each xdist worker has its
    own), which every night run in this process then uses instead of starting its own.

    A night's own server (``pipelines.runtime.local_prefect``) costs about 13 s of CPU on 2 cores,
    as much as a whole test night on 300 consumers. The modules that run nights ask for it
    (``pytestmark``); it is not autouse, because starting it (a fresh database: the session's
    store templates start empty) would add about 15 s to every pytest start. Tests of a night's own
    server and of what lives under the work dir's Prefect home (tests/pipelines/test_prefect.py,
    the ``local_prefect`` tests) restore the default (``own_prefect_server``); processes that tests
    start get their own as before (the setting is this process's, not the environment's). A
    PREFECT_API_URL of the user's is never used."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from pipelines.runtime import local_prefect

    with (
        temporary_settings(restore_defaults={PREFECT_API_URL}),
        local_prefect(tmp_path_factory.mktemp("prefect-server")),
    ):
        yield


@pytest.fixture(scope="module")
def own_prefect_server() -> Iterator[None]:
    """No shared server in the module (whether or not an earlier module started it): each night
    starts its own under its work dir, as a user's."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        yield


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A valid two-table data set as CSV."""
    return write_tables(tmp_path / "data", {"products": products_frame(), "orders": orders_frame()})


@pytest.fixture(scope="session")
def _shared_spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedSpark]:
    shared = SharedSpark(tmp_path_factory.mktemp("spark_work"))
    yield shared
    shared.stop()


@pytest.fixture(scope="module")
def spark(_shared_spark: SharedSpark) -> object:
    """The test worker's local[2] Spark session (``tests.spark.TEST_SPARK``), shared by the modules
    that ask for it and started at the first of them (``tests.spark.SharedSpark``)."""
    return _shared_spark.session()


@pytest.fixture(scope="module")
def own_spark_sessions(_shared_spark: SharedSpark) -> None:
    """No shared session in the module: its nights start and stop Spark sessions of their own (a
    night's ``getOrCreate`` would take over a running one, and its stop would end it)."""
    _shared_spark.stop()
