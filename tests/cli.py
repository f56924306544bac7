"""Running the ``siyu`` command line inside a test, as a user would, and getting its exit status."""

from __future__ import annotations

import sys

import pytest

from pipelines.cli import main


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """Run ``siyu *args`` in-process; return the exit status (0 when it returns normally)."""
    monkeypatch.setattr(sys, "argv", ["siyu", *args])
    try:
        main()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0
