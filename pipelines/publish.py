"""Publishing a run: the export into its own folder, then atomic switches of the links that name it.

Layout under the exports directory::

    2025-12-30.3f9c0a1b/          an earlier complete export (kept: the newest ``keep_last`` dates)
    2025-12-30 -> 2025-12-30.3f9c0a1b
    2025-12-31.8d2e4f60/          this run's export, with manifest.json (sizes, SHA-256, versions)
    2025-12-31 -> 2025-12-31.8d2e4f60
    current -> 2025-12-31         relative symlink to the dated link
    CURRENT                       text file holding the real folder name (2025-12-31.8d2e4f60), for
                                  readers that do not follow symlinks (Windows shares, Excel)

Every export gets a folder of its own, ``<as_of>.<token>``, that is never renamed once it is
complete; what moves are the links that name it, each replaced by ``os.replace`` of a new
link (or file) written under a temporary name. So no link ever points at nothing, even
during a same-date rerun: the dated link swaps from the old folder to the new one in one
rename, and the old folder is removed only after ``current`` and ``CURRENT`` have moved.

The order makes a crash harmless: files are copied into a hidden sibling
``.<as_of>.staging-<token>``, each copy is hashed while written and re-read to check it,
``manifest.json`` is written last, the staging folder is renamed to ``<as_of>.<token>``, and
only then do the dated link, ``current`` and ``CURRENT`` switch. A kill at any point leaves
every link on a complete export; the next publish removes the leftovers (staging folders,
temporary links, export folders no link names). An I/O failure before the switch (a full
disk) raises ``PublishError``: "publishing failed: ... — exports/current is unchanged".

Where the file system cannot make symlinks, exports are renamed to ``<as_of>`` directly and
only ``CURRENT`` is maintained (a same-date rerun then sets the old folder aside for an
instant). Two publishes into one exports directory wait for each other (the lock
``.siyu-publish.lock``; two runs into one work directory are refused earlier, by
``pipelines.workdir``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field

from artifact.loader import sha256_of
from features.asof import AsOf
from features.catalog import RunFile
from features.errors import SiyuError
from features.files import (
    can_symlink,
    move_into_place,
    partial_path,
    replace_symlink,
    write_text_atomically,
)
from features.progress import Progress, progress
from features.vocabulary import ExportManifestKey

logger = logging.getLogger(__name__)

CURRENT_LINK = "current"
CURRENT_FILE = "CURRENT"
MANIFEST_VERSION = 1
# Manifest fields that differ between two runs on the same inputs; everything else is reproducible.
RUN_FIELDS = (ExportManifestKey.RUN,)
_MIB = 2**20  # the unit of publish's progress lines
# Libraries whose versions go into the export manifest (deterministic for one environment).
VERSIONED_PACKAGES = (
    "siyu",
    "numpy",
    "pandas",
    "pyarrow",
    "duckdb",
    "scikit-learn",
    "implicit",
    "lightfm-next",
    "pymc-marketing",
    "mlflow",
    "prefect",
)

PUBLISH_LOCK = ".siyu-publish.lock"
PUBLISH_WAIT_SECONDS = 600
_DATED = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EXPORT_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}\.[0-9a-f]{8}$")
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


class PublishError(SiyuError):
    """Publishing stopped on an I/O failure (a full disk, a lost mount) before ``current`` moved."""


def publish_export(
    sources: Mapping[str, Path],
    exports_dir: Path,
    as_of: date | AsOf,
    versions: Mapping[str, str],
    run: Mapping[str, Any],
    keep_last: int | None = None,
    tables: Sequence[str] | None = None,
) -> Published:
    """Copy ``sources`` (export name -> file or directory) into a new export of ``as_of``; switch current.

    ``run`` holds what differs between runs (run ids, time); it goes into the manifest's
    ``run`` field and nowhere else, so a rerun on the same inputs writes identical files.
    ``tables``: the input tables this run read, recorded so a later night notices one missing.
    Raises ``PublishError`` when an I/O failure stops it; ``current`` then is unchanged.
    Publishes into one exports directory (shared by work directories through
    ``publish.exports_dir``) wait for each other (``.siyu-publish.lock``).
    """
    try:
        exports_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(exports_dir / PUBLISH_LOCK, timeout=PUBLISH_WAIT_SECONDS)
        with lock:
            return _publish_locked(sources, exports_dir, str(as_of), versions, run, keep_last, tables)
    except Timeout:
        raise PublishError(
            f"publishing failed: another publish into {exports_dir} held it for {PUBLISH_WAIT_SECONDS} s "
            f"— {exports_dir / CURRENT_LINK} is unchanged\n"
            "  fix: check which siyu run publishes there (publish.exports_dir of another work directory), "
            "then rerun"
        ) from None
    except OSError as error:
        raise PublishError(
            f"publishing failed: {error} — {exports_dir / CURRENT_LINK} is unchanged\n"
            f"  fix: make room or fix {exports_dir}, then rerun"
        ) from None


def _publish_locked(
    sources: Mapping[str, Path],
    exports_dir: Path,
    day: str,
    versions: Mapping[str, str],
    run: Mapping[str, Any],
    keep_last: int | None,
    tables: Sequence[str] | None,
) -> Published:
    """``publish_export`` while holding the exports directory's lock."""
    token = secrets.token_hex(4)
    staging = exports_dir / f".{day}.staging-{token}"
    try:
        recover_interrupted(exports_dir)
        _refuse_foreign_current(exports_dir)
        staging.mkdir()
        entries = stage_files(sources, staging)
        manifest = {
            ExportManifestKey.MANIFEST_VERSION: MANIFEST_VERSION,
            ExportManifestKey.AS_OF: day,
            ExportManifestKey.FILES: [asdict(entry) for entry in entries],
            ExportManifestKey.VERSIONS: dict(sorted(versions.items())),
            ExportManifestKey.RUN: dict(run),
            **({ExportManifestKey.TABLES: sorted(tables)} if tables is not None else {}),
        }
        write_text_atomically(
            staging / RunFile.MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n", durable=True
        )
        verify_export(staging)
        same = _same_files(exports_dir / day, entries)
        if can_symlink(exports_dir):
            replaced = _link_into_place(staging, exports_dir, day, token)
        else:
            replaced = _rename_into_place(staging, exports_dir, day, token)
    except SiyuError:
        _remove_quietly(staging)
        raise
    except OSError as error:
        _remove_quietly(staging)
        raise PublishError(
            f"publishing failed: {error} — {exports_dir / CURRENT_LINK} is unchanged\n"
            f"  fix: make room or fix {exports_dir}, then rerun (the run's outputs are still in outputs/)"
        ) from None
    for leftover in replaced:
        _remove_quietly(leftover)
    logger.info("published %d files to %s; current -> %s", len(entries), exports_dir / day, day)
    if keep_last is not None:
        try:
            prune_exports(exports_dir, keep_last)
        except OSError as error:  # published already: old exports wait for the next run
            logger.warning(
                "cannot remove old exports from %s (%s); the next run tries again", exports_dir, error
            )
    target = exports_dir / day
    return Published(target, target / RunFile.MANIFEST, tuple(entries), same)


