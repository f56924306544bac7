"""Writing a simulation: every output file through one ``TableWriter``, renamed when all succeeded.

Contract tables go to the output folder as ``<table>.parquet``, truth files under
``truth/``; the world's tables are written once, each chunk's tables are appended as row
groups. Every file is written as ``<name>.partial`` and renamed only when the whole
simulation has succeeded; on an error every partial file is removed. An optional contract
table that got no rows is left out.

In the partitioned layout (``Layout.PARTITIONED``) the tables of ``DAY_COLUMNS`` land as a
data lake lands them, one file per day: ``<table>/dt=YYYY-MM-DD/part-0.parquet``. Chunks
are of consumers, not of days, so each chunk's rows are first spooled (sorted by day, one
row group per day, in a ``.spool-*`` folder removed at the end) and every day's file is
written from its row groups once all chunks are in: one file open at a time, one day in
memory. A day file holds that day's rows in the order of the single file.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import TracebackType

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from features.columns import Table
from features.progress import progress
from sources.simulator.config import DAY_COLUMNS, PARTITION_KEY, TRUTH_DIR, Layout, Truth
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

PART_FILE = "part-0.parquet"


def partition_path(out_dir: Path, table: str, day: date) -> Path:
    """The file of ``table``'s rows of ``day`` in the partitioned layout."""
    return out_dir / table / f"{PARTITION_KEY}={day.isoformat()}" / PART_FILE


class Sinks:
    """The output files of one simulation, by file stem, over one ``TableWriter``.

    ``finish`` (called once all chunks are written) writes the day partitions of the
    partitioned layout; the files are renamed into place when the ``with`` block ends.
    """

    def __init__(self, out_dir: Path, layout: Layout = Layout.SINGLE) -> None:
        self._out_dir = out_dir
        self._layout = layout
        self._writer = TableWriter()
        self._spool_dir: Path | None = None
        self._spools: dict[str, DaySpool] = {}

    def __enter__(self) -> Sinks:
        self._writer.__enter__()
        if self._layout is Layout.PARTITIONED:
            self._spool_dir = Path(tempfile.mkdtemp(prefix=".spool-", dir=self._out_dir))
            self._spools = {
                name: DaySpool(self._spool_dir / name, column) for name, column in DAY_COLUMNS.items()
            }
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Rename every file into place, or on failure remove every ``.partial`` file."""
        try:
            self._writer.__exit__(kind, error, trace)
        finally:
            if self._spool_dir is not None:
                shutil.rmtree(self._spool_dir, ignore_errors=True)
        if kind is not None:
            self._remove_empty_folders()
            return
        for path in self._writer.empty():
            logger.warning("%s: no rows simulated, so no file is written", path.stem)
        for name, spool in self._spools.items():
            if spool.chunks and not spool.rows:
                logger.warning("%s: no rows simulated, so no partition is written", name)
        self._remove_other_layout()

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
        if name in self._spools:
            self._spools[name].add(table)
            return
        self._writer.write(self._path(name), table, optional=name in Table.OPTIONAL)

    def finish(self) -> None:
        """Write every day partition of the spooled tables, one file open at a time."""
        for name, spool in self._spools.items():
            with progress(f"writing {name} partitions", total=len(spool), unit="days") as bar:
                for day, rows in spool.days():
                    path = partition_path(self._out_dir, name, day)
                    self._writer.write(path, rows)
                    self._writer.close(path)
                    bar.advance()
            logger.info("%s: %d rows in %d day partitions", name, spool.rows, len(spool))

    @property
    def rows(self) -> dict[str, int]:
        """Rows written per contract table (0 for an optional table left out)."""
        rows = self._writer.rows
        counted = {name: rows[self._path(name)] for name in Table.ALL if self._path(name) in rows}
        counted |= {name: spool.rows for name, spool in self._spools.items() if spool.chunks}
        return {name: counted[name] for name in Table.ALL if name in counted}

    def _path(self, name: str) -> Path:
        folder = self._out_dir if name in Table.ALL else self._out_dir / TRUTH_DIR
        return folder / f"{name}.parquet"

    def _remove_other_layout(self) -> None:
        """Remove what an earlier run in the other layout (or over other days) left of the day
        tables here, so that each table has one form: its file, or its partitions of this run."""
        written = set(self._writer.rows)
        for name in DAY_COLUMNS:
            stale = [self._path(name)] if self._spools else []
            stale += list((self._out_dir / name).glob(f"{PARTITION_KEY}=*/{PART_FILE}"))
            for path in stale:
                if path.is_file() and path not in written:
                    logger.warning("%s: left by an earlier simulation, removed", path)
                    path.unlink()
        self._remove_empty_folders()

    def _remove_empty_folders(self) -> None:
        for name in DAY_COLUMNS:
            table_dir = self._out_dir / name
            for folder in [*table_dir.glob(f"{PARTITION_KEY}=*"), table_dir]:
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()


class DaySpool:
    """One table's rows, spooled chunk by chunk, read back one day at a time.

    ``add`` writes a chunk's rows sorted by day (stable, so within a day the chunk's order is
    kept) as one spool file with one row group per day; ``days`` yields each day's rows, the
    chunks' row groups concatenated in chunk order.
    """

    def __init__(self, folder: Path, day_column: str) -> None:
        self._folder = folder
        self._day_column = day_column
        self._pieces: dict[date, list[tuple[Path, int]]] = defaultdict(list)
        self._files: list[Path] = []
        self.chunks = 0  # tables added, with rows or without
        self.rows = 0

    def __len__(self) -> int:
        return len(self._pieces)

    def add(self, table: pa.Table) -> None:
        """Spool ``table`` (one chunk's rows), one row group per day."""
        self.chunks += 1
        self.rows += table.num_rows
        if not table.num_rows:
            return
        days = table[self._day_column].cast(pa.date32()).to_numpy()
        order = np.argsort(days, kind="stable")
        days, table = days[order], table.take(order)
        starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
        stops = np.r_[starts[1:], len(days)]
        self._folder.mkdir(parents=True, exist_ok=True)
        path = self._folder / f"chunk-{len(self._files):06d}.parquet"
        self._files.append(path)
        with pq.ParquetWriter(path, table.schema) as writer:
            for group, (start, stop) in enumerate(zip(starts, stops, strict=True)):
                writer.write_table(table.slice(start, stop - start), row_group_size=int(stop - start))
                self._pieces[days[start].item()].append((path, group))
        if pq.read_metadata(path).num_row_groups != len(starts):  # a day over the writer's row cap
            raise RuntimeError(f"{path}: a day's rows did not fit one row group; simulate smaller chunks")

    def days(self) -> Iterator[tuple[date, pa.Table]]:
        """Each day's rows, days in order, chunks in the order they were added."""
        files = {path: pq.ParquetFile(path) for path in self._files}
        try:
            for day in sorted(self._pieces):
                pieces = [files[path].read_row_group(group) for path, group in self._pieces[day]]
                yield day, pa.concat_tables(pieces)
        finally:
            for spooled in files.values():
                spooled.close()
