"""The work directory a command writes into: owned by siyu, used by one run at a time.

Two rules keep an operator's folders safe:

* **Ownership.** siyu writes a marker file ``.siyu-workdir`` into every work directory it
  creates. A folder that already holds files but no marker belongs to someone else: the
  command refuses it (exit 2) instead of emptying ``outputs/`` or overwriting anything.
  Inside an owned folder siyu deletes only the files it writes itself (``clear_own``: the
  names the catalog lists); anything else an operator puts there is left alone.
* **One run at a time.** Every command that writes into a work directory holds the lock
  ``.siyu.lock`` (``filelock``: an OS lock that dies with the process, so a killed run
  leaves nothing to clean up) for as long as it runs. Beside it, ``.siyu.lock.json`` says
  which process (pid, host, command) holds it since when; a second run fails at once with
  the lock file and that holder in its message.
  The info file is only read to explain a refusal and is overwritten by whoever takes the
  lock next, so a stale one never blocks.

A process may claim the same folder again while it holds it (the CLI, ``run_nightly`` and
the flow each claim the folder they write into); the lock is released when the outermost
claim ends.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from filelock import FileLock, Timeout

from features.errors import SiyuError
from features.files import PARTIAL_SUFFIX

logger = logging.getLogger(__name__)

MARKER = ".siyu-workdir"
LOCK = ".siyu.lock"
LOCK_INFO = ".siyu.lock.json"
# Files that may sit in a folder siyu is asked to adopt without making it "someone else's".
_HARMLESS = frozenset({LOCK, LOCK_INFO, ".DS_Store"})


class WorkDirBusy(SiyuError):
    """Another siyu run holds the work directory."""


@contextmanager
def claim(work_dir: Path, command: str) -> Iterator[Path]:
    """Own ``work_dir`` (creating it with its marker) and hold its lock for the block.

    Raises ``SiyuError`` when ``work_dir`` is a file or a folder of someone else's files,
    and ``WorkDirBusy`` when another process runs in it.
    """
    adopt(work_dir)
    # one lock object per folder in this process (nested claims count up), however it is spelled
    lock = FileLock(work_dir.resolve() / LOCK, timeout=0, is_singleton=True, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise WorkDirBusy(_busy_message(work_dir)) from None
    try:
        if lock.lock_counter == 1:
            _write_info(work_dir, command)
        yield work_dir
    finally:
        lock.release()


def adopt(work_dir: Path) -> None:
    """Make sure ``work_dir`` is siyu's: create it with its marker, or check an existing one."""
    if work_dir.exists() and not work_dir.is_dir():
        raise SiyuError(
            f"{work_dir}: is a file, not a folder\n  fix: pass --out with a folder (new or made by siyu)"
        )
    if (work_dir / MARKER).is_file():
        return
    present = work_dir.iterdir() if work_dir.exists() else iter(())
    # a folder that is itself a siyu work directory (siyu evaluate's, a notebook's) is siyu's too
    foreign = sorted(p.name for p in present if p.name not in _HARMLESS and not (p / MARKER).is_file())
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise SiyuError(
            f"{work_dir}: holds files siyu did not write ({shown}) and no {MARKER} marker; "
            "siyu would overwrite or delete them\n"
            f"  fix: pass --out with a new or empty folder; if siyu made this folder, create an "
            f"empty file {work_dir / MARKER} and rerun"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / MARKER).write_text("This folder is a siyu work directory; siyu may rewrite it.\n")


def clear_own(folder: Path, names: Collection[str]) -> Path:
    """``folder`` (inside an owned work directory) without the entries siyu writes there
    (``names``, and their ``.partial`` leftovers); any other entry is left alone, with a warning."""
    if not (folder.parent / MARKER).is_file():
        raise SiyuError(
            f"{folder.parent}: not a siyu work directory (no {MARKER})\n"
            "  fix: run the command through the siyu CLI, which claims the folder first"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for entry in sorted(folder.iterdir()):
        if entry.name.removesuffix(PARTIAL_SUFFIX) not in names:
            logger.warning("%s: not written by siyu; left alone (and not exported)", entry)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return folder


def _write_info(work_dir: Path, command: str) -> None:
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now().isoformat(timespec="seconds"),
        "command": command,
    }
    try:
        (work_dir / LOCK_INFO).write_text(json.dumps(info) + "\n", encoding="utf-8")
    except OSError as error:  # the lock holds anyway; the info only explains a refusal
        logger.warning("cannot write %s (%s)", work_dir / LOCK_INFO, error)


def _busy_message(work_dir: Path) -> str:
    lock = work_dir / LOCK
    try:
        info = json.loads((work_dir / LOCK_INFO).read_text(encoding="utf-8"))
        since = datetime.fromisoformat(info["started"]).strftime("%Y-%m-%d %H:%M")
        host = f" on {info['host']}" if info.get("host") else ""
        holder = f" since {since} (pid {info['pid']}{host}): siyu {info.get('command', '?')}"
    except (OSError, ValueError, KeyError, TypeError):
        holder = ""
    return (
        f"another siyu run is in progress in {work_dir}{holder}; it holds the lock {lock}\n"
        "  fix: wait for it to finish, or pass --out with another folder"
    )