def _link_into_place(staging: Path, exports_dir: Path, day: str, token: str) -> list[Path]:
    """Rename ``staging`` to ``<day>.<token>``, point ``<day>``, ``current`` and ``CURRENT`` at it.

    Returns the folders the switch replaced, to remove once nothing points at them.
    """
    folder = f"{day}.{token}"
    os.replace(staging, exports_dir / folder)
    dated = exports_dir / day
    replaced: list[Path] = []
    if dated.is_symlink():
        replaced.append(exports_dir / os.readlink(dated))
    elif dated.exists():  # an export of the old layout (a real folder): current leaves it first
        replace_symlink(exports_dir / CURRENT_LINK, folder)
        set_aside = exports_dir / f".{day}.previous-{token}"
        os.replace(dated, set_aside)
        replaced.append(set_aside)
    replace_symlink(exports_dir / day, folder)
    replace_symlink(exports_dir / CURRENT_LINK, day)
    write_text_atomically(exports_dir / CURRENT_FILE, folder + "\n", durable=True)
    return [path for path in replaced if path.name != folder]


def _rename_into_place(staging: Path, exports_dir: Path, day: str, token: str) -> list[Path]:
    """Without symlinks: rename ``staging`` to ``<day>`` (an old one set aside first); CURRENT names it."""
    logger.warning("%s cannot hold symlinks: only %s is updated", exports_dir, CURRENT_FILE)
    move_into_place(staging, exports_dir / day, token)
    write_text_atomically(exports_dir / CURRENT_FILE, day + "\n", durable=True)
    return []


