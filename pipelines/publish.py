"""Publishing a run: every export file into ``exports/<as_of>/``, then an atomic switch of ``current``.

Layout under the exports directory::

    2025-12-30/                 an earlier complete export (kept: the newest ``keep_last``)
    2025-12-31/                 this run's export, with manifest.json (sizes, SHA-256, versions)
    current -> 2025-12-31       relative symlink, replaced atomically (os.replace of a new link)
    CURRENT                     text file holding the folder name, for readers that do not follow
                                symlinks (Windows shares, Excel "open from folder")

The order makes a crash harmless: files are copied into a hidden sibling
``.<as_of>.staging-<token>``, each copy is hashed while written and re-read to check it,
``manifest.json`` is written last, the staging folder is renamed to ``<as_of>``, and only
then do ``current`` and ``CURRENT`` switch (each by ``os.replace`` of a file written under a
temporary name). A kill at any earlier point leaves the previous ``current`` untouched; the
next publish removes the leftovers. Two publishes into one exports directory at the same
time are not supported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from artifact.loader import sha256_of
from features.catalog import RunFile
from features.errors import SiyuError
from features.files import move_into_place

logger = logging.getLogger(__name__)

CURRENT_LINK = "current"
CURRENT_FILE = "CURRENT"
MANIFEST_VERSION = 1
# Manifest fields that differ between two runs on the same inputs; everything else is reproducible.
RUN_FIELDS = ("run",)

_DATED = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CHUNK = 1 << 20


class PublishConfig(BaseModel):
    """Where exports go (None: ``<work_dir>/exports``) and how many dated exports to keep (None: all)."""

    model_config = ConfigDict(extra="forbid")

    exports_dir: Path | None = None
    keep_last: int | None = Field(30, ge=1)


@dataclass(frozen=True)
class FileEntry:
    """One exported file as the manifest lists it."""

    path: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Published:
    """Where a publish put its files, and whether they equal an earlier export of the same date."""

    export_dir: Path
    manifest_path: Path
    files: tuple[FileEntry, ...]
    same_as_before: bool | None


def publish_export(
    sources: Mapping[str, Path],
    exports_dir: Path,
    as_of: date,
    versions: Mapping[str, str],
    run: Mapping[str, Any],
    keep_last: int | None = None,
) -> Published:
    """Copy ``sources`` (export name -> file or directory) into ``exports_dir/<as_of>/`` and switch current.

    ``run`` holds what differs between runs (run ids, time); it goes into the manifest's
    ``run`` field and nowhere else, so a rerun on the same inputs writes identical files.
    """
    exports_dir.mkdir(parents=True, exist_ok=True)
    recover_interrupted(exports_dir)
    _refuse_foreign_current(exports_dir)
    token = secrets.token_hex(4)
    staging = exports_dir / f".{as_of.isoformat()}.staging-{token}"
    staging.mkdir()
    entries = stage_files(sources, staging)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "as_of": as_of.isoformat(),
        "files": [asdict(entry) for entry in entries],
        "versions": dict(sorted(versions.items())),
        "run": dict(run),
    }
    _write_durably(staging / RunFile.MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    verify_export(staging)
    target = exports_dir / as_of.isoformat()
    same = _same_files(target, entries)
    move_into_place(staging, target, token)
    switch_current(exports_dir, target.name)
    logger.info("published %d files to %s; current -> %s", len(entries), target, target.name)
    if keep_last is not None:
        prune_exports(exports_dir, keep_last)
    return Published(target, target / RunFile.MANIFEST, tuple(entries), same)


def stage_files(sources: Mapping[str, Path], staging: Path) -> list[FileEntry]:
    """Copy every source (a file, or a directory copied whole) under ``staging``; sorted entries."""
    entries: list[FileEntry] = []
    for name, source in sources.items():
        if source.is_dir():
            for file in sorted(p for p in source.rglob("*") if p.is_file()):
                relative = f"{name}/{file.relative_to(source).as_posix()}"
                entries.append(copy_file(file, staging / relative, relative))
        elif source.is_file():
            entries.append(copy_file(source, staging / name, name))
        else:
            raise SiyuError(
                f"{source}: export file missing\n  fix: check the step that should have written it"
            )
    return sorted(entries, key=lambda entry: entry.path)


def copy_file(source: Path, target: Path, relative: str) -> FileEntry:
    """Copy one file, hashing the bytes as they are written, and flush it to disk."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    return FileEntry(relative, size, digest.hexdigest())


def read_manifest(export_dir: Path) -> dict[str, Any]:
    """The manifest of an export folder; a SiyuError when it is missing or not JSON."""
    path = export_dir / RunFile.MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise SiyuError(
            f"{path}: cannot read the export manifest ({error})\n  fix: publish the run again"
        ) from None


