"""Resuming a failed night: the expensive file-producing tasks are cached, keyed on the night.

A night is identified by its **night key**: the SHA-256 of the as-of date, the config (less the
``flow:``, ``schedule:``, ``tracking:`` and ``publish:`` sections, which change how the night is
driven and where its results go, not what the cached steps compute)
and the SHA-256 of every clean table validation wrote. The steps write into ``outputs/``, which a
new night clears; so a cached result is only worth something while the files it describes are
still there. ``begin_night`` keeps that promise with a stamp file in the work directory
(``.siyu-night.json``: night key, a random *generation*, finished or not):

* same night key, not finished, resume on → the night resumes: ``outputs/`` is kept and the
  generation is reused, so the cached tasks find their results and are skipped;
* anything else (another as-of, other data or config, the last night finished, resume off, a
  stamp from an older siyu) → ``outputs/`` is cleared and a new generation drawn, so no cached
  result of an earlier night can be mistaken for tonight's.

``cache_key`` is the Prefect ``cache_key_fn`` of those tasks: task name + source + generation +
the paths among its parameters (the previous export it reads history from, ...). It never hashes
the DuckDB connection (unpicklable and different every run); the task results themselves (small
outcome objects with paths and counts) are persisted under ``<work_dir>/prefect/task_results``.
A finished night closes its generation (``end_night``), so rerunning a night that succeeded
computes it again.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from artifact.loader import sha256_of
from features.catalog import Folder

logger = logging.getLogger(__name__)

STAMP = ".siyu-night.json"
RESULTS = "task_results"
# Config sections that do not change what the cached steps (segmentation, quality gate,
# recommenders) compute: how the night is driven, where MLflow and the export go.
DRIVING_SECTIONS = frozenset({"flow", "schedule", "tracking", "publish"})


def results_dir(work: Path) -> Path:
    """Where the cached tasks' results are persisted: ``<work_dir>/prefect/task_results``."""
    return (work / Folder.PREFECT / RESULTS).absolute()


def night_key(as_of: object, config: Mapping[str, Any], clean_paths: Mapping[str, Path]) -> str:
    """SHA-256 of the as-of date, the config (less ``DRIVING_SECTIONS``) and every clean table's bytes."""
    computing = {key: value for key, value in config.items() if key not in DRIVING_SECTIONS}
    tables = {table: _digest(path) for table, path in sorted(clean_paths.items())}
    content = {"as_of": str(as_of), "config": computing, "clean": tables}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def _digest(path: Path) -> str:
    """SHA-256 of a file, or of the names and digests of a directory's files (a partitioned table)."""
    if path.is_file():
        return sha256_of(path)
    files = sorted(p for p in path.rglob("*") if p.is_file())
    parts = [f"{p.relative_to(path).as_posix()}:{sha256_of(p)}" for p in files]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def begin_night(work: Path, key: str, resume: bool, clear: Callable[[], object]) -> bool:
    """Whether tonight resumes an unfinished night with the same key (see the module); when it does
    not, the old stamp goes first, then ``clear()`` empties ``outputs/``, then a new generation is
    stamped (a crash in between resumes nothing)."""
    stamp = read_stamp(work)
    if resume and stamp.get("night") == key and not stamp.get("finished", True):
        logger.info("resuming the unfinished night %s: completed steps are skipped", key[:12])
        return True
    (work / STAMP).unlink(missing_ok=True)
    clear()
    _write_stamp(work, {"night": key, "generation": uuid.uuid4().hex, "finished": False})
    return False


def end_night(work: Path) -> None:
    """Mark tonight finished: a rerun of the same night computes every step again."""
    stamp = read_stamp(work)
    if stamp:
        _write_stamp(work, {**stamp, "finished": True})


def read_stamp(work: Path) -> dict[str, Any]:
    """The stamp's content; empty when absent or unreadable (then nothing resumes)."""
    try:
        content = json.loads((work / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def _write_stamp(work: Path, content: dict[str, Any]) -> None:
    from features.files import write_text_atomically

    write_text_atomically(work / STAMP, json.dumps(content, sort_keys=True) + "\n")


def cache_key(context: Any, parameters: Mapping[str, Any]) -> str | None:
    """Prefect ``cache_key_fn`` of a resumable task (one with an ``outputs`` parameter).

    None (no caching) when the work directory has no open night. The connection ``con`` and the
    other parameters are not hashed: the generation stands for the night's inputs and config.
    """
    outputs = parameters.get("outputs")
    if not isinstance(outputs, Path):
        return None
    stamp = read_stamp(outputs.parent)
    if not stamp or stamp.get("finished", True):
        return None
    task = context.task
    source = _source_digest(task.fn)
    # the paths it reads and writes (the previous export its history comes from, ...)
    paths = sorted((name, str(value)) for name, value in parameters.items() if isinstance(value, Path))
    parts = [task.name, source, str(stamp["generation"]), json.dumps(paths)]
    return f"siyu-{_slug(task.name)}-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def _source_digest(fn: Any) -> str:
    """SHA-256 of a task function's source (a changed step reruns); its name when source is missing."""
    unwrapped = inspect.unwrap(fn)
    try:
        text = inspect.getsource(unwrapped)
    except (OSError, TypeError):
        text = getattr(unwrapped, "__qualname__", repr(unwrapped))
    return hashlib.sha256(text.encode()).hexdigest()


def _slug(name: str) -> str:
    return "-".join(part for part in "".join(c if c.isalnum() else " " for c in name.lower()).split())
