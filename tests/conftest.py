"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data import orders_frame, products_frame, write_tables


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A valid two-table data set as CSV."""
    return write_tables(tmp_path / "data", {"products": products_frame(), "orders": orders_frame()})
