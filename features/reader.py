"""Reading a data directory: find each contract table's file, read it, map its column names.

Everything that makes a *file* unusable stops here with a ``ContractError`` naming the
file, the column and the fix: a missing required table, two files for one table, an empty
or unreadable file, a CSV that is not UTF-8, a missing column. Row-level problems are left
to ``features.validate``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from features.columns import Table
from features.contract import CONTRACT
from features.errors import ContractError

logger = logging.getLogger(__name__)

SUFFIXES = (".parquet", ".csv")


class DataSourceConfig(BaseModel):
    """Where the tables come from and how their columns are named.

    ``columns`` maps a table to ``{your column name: contract column name}``, e.g.
    ``{"orders": {"buyer": "consumer_id"}}``.
    """

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, dict[str, str]] = Field(default_factory=dict)


@dataclass(frozen=True)
class RawTable:
    """A table as read from its file: contract column names, values not yet checked."""

    name: str
    path: Path
    frame: pd.DataFrame


def find_table_files(data_dir: Path) -> dict[str, Path]:
    """The file of each contract table present in ``data_dir``; fails on a missing required one."""
    if not data_dir.is_dir():
        raise ContractError(
            data_dir,
            "data directory not found",
            "pass --data with a directory that holds orders.parquet/.csv and products.parquet/.csv",
        )
    found: dict[str, Path] = {}
    for table in Table.ALL:
        candidates = [
            data_dir / f"{table}{suffix}" for suffix in SUFFIXES if (data_dir / f"{table}{suffix}").exists()
        ]
        if len(candidates) > 1:
            raise ContractError(
                candidates[1],
                f"table '{table}' has two files: {', '.join(c.name for c in candidates)}",
                "keep only one of them",
            )
        if candidates:
            found[table] = candidates[0]
        elif table in Table.REQUIRED:
            raise ContractError(
                data_dir / f"{table}.parquet",
                f"required table '{table}' is missing",
                f"add {table}.parquet or {table}.csv to {data_dir}",
            )
    return found


def read_dataset(data_dir: Path, config: DataSourceConfig | None = None) -> dict[str, RawTable]:
    """Read every contract table in ``data_dir`` and rename its columns to the contract's."""
    config = config or DataSourceConfig()
    unknown = set(config.columns) - set(Table.ALL)
    if unknown:
        raise ContractError(
            data_dir,
            f"column mapping names unknown tables {sorted(unknown)}",
            f"use table names among {list(Table.ALL)}",
        )
    tables = {}
    for table, path in find_table_files(data_dir).items():
        frame = read_table_file(path)
        frame = _map_columns(table, path, frame, config.columns.get(table, {}))
        tables[table] = RawTable(table, path, frame)
        logger.info("read %s: %d rows from %s", table, len(frame), path.name)
    return tables


def read_table_file(path: Path) -> pd.DataFrame:
    """Read one Parquet or CSV file; CSV cells are read as text and typed later."""
    frame = _read_parquet(path) if path.suffix == ".parquet" else _read_csv(path)
    if frame.empty:
        raise ContractError(
            path,
            "the file has no data rows",
            "export the table again, or remove the file if the table is optional",
        )
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise ContractError(
            path,
            f"not a readable Parquet file ({error})",
            "write the file again with a Parquet writer, or supply it as CSV",
        ) from None
    return table.to_pandas()


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ContractError(
            path,
            f"not UTF-8 text (byte {error.start} cannot be decoded)",
            "save the file as UTF-8 (Excel: Save As > 'CSV UTF-8'; or iconv -f GBK -t UTF-8)",
        ) from None
    except pd.errors.EmptyDataError:
        raise ContractError(path, "the file is empty", "export the table again with a header row") from None
    except (pd.errors.ParserError, OSError) as error:
        raise ContractError(
            path,
            f"not a readable CSV file ({error})",
            "check quoting and that every row has as many fields as the header",
        ) from None


def _map_columns(table: str, path: Path, frame: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    spec = CONTRACT[table]
    frame = frame.rename(columns=lambda name: str(name).strip()).rename(columns=mapping)
    bad_targets = set(mapping.values()) - set(spec.column_names)
    if bad_targets:
        raise ContractError(
            path,
            f"the column mapping targets {sorted(bad_targets)}, which {table} does not have",
            f"map onto {table} columns: {spec.column_names}",
        )
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise ContractError(
            path, "the header names a column twice (after mapping)", "keep one of them", column=duplicated[0]
        )
    missing = [c for c in spec.required_columns if c not in frame.columns]
    if missing:
        raise ContractError(
            path,
            f"required column missing (the file has: {', '.join(map(str, frame.columns))})",
            f"rename your column to '{missing[0]}', or map it in the config: "
            f"data.columns.{table}: {{<your name>: {missing[0]}}}",
            column=missing[0],
        )
    extra = [c for c in frame.columns if c not in spec.column_names]
    if extra:
        logger.info("%s: ignoring columns the contract does not use: %s", path.name, extra)
    return frame[[c for c in spec.column_names if c in frame.columns]]
