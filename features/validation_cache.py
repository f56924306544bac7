"""Per-file validation results kept between runs, so that a night validates only new files.

A table may be several files (``features.reader.PartitionedTable``); each file's outcome is
kept under ``validated/cache/<table>/`` in two levels::

    <file key>/                 the file's content (sha256 of its bytes) + the settings
        facts.json, facts_ids.npz   facts that do not depend on the run (``PartFacts``)
        headers.npz             orders only: the distinct (order, header, time) of its lines
        <run key>/              the outcome of one validation of it:
            clean.parquet         its clean rows
            quarantine-NNNNN.parquet  its quarantined rows as read, a file per chunk that had
                                  any (source_row counted in the file)
            seen.npz              the row and key hashes it added (duplicates in later files)
            ids.npz               its clean ids other tables refer to, and its order lines
            result.json           its counts, reasons, flagged references and column notes

**File key.** The sha256 of the file's bytes, not its size and modification time: a lake
copy or a re-export resets mtimes (a false miss) and a rewrite within the same second
keeps them (a false hit, silently wrong). Hashing reads the file once at about 1 GB/s,
a small share of validating it. The settings are the ``validation:`` section (but
``chunk_rows`` and ``tables_at_once``, which do not change results), the file's column
mapping and ``CACHE_VERSION``: any config change validates everything again.

**Run key.** What a file's outcome depends on beyond its bytes, each part exact:

- the as-of window: nothing when every time in the file is before the as-of end and not
  in the impossible future (``PartFacts.latest_time``), else the end and that bound;
- the files before it in the table (duplicates: the first copy is kept): their file keys
  and windows, chained;
- per referencing column, which of the file's distinct ids the referenced table holds
  (a bit per id, hashed) and whether an unknown one is quarantined or flagged; for
  complaints also which of its order lines exist; for orders, which of its orders are
  inconsistent (an order's lines may disagree across files).

So a night that appends one day's file reuses every earlier file's outcome, and a changed,
new or deleted file validates again itself and the files after it in the same table.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.files import move_into_place
from features.reader import RawTable
from features.validate import ColumnNotes, KnownIds, PartFacts, SeenHashes, TableReport, ValidationConfig

logger = logging.getLogger(__name__)

CACHE_VERSION = 2
CLEAN_PART = "clean.parquet"
QUARANTINE_PART = "quarantine-{:05d}.parquet"
_IN_WINDOW = "in-window"


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def settings_digest(config: ValidationConfig, part: RawTable) -> str:
    """What, beside its bytes, decides how a file reads and is judged (see the module docstring)."""
    settings = dict(
        version=CACHE_VERSION,
        table=part.name,
        config=config.model_dump(mode="json", exclude={"chunk_rows", "tables_at_once"}),
        columns=part.columns,
    )
    return _digest(json.dumps(settings, sort_keys=True))


def window_of(facts: PartFacts, end: pd.Timestamp, latest: pd.Timestamp) -> str:
    """The as-of part of a run key: a constant while every time in the file is in the window."""
    if facts.latest_time is None or (facts.latest_time < end and facts.latest_time <= latest):
        return _IN_WINDOW
    return f"{end.isoformat()}|{latest.isoformat()}"


def references_digest(facts: PartFacts, known: KnownIds, inconsistent: SeenHashes | None) -> str:
    """Which of the file's distinct ids are known (per column and policy) or inconsistent orders."""
    parts = []
    for column, ids in sorted(facts.ids.items()):
        for mark, seen in _membership_sets(column, known, inconsistent):
            if seen is not None:
                bits = np.packbits(seen.contains(ids)).tobytes()
                parts.append(f"{column}:{mark}:{len(ids)}:{hashlib.sha256(bits).hexdigest()}")
    return _digest("\n".join(parts))


def _membership_sets(
    column: str, known: KnownIds, inconsistent: SeenHashes | None
) -> Iterator[tuple[str, SeenHashes | None]]:
    yield "quarantine", known.quarantine.get(column)
    yield "flag", known.flag.get(column)
    if "+" in column:
        yield "order_lines", known.order_lines
    else:
        yield "inconsistent", inconsistent


def run_key(settings: str, window: str, earlier: str, references: str) -> str:
    return _digest("\n".join([settings, window, earlier, references]))


def chain(earlier: str, file_key: str, window: str) -> str:
    """The ``earlier`` part of the next file's run key, once this file is behind it."""
    return _digest("\n".join([earlier, file_key, window]))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class PartOutcome:
    """One file's validation outcome, as kept in (or read back from) the cache."""

    report: TableReport
    notes: ColumnNotes
    seen: dict[str, np.ndarray]
    ids: dict[str, np.ndarray]


