"""The DuckDB feature engine: one connection with a view per contract table.

Feature builders take such a connection and return small pandas frames (one row per
consumer, distributor or product). In production the views read the validated Parquet
files; in tests they read in-memory frames. Either way the builders see the same names.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb
import pandas as pd

from features.columns import Table

TableSource = Path | pd.DataFrame


def connect(tables: Mapping[str, TableSource], threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per given contract table.

    A ``Path`` source is read as Parquet (a file, or a directory of part files); a
    DataFrame is registered as it is. Unknown table names are refused so that a typo
    does not silently produce an empty feature.
    """
    unknown = set(tables) - set(Table.ALL)
    if unknown:
        raise ValueError(f"not contract tables: {sorted(unknown)}; expected some of {Table.ALL}")
    con = duckdb.connect(":memory:")
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    for name, source in tables.items():
        if isinstance(source, pd.DataFrame):
            con.register(f"{name}_frame", source)
            con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM "{name}_frame"')
        else:
            pattern = str(Path(source) / "*.parquet") if Path(source).is_dir() else str(source)
            con.execute(f"CREATE VIEW \"{name}\" AS SELECT * FROM read_parquet('{_quote(pattern)}')")
    return con


def has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether ``connect`` was given this table."""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
    ).fetchone()
    return bool(found and found[0])


def _quote(text: str) -> str:
    return text.replace("'", "''")
