"""Writing a simulation: every output file through one ``TableWriter``, renamed when all succeeded.

Contract tables go to the output folder as ``<table>.parquet``, truth files under
``truth/``; the world's tables are written once, each chunk's tables are appended as row
groups. Every file is written as ``<name>.partial`` and renamed only when the whole
simulation has succeeded; on an error every partial file is removed. An optional contract
table that got no rows is left out.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType

import pyarrow as pa

from features.columns import Table
from sources.simulator.config import TRUTH_DIR, Truth
from sources.simulator.tables import (
    Chunk,
    community_tastes_table,
    defective_frame,
    distributors_table,
    products_table,
)
from sources.simulator.world import World
from sources.table_writer import TableWriter

logger = logging.getLogger(__name__)


class Sinks:
    """The output files of one simulation, by file stem, over one ``TableWriter``."""

    def __init__(self, out_dir: Path) -> None:
        self._out_dir = out_dir
        self._writer = TableWriter()

    def __enter__(self) -> Sinks:
        self._writer.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Rename every file into place, or on failure remove every ``.partial`` file."""
        self._writer.__exit__(kind, error, trace)
        if kind is None:
            for path in self._writer.empty():
                logger.warning("%s: no rows simulated, so no file is written", path.stem)

    def write_world(self, world: World) -> None:
        self.write(Table.PRODUCTS, products_table(world))
        self.write(Table.DISTRIBUTORS, distributors_table(world))
        self.write(Truth.COMMUNITY_TASTES, community_tastes_table(world))
        partial = self._writer.partial(self._out_dir / TRUTH_DIR / f"{Truth.DEFECTIVE_PRODUCTS}.csv")
        defective_frame(world).to_csv(partial, index=False, lineterminator="\n")

    def write_chunk(self, chunk: Chunk) -> None:
        for name, table in chunk.tables.items():
            self.write(name, table)

    def write(self, name: str, table: pa.Table) -> None:
        self._writer.write(self._path(name), table, optional=name in Table.OPTIONAL)

    @property
    def rows(self) -> dict[str, int]:
        """Rows written per contract table (0 for an optional table left out)."""
        rows = self._writer.rows
        return {name: rows[self._path(name)] for name in Table.ALL if self._path(name) in rows}

    def _path(self, name: str) -> Path:
        folder = self._out_dir if name in Table.ALL else self._out_dir / TRUTH_DIR
        return folder / f"{name}.parquet"
