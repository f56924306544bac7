"""Writing a validation result: clean tables as Parquet, quarantine as CSV, a JSON report.

Layout under ``out_dir``::

    clean/<table>.parquet        typed rows that passed every check
    quarantine/<table>.csv       rows set aside, as read, with source_row and quarantine_reason
    validation.json              rows read / kept / quarantined per table and reason

Every file is written beside its final name and renamed, so none is ever half-written.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from features.validate import ValidationResult

CLEAN_DIR = "clean"
QUARANTINE_DIR = "quarantine"
REPORT_FILE = "validation.json"


def write_validated(result: ValidationResult, out_dir: Path) -> dict[str, Path]:
    """Write clean tables, one quarantine file per table and the report; return the clean paths."""
    clean_paths: dict[str, Path] = {}
    for table, validated in result.tables.items():
        clean_paths[table] = _atomic(
            out_dir / CLEAN_DIR / f"{table}.parquet",
            lambda p, f=validated.clean: f.to_parquet(p, index=False),
        )
        _atomic(
            out_dir / QUARANTINE_DIR / f"{table}.csv",
            lambda p, f=validated.quarantine: f.to_csv(p, index=False, encoding="utf-8"),
        )
    report = {"as_of": result.as_of.isoformat(), "tables": [asdict(r) for r in result.reports]}
    _atomic(out_dir / REPORT_FILE, lambda p: p.write_text(json.dumps(report, indent=2) + "\n"))
    return clean_paths


def _atomic(path: Path, write: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    write(partial)  # type: ignore[operator]
    os.replace(partial, path)
    return path
