"""Shared pytest fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.store_templates import CACHE_ENV
from tests.data import orders_frame, products_frame, write_tables


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


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A valid two-table data set as CSV."""
    return write_tables(tmp_path / "data", {"products": products_frame(), "orders": orders_frame()})
