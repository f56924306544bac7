"""Errors a user can cause. The CLI prints their message and exits non-zero, with no traceback."""

from __future__ import annotations

from pathlib import Path


class SiyuError(Exception):
    """An error caused by input, configuration or usage, with a message meant for the user."""


class ContractError(SiyuError):
    """A data file breaks the contract as a whole (missing, unreadable, wrong columns or types)."""

    def __init__(self, path: Path | str, problem: str, fix: str, column: str | None = None) -> None:
        self.path = Path(path)
        self.column = column
        self.problem = problem
        self.fix = fix
        where = f"{self.path}" + (f", column '{column}'" if column else "")
        super().__init__(f"{where}: {problem}\n  fix: {fix}")


class QuarantineLimitExceeded(SiyuError):
    """More of a table's rows failed row-level checks than the configured share allows."""


class MissingTableError(SiyuError):
    """A table an earlier run read is missing now, and the config does not say that is wanted."""