def stage_files(sources: Mapping[str, Path], staging: Path) -> list[FileEntry]:
    """Copy every source (a file, or a directory copied whole) under ``staging``; sorted entries."""
    files: list[tuple[Path, str]] = []
    for name, source in sources.items():
        if source.is_dir():
            for file in sorted(p for p in source.rglob("*") if p.is_file()):
                files.append((file, f"{name}/{file.relative_to(source).as_posix()}"))
        elif source.is_file():
            files.append((source, name))
        else:
            raise SiyuError(
                f"{source}: export file missing\n  fix: check the step that should have written it"
            )
    total = sum(file.stat().st_size for file, _ in files) / _MIB
    with progress(f"publish: copying {len(files)} files", total=total, unit="MiB") as bar:
        entries = [copy_file(file, staging / relative, relative, bar) for file, relative in files]
    return sorted(entries, key=lambda entry: entry.path)


def copy_file(source: Path, target: Path, relative: str, bar: Progress | None = None) -> FileEntry:
    """Copy one file, hashing the bytes as they are written, and flush it to disk; ``bar``
    advances by the MiB copied."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
            if bar is not None:
                bar.advance(len(chunk) / _MIB)
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
    entries = read_manifest(export_dir)[ExportManifestKey.FILES]
    total = sum(entry["bytes"] for entry in entries) / _MIB
    with progress(f"publish: checking {len(entries)} files", total=total, unit="MiB") as bar:
        for entry in entries:
            path = export_dir / entry["path"]
            if (
                not path.is_file()
                or path.stat().st_size != entry["bytes"]
                or sha256_of(path) != entry["sha256"]
            ):
                raise SiyuError(
                    f"{path}: does not match {export_dir / RunFile.MANIFEST}\n"
                    "  fix: the disk or a concurrent writer changed it; publish the run again"
                )
            bar.advance(entry["bytes"] / _MIB)


def _refuse_foreign_current(exports_dir: Path) -> Path:
    """``exports_dir/current``, after checking it is absent or a symlink (never overwrite a real folder)."""
    link = exports_dir / CURRENT_LINK
    if link.exists() and not link.is_symlink():
        raise SiyuError(
            f"{link}: is a real folder or file, not the link siyu maintains\n  fix: move it away and rerun"
        )
    return link


def current_export(exports_dir: Path) -> Path | None:
    """The export ``current`` points at (its dated link; the CURRENT file when there is no link), or None."""
    link = exports_dir / CURRENT_LINK
    if link.is_symlink():
        return exports_dir / os.readlink(link)
    pointer = exports_dir / CURRENT_FILE
    if pointer.is_file():
        return exports_dir / pointer.read_text(encoding="utf-8").strip()
    return None


def dated_exports(exports_dir: Path) -> list[Path]:
    """Complete exports by date, oldest first: ``<as_of>`` links (or real folders of the old layout)."""
    if not exports_dir.is_dir():
        return []
    return sorted(
        p
        for p in exports_dir.iterdir()
        if _DATED.match(p.name) and p.is_dir() and (p / RunFile.MANIFEST).is_file()
    )


def refuse_older_night(exports_dir: Path, as_of: date | AsOf) -> None:
    """Stop a night as of a date before an export already published here: it would move ``current``
    back to older data and let a model measured on an older window win the champion gate against
    newer ones, so every later night would publish an old model's lists."""
    later = [p.name for p in dated_exports(exports_dir) if p.name > str(as_of)]
    if later:
        raise SiyuError(
            f"{exports_dir}: holds exports dated {', '.join(later)}, after this night's as-of date "
            f"{as_of}; publishing here would move exports/current and the champion alias back\n"
            "  fix: run a look back into another work directory (--out), or as of the newest export's "
            "date or later"
        )


