"""The one table writer of every data source: contract-typed tables into Parquet, atomically.

A data source (the simulator, an importer) hands its tables here rather than writing files
itself, so every source writes the same types the same way:

- ``contract_schema`` / ``arrow_schema``: Arrow schemas typed by the contract's column kinds
  (``features.contract``), with pandas metadata that reads back as the contract's dtypes;
  ``conform_to_contract`` gives a pandas frame the contract's column order and dtypes.
- ``TableWriter``: Parquet files written row group by row group (a source may stream a table
  in chunks), each as ``<name>.partial`` through ``features.files.atomic_path``. All files
  are renamed into place together when the ``with`` block ends without an error and all are
  removed when it raises, so a reader never sees a half-written data set.

    with TableWriter() as writer:
        writer.write(out_dir / "orders.parquet", orders)            # a pyarrow Table, or
        writer.write_frame(out_dir / "products.parquet", products)  # a pandas DataFrame
        writer.close(out_dir / "orders.parquet")   # optional: finish a file early (few open at once)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.contract import CONTRACT, Kind, dtype_of
from features.files import atomic_path

logger = logging.getLogger(__name__)

ARROW_TYPES: dict[str, pa.DataType] = {
    "id": pa.string(),
    "choice": pa.string(),
    "category": pa.string(),  # vocabulary: a value, not a column
    "text": pa.string(),
    "integer": pa.int64(),
    "money": pa.float64(),
    "timestamp": pa.timestamp("ns"),
}
# The spelling of each kind's pandas dtype in Parquet's pandas metadata (``dtype_of`` in words).
_PANDAS_METADATA_TYPES: dict[str, str] = {
    "id": "string[pyarrow]",
    "choice": "string[pyarrow]",
    "category": "string[pyarrow]",  # vocabulary: a value, not a column
    "text": "string[pyarrow]",
    "integer": "int64",
    "money": "float64",
    "timestamp": "datetime64[ns]",
}


def arrow_schema(columns: Sequence[tuple[str, Kind]]) -> pa.Schema:
    """Arrow schema whose pandas metadata reads back as the contract's dtypes (string[pyarrow] ...)."""
    described = [
        {
            "name": name,
            "field_name": name,
            "pandas_type": "unicode" if ARROW_TYPES[kind] == pa.string() else str(ARROW_TYPES[kind]),
            "numpy_type": _PANDAS_METADATA_TYPES[kind],
            "metadata": None,
        }
        for name, kind in columns
    ]
    metadata = {"index_columns": [], "column_indexes": [], "columns": described}
    fields = [pa.field(name, ARROW_TYPES[kind]) for name, kind in columns]
    return pa.schema(fields, metadata={b"pandas": json.dumps(metadata).encode()})


def contract_schema(table: str) -> pa.Schema:
    """The Arrow schema of a contract table: every column of ``CONTRACT[table]``, in order."""
    return arrow_schema([(c.name, c.kind) for c in CONTRACT[table].columns])


def conform_to_contract(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """The contract columns ``frame`` has, in contract order, with the contract's dtypes."""
    spec = CONTRACT[table]
    columns = [name for name in spec.column_names if name in frame.columns]
    dtypes = {name: dtype_of(spec.column(name).kind) for name in columns}
    return frame[columns].astype(dtypes).reset_index(drop=True)


class TableWriter:
    """Parquet files written as ``.partial`` row group by row group, renamed together at the end.

    ``write`` appends one row group (none for an empty table) to the file at ``path``, opening
    it on first use with that table's schema. An ``optional`` file is opened only when rows
    arrive, so an optional table that never gets any leaves no file (see ``empty``). ``partial``
    hands out the temporary path of a file written by other means (a CSV), renamed with the rest.
    """

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._writers: dict[Path, pq.ParquetWriter] = {}
        self.rows: dict[Path, int] = {}  # rows written to each Parquet file

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> bool:
        """Close every file, then rename all of them into place, or remove all on an error."""
        return self._stack.__exit__(kind, error, trace)

    def write(self, path: Path, table: pa.Table, *, optional: bool = False) -> None:
        """Append ``table`` to the Parquet file ``path`` (one row group)."""
        self.rows[path] = self.rows.get(path, 0) + table.num_rows
        if path not in self._writers:
            if optional and not table.num_rows:
                return
            partial = self._stack.enter_context(atomic_path(path))
            self._writers[path] = self._stack.enter_context(pq.ParquetWriter(partial, table.schema))
        if table.num_rows:
            self._writers[path].write_table(table)

    def close(self, path: Path) -> None:
        """Finish the Parquet file ``path`` now (no more writes to it); it is still renamed into
        place, or removed, with the rest. A source writing many files keeps few of them open."""
        writer = self._writers.get(path)
        if writer is not None:
            writer.close()

    def write_frame(self, path: Path, frame: pd.DataFrame) -> None:
        """Append a pandas frame to ``path`` as ``DataFrame.to_parquet(index=False)`` would write it."""
        self.write(path, pa.Table.from_pandas(frame, preserve_index=False))

    def partial(self, path: Path) -> Path:
        """Where to write ``path`` by other means; it is renamed (or removed) with the Parquet files."""
        return self._stack.enter_context(atomic_path(path))

    def empty(self) -> list[Path]:
        """Optional files that never got a row, so that no file is written for them."""
        return [path for path in self.rows if path not in self._writers and self.rows[path] == 0]
