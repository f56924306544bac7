"""Writing files so that a reader never sees half of one: the one atomic-write helper.

Every writer in siyu (clean tables, step outputs, exports, the artifact, the report, the
importers and the simulator) writes beside its target and renames into place:

    with atomic_path(target) as partial:
        frame.to_parquet(partial)

``partial`` is ``<target>.partial`` in the same folder (so the rename is atomic on one
file system); it is renamed onto ``target`` only when the block ends without an error, and
removed when it raises. ``move_into_place`` does the same for a finished folder, and
``replace_symlink`` for a link (through a temporary ``.<name>.link-<token>`` beside it).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

PARTIAL_SUFFIX = ".partial"


def partial_path(target: Path) -> Path:
    """Where ``target`` is written before it is renamed into place."""
    return target.with_name(target.name + PARTIAL_SUFFIX)


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target``, renamed onto it when the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(target)
    try:
        yield partial
    except BaseException:
        _remove(partial)
        raise
    os.replace(partial, target)


def write_text_atomically(target: Path, text: str, *, durable: bool = False) -> Path:
    """``text`` (UTF-8, ``\\n`` line ends) into ``target``, atomically; ``durable`` flushes it to
    disk before the rename (for the files a crash must never leave empty: manifests, pointers)."""
    with atomic_path(target) as partial, partial.open("w", encoding="utf-8", newline="\n") as writer:
        writer.write(text)
        if durable:
            writer.flush()
            os.fsync(writer.fileno())
    return target


def write_parquet_atomically(frame: pd.DataFrame, target: Path) -> Path:
    """``frame`` (without its index) as the Parquet file ``target``, atomically."""
    with atomic_path(target) as partial:
        frame.to_parquet(partial, index=False)
    return target


def move_into_place(staging: Path, target: Path, token: str) -> None:
    """Rename the finished folder ``staging`` to ``target``; an existing ``target`` (a rerun;
    a file or a folder) is set aside as ``.<name>.previous-<token>`` first, then removed."""
    if not target.exists():
        os.replace(staging, target)
        return
    set_aside = target.with_name(f".{target.name}.previous-{token}")
    os.replace(target, set_aside)
    os.replace(staging, target)
    _remove(set_aside)


def replace_symlink(link: Path, target: str) -> None:
    """Make ``link`` a relative symlink to ``target`` in one rename: no moment without a link."""
    temporary = link.with_name(f".{link.name}.link-{secrets.token_hex(4)}")
    os.symlink(target, temporary, target_is_directory=True)
    os.replace(temporary, link)


def can_symlink(folder: Path) -> bool:
    """Whether ``folder`` can hold symlinks (not e.g. Windows without the privilege)."""
    probe = folder / f".probe.link-{secrets.token_hex(4)}"
    try:
        os.symlink(".", probe, target_is_directory=True)
    except OSError:
        return False
    probe.unlink()
    return True


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
