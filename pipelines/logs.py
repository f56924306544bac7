"""The command line's log: siyu's own lines on stderr, library chatter left out unless asked for.

``configure_logging`` is called once by the CLI (never on import). By default it keeps the
log to what the run does:

- libraries that narrate their internals (arviz's optional-package notes, pytensor's compile
  notes, also from loggers named by file path, matplotlib's font cache, MLflow's and alembic's
  database set-up) only show warnings;
- Prefect's "Finished in state Completed()" line after every task is left out (any other
  final state, a failure above all, stays);
- Python warnings raised inside those libraries are dropped, all others become one log line;
- MLflow's artifact download bars are off, and its lines use this log's handler and format;
- ANSI colour codes are stripped from every line, so a log file reads as text.

``--verbose`` (``-v``) turns all of that off and logs at DEBUG; ``--quiet`` (``-q``) shows
warnings and errors only.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import TextIO

# Libraries whose INFO lines (and Python warnings) are chatter in a siyu log.
CHATTY_LIBRARIES: tuple[str, ...] = (
    "alembic",
    "arviz",
    "matplotlib",
    "mlflow",
    "numba",
    "pymc",
    "pymc_marketing",
    "pytensor",
)
# MLflow's switch for its tqdm download bars (read when it downloads).
MLFLOW_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
# MLflow's switch for configuring its own loggers on import (off: its lines go through this log).
MLFLOW_OWN_LOGGING = "MLFLOW_CONFIGURE_LOGGING"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%H:%M:%S"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_PREFECT_DONE = "Finished in state Completed()"
_LIBRARY_PATH = r"[/\\](?:" + "|".join(CHATTY_LIBRARIES) + r")[/\\]"
_LIBRARY_FILE = re.compile(_LIBRARY_PATH + r"[^:]*\.py:\d+: ")
# pytensor names some loggers by their file ("/…/site-packages/pytensor/link/c/lazylinker_c.py").
_LIBRARY_LOGGER = re.compile(_LIBRARY_PATH)


def configure_logging(verbose: bool = False, quiet: bool = False, stream: TextIO | None = None) -> None:
    """Log to ``stream`` (default stderr) at INFO; ``verbose``: DEBUG with every library line;
    ``quiet``: warnings and errors only. Replaces any handler configured before."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(PlainFormatter(LOG_FORMAT, DATE_FORMAT))
    if not verbose:
        handler.addFilter(DropChatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.captureWarnings(True)
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
    # MLflow otherwise gives its loggers a handler of their own at INFO when it is imported; when
    # it was imported before this call, take that handler off so its lines come through this log.
    os.environ.setdefault(MLFLOW_OWN_LOGGING, "false")
    mlflow_logger = logging.getLogger("mlflow")
    for own in list(mlflow_logger.handlers):
        mlflow_logger.removeHandler(own)
    mlflow_logger.propagate = True
    if not verbose:
        os.environ.setdefault(MLFLOW_PROGRESS_BAR, "false")


class PlainFormatter(logging.Formatter):
    """The log format without ANSI escape codes (colours some libraries put into messages)."""

    def format(self, record: logging.LogRecord) -> str:
        return strip_ansi(super().format(record))


class DropChatter(logging.Filter):
    """Leave out Prefect's per-task "Completed" lines, Python warnings raised in a chatty library,
    and the notes of loggers named after a chatty library's file (pytensor's compile notes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and _LIBRARY_LOGGER.search(record.name):
            return False
        message = record.getMessage()
        if record.name.startswith("prefect") and message.endswith(_PREFECT_DONE):
            return False
        return not (record.name == "py.warnings" and _LIBRARY_FILE.search(message.split("\n", 1)[0]))


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences (colours, cursor moves)."""
    return _ANSI.sub("", text)