class FileEntry:
    """The cache folder of one file (its content and the settings)."""

    def __init__(self, root: Path, part: RawTable, config: ValidationConfig) -> None:
        self.part = part
        self.settings = settings_digest(config, part)
        self.key = f"{file_sha256(part.path)}-{self.settings[:16]}"
        self.path = root / self.key

    def facts(self) -> PartFacts | None:
        """The file's facts, when an earlier run validated it."""
        facts_file = self.path / "facts.json"
        if not facts_file.exists():
            return None
        latest = json.loads(facts_file.read_text())["latest_time"]
        with np.load(self.path / "facts_ids.npz") as ids:
            return PartFacts(pd.Timestamp(latest) if latest else None, {k: ids[k] for k in ids.files})

    def save_facts(self, facts: PartFacts) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _save_npz(self.path / "facts_ids.npz", facts.ids)
        latest = facts.latest_time.isoformat() if facts.latest_time is not None else None
        _write_text(self.path / "facts.json", json.dumps({"latest_time": latest}) + "\n")

    def headers(self) -> pd.DataFrame | None:
        """The file's distinct (order, header, time) triples (``OrderHeaders.distinct``), if kept."""
        path = self.path / "headers.npz"
        if not path.exists():
            return None
        with np.load(path) as stored:
            return pd.DataFrame({name: stored[name] for name in ("order", "header", "time")})

    def save_headers(self, headers: pd.DataFrame) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / "headers.npz"
        partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
        with partial.open("wb") as handle:
            np.savez(handle, **{name: headers[name].to_numpy() for name in ("order", "header", "time")})
        partial.replace(target)

    def result(self, run: str) -> ResultEntry:
        return ResultEntry(self.path / run)


class ResultEntry:
    """One validation outcome of a file under one run key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def exists(self) -> bool:
        return (self.path / "result.json").exists()

    @property
    def clean(self) -> Path:
        return self.path / CLEAN_PART

    def staging(self) -> Path:
        """A fresh folder to write the outcome into before ``commit``."""
        folder = self.path.with_name(f".{self.path.name}.partial-{secrets.token_hex(4)}")
        folder.mkdir(parents=True)
        return folder

    def commit(self, staging: Path, outcome: PartOutcome) -> None:
        """Write the small files beside the clean and quarantine files, then move into place."""
        _save_npz(staging / "seen.npz", outcome.seen)
        _save_npz(staging / "ids.npz", outcome.ids)
        document = {"report": asdict(outcome.report), "notes": _notes_json(outcome.notes)}
        (staging / "result.json").write_text(json.dumps(document, default=str) + "\n")
        move_into_place(staging, self.path, secrets.token_hex(4))

    def load(self, with_seen: bool) -> PartOutcome:
        """The outcome; ``with_seen`` False leaves the row and key hashes on disk."""
        document = json.loads((self.path / "result.json").read_text())
        seen: dict[str, np.ndarray] = {}
        if with_seen:
            with np.load(self.path / "seen.npz") as stored:
                seen = {name: stored[name] for name in stored.files}
        with np.load(self.path / "ids.npz") as stored:
            ids = {name: stored[name] for name in stored.files}
        return PartOutcome(TableReport(**document["report"]), _notes_from_json(document["notes"]), seen, ids)

    def seen(self) -> dict[str, np.ndarray]:
        with np.load(self.path / "seen.npz") as stored:
            return {name: stored[name] for name in stored.files}

    def quarantined(self) -> Iterator[pd.DataFrame]:
        """The quarantined rows, a chunk at a time, with the dtypes they were read with."""
        for path in sorted(self.path.glob(QUARANTINE_PART.replace("{:05d}", "*"))):
            yield pd.read_parquet(path)


def prune(root: Path, used: set[Path]) -> None:
    """Remove every cache folder under ``root`` that this run did not use (two levels)."""
    if not root.exists():
        return
    for table in root.iterdir():
        for file_entry in table.iterdir() if table.is_dir() else ():
            if file_entry not in used:
                shutil.rmtree(file_entry, ignore_errors=True)
                continue
            for result in file_entry.iterdir():
                if result.is_dir() and result not in used:
                    shutil.rmtree(result, ignore_errors=True)


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with path.open("wb") as handle:
        np.savez(handle, **{name: np.asarray(values, dtype=np.uint64) for name, values in arrays.items()})


def _write_text(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    partial.write_text(text)
    partial.replace(path)


def _notes_json(notes: ColumnNotes) -> dict[str, Any]:
    return {
        "readable": sorted(notes.readable),
        "unreadable_example": {k: _jsonable(v) for k, v in notes.unreadable_example.items()},
        "day_month_example": notes.day_month_example,
        "other_forms": sorted(notes.other_forms),
    }


def _jsonable(value: object) -> object:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _notes_from_json(document: dict[str, Any]) -> ColumnNotes:
    return ColumnNotes(
        set(document["readable"]),
        dict(document["unreadable_example"]),
        dict(document["day_month_example"]),
        set(document["other_forms"]),
    )