def previous_export(exports_dir: Path, as_of: date | AsOf) -> Path | None:
    """The newest complete export strictly before ``as_of`` (history for levels and tiers), or None."""
    earlier = [p for p in dated_exports(exports_dir) if p.name < str(as_of)]
    return earlier[-1] if earlier else None


def prune_exports(exports_dir: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` dated exports, never the one ``current`` points at."""
    current = current_export(exports_dir)
    current_day = current.name[:10] if current is not None else None
    exports = dated_exports(exports_dir)
    removed = [p for p in exports[: max(len(exports) - keep_last, 0)] if p.name != current_day]
    for dated in removed:
        if dated.is_symlink():
            folder = exports_dir / os.readlink(dated)
            dated.unlink()
            _remove_quietly(folder)
        else:
            shutil.rmtree(dated)
        logger.info("removed old export %s (keep_last=%d)", dated, keep_last)
    return removed


def recover_interrupted(exports_dir: Path) -> None:
    """Undo what a killed publish left: restore a set-aside export, drop staging folders,
    temporary links and export folders that no link or CURRENT names."""
    for leftover in sorted(exports_dir.glob(".*")):
        name = leftover.name
        if ".previous-" in name:
            original = exports_dir / name[1:].split(".previous-")[0]
            if not original.exists() and not original.is_symlink():
                os.replace(leftover, original)
                logger.warning("restored %s, set aside by an interrupted publish", original)
            else:
                _remove_quietly(leftover)
        elif ".staging-" in name:
            shutil.rmtree(leftover)
            logger.warning("removed %s, left by an interrupted publish", leftover)
        elif ".link-" in name:
            leftover.unlink()
    partial_pointer = partial_path(exports_dir / CURRENT_FILE)
    if partial_pointer.exists():
        partial_pointer.unlink()
    named = _named_folders(exports_dir)
    for folder in exports_dir.iterdir():
        if _EXPORT_FOLDER.match(folder.name) and not folder.is_symlink() and folder.name not in named:
            shutil.rmtree(folder)
            logger.warning("removed %s: an export no link names (an interrupted publish)", folder)


def _named_folders(exports_dir: Path) -> set[str]:
    """Export folder names some link or the CURRENT file points at."""
    links = [p for p in exports_dir.iterdir() if _DATED.match(p.name) or p.name == CURRENT_LINK]
    named = {os.readlink(p) for p in links if p.is_symlink()}
    pointer = exports_dir / CURRENT_FILE
    if pointer.is_file():
        named.add(pointer.read_text(encoding="utf-8").strip())
    return named


def _remove_quietly(path: Path) -> None:
    """Remove a folder or link that nothing points at any more; a failure is only logged."""
    try:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
    except OSError as error:
        logger.warning("cannot remove %s (%s); the next publish tries again", path, error)


def _same_files(existing: Path, entries: list[FileEntry]) -> bool | None:
    """Whether an earlier export of the same date holds exactly these files (None: there is none)."""
    if not (existing / RunFile.MANIFEST).is_file():
        return None
    before = [FileEntry(**entry) for entry in read_manifest(existing)[ExportManifestKey.FILES]]
    same = before == entries
    if same:
        logger.info("rerun for %s: every file is identical to the export it replaces", existing.name)
    else:
        old, new = {e.path: e for e in before}, {e.path: e for e in entries}
        changed = sorted(path for path in old.keys() | new.keys() if old.get(path) != new.get(path))
        logger.warning("rerun for %s: files differ from the export it replaces: %s", existing.name, changed)
    return same


def package_versions(packages: Sequence[str] = VERSIONED_PACKAGES) -> dict[str, str]:
    """Python and library versions for the export manifest."""
    versions = {"python": platform.python_version()}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