def verify_export(export_dir: Path) -> None:
    """Re-read every file the manifest lists and check its size and SHA-256; raise on any mismatch."""
    manifest = read_manifest(export_dir)
    for entry in manifest["files"]:
        path = export_dir / entry["path"]
        if not path.is_file() or path.stat().st_size != entry["bytes"] or sha256_of(path) != entry["sha256"]:
            raise SiyuError(
                f"{path}: does not match {export_dir / RunFile.MANIFEST}\n"
                "  fix: the disk or a concurrent writer changed it; publish the run again"
            )


def switch_current(exports_dir: Path, folder_name: str) -> None:
    """Point ``current`` (symlink) and ``CURRENT`` (text file) at ``folder_name``, each atomically."""
    token = secrets.token_hex(4)
    link = _refuse_foreign_current(exports_dir)
    temporary_link = exports_dir / f".{CURRENT_LINK}.{token}"
    try:
        os.symlink(folder_name, temporary_link, target_is_directory=True)
    except OSError as error:  # e.g. Windows without the symlink privilege: CURRENT alone
        logger.warning("cannot create the symlink %s (%s); only %s is updated", link, error, CURRENT_FILE)
    else:
        os.replace(temporary_link, link)
    _write_durably(exports_dir / CURRENT_FILE, folder_name + "\n", token)


def _refuse_foreign_current(exports_dir: Path) -> Path:
    """``exports_dir/current``, after checking it is absent or a symlink (never overwrite a real folder)."""
    link = exports_dir / CURRENT_LINK
    if link.exists() and not link.is_symlink():
        raise SiyuError(
            f"{link}: is a real folder or file, not the link siyu maintains\n  fix: move it away and rerun"
        )
    return link


def current_export(exports_dir: Path) -> Path | None:
    """The folder ``current`` points at (the CURRENT file when there is no link), or None."""
    link = exports_dir / CURRENT_LINK
    if link.is_symlink():
        return exports_dir / os.readlink(link)
    pointer = exports_dir / CURRENT_FILE
    if pointer.is_file():
        return exports_dir / pointer.read_text(encoding="utf-8").strip()
    return None


def dated_exports(exports_dir: Path) -> list[Path]:
    """Complete export folders (named by date, holding a manifest), oldest first."""
    if not exports_dir.is_dir():
        return []
    return sorted(
        p
        for p in exports_dir.iterdir()
        if _DATED.match(p.name) and p.is_dir() and (p / RunFile.MANIFEST).is_file()
    )


def previous_export(exports_dir: Path, as_of: date) -> Path | None:
    """The newest complete export strictly before ``as_of`` (history for levels and tiers), or None."""
    earlier = [p for p in dated_exports(exports_dir) if p.name < as_of.isoformat()]
    return earlier[-1] if earlier else None


def prune_exports(exports_dir: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` dated exports, never the one ``current`` points at."""
    current = current_export(exports_dir)
    current_name = current.name if current is not None else None
    exports = dated_exports(exports_dir)
    removed = [p for p in exports[: max(len(exports) - keep_last, 0)] if p.name != current_name]
    for folder in removed:
        shutil.rmtree(folder)
        logger.info("removed old export %s (keep_last=%d)", folder, keep_last)
    return removed


def recover_interrupted(exports_dir: Path) -> None:
    """Undo what a killed publish left: restore a set-aside export, drop staging folders and temp links."""
    for leftover in sorted(exports_dir.glob(".*")):
        name = leftover.name
        if ".previous-" in name:
            original = exports_dir / name[1:].split(".previous-")[0]
            if not original.exists():
                os.replace(leftover, original)
                logger.warning("restored %s, set aside by an interrupted publish", original)
            else:
                shutil.rmtree(leftover)
        elif ".staging-" in name:
            shutil.rmtree(leftover)
            logger.warning("removed %s, left by an interrupted publish", leftover)
        elif name.startswith((f".{CURRENT_LINK}.", f".{CURRENT_FILE}.")):
            leftover.unlink()


def _same_files(existing: Path, entries: list[FileEntry]) -> bool | None:
    """Whether an earlier export of the same date holds exactly these files (None: there is none)."""
    if not (existing / RunFile.MANIFEST).is_file():
        return None
    before = [FileEntry(**entry) for entry in read_manifest(existing)["files"]]
    same = before == entries
    if same:
        logger.info("rerun for %s: every file is identical to the export it replaces", existing.name)
    else:
        old, new = {e.path: e for e in before}, {e.path: e for e in entries}
        changed = sorted(path for path in old.keys() | new.keys() if old.get(path) != new.get(path))
        logger.warning("rerun for %s: files differ from the export it replaces: %s", existing.name, changed)
    return same


def _write_durably(path: Path, text: str, token: str | None = None) -> None:
    """Write ``text`` under a temporary name, flush it to disk, and rename it onto ``path``."""
    temporary = path.with_name(f".{path.name}.{token or secrets.token_hex(4)}")
    with temporary.open("w", encoding="utf-8", newline="\n") as writer:
        writer.write(text)
        writer.flush()
        os.fsync(writer.fileno())
    os.replace(temporary, path)
